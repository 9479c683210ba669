//! Fuzz target: see `hookgate::fuzzing::durations`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::durations(data));
