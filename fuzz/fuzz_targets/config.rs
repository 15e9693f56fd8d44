//! Fuzz target: sealgate::fuzzing::config (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealgate::fuzzing::config(data));
