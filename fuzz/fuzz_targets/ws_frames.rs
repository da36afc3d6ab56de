#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetgate::fuzz::ws_frames(data));
