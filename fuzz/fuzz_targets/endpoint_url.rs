//! Fuzz target: see `hookgate::fuzzing::endpoint_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::endpoint_url(data));
