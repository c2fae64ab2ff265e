//! A small real file system that can fill up: a tmpfs of a given size, mounted for one test and
//! unmounted when dropped. Mounting needs root (CI runs as root); elsewhere the test is reported
//! as skipped, and with `CI=true` that is a failure, never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on a fresh directory, or `None` after reporting the skip.
    #[must_use]
    pub fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|out| out.status.success());
        if mounted {
            return Some(Self { dir });
        }
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test} needs to mount a tmpfs (root) (CI=true forbids skipping)"
        );
        eprintln!("SKIPPED {test}: needs to mount a tmpfs (run as root)");
        None
    }

    /// The mount point.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills `bytes` of the disk with a file the test can delete later to free room.
    #[must_use]
    pub fn ballast(&self, bytes: usize) -> PathBuf {
        let path = self.dir.path().join("ballast");
        std::fs::write(&path, vec![0xa5; bytes]).expect("write ballast");
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a server still closing its files must not keep the mount (and the test) alive.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
