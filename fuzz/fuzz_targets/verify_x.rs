//! Fuzz target: the `x` verifier and its handshakes on arbitrary headers and body (see
//! `hookgate::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzzing::verify("x", data));
