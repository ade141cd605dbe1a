//! cargo-fuzz target `open_garbage`: see `mtrdb_fuzz::open_garbage` (fuzz/src/open_garbage.rs) for the input format and the
//! properties it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mtrdb_fuzz::open_garbage::run(data));
