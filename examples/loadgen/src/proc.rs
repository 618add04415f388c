//! Another process's figures, from /proc: its resident memory, and the CPU
//! time and write calls it spends over a span of a run.

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

/// The write system calls `pid` has made so far (`syscw` of /proc's io:
/// `write` and `writev` alike), or 0 where /proc does not say.
pub fn writes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|line| line.strip_prefix("syscw:")?.trim().parse().ok()).unwrap_or(0)
}

/// Processes to watch, named by tier, numbered when there are several.
pub fn named(tier: &str, pids: &[u32]) -> Vec<(String, u32)> {
    match pids {
        [one] => vec![(tier.to_owned(), *one)],
        many => many.iter().enumerate().map(|(i, pid)| (format!("{tier}{i}"), *pid)).collect(),
    }
}

/// What a process spent over a span.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spent {
    pub cpu: Duration,
    pub writes: u64,
}

impl Spent {
    fn now(pid: u32) -> anyhow::Result<Spent> {
        Ok(Spent { cpu: cpu_time(pid)?, writes: writes(pid) })
    }
}

/// The CPU time and writes of named processes from its start to `spent`.
pub struct CpuSpan {
    started: Vec<(String, u32, Spent)>,
}

impl CpuSpan {
    pub fn start(processes: &[(String, u32)]) -> anyhow::Result<CpuSpan> {
        let started = processes.iter().map(|(name, pid)| Ok((name.clone(), *pid, Spent::now(*pid)?)));
        Ok(CpuSpan { started: started.collect::<anyhow::Result<_>>()? })
    }

    /// What each process spent since the start, by name.
    pub fn spent(&self) -> anyhow::Result<Vec<(String, Spent)>> {
        let since = |pid: u32, at: &Spent| -> anyhow::Result<Spent> {
            let now = Spent::now(pid)?;
            Ok(Spent { cpu: now.cpu.saturating_sub(at.cpu), writes: now.writes.saturating_sub(at.writes) })
        };
        self.started.iter().map(|(name, pid, at)| Ok((name.clone(), since(*pid, at)?))).collect()
    }
}
