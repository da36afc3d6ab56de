#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetgate::fuzz::request_head(data));
