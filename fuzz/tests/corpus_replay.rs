//! Runs every committed seed (`corpus/NAME/seed-*`) and every regression input
//! (`regressions/NAME/*`) through its harness, without a sanitizer or cargo-fuzz:
//! `cargo test --manifest-path fuzz/Cargo.toml`. A regression input here is a minimized crash
//! that a campaign found; once the engine is fixed it must pass, and it keeps passing.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for (dir, seeds_only) in [(root.join("corpus").join(target), true), (root.join("regressions").join(target), false)]
    {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if path.is_file() && (!seeds_only || name.starts_with("seed-")) && !name.starts_with('.') {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    for path in &inputs {
        let bytes = std::fs::read(path).expect("read an input");
        println!("{target}: {}", path.display());
        run(&bytes);
    }
    assert!(!inputs.is_empty(), "no seeds for {target}");
}

#[test]
fn log_scan_seeds_and_regressions() {
    replay("log_scan", mtrdb_fuzz::log_scan::run);
}

#[test]
fn page_seeds_and_regressions() {
    replay("page", mtrdb_fuzz::page::run);
}

#[test]
fn open_garbage_seeds_and_regressions() {
    replay("open_garbage", mtrdb_fuzz::open_garbage::run);
}

#[test]
fn crash_ops_seeds_and_regressions() {
    replay("crash_ops", mtrdb_fuzz::crash_ops::run);
}
