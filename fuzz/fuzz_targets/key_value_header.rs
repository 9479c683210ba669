//! Fuzz target: see `hookgate::fuzzing::key_value_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::key_value_header(data));
