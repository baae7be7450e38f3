//! Control groups (cgroups(7)) through `cgroups-rs`: a cgroup per container with its
//! memory, CPU and pids limits, and its usage read back.
//!
//! gantry's tree is created *under the cgroup gantry itself runs in* — per controller on
//! cgroup v1, where a process can sit at a different path in each hierarchy (on this
//! machine kind the memory controller puts us in `/process_api/<id>` while the others say
//! `/`) — as a systemd service with `Delegate=yes` would. Never at a hierarchy's root.
//!
//! Works on cgroup v1, including the hybrid layout (an empty cgroup2 mounted at
//! `/sys/fs/cgroup/unified`, which cgroups-rs rightly ignores for v1 controllers), and on
//! the v2 unified hierarchy.

use crate::runtime::spec::Limits;
use cgroups_rs::fs::cgroup::{get_cgroups_relative_paths, Cgroup};
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{hierarchies, Controller, MaxValue, Resources};
use cgroups_rs::CgroupPid;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// The controllers gantry needs, with the v1 mount a missing one wants.
const REQUIRED_V1: &[&str] = &["memory", "cpu", "cpuacct", "pids"];
const REQUIRED_V2: &[&str] = &["memory", "cpu", "pids"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup controller '{0}' is not mounted: mount it (e.g. `mkdir -p /sys/fs/cgroup/{0} && mount -t cgroup -o {0} cgroup /sys/fs/cgroup/{0}`) or boot with the cgroup v2 unified hierarchy")]
    MissingController(String),
    #[error("reading this process's cgroups from /proc/self/cgroup: {0}")]
    OwnCgroup(String),
    #[error("creating cgroup {path}: {message}")]
    Create { path: String, message: String },
    #[error("setting limits on cgroup {path}: {message}")]
    Limits { path: String, message: String },
    #[error("moving pid {pid} into cgroup {path}: {message}")]
    Join {
        pid: i32,
        path: String,
        message: String,
    },
    #[error("removing cgroup {path}: {message}")]
    Remove { path: String, message: String },
}

/// Where a container's cgroup is: enough to find it again from another process (the
/// monitor, or a restarted server). Stored in the container's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupPlacement {
    /// Path below gantry's own cgroup, e.g. `gantry/3f2a…`.
    pub rel: String,
    /// Per-controller cgroup of the process that created it (from /proc/self/cgroup).
    pub parents: HashMap<String, String>,
}

/// The name of gantry's subtree below its own cgroup.
pub const TREE: &str = "gantry";

/// A container's cgroup.
pub struct ContainerCgroup {
    cg: Cgroup,
    placement: CgroupPlacement,
}

fn v2() -> bool {
    hierarchies::is_cgroup2_unified_mode()
}

/// Checks that the controllers gantry needs are there, with a hint if not.
pub fn check_controllers() -> Result<(), CgroupError> {
    let hier = hierarchies::auto();
    let have: Vec<String> = hier
        .subsystems()
        .iter()
        .map(|s| s.controller_name())
        .collect();
    let need = if hier.v2() { REQUIRED_V2 } else { REQUIRED_V1 };
    for c in need {
        if !have.iter().any(|h| h == c) {
            return Err(CgroupError::MissingController(c.to_string()));
        }
    }
    Ok(())
}

/// This process's cgroups, per controller; on v2 the single path under the key "".
fn own_cgroups() -> Result<HashMap<String, String>, CgroupError> {
    get_cgroups_relative_paths().map_err(|e| CgroupError::OwnCgroup(e.to_string()))
}

/// On cgroup v2 a cgroup with processes cannot hand controllers to children (the "no
/// internal processes" rule). As a systemd service with `Delegate=yes` does, gantry
/// moves itself into a leaf, `<base>/gantry.supervisor`, and builds its tree beside it,
/// `<base>/gantry/<id>`. `base` is our cgroup without that leaf.
const V2_LEAF: &str = "gantry.supervisor";

fn v2_base(own: &str) -> String {
    let own = own.trim_end_matches('/');
    own.strip_suffix(&format!("/{V2_LEAF}"))
        .unwrap_or(own)
        .to_string()
}

/// Makes sure `base` delegates memory, cpu and pids to its children (v2 only).
fn v2_delegate(base: &str) -> Result<(), CgroupError> {
    let root = PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT).join(base.trim_start_matches('/'));
    let control = root.join("cgroup.subtree_control");
    let enabled = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| {
                REQUIRED_V2
                    .iter()
                    .all(|c| s.split_whitespace().any(|e| e == *c))
            })
            .unwrap_or(false)
    };
    if enabled(&control) {
        return Ok(());
    }
    let want = REQUIRED_V2
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    if std::fs::write(&control, &want).is_err() {
        // Busy with processes: move ourselves into the leaf and try again.
        let leaf = root.join(V2_LEAF);
        let _ = std::fs::create_dir(&leaf);
        let _ = std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string());
        let _ = std::fs::write(&control, &want);
    }
    if enabled(&control) {
        Ok(())
    } else {
        Err(CgroupError::Create {
            path: base.to_string(),
            message: format!(
                "cgroup v2 does not delegate {} below {base}: other processes share gantry's cgroup; run gantry in a cgroup of its own, e.g. as a systemd service with Delegate=yes or with `systemd-run --scope -p Delegate=yes gantry ...`",
                REQUIRED_V2.join(", ")
            ),
        })
    }
}

impl ContainerCgroup {
    /// Creates `gantry/<id>` below our own cgroup and applies `limits`.
    pub fn create(id: &str, limits: &Limits) -> Result<Self, CgroupError> {
        Self::create_in(None, id, limits)
    }

    /// Like [`Self::create`], but below `parent` (a lab host's cgroup) when given: a
    /// container started from a lab host counts against its session's budget.
    pub fn create_in(
        parent: Option<&CgroupPlacement>,
        id: &str,
        limits: &Limits,
    ) -> Result<Self, CgroupError> {
        if let Some(p) = parent {
            let placement = CgroupPlacement {
                rel: format!("{}/{id}", p.rel),
                parents: p.parents.clone(),
            };
            return Self::make(placement, limits);
        }
        let parents = own_cgroups()?;
        let rel = if v2() {
            // v2 has one path for all controllers ("0::/path").
            let base = v2_base(parents.get("").map(String::as_str).unwrap_or("/"));
            v2_delegate(&base)?;
            format!("{}/{TREE}/{id}", base.trim_matches('/'))
                .trim_start_matches('/')
                .to_string()
        } else {
            format!("{TREE}/{id}")
        };
        Self::make(CgroupPlacement { rel, parents }, limits)
    }

    fn make(placement: CgroupPlacement, limits: &Limits) -> Result<Self, CgroupError> {
        let cg = Self::handle(&placement);
        cg.create().map_err(|e| CgroupError::Create {
            path: placement.rel.clone(),
            message: e.to_string(),
        })?;
        let this = ContainerCgroup { cg, placement };
        this.apply(limits)?;
        Ok(this)
    }

    /// Finds an existing cgroup from its placement (it may already be gone).
    pub fn open(placement: &CgroupPlacement) -> Self {
        ContainerCgroup {
            cg: Self::handle(placement),
            placement: placement.clone(),
        }
    }

    fn handle(p: &CgroupPlacement) -> Cgroup {
        Cgroup::load_with_relative_paths(hierarchies::auto(), &p.rel, p.parents.clone())
    }

    pub fn placement(&self) -> &CgroupPlacement {
        &self.placement
    }

    /// Sets memory, CPU and pids limits. Without swap accounting (no swap here) the
    /// memory limit is the whole budget; with it, swap is capped to the same figure so a
    /// hog cannot escape into swap.
    pub fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        // v1 refuses a memory limit above memory+swap's: when raising, memsw goes first.
        if let (Some(m), Some(dir)) = (limits.memory, self.controller_path("memory")) {
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            let current = std::fs::read_to_string(&memsw)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if current.is_some_and(|c| m.bytes() > c) {
                std::fs::write(&memsw, m.bytes().to_string()).map_err(|e| CgroupError::Limits {
                    path: memsw.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        let mut res = Resources::default();
        if let Some(m) = limits.memory {
            res.memory.memory_hard_limit = Some(m.bytes() as i64);
        }
        if let Some(c) = limits.cpus {
            res.cpu.quota = Some(c.quota_us());
            res.cpu.period = Some(crate::runtime::spec::CpuLimit::PERIOD_US);
        }
        if let Some(p) = limits.pids {
            res.pid.maximum_number_of_processes = Some(MaxValue::Value(p.get() as i64));
        }
        if !self.cg.v2() {
            // v2 controls devices with a BPF program instead of these files.
            res.devices.devices = device_policy();
        }
        self.cg.apply(&res).map_err(|e| CgroupError::Limits {
            path: self.placement.rel.clone(),
            message: e.to_string(),
        })?;
        if let (Some(m), Some(mem)) = (limits.memory, self.cg.controller_of::<MemController>()) {
            if !self.cg.v2() && mem.path().join("memory.memsw.limit_in_bytes").exists() {
                mem.set_memswap_limit(m.bytes() as i64)
                    .map_err(|e| CgroupError::Limits {
                        path: self.placement.rel.clone(),
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Moves a process (and so its future children) into this cgroup.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.cg
            .add_task_by_tgid(CgroupPid::from(pid as u64))
            .map_err(|e| CgroupError::Join {
                pid,
                path: self.placement.rel.clone(),
                message: e.to_string(),
            })
    }

    /// Whether the container's first process should move itself in with
    /// [`Self::join_self`] (cgroup v1) rather than be moved by its parent.
    pub fn joins_itself(&self) -> bool {
        !self.cg.v2()
    }

    /// Moves the calling thread into this cgroup by writing `0` to each hierarchy's
    /// `tasks` file. For a single-threaded process that moves the process.
    ///
    /// Why not let the parent write the child's pid to `cgroup.procs`? Moving another
    /// process takes the kernel's global `cgroup_threadgroup_rwsem` for writing, which
    /// waits for an RCU grace period: ~9 ms on this machine kind, more than everything
    /// else in a container start together. A thread moving *itself* skips that lock (see
    /// `cgroup_procs_write_start` in kernel/cgroup/cgroup.c). cgroup v2 has no such
    /// shortcut for a whole process; there the parent moves the child.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        self.cg
            .add_task(CgroupPid::from(0))
            .map_err(|e| CgroupError::Join {
                pid: std::process::id() as i32,
                path: self.placement.rel.clone(),
                message: e.to_string(),
            })
    }

    /// Puts the whole cgroup in the SCHED_IDLE class (`cpu.idle`, Linux 5.15+, v1 and v2)
    /// or takes it out again. An idle-class group runs only when nothing else wants the
    /// CPU, and any other task that wakes up preempts it at once. cgroups-rs has no call
    /// for this file, so it is written directly.
    pub fn set_cpu_idle(&self, idle: bool) -> Result<(), CgroupError> {
        let Some(dir) = self.controller_path("cpu") else {
            return Ok(());
        };
        std::fs::write(dir.join("cpu.idle"), if idle { "1" } else { "0" }).map_err(|e| {
            CgroupError::Limits {
                path: format!("{}/cpu.idle", self.placement.rel),
                message: e.to_string(),
            }
        })
    }

    /// Suspends (`FROZEN`) or resumes (`THAWED`) every process in the cgroup with the
    /// freezer controller: `gantry pause` / `unpause`.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let f = self
            .cg
            .controller_of::<FreezerController>()
            .ok_or_else(|| CgroupError::Limits {
                path: self.placement.rel.clone(),
                message: "the freezer controller is not mounted".into(),
            })?;
        if frozen { f.freeze() } else { f.thaw() }.map_err(|e| CgroupError::Limits {
            path: format!("{}/freezer.state", self.placement.rel),
            message: e.to_string(),
        })
    }

    /// Whether the freezer holds the cgroup (frozen or freezing).
    pub fn frozen(&self) -> bool {
        // (cgroups-rs keeps its FreezerState enum private: read the file.)
        self.controller_path("freezer")
            .and_then(|d| std::fs::read_to_string(d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() != "THAWED")
    }

    /// Processes in the cgroup (read from the pids controller's `cgroup.procs`).
    pub fn processes(&self) -> Vec<i32> {
        self.cg.procs().into_iter().map(|p| p.pid as i32).collect()
    }

    pub fn exists(&self) -> bool {
        self.cg.exists()
    }

    /// SIGKILLs everything in the cgroup (used when a container's monitor is gone). A
    /// frozen cgroup is thawed too: its tasks would otherwise hold the signal forever.
    pub fn kill_all(&self) {
        if self.cg.v2() && self.cg.kill().is_ok() {
            let _ = self.set_frozen(false);
            return;
        }
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if self.frozen() {
            let _ = self.set_frozen(false);
        }
    }

    /// Removes the cgroup (retrying while the kernel finishes tearing down the last
    /// tasks), then gantry's parent dir if it became empty.
    pub fn remove(&self) -> Result<(), CgroupError> {
        // A lab host's cgroup holds those of the containers nested in it; whatever of
        // them is still there (their monitors died with the lab host) goes first.
        for s in self.cg.subsystems() {
            let dir = s.to_controller().path().to_path_buf();
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for child in rd.flatten().filter(|e| e.path().is_dir()) {
                    let child_rel = format!(
                        "{}/{}",
                        self.placement.rel,
                        child.file_name().to_string_lossy()
                    );
                    let nested = ContainerCgroup::open(&CgroupPlacement {
                        rel: child_rel,
                        parents: self.placement.parents.clone(),
                    });
                    nested.kill_all();
                    let _ = nested.remove();
                }
            }
        }
        self.cg.delete().map_err(|e| CgroupError::Remove {
            path: self.placement.rel.clone(),
            message: e.to_string(),
        })?;
        // Only gantry's own folder; a lab host's cgroup goes with the lab host.
        if let Some(parent) = std::path::Path::new(&self.placement.rel)
            .parent()
            .filter(|p| p.ends_with(TREE))
        {
            let parent = Cgroup::load_with_relative_paths(
                hierarchies::auto(),
                parent,
                self.placement.parents.clone(),
            );
            for s in parent.subsystems() {
                // Fails with EBUSY while other containers run: that is fine.
                let _ = std::fs::remove_dir(s.to_controller().path());
            }
        }
        Ok(())
    }

    /// Directory of one controller's cgroup, e.g. for the `memory` pictures.
    pub fn controller_path(&self, name: &str) -> Option<PathBuf> {
        self.cg
            .subsystems()
            .iter()
            .find(|s| s.controller_name() == name)
            .map(|s| s.to_controller().path().to_path_buf())
    }

    /// Current usage against limits.
    pub fn stats(&self) -> CgroupStats {
        let mut st = CgroupStats {
            path: format!("/{}", self.placement.rel),
            ..Default::default()
        };
        if let Some(mem) = self.cg.controller_of::<MemController>() {
            let m = mem.memory_stat();
            st.memory.usage_bytes = m.usage_in_bytes;
            st.memory.max_usage_bytes = m.max_usage_in_bytes;
            st.memory.failcnt = m.fail_cnt;
            st.memory.oom_kills = m.oom_control.oom_kill;
            st.memory.limit_bytes = unlimited_as_none(m.limit_in_bytes);
        }
        if let Some(pids) = self.cg.controller_of::<PidController>() {
            st.pids.current = pids.get_pid_current().unwrap_or(0);
            st.pids.limit = match pids.get_pid_max() {
                Ok(MaxValue::Value(v)) => Some(v as u64),
                _ => None,
            };
        }
        if let Some(acct) = self.cg.controller_of::<CpuAcctController>() {
            st.cpu.usage_ns = acct.cpuacct().usage;
        }
        if let Some(cpu) = self.cg.controller_of::<CpuController>() {
            let c = cpu.cpu();
            for line in c.stat.lines() {
                let mut it = line.split_whitespace();
                match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
                    (Some("nr_throttled"), Some(v)) => st.cpu.nr_throttled = v,
                    // v2 reports usage in cpu.stat (µs) instead of cpuacct.
                    (Some("usage_usec"), Some(v)) if st.cpu.usage_ns == 0 => {
                        st.cpu.usage_ns = v * 1000
                    }
                    _ => {}
                }
            }
            if let (Ok(q), Ok(p)) = (cpu.cfs_quota(), cpu.cfs_period()) {
                if q > 0 && p > 0 {
                    st.cpu.quota_cpus = Some(q as f64 / p as f64);
                }
            }
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_tree_sits_beside_the_supervisor_leaf() {
        assert_eq!(
            v2_base("/system.slice/gantry.service"),
            "/system.slice/gantry.service"
        );
        assert_eq!(
            v2_base("/system.slice/gantry.service/gantry.supervisor"),
            "/system.slice/gantry.service"
        );
        assert_eq!(v2_base("/"), "");
    }
}

/// The devices cgroup policy (cgroup v1): deny everything, then allow the character
/// devices of the minimal /dev and the container's ptys. No block device and no memory
/// device (/dev/mem, /dev/kmem, /dev/port) can be opened, even by a root who mknods one.
fn device_policy() -> Vec<cgroups_rs::fs::DeviceResource> {
    use cgroups_rs::fs::devices::{DevicePermissions as P, DeviceType};
    let rule = |allow, devtype, major, minor| cgroups_rs::fs::DeviceResource {
        allow,
        devtype,
        major,
        minor,
        access: vec![P::Read, P::Write, P::MkNod],
    };
    let mut rules = vec![rule(false, DeviceType::All, -1, -1)];
    for (major, minor) in ALLOWED_DEVICES {
        rules.push(rule(true, DeviceType::Char, *major, *minor));
    }
    rules
}

/// (major, minor) of the allowed character devices; -1 is any minor.
pub const ALLOWED_DEVICES: &[(i64, i64)] = &[
    (1, 3),    // null
    (1, 5),    // zero
    (1, 7),    // full
    (1, 8),    // random
    (1, 9),    // urandom
    (5, 0),    // tty
    (5, 1),    // console
    (5, 2),    // ptmx
    (136, -1), // pts/*
];

fn unlimited_as_none(v: i64) -> Option<u64> {
    // v1 reports "unlimited" as PAGE_COUNTER_MAX pages, about 2^63 bytes.
    if v <= 0 || v >= (1i64 << 62) {
        None
    } else {
        Some(v as u64)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MemoryStats {
    pub usage_bytes: u64,
    pub limit_bytes: Option<u64>,
    pub max_usage_bytes: u64,
    pub failcnt: u64,
    pub oom_kills: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PidsStats {
    pub current: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuStats {
    pub usage_ns: u64,
    pub quota_cpus: Option<f64>,
    pub nr_throttled: u64,
}

/// A container's cgroup usage against its limits, as the pictures show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CgroupStats {
    pub path: String,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub cpu: CpuStats,
}
