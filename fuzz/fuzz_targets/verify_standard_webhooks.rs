//! Fuzz target: see `hookgate::fuzzing::verify_standard_webhooks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::verify_standard_webhooks(data));
