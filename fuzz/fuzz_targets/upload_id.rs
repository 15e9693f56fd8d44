//! Fuzz target: sealgate::fuzzing::upload_id (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealgate::fuzzing::upload_id(data));
