//! Figures from `/proc` (see proc(5)): available memory, a process's RSS, PSS and CPU
//! time, and the pids of the containers in a gantry state dir.

use anyhow::{anyhow, Context, Result};
use std::path::Path;

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l[field.len() + 1..].split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `MemAvailable` from /proc/meminfo, in KiB.
pub fn mem_available_kib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    kib_field(&text, "MemAvailable").ok_or_else(|| anyhow!("/proc/meminfo has no MemAvailable"))
}

/// Every field of /proc/meminfo, in KiB.
pub fn meminfo() -> Result<std::collections::HashMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect())
}

/// Bytes held by each slab cache (`num_slabs * pagesperslab * page size` from
/// /proc/slabinfo, see slabinfo(5)); empty if the file cannot be read.
pub fn slab_bytes() -> std::collections::HashMap<String, u64> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let text = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // name active num objsize objperslab pagesperslab : tunables l b s : slabdata active num shared
            let pages_per_slab: u64 = f.get(5)?.parse().ok()?;
            let slabs: u64 = f.get(14)?.parse().ok()?;
            Some((f[0].to_string(), slabs * pages_per_slab * page))
        })
        .collect()
}

/// `VmRSS` of a process in KiB (`None` if it is gone).
pub fn vm_rss_kib(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, "VmRSS")
}

/// `Pss` and `Rss` of a process from /proc/PID/smaps_rollup, in KiB.
pub fn pss_rss_kib(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some((kib_field(&text, "Pss")?, kib_field(&text, "Rss")?))
}

/// `pid` and `monitor_pid` of every container in a state dir (from each `state.json`).
pub fn container_pids(state_dir: &Path) -> Result<Vec<(i32, i32)>> {
    let dir = state_dir.join("containers");
    let mut out = vec![];
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path().join("state.json");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        if v["status"] != "running" {
            continue;
        }
        let pid = v["pid"]
            .as_i64()
            .ok_or_else(|| anyhow!("{} has no pid", path.display()))?;
        let mon = v["monitor_pid"]
            .as_i64()
            .ok_or_else(|| anyhow!("{} has no monitor_pid", path.display()))?;
        out.push((pid as i32, mon as i32));
    }
    Ok(out)
}

/// CPU time (user + system) a process has used so far (`None` if it is gone).
pub fn cpu_time(pid: i32) -> Option<std::time::Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5), i.e. 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(std::time::Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// CPU time used by every process of a container so far, from its cgroup (`cpuacct.usage`
/// on cgroup v1, `usage_usec` of `cpu.stat` on v2). `None` if it cannot be read.
pub fn container_cpu_time(state_dir: &Path, container_id: &str) -> Option<std::time::Duration> {
    let path = state_dir
        .join("containers")
        .join(container_id)
        .join("state.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let cg = &v["cgroup"];
    let rel = cg["rel"].as_str()?;
    if let Some(parent) = cg["parents"]["cpuacct"].as_str() {
        let file = Path::new("/sys/fs/cgroup/cpuacct")
            .join(parent.trim_start_matches('/'))
            .join(rel)
            .join("cpuacct.usage");
        let ns: u64 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
        return Some(std::time::Duration::from_nanos(ns));
    }
    let stat =
        std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(rel).join("cpu.stat")).ok()?;
    let usec: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_micros(usec))
}
