//! Fuzz target: see `hookgate::fuzzing::verify_hmac`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::verify_hmac(data));
