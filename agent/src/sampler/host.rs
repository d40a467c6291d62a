//! Host-wide figures: uptime (`uptime`), number of processes (`ps -e | wc
//! -l`: the numeric entries of /proc) and file handles in use against the
//! system maximum (`/proc/sys/fs/file-nr`, as `sysctl fs.file-nr`).

use crate::sample::Sample;

/// Host samples; `fds` is (in use, max) when readable.
pub fn samples(
    uptime_secs: Option<u64>,
    processes: Option<u64>,
    fds: Option<(u64, u64)>,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(4);
    if let Some(secs) = uptime_secs {
        out.push(Sample::new("host_uptime_seconds", secs as f64));
    }
    if let Some(n) = processes {
        out.push(Sample::new("host_processes", n as f64));
    }
    if let Some((used, max)) = fds {
        out.push(Sample::new("host_open_fds", used as f64));
        out.push(Sample::new("host_max_fds", max as f64));
    }
    out
}
