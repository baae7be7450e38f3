//! `gantry exec`: running one more process inside a running container, the way `nsenter`
//! and `runc exec` do it — join the container's cgroup, then `setns(2)` into each of its
//! namespaces (user first, mount last), fork so the pid namespace takes effect, become the
//! namespace's root, drop to the container's capabilities and seccomp filter, exec.
//!
//! Runs in `gantry exec-in`, a single-threaded helper the server spawns (setns into a
//! user or mount namespace is refused to multi-threaded processes). Its stdio is the
//! new process's.

use crate::runtime::cgroups::ContainerCgroup;
use crate::runtime::launch::{self, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED};
use crate::runtime::state::ContainerDir;
use nix::sched::CloneFlags;
use std::ffi::CString;

/// The namespaces an exec joins, in order. The network namespace first, while we are
/// still host root: a container may share one it does not own (`--network host` or
/// `container:`), which its own user namespace gives no capability over. Then the user
/// namespace (it owns the rest, so joining it gives the capabilities to join them), the
/// mount namespace last (it changes our root and working directory).
const ORDER: &[(&str, CloneFlags)] = &[
    ("net", CloneFlags::CLONE_NEWNET),
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("{step}: {source}")]
    Sys { step: String, source: nix::Error },
}

fn sys(step: impl Into<String>) -> impl FnOnce(nix::Error) -> ExecError {
    let step = step.into();
    move |source| ExecError::Sys { step, source }
}

/// Runs `command` in the running container `cd` and returns its exit code (the shell
/// convention: 128 + signal when killed). Never returns in the forked child.
pub fn exec_in(cd: &ContainerDir, command: &[String]) -> Result<i32, ExecError> {
    let spec = cd
        .spec()
        .map_err(|_| ExecError::NotRunning(cd.id.clone()))?;
    let st = cd
        .state()
        .map_err(|_| ExecError::NotRunning(cd.id.clone()))?;
    if !crate::runtime::state::container_alive(&st) {
        return Err(ExecError::NotRunning(cd.id.clone()));
    }
    let (Some(pid), Some(placement)) = (st.pid, st.cgroup.as_ref()) else {
        return Err(ExecError::NotRunning(cd.id.clone()));
    };
    // Nobody inside may open this process's /proc files while it runs gantry's code
    // (CVE-2019-5736 overwrote the runtime through /proc/<pid>/exe).
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Open every namespace first, while /proc/<pid> is still reachable as host root.
    let mut fds = vec![];
    for (name, flag) in ORDER {
        let f =
            std::fs::File::open(format!("/proc/{pid}/ns/{name}")).map_err(|e| ExecError::Sys {
                step: format!("open /proc/{pid}/ns/{name}"),
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        fds.push((name, *flag, f));
    }
    ContainerCgroup::open(placement)
        .join_self()
        .map_err(|_| ExecError::Sys {
            step: "join the container's cgroup".into(),
            source: nix::Error::ENOENT,
        })?;
    for (name, flag, f) in fds {
        nix::sched::setns(f, flag).map_err(sys(format!("setns {name}")))?;
    }
    // SAFETY: single-threaded helper; the child carries on alone.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        nix::unistd::ForkResult::Parent { child } => Ok(launch::wait(child).code),
        nix::unistd::ForkResult::Child => {
            let code = match child(&spec, command) {
                Ok(never) => match never {},
                Err((code, msg)) => {
                    eprintln!("gantry exec: {msg}");
                    code
                }
            };
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
    }
}

enum Never {}

fn child(
    spec: &crate::runtime::spec::ContainerSpec,
    command: &[String],
) -> Result<Never, (i32, String)> {
    let setup = |what: &str| {
        let what = what.to_string();
        move |e: nix::Error| (EXIT_SETUP_FAILED, format!("{what}: {e}"))
    };
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    {
        use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(setup("setresgid"))?;
        setgroups(&[]).map_err(setup("setgroups"))?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(setup("setresuid"))?;
    }
    let _ = nix::unistd::chdir(spec.workdir.as_str()).or_else(|_| nix::unistd::chdir("/"));
    crate::runtime::security::drop_privileges(crate::runtime::security::default_cap_mask())
        .map_err(setup("capabilities"))?;
    // SAFETY: marks descriptors close-on-exec; no memory is passed.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    crate::runtime::seccomp::install(&crate::runtime::seccomp::program_for(
        spec.nested_namespaces,
    ))
    .map_err(setup("seccomp"))?;
    let env = spec.effective_env();
    let argv0 = command
        .first()
        .ok_or((EXIT_NOT_FOUND, "no command given".to_string()))?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/bin");
    let program = launch::resolve(argv0, path).ok_or((
        EXIT_NOT_FOUND,
        format!("{argv0}: executable file not found in $PATH"),
    ))?;
    let cstr = |s: &str| CString::new(s).map_err(|e| (EXIT_CANNOT_EXECUTE, e.to_string()));
    let prog = cstr(&program)?;
    let args = command
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let e = nix::unistd::execve(&prog, &args, &envs).unwrap_err();
    Err((
        if e == nix::Error::ENOENT {
            EXIT_NOT_FOUND
        } else {
            EXIT_CANNOT_EXECUTE
        },
        format!("{program}: {e}"),
    ))
}
