//! The HELP texts of the metrics the agent reports (host, process,
//! systemd and self-metrics): the agent's `/metrics` page prints them and
//! the collector's `/api/v1/metadata` answers with them. Kept beside
//! docs/metrics.md, whose tables say the same at more length (a test in
//! `agent/src/exposition.rs` checks that every name here is documented
//! there).

/// The HELP text of metric `metric`, or None for a name not listed.
pub fn help(metric: &str) -> Option<&'static str> {
    HELP.iter().find(|(m, _)| *m == metric).map(|(_, h)| *h)
}

/// Every metric name the agent reports, with its HELP text.
pub const HELP: &[(&str, &str)] = &[
    // CPU and kernel
    (
        "cpu_usage_percent",
        "Share of CPU time busy (not idle, not iowait) between two readings, per CPU and in total; top's 100 - id - wa.",
    ),
    (
        "cpu_mode_percent",
        "Share of CPU time spent in each mode between two readings; top's us ni sy id wa hi si st.",
    ),
    (
        "context_switches_per_second",
        "Context switches per second (/proc/stat ctxt); vmstat's cs.",
    ),
    (
        "interrupts_per_second",
        "Interrupts per second (/proc/stat intr); vmstat's in.",
    ),
    (
        "forks_per_second",
        "Processes and threads created per second (/proc/stat processes).",
    ),
    ("procs_running", "Runnable tasks now; vmstat's r."),
    ("procs_blocked", "Tasks blocked on I/O now; vmstat's b."),
    (
        "load_average",
        "Load average over the period, as printed by uptime.",
    ),
    (
        "pressure_some_percent",
        "Share of the interval in which some task stalled on the resource (PSI some).",
    ),
    (
        "pressure_full_percent",
        "Share of the interval in which all non-idle tasks stalled on the resource (PSI full).",
    ),
    // Memory and swap
    (
        "memory_total_bytes",
        "Total usable memory (MemTotal); free -b total.",
    ),
    (
        "memory_used_bytes",
        "Memory in use: MemTotal - MemAvailable; free -b used.",
    ),
    (
        "memory_available_bytes",
        "Memory available for new work without swapping (MemAvailable); free -b available.",
    ),
    (
        "memory_free_bytes",
        "Unused memory (MemFree); free -b free.",
    ),
    (
        "memory_cached_bytes",
        "Page cache and reclaimable slab (Cached + SReclaimable); free -b -w cache.",
    ),
    (
        "memory_buffers_bytes",
        "Block device buffers (Buffers); free -b -w buffers.",
    ),
    (
        "memory_used_percent",
        "Memory in use as a percentage of the total.",
    ),
    ("swap_total_bytes", "Total swap space; free -b Swap total."),
    ("swap_used_bytes", "Swap in use: SwapTotal - SwapFree."),
    (
        "swap_used_percent",
        "Swap in use as a percentage of the total (0 without swap).",
    ),
    (
        "swap_in_pages_per_second",
        "Pages swapped in per second (/proc/vmstat pswpin).",
    ),
    (
        "swap_out_pages_per_second",
        "Pages swapped out per second (/proc/vmstat pswpout).",
    ),
    (
        "oom_kills_total",
        "Processes killed by the kernel's OOM killer since boot.",
    ),
    // Filesystems
    (
        "disk_used_percent",
        "Share of the filesystem's space in use, as df's Use%.",
    ),
    (
        "disk_free_bytes",
        "Space available to unprivileged users; df -B1 Avail.",
    ),
    ("disk_used_bytes", "Space in use; df -B1 Used."),
    (
        "disk_total_bytes",
        "Size of the filesystem; df -B1 1B-blocks.",
    ),
    (
        "disk_inodes_used_percent",
        "Share of the filesystem's inodes in use; df -i IUse%.",
    ),
    (
        "disk_read_only",
        "1 when the filesystem is mounted read-only, else 0.",
    ),
    // Block devices
    (
        "diskio_read_bytes_per_second",
        "Bytes read from the device per second; iostat -x rkB/s x 1024.",
    ),
    (
        "diskio_write_bytes_per_second",
        "Bytes written to the device per second; iostat -x wkB/s x 1024.",
    ),
    (
        "diskio_reads_per_second",
        "Reads completed per second; iostat -x r/s.",
    ),
    (
        "diskio_writes_per_second",
        "Writes completed per second; iostat -x w/s.",
    ),
    (
        "diskio_await_seconds",
        "Mean time an I/O took, queueing included (iostat's await, in seconds; 0 when idle).",
    ),
    (
        "diskio_util_percent",
        "Share of time the device was busy with I/O; iostat -x %util.",
    ),
    // Network
    (
        "net_rx_bytes_per_second",
        "Bytes received per second on the interface.",
    ),
    (
        "net_tx_bytes_per_second",
        "Bytes sent per second on the interface.",
    ),
    (
        "net_rx_packets_per_second",
        "Packets received per second on the interface.",
    ),
    (
        "net_tx_packets_per_second",
        "Packets sent per second on the interface.",
    ),
    (
        "net_rx_errors_per_second",
        "Receive errors per second on the interface.",
    ),
    (
        "net_tx_errors_per_second",
        "Transmit errors per second on the interface.",
    ),
    (
        "net_rx_drops_per_second",
        "Received packets dropped per second on the interface.",
    ),
    (
        "net_tx_drops_per_second",
        "Outgoing packets dropped per second on the interface.",
    ),
    (
        "net_link_up",
        "1 when the interface is up (ip link state UP, or UNKNOWN with IFF_UP), else 0.",
    ),
    (
        "tcp_established_connections",
        "TCP connections in state ESTABLISHED (Tcp CurrEstab).",
    ),
    (
        "tcp_retransmits_per_second",
        "TCP segments retransmitted per second (Tcp RetransSegs).",
    ),
    (
        "tcp_listen_overflows_per_second",
        "Connections dropped per second because a listen queue was full (TcpExt ListenOverflows).",
    ),
    // Host
    ("host_uptime_seconds", "Time since the host booted."),
    (
        "host_processes",
        "Processes running on the host (numeric entries of /proc).",
    ),
    (
        "host_open_fds",
        "File handles allocated by the kernel (/proc/sys/fs/file-nr).",
    ),
    (
        "host_max_fds",
        "Most file handles the kernel will allocate (fs.file-max).",
    ),
    // Process health
    (
        "process_up",
        "1 when at least min_count processes match the watched entry, else 0.",
    ),
    ("process_instances", "Processes matching the watched entry."),
    (
        "process_cpu_percent",
        "CPU used by the matching processes, in percent of one core; top's %CPU.",
    ),
    (
        "process_rss_bytes",
        "Resident set size of the matching processes.",
    ),
    (
        "process_open_fds",
        "File descriptors open in the matching processes.",
    ),
    ("process_threads", "Threads of the matching processes."),
    (
        "process_uptime_seconds",
        "Time since the oldest matching process started.",
    ),
    (
        "process_restarts_total",
        "Times a single-instance entry's process changed (pid or start time) since the agent started.",
    ),
    // systemd
    (
        "systemd_unit_active",
        "1 for the unit's current ActiveState (state label), as systemctl is-active prints it.",
    ),
    // The agent itself
    (
        "agent_samples_total",
        "Samples taken since the agent started.",
    ),
    (
        "agent_batches_sent_total",
        "Batches written to a collector stream; resends count again.",
    ),
    (
        "agent_batches_acked_total",
        "Batches removed from the spool by the collector's acks.",
    ),
    (
        "agent_foreign_acks_total",
        "Acks ignored because they named a seq above any this agent sent.",
    ),
    (
        "agent_spool_dropped_batches_total",
        "Batches dropped because the spool was full or could not be written.",
    ),
    (
        "agent_spool_write_failures_total",
        "Batches that could not be written to the spool.",
    ),
    (
        "agent_spool_corrupt_records_total",
        "Damaged spool records skipped.",
    ),
    (
        "agent_reconnects_total",
        "Reconnect attempts after a failed or ended collector session.",
    ),
    (
        "agent_samples_rejected_total",
        "Samples the collector refused.",
    ),
    (
        "agent_statsd_packets_total",
        "statsd UDP datagrams received.",
    ),
    ("agent_statsd_metrics_total", "statsd values aggregated."),
    (
        "agent_statsd_malformed_total",
        "statsd lines skipped as malformed.",
    ),
    (
        "agent_statsd_series",
        "statsd series held at the last flush.",
    ),
    (
        "agent_spool_batches",
        "Unacknowledged batches in the spool.",
    ),
    ("agent_spool_bytes", "Size of the spool's segment files."),
    (
        "agent_sample_duration_seconds",
        "Wall time of the previous sampling pass.",
    ),
];
