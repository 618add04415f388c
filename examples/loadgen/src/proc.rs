//! Another process's figures, from /proc: its resident memory, and the CPU
//! time it spends over a span of a run.

use std::time::Duration;

/// VmRSS of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    let kb: u64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(kb * 1024)
}

/// CPU time `pid` has spent so far, user and system, to the nanosecond:
/// the sum over its threads of the scheduler's run time (the first field
/// of each thread's schedstat), where /proc's stat counts 10 ms ticks.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread that ended meanwhile took its time with it.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else { continue };
        total += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(Duration::from_nanos(total))
}

/// The CPU time of named processes from its start to `spent`.
pub struct CpuSpan {
    started: Vec<(String, u32, Duration)>,
}

impl CpuSpan {
    pub fn start(processes: &[(String, u32)]) -> anyhow::Result<CpuSpan> {
        let started = processes.iter().map(|(name, pid)| Ok((name.clone(), *pid, cpu_time(*pid)?)));
        Ok(CpuSpan { started: started.collect::<anyhow::Result<_>>()? })
    }

    /// Each process's CPU time since the start, by name.
    pub fn spent(&self) -> anyhow::Result<Vec<(String, Duration)>> {
        self.started.iter().map(|(name, pid, at)| Ok((name.clone(), cpu_time(*pid)?.saturating_sub(*at)))).collect()
    }
}
