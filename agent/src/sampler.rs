//! Host sampling. `HostSampler` owns the sysinfo state, reads the `/proc`
//! files sysinfo lacks and keeps counter baselines; the submodules turn
//! readings into samples and are pure, tested on canned values.

pub mod cpu;
pub mod disk;
pub mod diskio;
pub mod host;
pub mod kernel;
pub mod load;
pub mod memory;
pub mod name_filter;
pub mod network;
pub mod pressure;
pub mod process_watch;
pub mod rates;
pub mod tcp;
pub mod vm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sysinfo::{DiskRefreshKind, Disks, System};

use crate::procfs;
use crate::sample::Sample;
pub use name_filter::NameFilter;
use process_watch::{ProcessWatcher, WatchSpec};

/// sysinfo needs this much time between two CPU refreshes for a usable
/// usage figure.
const MIN_CPU_WINDOW: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// The sampler could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot read host statistics: {0}")]
pub struct SamplerError(String);

/// What to report beyond the fixed host metrics.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Filesystems, by mountpoint.
    pub disks: NameFilter,
    /// Network interfaces, by name.
    pub network: NameFilter,
    /// Watched processes.
    pub watch: Vec<WatchSpec>,
}

/// Samples CPU, memory, swap, load, filesystems, block I/O, network, TCP,
/// pressure and host-wide figures.
pub struct HostSampler {
    system: System,
    disks: Disks,
    rates: rates::Rates,
    cpu_refreshed_at: Instant,
    filters: Selection,
    watcher: ProcessWatcher,
    proc_root: PathBuf,
}

/// Reads a /proc (or /sys) file; None if it does not exist or is unreadable
/// (e.g. /proc/pressure without PSI support).
pub(crate) fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl HostSampler {
    /// Takes the first readings, which the first sample's rates and CPU
    /// usage are computed against.
    pub fn new(filters: Selection) -> Result<HostSampler, SamplerError> {
        let err = |e: sysinfo::Error| SamplerError(e.to_string());
        let mut system = System::new().map_err(err)?;
        system.refresh_cpu_usage();
        Ok(HostSampler {
            system,
            disks: Disks::new().map_err(err)?,
            rates: rates::Rates::default(),
            cpu_refreshed_at: Instant::now(),
            watcher: ProcessWatcher::new(filters.watch.clone()),
            filters,
            proc_root: PathBuf::from("/proc"),
        })
    }

    /// Replaces the disk, interface and process selection (SIGHUP). Rate
    /// baselines are kept; watched processes start over (their restart
    /// counts begin again).
    pub fn set_selection(&mut self, filters: Selection) {
        self.watcher = ProcessWatcher::new(filters.watch.clone());
        self.filters = filters;
    }

    fn proc(&self, rel: &str) -> Option<String> {
        read(&self.proc_root.join(rel))
    }

    /// Reads everything once. CPU usage and rates are left out when there is
    /// no earlier reading to compare against.
    pub fn sample(&mut self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(128);
        let now = Instant::now();
        self.rates.start(now);

        let cpu_window = now.saturating_duration_since(self.cpu_refreshed_at);
        self.system.refresh_cpu_usage();
        self.cpu_refreshed_at = now;
        if cpu_window >= MIN_CPU_WINDOW {
            out.extend(cpu::samples(
                self.system.global_cpu_usage(),
                self.system.cpus().iter().map(|c| c.usage()),
            ));
        }
        let stat = self.proc("stat").map(|t| procfs::parse_stat(&t));
        if let Some(stat) = &stat {
            out.extend(kernel::samples(stat, &mut self.rates));
        }
        if let Ok(l) = System::load_average() {
            out.extend(load::samples(l.one, l.five, l.fifteen));
        }
        for resource in ["cpu", "memory", "io"] {
            if let Some(text) = self.proc(&format!("pressure/{resource}")) {
                out.extend(pressure::samples(
                    resource,
                    procfs::parse_pressure(&text),
                    &mut self.rates,
                ));
            }
        }

        self.system.refresh_memory();
        out.extend(memory::samples(memory::MemoryReading {
            total: self.system.total_memory(),
            available: self.system.available_memory(),
            used: self.system.used_memory(),
            swap_total: self.system.total_swap(),
            swap_used: self.system.used_swap(),
        }));
        let meminfo = self
            .proc("meminfo")
            .map(|t| procfs::parse_meminfo(&t))
            .unwrap_or_default();
        let vmstat = self
            .proc("vmstat")
            .map(|t| procfs::parse_key_values(&t))
            .unwrap_or_default();
        out.extend(vm::samples(&meminfo, &vmstat, &mut self.rates));

        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing());
        let readings: Vec<disk::DiskReading> = self
            .disks
            .iter()
            .filter_map(|d| {
                let mountpoint = d.mount_point().to_string_lossy().into_owned();
                if !self.filters.disks.allows(&mountpoint) {
                    return None;
                }
                // sysinfo lists mounts; the figures come from statvfs, as df's do.
                let vfs = rustix::fs::statvfs(d.mount_point()).ok()?;
                Some(disk::DiskReading {
                    mountpoint,
                    device: d.name().to_string_lossy().into_owned(),
                    frsize: vfs.f_frsize,
                    blocks: vfs.f_blocks,
                    bfree: vfs.f_bfree,
                    bavail: vfs.f_bavail,
                    files: vfs.f_files,
                    ffree: vfs.f_ffree,
                    read_only: vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
                })
            })
            .collect();
        out.extend(disk::samples(&readings));
        if let Some(text) = self.proc("diskstats") {
            out.extend(diskio::samples(
                &procfs::parse_diskstats(&text),
                &mut self.rates,
            ));
        }

        if let Some(text) = self.proc("net/dev") {
            let devs = procfs::parse_net_dev(&text);
            let link_up = |name: &str| {
                let dir = Path::new("/sys/class/net").join(name);
                let operstate = read(&dir.join("operstate"))?;
                let flags = read(&dir.join("flags"))
                    .and_then(|f| u64::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok());
                Some(network::link_is_up(&operstate, flags))
            };
            out.extend(network::samples(
                &devs,
                &self.filters.network,
                link_up,
                &mut self.rates,
            ));
        }
        let mut snmp = self
            .proc("net/snmp")
            .map(|t| procfs::parse_snmp(&t))
            .unwrap_or_default();
        if let Some(text) = self.proc("net/netstat") {
            snmp.extend(procfs::parse_snmp(&text));
        }
        out.extend(tcp::samples(&snmp, &mut self.rates));

        let processes = std::fs::read_dir(&self.proc_root).ok().map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        });
        let fds = self
            .proc("sys/fs/file-nr")
            .and_then(|t| procfs::parse_file_nr(&t));
        out.extend(host::samples(System::uptime().ok(), processes, fds));

        if let (false, Some(stat)) = (self.watcher.is_empty(), &stat) {
            let now_secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            out.extend(
                self.watcher
                    .samples(&mut self.rates, stat.boot_time, now_secs),
            );
        }
        out
    }
}

/// The host name as the kernel reports it, or "localhost" if unreadable.
pub fn host_name() -> String {
    System::host_name().unwrap_or_else(|_| "localhost".to_owned())
}
