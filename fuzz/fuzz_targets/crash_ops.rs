//! cargo-fuzz target `crash_ops`: see `mtrdb_fuzz::crash_ops` (fuzz/src/crash_ops.rs) for the input format and the
//! properties it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mtrdb_fuzz::crash_ops::run(data));
