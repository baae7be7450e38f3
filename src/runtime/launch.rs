//! Starting a container: `clone(2)` into new namespaces, join the cgroup, build the root
//! filesystem, exec.
//!
//! Always called from a single-threaded process — the `gantry` CLI, or the per-container
//! monitor that the server spawns — never from the multi-threaded server: after `clone`
//! without `CLONE_VM` the child is a copy of a process with one thread, so it may allocate
//! and take locks freely.
//!
//! The handshake (see [`crate::runtime::sync`]):
//!
//! ```text
//!  parent (monitor/CLI)                 child (the container's pid 1)
//!  create cgroup, apply limits
//!  clone(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET) ─┐
//!                                             join own cgroup, chdir to its folder
//!  write uid_map, gid_map
//!  idmap the image (open_tree, mount_setattr)
//!                              ──> Mapped (+ image mount fd)
//!                                             setresuid(0), mount rootfs, pivot_root,
//!                                             open pty
//!                              <── RootfsReady (+ pty master fd)
//!                              ──> Go
//!                                             unshare(NEWCGROUP), setsid, dup2, execve
//!  EOF on the socket = exec succeeded  <──    (or Failed{..} and exit 125/126/127)
//! ```
//!
//! Until it calls `setresuid`, the child keeps the host uid 0 it was cloned with, though
//! its capabilities now only count inside its new user namespace. That is what lets it
//! write its cgroup's `tasks` file and enter its 0700 state folder — plain owner
//! permissions — before it becomes the range's unprivileged uid. Everything after uses
//! paths relative to that folder.

use crate::runtime::cgroups::{CgroupError, ContainerCgroup};
use crate::runtime::idmap;
use crate::runtime::plan::{self, LayerDirs, MountOp};
use crate::runtime::rootfs;
use crate::runtime::spec::ContainerSpec;
use crate::runtime::sync::{SyncError, SyncMsg, SyncSocket};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Exit codes when the container never got to run its command (as Docker's).
pub const EXIT_SETUP_FAILED: i32 = 125;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("image rootfs {0} is missing: the image store is damaged; remove the image folder and let gantry rebuild it")]
    MissingRootfs(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    IdMap(#[from] crate::runtime::idmap::IdMapError),
    #[error(
        "clone: {0} (gantry needs root, and a kernel with pid, mount, uts, ipc and net namespaces)"
    )]
    Clone(nix::Error),
    #[error("container setup failed at {step}: {message}")]
    Setup {
        step: String,
        message: String,
        exit_code: i32,
    },
    #[error("the container's first process died during setup")]
    DiedDuringSetup,
    #[error(
        "joining the pid namespace of lab host process {0}: {1} (is the lab host still running?)"
    )]
    Nest(i32, nix::Error),
    #[error("network: {0}")]
    Network(String),
}

impl LaunchError {
    /// The exit code `gantry run` reports for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::Setup { exit_code, .. } => *exit_code,
            _ => EXIT_SETUP_FAILED,
        }
    }
}

/// What the container's fds 0, 1 and 2 are.
pub enum ChildIo {
    /// Keep the caller's (foreground `gantry run`).
    Inherit,
    /// A new pty from the container's own devpts; the master comes back to the caller.
    Pty,
    /// These descriptors (e.g. pipes to the monitor).
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// A started container.
pub struct Started {
    pub pid: Pid,
    pub pty_master: Option<OwnedFd>,
    pub cgroup: ContainerCgroup,
    /// When each step of the launch finished, as the parent saw it.
    pub timeline: Timeline,
}

/// The launch's steps with the time each finished (for the step-by-step trace, and for
/// `GANTRY_TIMING=1`, which prints it).
#[derive(Debug, Clone)]
pub struct Timeline {
    start: std::time::Instant,
    pub steps: Vec<(String, std::time::Duration)>,
}

impl Timeline {
    pub fn new() -> Self {
        Timeline {
            start: std::time::Instant::now(),
            steps: vec![],
        }
    }

    pub fn mark(&mut self, step: &str) {
        self.steps.push((step.to_string(), self.start.elapsed()));
    }

    /// Adds the child's steps (ns since the start), keeping the list in time order.
    pub fn merge_child(&mut self, steps: Vec<(String, u64)>) {
        for (s, ns) in steps {
            self.steps
                .push((format!("child: {s}"), std::time::Duration::from_nanos(ns)));
        }
        self.steps.sort_by_key(|(_, d)| *d);
    }

    /// The steps as (what, milliseconds since the start), for `trace.json`.
    pub fn entries(&self) -> Vec<TraceEntry> {
        self.steps
            .iter()
            .map(|(s, d)| TraceEntry {
                step: s.clone(),
                ms: d.as_secs_f64() * 1000.0,
            })
            .collect()
    }

    /// One line per step: cumulative milliseconds and the step.
    pub fn render(&self) -> String {
        self.steps
            .iter()
            .map(|(s, d)| format!("{:>8.3} ms  {s}\n", d.as_secs_f64() * 1000.0))
            .collect()
    }
}

/// One step of a launch as saved in the container's `trace.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TraceEntry {
    pub step: String,
    pub ms: f64,
}

/// Where the monitor saves the launch's steps.
pub const TRACE_FILE: &str = "trace.json";

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts `spec` with its writable layer under `container_dir`.
pub fn launch(
    spec: &ContainerSpec,
    container_dir: &Path,
    io: ChildIo,
) -> Result<Started, LaunchError> {
    if !spec.image_rootfs.is_dir() {
        return Err(LaunchError::MissingRootfs(
            spec.image_rootfs.display().to_string(),
        ));
    }
    let mut timeline = Timeline::new();
    // Relative to the container's folder, which the child enters while it can.
    let ops = plan::rootfs_plan(spec, &LayerDirs::under(Path::new(".")));
    let cgroup = ContainerCgroup::create_in(
        spec.nest.as_ref().map(|n| &n.cgroup),
        &spec.id,
        &spec.limits,
    )?;
    timeline.mark(&format!(
        "cgroup created, limits written: {}",
        limits_written(&spec.limits)
    ));

    let started = start_in_cgroup(spec, container_dir, &ops, io, &cgroup, &mut timeline);
    match started {
        Ok((pid, pty_master)) => Ok(Started {
            pid,
            pty_master,
            cgroup,
            timeline,
        }),
        Err(e) => {
            let _ = cgroup.remove();
            Err(e)
        }
    }
}

fn start_in_cgroup(
    spec: &ContainerSpec,
    container_dir: &Path,
    ops: &[MountOp],
    io: ChildIo,
    cgroup: &ContainerCgroup,
    timeline: &mut Timeline,
) -> Result<(Pid, Option<OwnedFd>), LaunchError> {
    let (parent_sock, child_sock) = SyncSocket::pair()?;
    let flags = plan::clone_flags_for(&spec.network);
    // `container:<id>`: the network namespace to join instead of a new one.
    let join_net = match spec.network.shared_with() {
        None => None,
        Some(id) => Some(network_of(container_dir, id)?),
    };
    let cloned = match &spec.nest {
        None => {
            if let Some(ns) = join_net {
                // The monitor (or CLI) joins it, and the child inherits it.
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| LaunchError::Network(e.to_string()))?;
            }
            raw_clone(flags.bits() as libc::c_ulong, std::ptr::null_mut()).map(|ret| (ret, None))
        }
        Some(nest) => clone_nested(flags, nest.host_pid, &spec.id, cgroup, join_net),
    };
    let ret = match cloned {
        Ok((ret, _)) => ret,
        Err(e) => return Err(e),
    };
    if ret == 0 {
        drop(parent_sock);
        // The child's copy of the timeline shares the parent's monotonic clock.
        child_main(
            spec,
            container_dir,
            ops,
            io,
            child_sock,
            cgroup,
            timeline.start,
        );
    }
    drop(child_sock);
    drop(io);
    let pid = Pid::from_raw(ret as i32);
    timeline.mark(&format!("clone into new namespaces: {}", flag_names(flags)));
    let fail = |e: LaunchError| {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        e
    };
    // (A nested container's helper wrote its maps already.)
    if spec.nest.is_none() {
        if let Err(e) = idmap::write_maps(pid.as_raw(), &spec.idmap) {
            return Err(fail(e.into()));
        }
    }
    timeline.mark(&format!(
        "write uid_map, gid_map: 0 {} {}",
        spec.idmap.base, spec.idmap.size
    ));
    let mut trees = vec![];
    match idmap::detached_tree(&spec.image_rootfs, Some(pid.as_raw()), true) {
        Ok(fd) => trees.push(fd),
        Err(e) => return Err(fail(e.into())),
    }
    timeline.mark("open_tree + mount_setattr: image idmapped into the range");
    for b in &spec.binds {
        match idmap::detached_tree(&b.source, None, b.readonly) {
            Ok(fd) => trees.push(fd),
            Err(e) => return Err(fail(e.into())),
        }
        timeline.mark(&format!(
            "open_tree {} (bind to {})",
            b.source.display(),
            b.target
        ));
    }
    let fds: Vec<RawFd> = trees.iter().map(|t| t.as_raw_fd()).collect();
    let sent = parent_sock.send_fds(&SyncMsg::Mapped, &fds);
    drop(trees);
    if let Err(e) = sent {
        return Err(fail(e.into()));
    }

    if !cgroup.joins_itself() {
        if let Err(e) = cgroup.add_process(pid.as_raw()) {
            return Err(fail(e.into()));
        }
        timeline.mark("child moved into its cgroup (cgroup.procs)");
    }
    // Network: `none` needs nothing from the parent (the child brings up loopback).
    let pty_master = match parent_sock.recv() {
        Ok(Some((SyncMsg::RootfsReady { steps }, fd))) => {
            timeline.merge_child(steps);
            fd
        }
        Ok(Some((
            SyncMsg::Failed {
                step,
                message,
                exit_code,
            },
            _,
        ))) => {
            return Err(fail(LaunchError::Setup {
                step,
                message,
                exit_code,
            }))
        }
        Ok(_) => return Err(fail(LaunchError::DiedDuringSetup)),
        Err(e) => return Err(fail(e.into())),
    };

    if let crate::runtime::spec::NetworkMode::Bridge(net) = &spec.network {
        let plugged = match &spec.nest {
            Some(nest) => crate::runtime::network::attach(
                nest.host_pid,
                pid.as_raw(),
                &spec.id,
                net,
                "eth0",
                true,
            )
            .map_err(|e| LaunchError::Network(e.to_string())),
            None => Err(LaunchError::Network(
                "user networks exist only inside a lab host".into(),
            )),
        };
        if let Err(e) = plugged {
            return Err(fail(e));
        }
        timeline.mark(&format!(
            "veth {} (on bridge {}) ⇄ eth0 in the container: {}/{}, default via {}",
            crate::runtime::network::veth_name(&spec.id, "eth0"),
            net.bridge,
            net.address,
            net.prefix,
            net.gateway
        ));
    }
    if let Err(e) = parent_sock.send(&SyncMsg::Go, None) {
        return Err(fail(e.into()));
    }
    let mut reply = parent_sock.recv();
    if let Ok(Some((SyncMsg::Exec { steps }, _))) = reply {
        timeline.merge_child(steps);
        reply = parent_sock.recv();
    }
    match reply {
        Ok(None) => {
            timeline.mark(&format!("child: execve {}", spec.command.join(" ")));
            Ok((pid, pty_master))
        }
        Ok(Some((
            SyncMsg::Failed {
                step,
                message,
                exit_code,
            },
            _,
        ))) => Err(fail(LaunchError::Setup {
            step,
            message,
            exit_code,
        })),
        Ok(Some(_)) => Err(fail(LaunchError::DiedDuringSetup)),
        Err(e) => Err(fail(e.into())),
    }
}

impl Started {
    /// After the first process exited: tells whether the OOM killer ended it, kills what
    /// is left in the cgroup (the kernel already killed the rest of the pid namespace with
    /// its init) and removes the cgroup. Returns whether it was an OOM kill.
    pub fn clean_up(&self, status: &ExitStatus) -> bool {
        let oom_killed =
            status.signal == Some(libc::SIGKILL) && self.cgroup.stats().memory.oom_kills > 0;
        self.cgroup.kill_all();
        let _ = self.cgroup.remove();
        oom_killed
    }
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub code: i32,
    pub signal: Option<i32>,
}

/// Waits for the container's first process (the caller must be its parent).
pub fn wait(pid: Pid) -> ExitStatus {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return ExitStatus { code, signal: None },
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return ExitStatus {
                    code: 128 + sig as i32,
                    signal: Some(sig as i32),
                }
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => {
                return ExitStatus {
                    code: EXIT_SETUP_FAILED,
                    signal: None,
                }
            }
        }
    }
}

/// Like [`wait`] but returns `None` if the process has not exited yet.
pub fn try_wait(pid: Pid) -> Option<ExitStatus> {
    use nix::sys::wait::WaitPidFlag;
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus { code, signal: None }),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(ExitStatus {
            code: 128 + sig as i32,
            signal: Some(sig as i32),
        }),
        Ok(_) => None,
        Err(nix::Error::ECHILD) => Some(ExitStatus {
            code: EXIT_SETUP_FAILED,
            signal: None,
        }),
        Err(_) => None,
    }
}

// ---- the child side ----------------------------------------------------------------

struct StepError {
    step: &'static str,
    message: String,
    exit_code: i32,
}

fn step<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> StepError {
    move |e| StepError {
        step,
        message: e.to_string(),
        exit_code: EXIT_SETUP_FAILED,
    }
}

/// The container's first process, from clone to exec. Never returns.
fn child_main(
    spec: &ContainerSpec,
    container_dir: &Path,
    ops: &[MountOp],
    io: ChildIo,
    sock: SyncSocket,
    cgroup: &ContainerCgroup,
    start: std::time::Instant,
) -> ! {
    let err = match child_setup(spec, container_dir, ops, io, &sock, cgroup, start) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = sock.send(
        &SyncMsg::Failed {
            step: err.step.to_string(),
            message: err.message,
            exit_code: err.exit_code,
        },
        None,
    );
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(err.exit_code) }
}

enum Never {}

fn child_setup(
    spec: &ContainerSpec,
    container_dir: &Path,
    ops: &[MountOp],
    io: ChildIo,
    sock: &SyncSocket,
    cgroup: &ContainerCgroup,
    start: std::time::Instant,
) -> Result<Never, StepError> {
    // If the monitor (our parent) dies, so do we: a container never outlives its owner.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let mut steps: Vec<(String, u64)> = Vec::new();
    let now = || start.elapsed().as_nanos() as u64;
    // First, while the host's cgroupfs is still in our (copied) mount namespace.
    // (A nested container's helper joined it for us.)
    if cgroup.joins_itself() && spec.nest.is_none() {
        cgroup.join_self().map_err(step("cgroup"))?;
        steps.push(("echo 0 > tasks (join own cgroup)".into(), now()));
    }
    // (A nested container inherited it from its helper, and can no longer get there by
    // path.)
    if spec.nest.is_none() {
        nix::unistd::chdir(container_dir).map_err(step("chdir to the container's folder"))?;
    }
    let mut trees = match sock.recv_fds() {
        Ok(Some((SyncMsg::Mapped, fds))) if !fds.is_empty() => fds,
        _ => return Err(step("sync")("parent went away before the uid maps")),
    };
    let image = trees.remove(0);
    become_namespace_root().map_err(step("setresuid"))?;
    // Not dumpable until execve: nothing in the container may open this process's /proc
    // files while it runs gantry's code (CVE-2019-5736).
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    steps.push(("setresgid 0, setgroups [], setresuid 0".into(), now()));
    let root = ops
        .iter()
        .find_map(|op| match op {
            MountOp::PivotRoot { new_root } => Some(new_root.clone()),
            _ => None,
        })
        .unwrap_or_default();
    rootfs::apply(ops, &root, Some(&image), &trees, |op| {
        steps.push((rootfs::describe(op, &root), now()))
    })
    .map_err(step("rootfs"))?;
    drop(image);
    drop(trees);
    nix::unistd::sethostname(spec.hostname.as_str()).map_err(step("sethostname"))?;
    steps.push((format!("sethostname {}", spec.hostname.as_str()), now()));
    // (A shared network namespace is its owner's to configure: lo is up there already.)
    if spec.network.shared_with().is_none() {
        loopback_up().map_err(step("loopback"))?;
        steps.push(("ip link set lo up".into(), now()));
    }

    let (pty_master, pty_slave) = match io {
        ChildIo::Pty => {
            let (m, s) = open_pty().map_err(step("pty"))?;
            (Some(m), Some(s))
        }
        _ => (None, None),
    };
    if pty_master.is_some() {
        steps.push(("open /dev/ptmx, TIOCGPTPEER".into(), now()));
    }
    sock.send(
        &SyncMsg::RootfsReady { steps },
        pty_master.as_ref().map(|m| m.as_raw_fd()),
    )
    .map_err(step("sync"))?;
    drop(pty_master);
    match sock.recv() {
        Ok(Some((SyncMsg::Go, _))) => {}
        _ => return Err(step("sync")("parent went away before go")),
    }
    let mut steps: Vec<(String, u64)> = Vec::new();
    // Now that we are in our own cgroup, a cgroup namespace rooted there.
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(step("unshare cgroup"))?;
    steps.push(("unshare(CLONE_NEWCGROUP)".into(), now()));

    match io {
        ChildIo::Pty => {
            let slave = pty_slave.expect("pty slave opened above");
            // A new session whose controlling terminal is the pty: job control works, and
            // TIOCSTI on it reaches nothing outside the container.
            nix::unistd::setsid().map_err(step("setsid"))?;
            // SAFETY: TIOCSCTTY takes an int argument.
            if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
                return Err(step("TIOCSCTTY")(nix::Error::last()));
            }
            for fd in 0..3 {
                dup_onto(slave.as_raw_fd(), fd).map_err(step("dup2"))?;
            }
            steps.push((
                "setsid, ioctl(TIOCSCTTY), dup2 pty onto 0 1 2".into(),
                now(),
            ));
        }
        ChildIo::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            dup_onto(stdin.as_raw_fd(), 0).map_err(step("dup2"))?;
            dup_onto(stdout.as_raw_fd(), 1).map_err(step("dup2"))?;
            dup_onto(stderr.as_raw_fd(), 2).map_err(step("dup2"))?;
        }
        ChildIo::Inherit => {}
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    limit_open_files().map_err(step("setrlimit"))?;
    steps.push((
        format!("setrlimit(RLIMIT_NOFILE, {})", crate::runtime::spec::NOFILE),
        now(),
    ));
    crate::runtime::security::drop_privileges(crate::runtime::security::default_cap_mask())
        .map_err(step("capabilities"))?;
    steps.push((
        "capset: keep Docker's 14 capabilities, prctl(PR_SET_NO_NEW_PRIVS)".into(),
        now(),
    ));
    // Only 0, 1 and 2 cross into the container: whatever else we inherited without
    // close-on-exec (a caller's pipes, a jobserver's fds) is closed by execve
    // (CVE-2024-21626 leaked a host directory this way). close_range(2), Linux 5.11.
    // SAFETY: marks descriptors close-on-exec; no memory is passed.
    if unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } < 0
    {
        return Err(step("close_range")(nix::Error::last()));
    }
    nix::unistd::chdir(spec.workdir.as_str()).map_err(|e| StepError {
        step: "chdir",
        message: format!("working directory {}: {e}", spec.workdir),
        exit_code: EXIT_CANNOT_EXECUTE,
    })?;
    steps.push((
        format!("close_range(3, ~0, CLOEXEC), chdir {}", spec.workdir),
        now(),
    ));
    // Last: from here on only the allowlist's system calls work (execve is one).
    let filter = crate::runtime::seccomp::program_for(spec.nested_namespaces);
    crate::runtime::seccomp::install(&filter).map_err(step("seccomp"))?;
    steps.push((
        format!(
            "seccomp(SET_MODE_FILTER): {}-instruction allowlist",
            filter.len()
        ),
        now(),
    ));
    // (The socket is close-on-exec: after this, the parent reads EOF once execve works.)
    let _ = sock.send(&SyncMsg::Exec { steps }, None);
    exec(spec)
}

/// The namespace flags of a clone, as clone(2) names them.
pub fn flag_names(flags: CloneFlags) -> String {
    [
        (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
        (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
        (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
    ]
    .iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join("|")
}

/// The cgroup files a container's limits are written to (cgroup v1 names).
fn limits_written(l: &crate::runtime::spec::Limits) -> String {
    let mut out = vec![];
    if let Some(m) = l.memory {
        out.push(format!("memory.limit_in_bytes={}", m.bytes()));
    }
    if let Some(c) = l.cpus {
        out.push(format!(
            "cpu.cfs_quota_us={} (period {})",
            c.quota_us(),
            crate::runtime::spec::CpuLimit::PERIOD_US
        ));
    }
    if let Some(p) = l.pids {
        out.push(format!("pids.max={}", p.get()));
    }
    out.push("devices.deny=a, devices.allow=<the minimal /dev>".into());
    out.join(", ")
}

/// `clone(2)` as fork: returns 0 in the child, the child's pid (in the caller's pid
/// namespace) in the parent. `pidfd` receives a pidfd when CLONE_PIDFD is in `flags`.
fn raw_clone(flags: libc::c_ulong, pidfd: *mut libc::c_int) -> Result<i32, LaunchError> {
    // SAFETY: a raw clone without CLONE_VM behaves like fork(2): the child gets a copy of
    // this (single-threaded) process and runs on a copy of our stack.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_ulong,
            0usize,
            pidfd,
            0usize,
            0usize,
        )
    };
    if ret < 0 {
        return Err(LaunchError::Clone(nix::Error::last()));
    }
    Ok(ret as i32)
}

/// Clones a container whose pid namespace nests in the one of host process `host_pid`
/// (a lab host's). The kernel creates a pid namespace only below the caller's *own*
/// (setns(2) on a pid namespace changes where the caller's children go, and clone with
/// CLONE_NEWPID then fails with EINVAL), so a short-lived helper does it:
///
/// ```text
///  monitor: setns(lab host's pid ns), fork, setns(back)
///            └──> helper (a process of the lab host's pid ns):
///                 setns(lab host's user ns)
///                 clone(CLONE_PARENT | CLONE_PIDFD | NEWUSER | NEWPID | ...) ──> container
///                 sends the pidfd, exits
/// ```
///
/// The helper joins the lab host's user namespace because the kernel wants a new pid
/// namespace's owner to descend from its parent pid namespace's owner (else EINVAL):
/// the container's user namespace is a child of the lab host's, as on a real host with
/// nested containers. Only a process in the parent user namespace may write the maps,
/// and a new user namespace's creator must have a uid mapped in its parent: so the helper
/// becomes the lab host's root (the session range's first uid) before the clone, and
/// writes the maps (identity, in lab host ids: the session's range again) itself.
/// It enters the container's folder first, while it is still host root, for the
/// container to inherit as its working directory.
///
/// CLONE_PARENT makes the monitor the container's parent (it waits for it, and the
/// container's parent-death signal follows the monitor). The clone's return value is the
/// pid *in the lab host's numbering*; the monitor learns the host's from the pidfd's
/// fdinfo, which numbers by the reader's /proc.
///
/// Returns 0 in the container, its host pid in the monitor.
fn clone_nested(
    flags: CloneFlags,
    host_pid: i32,
    container_id: &str,
    cgroup: &ContainerCgroup,
    join_net: Option<std::fs::File>,
) -> Result<(i32, Option<OwnedFd>), LaunchError> {
    let range_size = idmap::RANGE_SIZE;
    use std::os::unix::net::UnixDatagram;
    let nest_err = |e: nix::Error| LaunchError::Nest(host_pid, e);
    let io_err = |e: std::io::Error| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let ns =
        std::fs::File::open(format!("/proc/{host_pid}/ns/pid")).map_err(|e| nest_err(io_err(e)))?;
    let userns = std::fs::File::open(format!("/proc/{host_pid}/ns/user"))
        .map_err(|e| nest_err(io_err(e)))?;
    let mntns =
        std::fs::File::open(format!("/proc/{host_pid}/ns/mnt")).map_err(|e| nest_err(io_err(e)))?;
    let own = std::fs::File::open("/proc/self/ns/pid").map_err(|e| nest_err(io_err(e)))?;
    let (mon_end, helper_end) = UnixDatagram::pair().map_err(|e| nest_err(io_err(e)))?;
    nix::sched::setns(ns, CloneFlags::CLONE_NEWPID).map_err(nest_err)?;
    // SAFETY: single-threaded caller; the helper only does plain syscalls before it
    // exits.
    let forked = unsafe { nix::unistd::fork() };
    if !matches!(forked, Ok(nix::unistd::ForkResult::Child)) {
        // Our own children go to our own pid namespace again.
        nix::sched::setns(own, CloneFlags::CLONE_NEWPID).map_err(nest_err)?;
    }
    match forked.map_err(nest_err)? {
        nix::unistd::ForkResult::Child => {
            drop(mon_end);
            let mut pidfd: libc::c_int = -1;
            let identity = idmap::IdRange {
                base: 0,
                size: range_size,
            };
            let folder = labhost_container_dir(container_id);
            // The cgroup first, while we are host root (the container inherits it).
            let joined = cgroup.join_self().map_err(|_| nix::Error::EACCES);
            let cloned = joined
                .and_then(|_| nix::sched::setns(userns, CloneFlags::CLONE_NEWUSER))
                .and_then(|_| become_namespace_root())
                .and_then(|_| match join_net {
                    // (The lab host's root has every capability over its containers'
                    // namespaces, so it may join one.)
                    Some(ns) => nix::sched::setns(ns, CloneFlags::CLONE_NEWNET),
                    None => Ok(()),
                })
                // The lab host's mount namespace: the container's is copied from it, and
                // its folder is on the lab host's data tmpfs, as on a real host.
                .and_then(|_| nix::sched::setns(mntns, CloneFlags::CLONE_NEWNS))
                .and_then(|_| {
                    std::fs::create_dir_all(folder.join("rootfs"))
                        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                })
                .and_then(|_| nix::unistd::chdir(&folder))
                .map_err(nest_err)
                .map(|_| {
                    // Dumpable again (the uid change cleared it), so that the container's
                    // /proc files belong to the lab host's root, who writes the maps.
                    // SAFETY: plain prctl with integer arguments.
                    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
                })
                .and_then(|_| {
                    raw_clone(
                        (flags.bits() | libc::CLONE_PARENT | libc::CLONE_PIDFD) as libc::c_ulong,
                        &mut pidfd,
                    )
                })
                .and_then(|ret| {
                    if ret == 0 {
                        return Ok(0);
                    }
                    // SAFETY: the kernel stored a new descriptor there.
                    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
                    let host = pidfd_host_pid(&fd).ok_or(LaunchError::DiedDuringSetup)?;
                    std::mem::forget(fd);
                    idmap::write_maps(host, &identity)?;
                    Ok(ret)
                });
            match cloned {
                Ok(0) => return Ok((0, None)),
                Ok(_) => {
                    let fds = [pidfd];
                    let _ = nix::sys::socket::sendmsg::<()>(
                        helper_end.as_raw_fd(),
                        &[std::io::IoSlice::new(b"k")],
                        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
                        nix::sys::socket::MsgFlags::empty(),
                        None,
                    );
                }
                Err(e) => {
                    let _ = helper_end.send(e.to_string().as_bytes());
                }
            }
            // SAFETY: leave without running the monitor's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(helper_end);
            let mut buf = [0u8; 512];
            let mut cmsg = nix::cmsg_space!([RawFd; 1]);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let got = nix::sys::socket::recvmsg::<()>(
                mon_end.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let mut pidfd: Option<OwnedFd> = None;
            let mut len = 0;
            if let Ok(msg) = got {
                len = msg.bytes.min(512);
                for c in msg.cmsgs().into_iter().flatten() {
                    if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                        // SAFETY: the kernel just installed this descriptor for us.
                        pidfd = fds
                            .first()
                            .map(|f| unsafe { std::os::fd::FromRawFd::from_raw_fd(*f) });
                    }
                }
            }
            let text = if pidfd.is_none() {
                String::from_utf8_lossy(&buf[..len]).into_owned()
            } else {
                String::new()
            };
            let _ = waitpid(child, None);
            let Some(pidfd) = pidfd else {
                return Err(LaunchError::Setup {
                    step: "clone into the lab host's pid namespace".into(),
                    message: if text.is_empty() {
                        "the helper died".into()
                    } else {
                        text
                    },
                    exit_code: EXIT_SETUP_FAILED,
                });
            };
            let pid = pidfd_host_pid(&pidfd).ok_or(LaunchError::DiedDuringSetup)?;
            Ok((pid, Some(pidfd)))
        }
    }
}

/// Opens the network namespace of container `id` (a sibling of `container_dir`), which
/// must be running.
fn network_of(container_dir: &Path, id: &str) -> Result<std::fs::File, LaunchError> {
    let dir = container_dir.parent().unwrap_or(Path::new("/")).join(id);
    let bytes = std::fs::read(dir.join("state.json"))
        .map_err(|_| LaunchError::Network(format!("container {id} does not exist")))?;
    let st: crate::runtime::state::ContainerState = serde_json::from_slice(&bytes)
        .map_err(|e| LaunchError::Network(format!("container {id}: {e}")))?;
    let pid = st
        .pid
        .filter(|_| crate::runtime::state::container_alive(&st))
        .ok_or_else(|| LaunchError::Network(format!("container {id} is not running")))?;
    std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| LaunchError::Network(format!("container {id}: {e}")))
}

/// Where a lab host keeps its containers' writable layers and volumes: a tmpfs whose size
/// is the session's disk budget (see the lab host's spec).
pub const LABHOST_DATA: &str = "/var/lib/gantry";

/// A nested container's folder, as the lab host sees it.
pub fn labhost_container_dir(id: &str) -> std::path::PathBuf {
    Path::new(LABHOST_DATA).join("containers").join(id)
}

/// The pid a pidfd refers to, in the numbering of our /proc (the host's).
fn pidfd_host_pid(pidfd: &OwnedFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|p: &i32| *p > 0)
}

/// Becomes uid and gid 0 of the new user namespace (host ids `range.base`), with no
/// supplementary groups. The kernel clears the parent-death signal and the dumpable flag
/// when the effective uid changes: the signal is set again; staying non-dumpable until
/// `execve` is what we want (the container cannot open this process's /proc files while
/// it still runs gantry's code).
fn become_namespace_root() -> nix::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))?;
    setgroups(&[])?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))?;
    // SAFETY: plain prctl with integer arguments.
    // (A parent that died before this line is noticed at the next handshake read.)
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    Ok(())
}

/// RLIMIT_NOFILE = [`crate::runtime::spec::NOFILE`], never above the hard limit we have
/// (raising it needs CAP_SYS_RESOURCE, which this machine kind does not grant anyway).
fn limit_open_files() -> nix::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let n = crate::runtime::spec::NOFILE.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, n, n)
}

fn dup_onto(from: RawFd, to: RawFd) -> nix::Result<()> {
    if from != to {
        // SAFETY: dup2 onto 0..2; the result does not carry CLOEXEC, as wanted.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(nix::Error::last());
        }
    } else {
        // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
        if unsafe { libc::fcntl(from, libc::F_SETFD, 0) } < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

/// Opens a pty from the container's /dev/ptmx (its own devpts instance) and its peer.
pub(crate) fn open_pty() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int; TIOCGPTPEER (Linux 4.13) opens the
    // slave by the master's fd, immune to path tricks.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(nix::Error::last());
        }
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(nix::Error::last());
        }
        Ok((master, std::os::fd::FromRawFd::from_raw_fd(slave)))
    }
}

/// Brings up `lo` in the new network namespace (SIOCSIFFLAGS, see netdevice(7)).
fn loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; we fill the name and flags fields only.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::Error::last());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

/// Finds the command in the container's PATH and execs it.
fn exec(spec: &ContainerSpec) -> Result<Never, StepError> {
    let env = spec.effective_env();
    let argv0 = spec.command.first().ok_or_else(|| StepError {
        step: "exec",
        message: "no command given and the image has none".into(),
        exit_code: EXIT_NOT_FOUND,
    })?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/bin");
    let program = resolve(argv0, path).ok_or_else(|| StepError {
        step: "exec",
        message: format!("{argv0}: executable file not found in $PATH"),
        exit_code: EXIT_NOT_FOUND,
    })?;
    let cstr = |s: &str| CString::new(s).map_err(step("exec"));
    let prog = cstr(&program)?;
    let args = spec
        .command
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let e = nix::unistd::execve(&prog, &args, &envs).unwrap_err();
    Err(StepError {
        step: "exec",
        message: format!("{program}: {e}"),
        exit_code: if e == nix::Error::ENOENT {
            EXIT_NOT_FOUND
        } else {
            EXIT_CANNOT_EXECUTE
        },
    })
}

/// Finds `cmd` in the colon-separated `path` (as execvp does), or takes it as a path.
pub(crate) fn resolve(cmd: &str, path: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if cmd.contains('/') {
        return Some(cmd.to_string());
    }
    path.split(':').filter(|d| !d.is_empty()).find_map(|dir| {
        let candidate = format!("{dir}/{cmd}");
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}
