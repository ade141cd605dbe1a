//! cargo-fuzz target `log_scan`: see `mtrdb_fuzz::log_scan` (fuzz/src/log_scan.rs) for the input format and the
//! properties it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mtrdb_fuzz::log_scan::run(data));
