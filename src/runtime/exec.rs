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
///
/// With `tty`, the command gets a new pty from the container's own devpts, as its
/// controlling terminal, and this process relays: monitor frames on stdin (data, resize)
/// to the pty, the pty's output as raw bytes to stdout.
pub fn exec_in(cd: &ContainerDir, command: &[String], tty: bool) -> Result<i32, ExecError> {
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
    // (The container's /dev/ptmx: we are in its mount namespace now.)
    let pty = if tty {
        Some(launch::open_pty().map_err(sys("open /dev/ptmx"))?)
    } else {
        None
    };
    // SAFETY: single-threaded helper; the child carries on alone.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        nix::unistd::ForkResult::Parent { child } => match pty {
            Some((master, slave)) => {
                drop(slave);
                relay(&master, child);
                Ok(launch::wait(child).code)
            }
            None => Ok(launch::wait(child).code),
        },
        nix::unistd::ForkResult::Child => {
            if let Some((master, slave)) = pty {
                drop(master);
                if let Err(e) = controlling_terminal(&slave) {
                    eprintln!("gantry exec: terminal: {e}");
                    // SAFETY: leave without running the parent's destructors.
                    unsafe { libc::_exit(EXIT_SETUP_FAILED) }
                }
            }
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

/// Makes `slave` our controlling terminal in a new session, on fds 0, 1 and 2.
fn controlling_terminal(slave: &std::os::fd::OwnedFd) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an int argument.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(nix::Error::last());
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto 0..2 of a descriptor we own.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

/// Copies between our stdin/stdout and the pty master until the command has exited and
/// its output is drained.
fn relay(master: &std::os::fd::OwnedFd, child: nix::unistd::Pid) {
    use crate::runtime::monitor_proto::{Decoder, Frame};
    use std::os::fd::AsRawFd;
    let mut dec = Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two pollfds we own; 200 ms so an exit is noticed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) };
        if n < 0 && nix::Error::last() != nix::Error::EINTR {
            return;
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => {
                    use std::io::Write;
                    let mut out = std::io::stdout();
                    if out.write_all(&buf[..k]).and_then(|_| out.flush()).is_err() {
                        return;
                    }
                }
            }
        }
        if stdin_open && fds[0].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            match nix::unistd::read(std::io::stdin(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(k) => {
                    dec.push(&buf[..k]);
                    while let Ok(Some(f)) = dec.next_frame() {
                        match f {
                            Frame::Data(d) => {
                                let _ = nix::unistd::write(master, &d);
                            }
                            Frame::Resize { cols, rows } => {
                                let ws = libc::winsize {
                                    ws_row: rows,
                                    ws_col: cols,
                                    ws_xpixel: 0,
                                    ws_ypixel: 0,
                                };
                                // SAFETY: TIOCSWINSZ reads a winsize we own.
                                unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // The command exited (seen without reaping it: the caller collects its status).
        if n == 0
            && matches!(
                nix::sys::wait::waitid(
                    nix::sys::wait::Id::Pid(child),
                    nix::sys::wait::WaitPidFlag::WEXITED
                        | nix::sys::wait::WaitPidFlag::WNOHANG
                        | nix::sys::wait::WaitPidFlag::WNOWAIT,
                ),
                Ok(nix::sys::wait::WaitStatus::Exited(..))
                    | Ok(nix::sys::wait::WaitStatus::Signaled(..))
            )
        {
            return;
        }
    }
}

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
