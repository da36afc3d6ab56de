#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetgate::fuzz::pusher_frame(data));
