//! Filesystem usage per mounted filesystem, computed from `statvfs` the way
//! `df` does:
//!
//! - used = (f_blocks - f_bfree) * f_frsize (df "Used")
//! - free = f_bavail * f_frsize (df "Avail": what unprivileged users can
//!   still write; root-reserved blocks are not counted as free)
//! - used percent = used / (used + avail) * 100 (df "Use%", which df rounds
//!   up to a whole number)
//! - inodes used percent = (f_files - f_ffree) / f_files * 100 (`df -i` IUse%)
//! - read-only = the ST_RDONLY mount flag (`findmnt` OPTIONS `ro`)

use crate::sample::Sample;

/// One filesystem's `statvfs` figures.
#[derive(Clone, Debug)]
pub struct DiskReading {
    /// Where it is mounted.
    pub mountpoint: String,
    /// The mounted device, e.g. `/dev/vda1`.
    pub device: String,
    /// Fragment size (the unit of the block counts).
    pub frsize: u64,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks (including root-reserved).
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes (0 on filesystems without a fixed inode table).
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Usage samples for each filesystem.
pub fn samples(disks: &[DiskReading]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(disks.len() * 4);
    for d in disks {
        if d.blocks == 0 {
            continue;
        }
        let used = d.blocks.saturating_sub(d.bfree) * d.frsize;
        let avail = d.bavail * d.frsize;
        let pct = if used + avail == 0 {
            0.0
        } else {
            used as f64 / (used + avail) as f64 * 100.0
        };
        let labelled = |metric, value| {
            Sample::labelled(metric, "mountpoint", d.mountpoint.clone(), value)
                .with("device", d.device.clone())
        };
        out.push(labelled("disk_used_percent", pct));
        out.push(labelled("disk_free_bytes", avail as f64));
        out.push(labelled("disk_used_bytes", used as f64));
        out.push(labelled("disk_total_bytes", (d.blocks * d.frsize) as f64));
        if d.files > 0 {
            let used = d.files.saturating_sub(d.ffree);
            out.push(labelled(
                "disk_inodes_used_percent",
                used as f64 / d.files as f64 * 100.0,
            ));
        }
        out.push(labelled(
            "disk_read_only",
            if d.read_only { 1.0 } else { 0.0 },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_df_arithmetic() {
        // df -B4096: 1000 blocks, 300 free of which 250 available to users.
        let r = DiskReading {
            mountpoint: "/".into(),
            device: "/dev/vda".into(),
            frsize: 4096,
            blocks: 1000,
            bfree: 300,
            bavail: 250,
            files: 100,
            ffree: 75,
            read_only: true,
        };
        let s = samples(&[r]);
        let get = |m: &str| s.iter().find(|x| x.metric == m).unwrap();
        // Used 700, Avail 250 → Use% = 700 / 950 = 73.68 (df shows 74%).
        assert!((get("disk_used_percent").value - 73.684).abs() < 0.001);
        assert_eq!(get("disk_free_bytes").value, 250.0 * 4096.0);
        assert_eq!(get("disk_used_bytes").value, 700.0 * 4096.0);
        assert_eq!(get("disk_inodes_used_percent").value, 25.0);
        assert_eq!(get("disk_read_only").value, 1.0);
        assert_eq!(
            get("disk_used_percent").labels,
            vec![
                ("mountpoint", "/".to_string()),
                ("device", "/dev/vda".to_string())
            ]
        );
    }

    #[test]
    fn empty_filesystems_are_skipped() {
        let r = DiskReading {
            mountpoint: "/x".into(),
            device: "none".into(),
            frsize: 4096,
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files: 0,
            ffree: 0,
            read_only: false,
        };
        assert!(samples(&[r]).is_empty());
    }
}
