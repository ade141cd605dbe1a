//! Writes the committed seed corpus: `fuzz/corpus/NAME/seed-*` for every target.
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`. Rerun it
//! after changing an input format in `fuzz/src/` (and commit the result). The seeds are the same
//! on every run except those holding pages of a real database (`page/seed-db-page-*`,
//! `open_garbage/seed-raw-*`), whose meta page carries a random log id.
//! Each seed is written in the format documented in the target's module, with
//! [`mtrdb_fuzz::input::Writer`], and is run once through the harness before it is written, so a
//! seed that trips an assertion is caught here.

use std::path::{Path, PathBuf};

use mtr::varint;
use mtrdb::page::{self, LeafValue};
use mtrdb::redo::kind;
use mtrdb_fuzz::input::Writer;
use mtrdb_fuzz::{crash_ops, log_scan, open_garbage};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

fn write_seeds(target: &str, run: fn(&[u8]), seeds: Vec<(&str, Vec<u8>)>) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    // Replace the old seeds, keep whatever a campaign added.
    for entry in std::fs::read_dir(&dir).expect("list the corpus") {
        let path = entry.expect("corpus entry").path();
        if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("seed-")) {
            std::fs::remove_file(path).expect("remove an old seed");
        }
    }
    for (name, bytes) in &seeds {
        run(bytes);
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
    println!("{target}: {} seeds in {}", seeds.len(), dir.display());
}

// ---- log_scan -------------------------------------------------------------------------------

/// A frame as `mtr::frame` lays it out, at `lsn`, with the log durable up to `durable`.
fn frame(lsn: u64, durable: u64, body: &[u8], flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    varint::put(&mut out, body.len() as u64);
    varint::put(&mut out, lsn - durable);
    let header_len = out.len();
    out.extend_from_slice(body);
    out.push(0);
    out.push(flags);
    let mut crc = crc32c::crc32c(body);
    crc = crc32c::crc32c_append(crc, &out[..header_len]);
    crc = crc32c::crc32c_append(crc, &[0, flags]);
    crc = crc32c::crc32c_append(crc, &lsn.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn body(records: &[(u8, u64, &[u8])]) -> Vec<u8> {
    let mut mtr = mtr::MtrBuf::new();
    for &(record_kind, page_id, payload) in records {
        mtr.push(record_kind, page_id, payload);
    }
    mtr.body().to_vec()
}

/// Frames from `lsn` on; the log durable up to `durable` for each (`u64::MAX`: up to its start).
fn frames(mut lsn: u64, durable: u64, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for index in 0..count {
        let payload = vec![index as u8; 10 + index * 13];
        let bytes = frame(lsn, durable.min(lsn), &body(&[(19, index as u64 + 1, &payload), (23, 2, &[1, 0, 0, 0])]), 1);
        lsn += bytes.len() as u64;
        out.extend_from_slice(&bytes);
    }
    out
}

fn raw_log(header: u8, slots: [(u8, [u64; 3]); 2], ring_offset: u32, ring: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(0).u64(0x5eed_0001);
    w.u8(header);
    if header == 2 {
        let mut block = [0u8; 60];
        block[..8].copy_from_slice(log_scan::HEADER_MAGIC);
        block[8] = 1;
        block[16..24].copy_from_slice(&(64u64 * 1024).to_le_bytes());
        block[24..32].copy_from_slice(&0x5eed_0001u64.to_le_bytes());
        w.bytes(&block);
    }
    for (mode, [number, lsn, durable]) in slots {
        w.u8(mode);
        match mode {
            1 => w.bytes(&[0xee; 64]),
            2 => w.bytes(&[0x5a; 60]),
            3 => w.u64(number).u64(lsn).u64(durable),
            _ => &mut w,
        };
    }
    w.u8(0).u32(ring_offset).bytes(ring);
    w.finish()
}

enum Step {
    Append(u8, Vec<(u8, u32, Vec<u8>)>),
    Flush,
    Checkpoint(u8),
    Filler(u16),
}

fn written_log(resume_at: u64, steps: &[Step], damages: &[(u8, u16, u32)]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1).u64(0x5eed_0002).u64(resume_at).u8(steps.len() as u8);
    for step in steps {
        match step {
            Step::Append(flags, records) => {
                w.u8(0).u8(*flags).u8(records.len() as u8 - 1);
                for (record_kind, page_id, payload) in records {
                    w.u8(*record_kind).u32(*page_id).blob(payload);
                }
            }
            Step::Flush => {
                w.u8(1);
            }
            Step::Checkpoint(pick) => {
                w.u8(2).u8(*pick);
            }
            Step::Filler(len) => {
                w.u8(3).u16(*len);
            }
        }
    }
    w.u8(damages.len() as u8);
    for &(what, len_or_mask, at) in damages {
        w.u8(what);
        match what {
            0 => w.u16(len_or_mask),
            1 => w.u8(len_or_mask as u8),
            _ => &mut w,
        };
        w.u32(at);
    }
    w.finish()
}

fn append(flags: u8, count: u8) -> Step {
    Step::Append(flags, (0..count).map(|i| (19 + i, u32::from(i) + 3, vec![i; 5 + usize::from(i) * 40])).collect())
}

fn log_scan_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let keep = (0, [0; 3]);
    let mut seeds = vec![
        ("raw-empty", raw_log(0, [keep, keep], 0, &[])),
        ("raw-frames-at-0", raw_log(0, [keep, keep], 0, &frames(0, 0, 6))),
        (
            "raw-frames-after-checkpoint",
            raw_log(0, [(3, [4, 70_000, 70_100]), keep], 70_000 % 65_536, &frames(70_000, 70_000, 8)),
        ),
        ("raw-frames-wrapping", raw_log(0, [keep, (3, [3, 65_000, 65_000])], 65_000, &frames(65_000, 65_000, 10))),
        ("raw-header-resealed", raw_log(2, [keep, keep], 0, &frames(0, 0, 2))),
        ("raw-slot-garbage", raw_log(0, [(1, [0; 3]), keep], 0, &[0xff; 64])),
    ];
    // A torn frame followed by a valid one that proves the torn one durable (corruption).
    let mut middle = frames(0, u64::MAX, 3);
    let first_len = frame(0, 0, &body(&[(19, 1, &[0; 10]), (23, 2, &[1, 0, 0, 0])]), 1).len();
    middle[first_len + 3] ^= 0x40;
    seeds.push(("raw-corrupt-middle", raw_log(0, [keep, keep], 0, &middle)));
    let rounds = vec![
        append(1, 2),
        append(0, 1),
        Step::Flush,
        append(1, 3),
        Step::Flush,
        Step::Checkpoint(1),
        append(1, 4),
        Step::Flush,
        append(2, 1),
        append(1, 1),
        Step::Flush,
    ];
    seeds.push(("written-clean", written_log(0, &rounds, &[])));
    let short = [append(1, 1), Step::Flush, Step::Checkpoint(1), append(1, 2), Step::Flush, append(1, 1), Step::Flush];
    // The live log is a 64-byte mtr and a 16-byte one: damage the last flush round only.
    seeds.push(("written-torn-tail", written_log(12_345, &short, &[(1, 0xff, 70)])));
    seeds.push(("written-damaged-before-last-round", written_log(12_345, &short, &[(1, 0x80, 30)])));
    seeds.push(("written-flip-middle", written_log(1 << 33, &rounds, &[(1, 0x10, 20)])));
    seeds.push(("written-sector", written_log(7, &rounds, &[(2, 0, 600)])));
    let mut wrap = Vec::new();
    for round in 0..12 {
        wrap.push(Step::Filler(3000 + round * 250));
        wrap.push(append(1, 2));
        wrap.push(Step::Flush);
        if round % 4 == 3 {
            wrap.push(Step::Checkpoint(2));
        }
    }
    wrap.push(append(1, 1));
    seeds.push(("written-wrapping", written_log(60_000, &wrap, &[(0, 100, 4000), (1, 1, 9000)])));
    seeds.push(("written-unflushed-tail", written_log(99, &[append(1, 2), Step::Flush, append(1, 3)], &[])));
    seeds
}

// ---- page -----------------------------------------------------------------------------------

fn leaf_cells(keys: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let value = vec![index as u8; 3 + index * 5];
        page::encode_leaf_cell(&mut out, key.as_bytes(), LeafValue::Inline(&value));
    }
    out
}

fn node_format(node_kind: u8, level: u8, link: u32, cells: &[u8]) -> Vec<u8> {
    let mut out = vec![node_kind, level];
    out.extend_from_slice(&link.to_le_bytes());
    out.extend_from_slice(cells);
    out
}

/// A `page` input. Record kinds are given as the engine's kinds (16..=26), encoded as `kind - 16`.
fn page_input(flags: u8, page_id: u32, records: &[(u8, Vec<u8>)], bytes: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(flags).u32(page_id).u8(records.len() as u8);
    for (record_kind, payload) in records {
        w.u8(record_kind - kind::NODE_FORMAT).blob(payload);
    }
    w.bytes(bytes);
    w.finish()
}

fn page_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let leaf = node_format(2, 0, 9, &leaf_cells(&["apple", "banana", "cherry", "date"]));
    let mut put = Vec::new();
    page::encode_leaf_cell(&mut put, b"blueberry", LeafValue::Inline(b"blue"));
    let mut put_overflow = Vec::new();
    page::encode_leaf_cell(&mut put_overflow, b"coconut", LeafValue::Overflow { len: 9000, first_page: 12 });
    let mut branch_cells = Vec::new();
    for (index, key) in ["g", "m", "t"].iter().enumerate() {
        page::encode_branch_cell(&mut branch_cells, key.as_bytes(), 20 + index as u32);
    }
    let branch = node_format(3, 1, 19, &branch_cells);
    let mut branch_put = Vec::new();
    page::encode_branch_cell(&mut branch_put, b"p", 30);
    let mut meta_init = 0x1234_5678_9abc_def1u64.to_le_bytes().to_vec();
    for field in [1u32, 1, 2, 0] {
        meta_init.extend_from_slice(&field.to_le_bytes());
    }
    let mut meta_set = Vec::new();
    for field in [5u32, 2, 9, 7] {
        meta_set.extend_from_slice(&field.to_le_bytes());
    }
    // A page image built the engine's way, sealed, as raw bytes.
    let mut built = vec![0u8; 4096];
    mtrdb::redo::apply(kind::NODE_FORMAT, 5, &leaf, &mut built).expect("format a leaf");
    page::seal(5, &mut built);
    let mut seeds = vec![
        ("zero-page", page_input(0, 3, &[], &[])),
        (
            "leaf-ops",
            page_input(
                0,
                5,
                &[
                    (kind::NODE_FORMAT, leaf.clone()),
                    (kind::CELL_PUT, put.clone()),
                    (kind::CELL_PUT, put_overflow),
                    (kind::CELL_DELETE, b"banana".to_vec()),
                    (kind::TRUNCATE_FROM, b"cherry".to_vec()),
                    (kind::CELLS_APPEND, leaf_cells(&["x", "y", "z"])),
                    (kind::SET_LINK, 44u32.to_le_bytes().to_vec()),
                ],
                &[],
            ),
        ),
        (
            "branch-ops",
            page_input(
                0,
                8,
                &[
                    (kind::NODE_FORMAT, branch),
                    (kind::CELL_PUT, branch_put),
                    (kind::CELL_DELETE, b"m".to_vec()),
                    (kind::SET_LINK, 18u32.to_le_bytes().to_vec()),
                ],
                &[],
            ),
        ),
        (
            "overflow-free",
            page_input(
                0,
                12,
                &[
                    (kind::OVERFLOW_FORMAT, [&13u32.to_le_bytes()[..], &[7u8; 300][..]].concat()),
                    (kind::SET_LINK, 0u32.to_le_bytes().to_vec()),
                    (kind::FREE_FORMAT, 4u32.to_le_bytes().to_vec()),
                ],
                &[],
            ),
        ),
        ("meta", page_input(0, 0, &[(kind::META_INIT, meta_init), (kind::META_SET, meta_set)], &[])),
        ("built-leaf-sealed", page_input(4, 5, &[(kind::CELL_PUT, put.clone())], &built)),
        ("built-leaf-64k", page_input(1, 5, &[(kind::NODE_FORMAT, leaf), (kind::CELL_PUT, put)], &[])),
    ];
    // Pages of a real database, as the data file holds them.
    let base = open_garbage::build_base(4096, false);
    let data = base.data.expect("the base data file");
    let names = ["db-page-0", "db-page-1", "db-page-2", "db-page-3", "db-page-4", "db-page-5", "db-page-6"];
    for (page_id, name) in names.iter().enumerate() {
        if let Some(bytes) = data.get(page_id * 4096..(page_id + 1) * 4096) {
            seeds.push((name, page_input(2, page_id as u32, &[], bytes)));
        }
    }
    seeds
}

// ---- open_garbage ---------------------------------------------------------------------------

enum Edit {
    Write(u8, u32, Vec<u8>),
    SetLen(u8, u32),
    Xor(u8, u32, u8),
    Copy(u8, u32, u32, u16),
}

fn garbage_input(base: u8, absent: u8, edits: &[Edit]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(base).u8(absent).u8(edits.len() as u8);
    for edit in edits {
        match edit {
            Edit::Write(file, at, bytes) => w.u8(*file).u32(*at).blob(bytes),
            Edit::SetLen(file, len) => w.u8(file + 3).u32(*len),
            Edit::Xor(file, at, mask) => w.u8(file + 6).u32(*at).u8(*mask),
            Edit::Copy(file, from, to, len) => w.u8(file + 9).u32(*from).u32(*to).u16(*len),
        };
    }
    w.finish()
}

fn raw_files(data: &[u8], log: &[u8], doublewrite: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(0).u8(0).u16(data.len() as u16).u16(log.len() as u16).bytes(data).bytes(log).bytes(doublewrite);
    w.finish()
}

fn open_garbage_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const DATA: u8 = 0;
    const LOG: u8 = 1;
    const DBLWR: u8 = 2;
    let base = open_garbage::build_base(4096, false);
    let data = base.data.expect("data file");
    vec![
        ("raw-empty", raw_files(&[], &[], &[])),
        ("raw-meta-only", raw_files(&data[..4096], &[], &[])),
        ("raw-three-pages", raw_files(&data[..3 * 4096], &[0; 100], &data[4096..8192])),
        ("clean", garbage_input(1, 0, &[])),
        ("crashed", garbage_input(2, 0, &[])),
        ("clean-64k", garbage_input(3, 0, &[])),
        ("clean-flip-leaf", garbage_input(1, 0, &[Edit::Xor(DATA, 2 * 4096 + 700, 0x08)])),
        ("crashed-flip-log-ring", garbage_input(2, 0, &[Edit::Xor(LOG, 12_288 + 1000, 0x01)])),
        ("crashed-torn-page", garbage_input(2, 0, &[Edit::Write(DATA, 4096 + 512, vec![0; 512])])),
        ("crashed-no-dblwr", garbage_input(2, 4, &[])),
        ("clean-no-log", garbage_input(1, 2, &[])),
        ("clean-truncated-data", garbage_input(1, 0, &[Edit::SetLen(DATA, 3 * 4096 + 100)])),
        ("clean-moved-page", garbage_input(1, 0, &[Edit::Copy(DATA, 4096, 3 * 4096, 4096)])),
        ("crashed-slot-zeroed", garbage_input(2, 0, &[Edit::Write(LOG, 4096, vec![0; 64])])),
        ("crashed-dblwr-garbage", garbage_input(2, 0, &[Edit::Write(DBLWR, 0, vec![0xa5; 4096])])),
        ("clean-meta-page-count", garbage_input(1, 0, &[Edit::Write(DATA, 64, 0xffff_fff0u32.to_le_bytes().to_vec())])),
    ]
}

// ---- crash_ops ------------------------------------------------------------------------------

struct Ops(Writer);

impl Ops {
    fn new() -> Ops {
        Ops(Writer::new())
    }
    fn insert(&mut self, key: u8, class: u8, len: u16) -> &mut Ops {
        self.0.u8(0).u8(key);
        self.value(class, len);
        self
    }
    fn value(&mut self, class: u8, len: u16) {
        self.0.u8(class);
        if class < 5 {
            self.0.u8(len as u8);
        } else {
            self.0.u16(len);
        }
    }
    fn remove(&mut self, key: u8) -> &mut Ops {
        self.0.u8(1).u8(key);
        self
    }
    fn batch(&mut self, entries: &[(bool, u8)]) -> &mut Ops {
        self.0.u8(2);
        self.batch_fields(entries);
        self
    }
    fn batch_fields(&mut self, entries: &[(bool, u8)]) {
        self.0.u8(entries.len() as u8 - 1);
        for &(remove, key) in entries {
            self.0.u8(u8::from(remove)).u8(key);
            if !remove {
                self.value(1, 60);
            }
        }
    }
    /// A foreground checkpoint.
    fn checkpoint(&mut self) -> &mut Ops {
        self.0.u8(3).u8(0xff);
        self
    }
    /// A checkpoint held before I/O operation `now + pause` while the batch is written.
    fn overlapped_checkpoint(&mut self, pause: u8, entries: &[(bool, u8)]) -> &mut Ops {
        assert!(pause < crash_ops::PLAIN_CHECKPOINT);
        self.0.u8(3).u8(pause);
        self.batch_fields(entries);
        self
    }
    fn op(&mut self, opcode: u8) -> &mut Ops {
        self.0.u8(opcode);
        self
    }
    fn arm_crash(&mut self, after: u16, seed: u64, recovery_crash: u8) -> &mut Ops {
        self.0.u8(5).u16(after).u64(seed).u8(recovery_crash);
        self
    }
    fn power_loss(&mut self, seed: u64, recovery_crash: u8) -> &mut Ops {
        self.0.u8(6).u64(seed).u8(recovery_crash);
        self
    }
    fn io_error(&mut self, after: u16) -> &mut Ops {
        self.0.u8(7).u16(after);
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        self.0.finish()
    }
}

fn crash_ops_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const REOPEN: u8 = 4;
    let mut seeds = Vec::new();
    seeds.push(("insert-power-loss", Ops::new().insert(1, 0, 10).insert(2, 0, 20).power_loss(2, 0).finish()));
    let mut splits = Ops::new();
    for key in 0..40u8 {
        splits.insert(0x80 + key % 64, 1, 100);
    }
    splits.checkpoint();
    for key in 0..30u8 {
        splits.insert(key * 3, 2, 150);
    }
    splits.arm_crash(25, 5, 0);
    for key in 0..20u8 {
        splits.insert(key * 5 + 1, 3, 90);
    }
    seeds.push(("splits-crash", splits.finish()));
    let mut overflow = Ops::new();
    overflow.insert(7, 7, 3000).insert(8, 7, 5000).insert(9, 5, 1400).checkpoint();
    overflow.insert(7, 7, 100).remove(8).op(REOPEN).remove(7).power_loss(9, 0);
    seeds.push(("overflow-reopen", overflow.finish()));
    let mut merges = Ops::new();
    for key in 0..30u8 {
        merges.insert(0x80 + key, 4, 200);
    }
    merges.checkpoint();
    for key in 0..30u8 {
        merges.remove(0x80 + key);
    }
    merges.power_loss(11, 0);
    seeds.push(("merges", merges.finish()));
    let mut batches = Ops::new();
    batches.batch(&[(false, 1), (false, 2), (false, 0x81), (true, 1)]);
    batches.batch(&[(false, 3), (true, 2), (false, 0x90)]);
    batches.arm_crash(3, 13, 0).batch(&[(false, 4), (false, 5)]).batch(&[(false, 6)]);
    seeds.push(("batches-torn", batches.finish()));
    let mut io = Ops::new();
    io.insert(1, 0, 10).io_error(1).insert(2, 0, 10).insert(3, 0, 10).op(REOPEN).insert(4, 0, 10);
    io.io_error(4).checkpoint().insert(5, 1, 10).op(REOPEN);
    seeds.push(("io-errors", io.finish()));
    let mut recovery = Ops::new();
    for key in 0..25u8 {
        recovery.insert(key, 6, 700);
    }
    recovery.power_loss(21, 9).insert(30, 0, 5).power_loss(22, 30);
    seeds.push(("crash-during-recovery", recovery.finish()));
    let mut blob = Ops::new();
    blob.0.u8(0).u8(0xc0).u8(4).bytes(b"hello").u8(0).u8(4);
    blob.0.u8(0).u8(0xff).u8(63).bytes(&[0xfe; 64]).u8(7).u16(2000);
    blob.checkpoint().arm_crash(0, 4, 0).insert(1, 0, 1);
    seeds.push(("blob-keys", blob.finish()));
    // Checkpoints held at their 0th..7th I/O operation while a batch that splits and merges is
    // written, with the background thread checkpointing the 256 KiB log as it fills.
    let mut overlapped = Ops::new();
    for round in 0..8u8 {
        for key in 0..4u8 {
            overlapped.insert(0x80 + (round * 4 + key) % 64, 5, 900);
        }
        let removes: Vec<(bool, u8)> = (0..3u8).map(|key| (true, 0x80 + (round * 3 + key) % 64)).collect();
        overlapped.overlapped_checkpoint(round, &removes);
    }
    overlapped.arm_crash(40, 17, 0);
    for key in 0..5u8 {
        overlapped.insert(0x80 + key, 7, 3000);
    }
    seeds.push(("overlapped-checkpoints", overlapped.finish()));
    // A failed sync (the I/O error lands on one of the checkpoint's operations), a reopen in the
    // same boot, more writes, and a power loss whose recovery is itself killed.
    let mut failed_sync = Ops::new();
    for key in 0..20u8 {
        failed_sync.insert(key, 6, 800);
    }
    failed_sync.io_error(6).checkpoint().op(REOPEN);
    for key in 0..10u8 {
        failed_sync.insert(key + 40, 1, 50).remove(key);
    }
    failed_sync.power_loss(23, 12);
    seeds.push(("failed-sync-reopen", failed_sync.finish()));
    seeds
}

fn main() {
    write_seeds("log_scan", log_scan::run, log_scan_seeds());
    write_seeds("page", mtrdb_fuzz::page::run, page_seeds());
    write_seeds("open_garbage", open_garbage::run, open_garbage_seeds());
    write_seeds("crash_ops", crash_ops::run, crash_ops_seeds());
}
