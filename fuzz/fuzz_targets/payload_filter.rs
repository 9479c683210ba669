//! Fuzz target: see `hookgate::fuzzing::payload_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::payload_filter(data));
