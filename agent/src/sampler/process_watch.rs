//! Process health: "are the processes that should run, running?"
//!
//! Each watch entry (config `[[watch]]`) matches processes by executable
//! name, by command-line regex or by pidfile, and expects at least
//! `min_count` of them. Per entry and interval it reports `process_up`,
//! `process_instances`, `process_cpu_percent`, `process_rss_bytes`,
//! `process_open_fds`, `process_threads`, `process_uptime_seconds` and
//! `process_restarts_total` (label `process` = the entry's name).
//!
//! # Cost
//!
//! Listing `/proc` is one cheap `readdir`. A PID's name (and, only when some
//! entry matches by command line, its command line) is read once, when the
//! PID is first seen, and remembered until the PID disappears. Details
//! (`/proc/PID/stat`, `status`, `fd/`) are read only for matched PIDs. So a
//! tick costs one readdir plus a few reads per *new* or *watched* process,
//! never a walk of every process's details. The figures are read from
//! `/proc/PID/*` directly rather than through sysinfo because one `stat`
//! read gives CPU ticks, threads and start time at once.
//!
//! A PID recycled within one interval by an unrelated process is not
//! re-examined (PIDs wrap after `pid_max`, 4M on current kernels).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::rates::Rates;
use super::read;
use crate::sample::Sample;

/// How an entry finds its processes.
#[derive(Clone, Debug)]
pub enum ProcessMatcher {
    /// The executable's name: `/proc/PID/comm`, or the file name of
    /// `/proc/PID/exe` (comm is cut at 15 characters).
    Exe(String),
    /// A regex searched in the command line (arguments joined by spaces).
    Cmdline(regex::Regex),
    /// The PID written in this file.
    Pidfile(PathBuf),
}

/// One validated watch entry.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    /// Name, the value of the `process` label.
    pub name: String,
    /// How processes are found.
    pub matcher: ProcessMatcher,
    /// Fewest processes for the entry to be up.
    pub min_count: u64,
}

/// Figures of one process from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidStat {
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Number of threads.
    pub threads: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_pid_stat(text: &str) -> Option<PidStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state); field N is f[N - 3].
    let n = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(PidStat {
        cpu_ticks: n(14)? + n(15)?,
        threads: n(20)?,
        start_ticks: n(22)?,
        rss_pages: n(24)?,
    })
}

/// Whether an executable matcher accepts a process with this comm and exe.
pub fn exe_matches(name: &str, comm: &str, exe_file_name: Option<&str>) -> bool {
    comm == name || exe_file_name == Some(name)
}

/// Counts restarts of a single-instance entry: the one matching process
/// changed identity (pid, start time) since the last one seen.
#[derive(Debug, Default)]
pub struct RestartTracker {
    last: Option<(u32, u64)>,
    /// Restarts seen since the agent started.
    pub restarts: u64,
}

impl RestartTracker {
    /// Observes the identities matching now.
    pub fn observe(&mut self, identities: &[(u32, u64)]) {
        if let [only] = identities {
            if self.last.is_some_and(|last| last != *only) {
                self.restarts += 1;
            }
            self.last = Some(*only);
        }
    }
}

/// What is remembered of a PID from when it was first seen.
struct KnownPid {
    /// Indices of the entries (other than pidfile entries) it matches.
    matches: Vec<usize>,
}

/// Watches the configured processes.
pub struct ProcessWatcher {
    specs: Vec<WatchSpec>,
    proc_root: PathBuf,
    known: HashMap<u32, KnownPid>,
    restarts: Vec<RestartTracker>,
    needs_cmdline: bool,
    ticks_per_second: u64,
    page_size: u64,
}

impl ProcessWatcher {
    /// A watcher for `specs`, reading `/proc`.
    pub fn new(specs: Vec<WatchSpec>) -> ProcessWatcher {
        let needs_cmdline = specs
            .iter()
            .any(|s| matches!(s.matcher, ProcessMatcher::Cmdline(_)));
        ProcessWatcher {
            restarts: specs.iter().map(|_| RestartTracker::default()).collect(),
            specs,
            proc_root: PathBuf::from("/proc"),
            known: HashMap::new(),
            needs_cmdline,
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            page_size: rustix::param::page_size() as u64,
        }
    }

    /// Whether there is anything to watch.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Which non-pidfile entries a newly seen PID matches.
    fn classify(&self, pid: u32) -> KnownPid {
        let dir = self.proc_root.join(pid.to_string());
        let comm = read(&dir.join("comm")).unwrap_or_default();
        let comm = comm.trim_end_matches('\n');
        let exe = std::fs::read_link(dir.join("exe")).ok();
        let exe_name = exe
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let cmdline = if self.needs_cmdline {
            read(&dir.join("cmdline"))
                .map(|c| c.trim_end_matches('\0').replace('\0', " "))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let matches = self
            .specs
            .iter()
            .enumerate()
            .filter(|(_, spec)| match &spec.matcher {
                ProcessMatcher::Exe(name) => exe_matches(name, comm, exe_name.as_deref()),
                ProcessMatcher::Cmdline(re) => !cmdline.is_empty() && re.is_match(&cmdline),
                ProcessMatcher::Pidfile(_) => false,
            })
            .map(|(i, _)| i)
            .collect();
        KnownPid { matches }
    }

    /// Samples every entry. `boot_time_secs` is the epoch second the host
    /// booted (`btime` in /proc/stat); `now_secs` the current epoch time.
    pub fn samples(
        &mut self,
        rates: &mut Rates,
        boot_time_secs: u64,
        now_secs: f64,
    ) -> Vec<Sample> {
        if self.specs.is_empty() {
            return Vec::new();
        }
        let live: HashSet<u32> = std::fs::read_dir(&self.proc_root)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        self.known.retain(|pid, _| live.contains(pid));
        for pid in &live {
            if !self.known.contains_key(pid) {
                let known = self.classify(*pid);
                self.known.insert(*pid, known);
            }
        }

        let mut out = Vec::with_capacity(self.specs.len() * 8);
        for i in 0..self.specs.len() {
            let mut pids: Vec<u32> = match &self.specs[i].matcher {
                ProcessMatcher::Pidfile(path) => read(path)
                    .and_then(|t| t.trim().parse().ok())
                    .filter(|pid| live.contains(pid))
                    .into_iter()
                    .collect(),
                _ => self
                    .known
                    .iter()
                    .filter(|(_, k)| k.matches.contains(&i))
                    .map(|(pid, _)| *pid)
                    .collect(),
            };
            pids.sort_unstable();
            out.extend(self.entry_samples(i, &pids, rates, boot_time_secs, now_secs));
        }
        out
    }

    fn entry_samples(
        &mut self,
        i: usize,
        pids: &[u32],
        rates: &mut Rates,
        boot_time_secs: u64,
        now_secs: f64,
    ) -> Vec<Sample> {
        let spec = &self.specs[i];
        let name = spec.name.clone();
        let labelled = |metric, value| Sample::labelled(metric, "process", name.clone(), value);
        let mut identities = Vec::with_capacity(pids.len());
        let (mut cpu_ticks, mut threads, mut rss, mut fds) = (0u64, 0u64, 0u64, 0u64);
        let mut oldest_start: Option<u64> = None;
        let mut cpu_complete = true;
        for pid in pids {
            let dir = self.proc_root.join(pid.to_string());
            // The process may exit between listing and reading: skip it then.
            let Some(stat) = read(&dir.join("stat")).as_deref().and_then(parse_pid_stat) else {
                continue;
            };
            identities.push((*pid, stat.start_ticks));
            threads += stat.threads;
            rss += stat.rss_pages * self.page_size;
            fds += std::fs::read_dir(dir.join("fd")).map_or(0, |d| d.count() as u64);
            oldest_start = Some(oldest_start.map_or(stat.start_ticks, |s| s.min(stat.start_ticks)));
            // Per-process deltas, so a process that exits or starts does not
            // turn the sum of counters into a bogus rate.
            match rates.delta(&format!("proc/{pid}/{}", stat.start_ticks), stat.cpu_ticks) {
                Some(d) => cpu_ticks += d,
                None => cpu_complete = false,
            }
        }
        let count = identities.len() as u64;
        self.restarts[i].observe(&identities);

        let mut out = vec![
            labelled(
                "process_up",
                if count >= spec.min_count && count > 0 {
                    1.0
                } else {
                    0.0
                },
            ),
            labelled("process_instances", count as f64),
            labelled("process_restarts_total", self.restarts[i].restarts as f64),
        ];
        if count == 0 {
            return out;
        }
        out.push(labelled("process_threads", threads as f64));
        out.push(labelled("process_rss_bytes", rss as f64));
        out.push(labelled("process_open_fds", fds as f64));
        if let Some(start) = oldest_start {
            let started = boot_time_secs as f64 + start as f64 / self.ticks_per_second as f64;
            out.push(labelled(
                "process_uptime_seconds",
                (now_secs - started).max(0.0),
            ));
        }
        if let (true, Some(secs)) = (cpu_complete, rates.elapsed_secs()) {
            let pct = cpu_ticks as f64 / self.ticks_per_second as f64 / secs * 100.0;
            out.push(labelled("process_cpu_percent", pct));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_with_awkward_command_names() {
        let text = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 70 30 0 0 20 0 3 0 98765 10000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_pid_stat(text).unwrap();
        assert_eq!(
            s,
            PidStat {
                cpu_ticks: 100,
                threads: 3,
                start_ticks: 98765,
                rss_pages: 250,
            }
        );
        assert_eq!(parse_pid_stat("garbage"), None);
        assert_eq!(parse_pid_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn exe_names() {
        assert!(exe_matches("nginx", "nginx", None));
        assert!(exe_matches(
            "very-long-daemon-name",
            "very-long-daemo",
            Some("very-long-daemon-name")
        ));
        assert!(!exe_matches(
            "nginx",
            "nginx-exporter",
            Some("nginx-exporter")
        ));
    }

    #[test]
    fn restarts_of_single_instance_entries() {
        let mut t = RestartTracker::default();
        t.observe(&[(10, 100)]);
        t.observe(&[(10, 100)]);
        assert_eq!(t.restarts, 0);
        t.observe(&[]);
        t.observe(&[(11, 200)]);
        assert_eq!(t.restarts, 1, "down then up with a new pid");
        t.observe(&[(12, 300)]);
        assert_eq!(t.restarts, 2, "pid changed between two ticks");
        t.observe(&[(12, 300), (13, 400)]);
        assert_eq!(
            t.restarts, 2,
            "several instances say nothing about restarts"
        );
        t.observe(&[(12, 300)]);
        assert_eq!(t.restarts, 2);
    }
}
