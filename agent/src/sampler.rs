//! Host sampling. `HostSampler` owns the sysinfo state and does the I/O;
//! the submodules turn readings into samples and are pure, tested on canned
//! values.

pub mod cpu;
pub mod disk;
pub mod load;
pub mod memory;
pub mod network;

use std::time::{Duration, Instant};

use sysinfo::{DiskRefreshKind, Disks, Networks, System};

use crate::sample::Sample;

/// sysinfo needs this much time between two CPU refreshes for a usable
/// usage figure.
const MIN_CPU_WINDOW: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// The sampler could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot read host statistics: {0}")]
pub struct SamplerError(String);

/// Samples CPU, memory, swap, load, filesystems and network throughput.
pub struct HostSampler {
    system: System,
    disks: Disks,
    networks: Networks,
    net_rates: network::NetworkRates,
    cpu_refreshed_at: Instant,
}

impl HostSampler {
    /// Takes the first readings, which the first sample's rates and CPU
    /// usage are computed against.
    pub fn new() -> Result<HostSampler, SamplerError> {
        let err = |e: sysinfo::Error| SamplerError(e.to_string());
        let mut system = System::new().map_err(err)?;
        system.refresh_cpu_usage();
        Ok(HostSampler {
            system,
            disks: Disks::new().map_err(err)?,
            networks: Networks::new_with_refreshed_list().map_err(err)?,
            net_rates: network::NetworkRates::default(),
            cpu_refreshed_at: Instant::now(),
        })
    }

    /// Reads everything once. CPU usage and network rates are left out when
    /// there is no earlier reading far enough back to compare against.
    pub fn sample(&mut self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(64);

        let now = Instant::now();
        let cpu_window = now.saturating_duration_since(self.cpu_refreshed_at);
        self.system.refresh_cpu_usage();
        self.cpu_refreshed_at = now;
        if cpu_window >= MIN_CPU_WINDOW {
            out.extend(cpu::samples(
                self.system.global_cpu_usage(),
                self.system.cpus().iter().map(|c| c.usage()),
            ));
        }

        if let Ok(l) = System::load_average() {
            out.extend(load::samples(l.one, l.five, l.fifteen));
        }

        self.system.refresh_memory();
        out.extend(memory::samples(memory::MemoryReading {
            total: self.system.total_memory(),
            available: self.system.available_memory(),
            used: self.system.used_memory(),
            swap_total: self.system.total_swap(),
            swap_used: self.system.used_swap(),
        }));

        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing());
        let readings: Vec<disk::DiskReading> = self
            .disks
            .iter()
            .filter_map(|d| {
                let mountpoint = d.mount_point().to_string_lossy().into_owned();
                // sysinfo lists mounts; the figures come from statvfs, as df's do.
                let vfs = rustix::fs::statvfs(d.mount_point()).ok()?;
                Some(disk::DiskReading {
                    mountpoint,
                    device: d.name().to_string_lossy().into_owned(),
                    frsize: vfs.f_frsize,
                    blocks: vfs.f_blocks,
                    bfree: vfs.f_bfree,
                    bavail: vfs.f_bavail,
                })
            })
            .collect();
        out.extend(disk::samples(&readings));

        self.networks.refresh(true);
        let counters: Vec<network::InterfaceCounters> = self
            .networks
            .iter()
            .map(|(name, data)| network::InterfaceCounters {
                name: name.to_string_lossy().into_owned(),
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
            })
            .collect();
        out.extend(self.net_rates.update(Instant::now(), &counters));
        out
    }
}

/// The host name as the kernel reports it, or "localhost" if unreadable.
pub fn host_name() -> String {
    System::host_name().unwrap_or_else(|_| "localhost".to_owned())
}
