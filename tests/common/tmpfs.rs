//! A small tmpfs for the tests of a full file system (`ENOSPC`): mounted on a fresh temporary
//! directory, resized, unmounted on drop. Needs root and permission to mount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs mounted on a fresh temporary directory; unmounted on drop.
pub struct Tmpfs {
    pub path: PathBuf,
    // Dropped (removed) after `drop` unmounted it.
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(bytes: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().to_path_buf();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { path, _dir: dir })
    }

    pub fn resize(&self, bytes: u64) {
        let output = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.path)
            .output()
            .expect("running mount -o remount");
        assert!(
            output.status.success(),
            "remounting the tmpfs with size {bytes} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Bytes in use: the blocks of the files under it.
    pub fn used(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            use std::os::unix::fs::MetadataExt;
            let mut total = 0;
            for entry in std::fs::read_dir(path).unwrap().flatten() {
                let meta = entry.metadata().unwrap();
                total += if meta.is_dir() { walk(&entry.path()) } else { meta.blocks() * 512 };
            }
            total
        }
        walk(&self.path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Busy (a child still dying?): detach it so nothing is left mounted.
            std::thread::sleep(Duration::from_millis(200));
            let lazily = Command::new("umount").arg("-l").arg(&self.path).status().is_ok_and(|s| s.success());
            if !lazily {
                eprintln!("could not unmount the tmpfs at {}", self.path.display());
            }
        }
    }
}

/// Whether a tmpfs can be mounted here; `Err` says why not.
pub fn tmpfs_available() -> Result<(), String> {
    let id = Command::new("id").arg("-u").output().map_err(|e| format!("cannot run id: {e}"))?;
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        return Err("not running as root".into());
    }
    Tmpfs::mount(1 << 20).map(drop)
}
