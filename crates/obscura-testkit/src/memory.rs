//! Resident memory of a server process, read from `/proc/<pid>/status` (Linux). For the
//! measurement tools under `examples/`: memory is measured there, never asserted in tests.

/// `VmRSS` and `VmHWM` (the peak) of `pid`, in KiB.
#[must_use]
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("memory field in /proc status")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Prints the process's memory now, above `idle_kib`, and its peak so far.
pub fn report(label: &str, pid: u32, idle_kib: u64) {
    let (rss, peak) = memory_kib(pid);
    let above = rss.saturating_sub(idle_kib);
    println!(
        "{label:<32} RSS {:>7.1} MiB  (+{:>6.1} MiB over idle)  peak {:>7.1} MiB",
        rss as f64 / 1024.0,
        above as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
