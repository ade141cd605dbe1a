//! Measuring the machine: bytes the block device wrote (`/proc/diskstats`), bytes files occupy,
//! this process's peak memory, `sync -f`, and benchmark directories on the real disk.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Sectors of 512 bytes written to the block device that holds `path`, from `/proc/diskstats`
/// (field 10), found by the device number of `path` (or, failing that, by the mount that holds
/// it in `/proc/self/mountinfo`). `None` if the device cannot be found.
pub fn device_bytes_written(path: &Path) -> Option<u64> {
    let device = block_device_name(path)?;
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&device.as_str()))
            .then(|| fields.get(9)?.parse::<u64>().ok().map(|sectors| sectors * 512))?
    })
}

/// The name (`vda`, `nvme0n1p2`, ...) of the block device holding `path`.
pub fn block_device_name(path: &Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let by_number = stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let matches = fields.first()?.parse::<u64>().ok()? == major && fields.get(1)?.parse::<u64>().ok()? == minor;
        matches.then(|| fields.get(2).map(|name| (*name).to_string()))?
    });
    by_number.or_else(|| device_of_mount(path))
}

/// The device named as the source of the longest mount point that contains `path`.
fn device_of_mount(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(mount_point) = fields.get(4) else { continue };
        let Some(separator) = fields.iter().position(|field| *field == "-") else { continue };
        let Some(source) = fields.get(separator + 2) else { continue };
        if path.starts_with(mount_point) && best.as_ref().is_none_or(|(len, _)| mount_point.len() > *len) {
            let name = source.strip_prefix("/dev/").unwrap_or(source).to_string();
            best = Some((mount_point.len(), name));
        }
    }
    best.map(|(_, name)| name)
}

/// Bytes allocated on disk (`st_blocks` × 512) by the files under `dir`: sparse regions not
/// counted.
pub fn allocated_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("list the directory").flatten() {
        let Ok(metadata) = entry.metadata() else { continue };
        if metadata.is_dir() {
            total += allocated_bytes(&entry.path());
        } else {
            total += metadata.blocks() * 512;
        }
    }
    total
}

/// This process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Flushes the filesystem holding `dir` (`sync -f`), so the device counters include everything.
pub fn sync_filesystem(dir: &Path) {
    let status = std::process::Command::new("sync").arg("-f").arg(dir).status().expect("run sync -f");
    assert!(status.success(), "sync -f {} failed", dir.display());
}

/// A new directory for benchmark files on the real disk (under the target directory, not tmpfs).
pub fn bench_dir(root: &Path, prefix: &str) -> tempfile::TempDir {
    std::fs::create_dir_all(root).expect("create the benchmark root");
    tempfile::Builder::new().prefix(prefix).tempdir_in(root).expect("a directory under the benchmark root")
}
