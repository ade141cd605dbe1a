//! # mtrdb-fuzz: the harnesses behind mtrdb's cargo-fuzz targets
//!
//! Each module is one target: its `run(data)` is what `fuzz_targets/NAME.rs` calls, and its
//! module doc gives the input format byte by byte and the properties it asserts. Keeping the
//! harnesses in a library lets `tests/corpus_replay.rs` run every committed seed and regression
//! input under plain `cargo test` (no sanitizer, no cargo-fuzz), and lets `examples/gen_seeds.rs`
//! encode the seed corpus with the same format the harness decodes.
//!
//! - [`log_scan`]: a redo log file of arbitrary bytes, or one written by the real log writer and
//!   then damaged, through `LogFile::open`, the checkpoint slots and the `Scanner` in both modes.
//! - [`page`]: a page of arbitrary bytes through `validate`, the checksum, a `Node` walk and a
//!   sequence of `redo::apply` calls.
//! - [`open_garbage`]: database files of arbitrary bytes (or a real small database with parts
//!   overwritten) through `Db::open_storage`, `check`, `get` and iteration.
//! - [`crash_ops`]: a sequence of batches, checkpoints, reopens, injected I/O errors and power
//!   losses on the fault-injecting storage, checked against a `BTreeMap` model.
//!
//! The inputs are read with [`input::Reader`], a fixed-layout little-endian reader that returns
//! zeros once the input is exhausted, rather than with `arbitrary`: a fixed layout is what the
//! seed encoders can write byte for byte, and what a mutator's byte flips map onto predictably.

pub mod crash_ops;
pub mod input;
pub mod log_scan;
pub mod open_garbage;
pub mod page;
