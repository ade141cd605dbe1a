//! cargo-fuzz target `page`: see `mtrdb_fuzz::page` (fuzz/src/page.rs) for the input format and the
//! properties it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mtrdb_fuzz::page::run(data));
