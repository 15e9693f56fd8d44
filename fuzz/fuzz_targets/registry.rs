//! Fuzz target: sealgate::fuzzing::registry (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealgate::fuzzing::registry(data));
