//! Fuzz target: see `hookgate::fuzzing::messages_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::messages_body(data));
