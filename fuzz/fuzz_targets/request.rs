//! Fuzz target: sealgate::fuzzing::request (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealgate::fuzzing::request(data));
