//! Fuzz target: see `hookgate::fuzzing::transform_output`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::transform_output(data));
