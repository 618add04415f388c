//! Resident memory of another process, from /proc.

/// VmRSS of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    let kb: u64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(kb * 1024)
}
