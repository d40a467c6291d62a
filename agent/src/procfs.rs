//! Parsers for the `/proc` files that sysinfo does not cover: CPU modes and
//! kernel activity (`/proc/stat`), page cache and buffers (`/proc/meminfo`),
//! swap paging and OOM kills (`/proc/vmstat`), block-device I/O
//! (`/proc/diskstats`), interface drops (`/proc/net/dev`), TCP counters
//! (`/proc/net/snmp`, `/proc/net/netstat`), pressure stall information
//! (`/proc/pressure/*`) and file handles (`/proc/sys/fs/file-nr`).
//!
//! Every function here is pure (text in, numbers out) and tested on canned
//! text; reading the files is the sampler's job. Unknown lines are ignored,
//! so newer kernels with more fields parse the same.

use std::collections::HashMap;

/// Cumulative CPU time of one CPU (or all) in USER_HZ ticks, per mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal user time (includes guest time).
    pub user: u64,
    /// Niced user time.
    pub nice: u64,
    /// Kernel time.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while I/O was outstanding.
    pub iowait: u64,
    /// Servicing hardware interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

impl CpuTimes {
    /// Sum of all modes.
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// What `/proc/stat` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The `cpu` line (all CPUs).
    pub total: CpuTimes,
    /// The `cpuN` lines, by N.
    pub cpus: Vec<(u32, CpuTimes)>,
    /// Context switches since boot (`ctxt`).
    pub context_switches: u64,
    /// Interrupts since boot (first number of `intr`).
    pub interrupts: u64,
    /// Processes and threads created since boot (`processes`).
    pub forks: u64,
    /// Runnable tasks now (`procs_running`).
    pub procs_running: u64,
    /// Tasks blocked on I/O now (`procs_blocked`).
    pub procs_blocked: u64,
    /// Boot time, epoch seconds (`btime`).
    pub boot_time: u64,
}

/// Parses `/proc/stat`.
pub fn parse_stat(text: &str) -> Stat {
    let mut stat = Stat::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        let mut next = || {
            fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some(n) = key.strip_prefix("cpu") {
            let times = CpuTimes {
                user: next(),
                nice: next(),
                system: next(),
                idle: next(),
                iowait: next(),
                irq: next(),
                softirq: next(),
                steal: next(),
            };
            if n.is_empty() {
                stat.total = times;
            } else if let Ok(n) = n.parse() {
                stat.cpus.push((n, times));
            }
        } else {
            match key {
                "ctxt" => stat.context_switches = next(),
                "intr" => stat.interrupts = next(),
                "processes" => stat.forks = next(),
                "procs_running" => stat.procs_running = next(),
                "procs_blocked" => stat.procs_blocked = next(),
                "btime" => stat.boot_time = next(),
                _ => {}
            }
        }
    }
    stat
}

/// Parses a `key: value [kB]` file (`/proc/meminfo`) into bytes by key.
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_ascii_whitespace();
            let value: u64 = parts.next()?.parse().ok()?;
            let scale = if parts.next() == Some("kB") { 1024 } else { 1 };
            Some((key.trim().to_owned(), value * scale))
        })
        .collect()
}

/// Parses a `key value` file (`/proc/vmstat`).
pub fn parse_key_values(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Cumulative I/O counters of one block device (`/proc/diskstats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Device name, e.g. `sda`, `nvme0n1`, `vda`.
    pub device: String,
    /// Reads completed.
    pub reads: u64,
    /// 512-byte sectors read.
    pub sectors_read: u64,
    /// Milliseconds spent reading.
    pub read_ms: u64,
    /// Writes completed.
    pub writes: u64,
    /// 512-byte sectors written.
    pub sectors_written: u64,
    /// Milliseconds spent writing.
    pub write_ms: u64,
    /// Milliseconds during which I/O was in progress (for utilisation).
    pub io_ms: u64,
}

/// Parses `/proc/diskstats`.
pub fn parse_diskstats(text: &str) -> Vec<DiskStats> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 14 {
                return None;
            }
            let n = |i: usize| f[i].parse::<u64>().ok();
            Some(DiskStats {
                device: f[2].to_owned(),
                reads: n(3)?,
                sectors_read: n(5)?,
                read_ms: n(6)?,
                writes: n(7)?,
                sectors_written: n(9)?,
                write_ms: n(10)?,
                io_ms: n(12)?,
            })
        })
        .collect()
}

/// Cumulative counters of one network interface (`/proc/net/dev`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name.
    pub interface: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_drops: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on transmit.
    pub tx_drops: u64,
}

/// Parses `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_ascii_whitespace()
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            if f.len() < 16 {
                return None;
            }
            Some(NetDev {
                interface: name.trim().to_owned(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_drops: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_drops: f[11],
            })
        })
        .collect()
}

/// Parses the paired header/value lines of `/proc/net/snmp` and
/// `/proc/net/netstat` into `(section, field) → value`, e.g.
/// `("Tcp", "RetransSegs")` or `("TcpExt", "ListenOverflows")`.
pub fn parse_snmp(text: &str) -> HashMap<(String, String), i64> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let (Some(header), Some(values)) = (lines.next(), lines.next()) {
        let (Some((section, names)), Some((section2, numbers))) =
            (header.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if section != section2 {
            continue;
        }
        for (name, value) in names
            .split_ascii_whitespace()
            .zip(numbers.split_ascii_whitespace())
        {
            if let Ok(v) = value.parse() {
                out.insert((section.to_owned(), name.to_owned()), v);
            }
        }
    }
    out
}

/// Total stall time in microseconds from a `/proc/pressure/*` file:
/// `(some, full)`; `full` is absent for cpu on older kernels.
pub fn parse_pressure(text: &str) -> (Option<u64>, Option<u64>) {
    let total = |kind: &str| {
        text.lines()
            .find(|l| l.starts_with(kind))?
            .split_ascii_whitespace()
            .find_map(|f| f.strip_prefix("total="))?
            .parse()
            .ok()
    };
    (total("some "), total("full "))
}

/// `/proc/sys/fs/file-nr`: (allocated file handles in use, maximum).
pub fn parse_file_nr(text: &str) -> Option<(u64, u64)> {
    let f: Vec<u64> = text
        .split_ascii_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    match f.as_slice() {
        [allocated, unused, max] => Some((allocated.saturating_sub(*unused), *max)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  4705 356 584 3699176 23060 0 277 12 0 0
cpu0 1393 280 283 1843000 11507 0 152 6 0 0
cpu1 3312 76 301 1856176 11553 0 125 6 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... more]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 1137 231 21459 2263
";

    #[test]
    fn stat() {
        let s = parse_stat(STAT);
        assert_eq!(s.total.user, 4705);
        assert_eq!(s.total.iowait, 23060);
        assert_eq!(s.total.steal, 12);
        assert_eq!(
            s.total.total(),
            4705 + 356 + 584 + 3699176 + 23060 + 277 + 12
        );
        assert_eq!(s.cpus.len(), 2);
        assert_eq!(s.cpus[1].0, 1);
        assert_eq!(s.cpus[1].1.user, 3312);
        assert_eq!(s.context_switches, 1990473);
        assert_eq!(s.interrupts, 114930548);
        assert_eq!(s.forks, 2915);
        assert_eq!(s.procs_running, 1);
        assert_eq!(s.boot_time, 1062191376);
    }

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:       24684096 kB\nCached:          2019824 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(m["MemTotal"], 24684096 * 1024);
        assert_eq!(m["Cached"], 2019824 * 1024);
        assert_eq!(m["HugePages_Total"], 0);
    }

    #[test]
    fn vmstat() {
        let v = parse_key_values("pswpin 12\npswpout 34\noom_kill 2\n");
        assert_eq!((v["pswpin"], v["pswpout"], v["oom_kill"]), (12, 34, 2));
    }

    #[test]
    fn diskstats() {
        let text = "\
 253       0 vda 43120 1207 3172278 28427 233452 205069 7338474 387447 0 275196 452130 0 0 0 0 45812 36254
   7       0 loop0 0 0 0 0
";
        let d = parse_diskstats(text);
        assert_eq!(d.len(), 1, "short lines are skipped");
        assert_eq!(
            d[0],
            DiskStats {
                device: "vda".into(),
                reads: 43120,
                sectors_read: 3172278,
                read_ms: 28427,
                writes: 233452,
                sectors_written: 7338474,
                write_ms: 387447,
                io_ms: 275196,
            }
        );
    }

    #[test]
    fn net_dev() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1234567     890    0    0    0     0          0         0  1234567     890    0    0    0     0       0          0
  eth0: 98765432  65432    1    7    0     0          0        12 87654321   54321    2    3    0     0       0          0
";
        let d = parse_net_dev(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].interface, "eth0");
        assert_eq!(
            (
                d[1].rx_bytes,
                d[1].rx_packets,
                d[1].rx_errors,
                d[1].rx_drops
            ),
            (98765432, 65432, 1, 7)
        );
        assert_eq!(
            (
                d[1].tx_bytes,
                d[1].tx_packets,
                d[1].tx_errors,
                d[1].tx_drops
            ),
            (87654321, 54321, 2, 3)
        );
    }

    #[test]
    fn snmp_and_netstat() {
        let text = "\
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 3036 1203 29 59 7 352433 361263 215 0 1012 0
TcpExt: SyncookiesSent ListenOverflows ListenDrops
TcpExt: 0 4 4
";
        let s = parse_snmp(text);
        let get = |a: &str, b: &str| s[&(a.to_string(), b.to_string())];
        assert_eq!(get("Tcp", "CurrEstab"), 7);
        assert_eq!(get("Tcp", "RetransSegs"), 215);
        assert_eq!(get("Tcp", "MaxConn"), -1);
        assert_eq!(get("TcpExt", "ListenOverflows"), 4);
    }

    #[test]
    fn pressure() {
        let text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=678\n";
        assert_eq!(parse_pressure(text), (Some(12345), Some(678)));
        assert_eq!(
            parse_pressure("some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n"),
            (Some(5), None)
        );
    }

    #[test]
    fn file_nr() {
        assert_eq!(
            parse_file_nr("1824\t0\t9223372036854775807\n"),
            Some((1824, 9223372036854775807))
        );
        assert_eq!(parse_file_nr("garbage"), None);
    }
}
