//! A small filesystem for full-disk tests: a tmpfs of a few MiB mounted in
//! a private mount namespace (`unshare -m`) that a holder process keeps
//! alive. Daemons run inside it through [`SmallFs::command`]; the test
//! fills and frees it with [`SmallFs::fill`] and [`SmallFs::free`]. Nothing
//! is mounted in the test's own namespace, so nothing leaks if it fails.
//!
//! Needs root (mount) and util-linux's `unshare` and `nsenter`;
//! [`SmallFs::mount`] says why it cannot, and the test skips, printing it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::poll;

/// A tmpfs in a mount namespace of its own.
pub struct SmallFs {
    holder: Child,
    /// Where it is mounted (inside the namespace; an empty directory
    /// outside it).
    pub path: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB on `path` (created) in a new mount
    /// namespace. Err: why that is not possible here (not root, no
    /// `unshare`), for the test to print as its reason to skip.
    pub fn mount(path: &Path, mib: u32) -> Result<SmallFs, String> {
        SmallFs::mount_with(
            path,
            &format!("mount -t tmpfs -o size={mib}m nightjar-test \"$1\""),
        )
    }

    /// Like [`SmallFs::mount`], an ext4 filesystem on a loop device (an
    /// image file beside `path`): a filesystem the agent reports, unlike a
    /// tmpfs. Needs `mkfs.ext4` and loop devices too.
    pub fn mount_ext4(path: &Path, mib: u32) -> Result<SmallFs, String> {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            return Err("needs mkfs.ext4 (e2fsprogs) to make a filesystem image".into());
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("needs loop devices (/dev/loop-control)".into());
        }
        let image = path.with_extension("img");
        SmallFs::mount_with(
            path,
            &format!(
                "truncate -s {mib}M \"{img}\" && mkfs.ext4 -q -F -m 0 \"{img}\" && mount -o loop \"{img}\" \"$1\"",
                img = image.display()
            ),
        )
    }

    fn mount_with(path: &Path, mount: &str) -> Result<SmallFs, String> {
        let uid = Command::new("id").arg("-u").output().ok();
        let uid = uid.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if uid.as_deref() != Some("0") {
            return Err("needs root to mount a filesystem in a private mount namespace".into());
        }
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ready = path.with_extension("ready");
        let _ = std::fs::remove_file(&ready);
        let script = format!("{mount} && touch \"$2\" && exec sleep 100000");
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(path)
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut fs = SmallFs {
            holder,
            path: path.to_owned(),
        };
        let mounted = crate::poll_for(
            "the tmpfs to be mounted",
            std::time::Duration::from_secs(10),
            || {
                if ready.exists() {
                    return Some(Ok(()));
                }
                match fs.holder.try_wait() {
                    Ok(Some(status)) => Some(Err(format!("unshare/mount failed: {status}"))),
                    _ => None,
                }
            },
        );
        mounted.map(|()| fs)
    }

    /// A command running `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--"])
            .arg(program);
        cmd
    }

    /// Fills the filesystem to the last byte (file `fill`).
    pub fn fill(&self) {
        let fill = self.path.join("fill");
        let _ = self
            .command("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", fill.display()))
            .arg("bs=64k")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        poll("the small filesystem to be full", || {
            (self.available_bytes() < 64 * 1024).then_some(())
        });
    }

    /// Deletes the file [`SmallFs::fill`] made.
    pub fn free(&self) {
        let status = self
            .command("rm")
            .arg("-f")
            .arg(self.path.join("fill"))
            .status()
            .expect("nsenter runs");
        assert!(status.success(), "cannot delete the fill file");
    }

    /// Bytes available on it (df inside the namespace).
    pub fn available_bytes(&self) -> u64 {
        let out = self
            .command("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .expect("nsenter runs df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // The namespace (and the tmpfs) ends with its last process.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
