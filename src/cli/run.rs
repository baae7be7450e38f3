//! `gantry run`: like `docker run`, without a daemon.
//!
//! Three ways to run, picked from the flags:
//! - foreground without `-t`: this process is the container's parent (it is
//!   single-threaded, so it may clone); stdin/stdout/stderr pass straight through;
//! - `-d`: a monitor owns the container and this command returns its id;
//! - `-t`: a monitor owns the pty and this command attaches to it in raw mode.

use crate::config::Paths;
use crate::image::ImageStore;
use crate::runtime::cgroups;
use crate::runtime::idmap;
use crate::runtime::launch::{self, ChildIo};
use crate::runtime::spec::*;
use crate::runtime::state::{ContainerDir, ContainerState};
use anyhow::Context;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Name the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Container hostname (default: the container id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long, default_value = "/")]
    pub workdir: String,
    /// Memory limit, e.g. 64m. Every container has one: the host is shared.
    #[arg(short = 'm', long, allow_hyphen_values = true, default_value = "512m")]
    pub memory: String,
    /// CPU quota in CPUs, e.g. 0.5.
    #[arg(long, allow_hyphen_values = true, default_value = "1")]
    pub cpus: String,
    /// Maximum number of tasks.
    #[arg(long, allow_hyphen_values = true, default_value = "1024")]
    pub pids_limit: String,
    /// Size of the writable layer, e.g. 512m (default 1g).
    #[arg(long, allow_hyphen_values = true)]
    pub disk: Option<String>,
    /// Network: none, host, container:NAME, or a network made with `gantry network create`.
    #[arg(long, default_value = "none")]
    pub network: String,
    /// Mount a volume (NAME:/path[:ro]) or a folder of the lab host (/dir:/path[:ro]).
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Mount a tmpfs at /path (/path[:size]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount every volume of another container.
    #[arg(long)]
    pub volumes_from: Vec<String>,
    /// Publish a port of the lab host to the container (HOSTPORT:CPORT, TCP).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// In a lab host: run on this lab host (labhost, or labhost2 once an overlay network
    /// made it).
    #[arg(long)]
    pub node: Option<String>,
    /// Image to run, e.g. busybox.
    pub image: String,
    /// Command and its arguments (default: sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Builds the spec from the flags; every bad value is reported with what to use instead.
pub fn spec_from_args(paths: &Paths, a: &RunArgs) -> anyhow::Result<ContainerSpec> {
    if !a.publish.is_empty() {
        anyhow::bail!(
            "-p publishes a port of a lab host: use it inside a session's lab host, with --network NAME"
        );
    }
    if !a.volumes.is_empty() || !a.volumes_from.is_empty() {
        anyhow::bail!(
            "volumes live in lab hosts (their /var/lib/gantry/volumes): use -v inside a session's lab host; on the host, use --tmpfs"
        );
    }
    let id = new_container_id();
    let image = ImageName::parse(&a.image)?;
    let image_rootfs = ImageStore::new(paths).rootfs(&image)?;
    let hostname = match &a.hostname {
        Some(h) => Hostname::parse(h)?,
        None => Hostname::parse(&id).expect("ids are valid hostnames"),
    };
    Ok(ContainerSpec {
        name: a.name.as_deref().map(ContainerName::parse).transpose()?,
        image,
        image_rootfs,
        command: if a.command.is_empty() {
            vec!["sh".into()]
        } else {
            a.command.clone()
        },
        env: a
            .env
            .iter()
            .map(|e| EnvVar::parse(e))
            .collect::<Result<_, _>>()?,
        hostname,
        workdir: parse_workdir(&a.workdir)?,
        tty: a.tty,
        interactive: a.interactive,
        limits: Limits {
            memory: Some(MemoryLimit::parse(&a.memory)?),
            cpus: Some(CpuLimit::parse(&a.cpus)?),
            pids: Some(PidsLimit::parse(&a.pids_limit)?),
            disk: a.disk.as_deref().map(DiskLimit::parse).transpose()?,
        },
        network: match NetworkMode::parse(&a.network)? {
            NetworkMode::Container(key) => {
                NetworkMode::Container(crate::runtime::state::find(paths, &key)?.id)
            }
            NetworkMode::Host => anyhow::bail!(
                "--network host would put the container in the real host's network: gantry refuses that; inside a lab host, host is the lab host's network"
            ),
            NetworkMode::Named(n) => anyhow::bail!(
                "network {n:?}: user networks live inside lab hosts (gantry network create there); on the host, use --network none or container:<name>"
            ),
            mode => mode,
        },
        auto_remove: a.rm,
        session: None,
        idmap: {
            let registry = idmap::Registry::new(&paths.state_dir);
            registry.sweep_containers(paths);
            registry.allocate(&idmap::Owner::Container(id.clone()))?
        },
        binds: vec![],
        nest: None,
        nested_namespaces: false,
            volumes: vec![],
            tmpfs: a
                .tmpfs
                .iter()
                .map(|t| TmpfsMount::parse(t))
                .collect::<Result<_, _>>()?,
        unmasked_proc: false,
            publish: vec![],
        id,
    })
}

/// `gantry run`; returns the exit code (the container's, or 125 if it could not start).
pub fn run(paths: &Paths, args: RunArgs) -> i32 {
    let prepared = super::require_root()
        .and_then(|_| cgroups::check_controllers().map_err(Into::into))
        .and_then(|_| spec_from_args(paths, &args));
    let spec = match prepared {
        Ok(s) => s,
        Err(e) => {
            super::print_error(&e);
            return launch::EXIT_SETUP_FAILED;
        }
    };
    let result = if args.detach {
        detached(paths, &spec)
    } else if args.tty {
        super::attach::run_attached(paths, &spec)
    } else {
        foreground(paths, &spec)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<launch::LaunchError>()
                .map(|l| l.exit_code())
                .or_else(
                    || match e.downcast_ref::<crate::runtime::client::ClientError>() {
                        Some(crate::runtime::client::ClientError::Launch { exit_code, .. }) => {
                            Some(*exit_code)
                        }
                        _ => None,
                    },
                )
                .unwrap_or(launch::EXIT_SETUP_FAILED);
            super::print_error(&e);
            code
        }
    }
}

fn detached(paths: &Paths, spec: &ContainerSpec) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("finding the gantry binary")?;
    crate::runtime::client::start_with_monitor(&exe, paths, spec)?;
    println!("{}", spec.id);
    Ok(0)
}

/// The pid signals are forwarded to (0 = none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn foreground(paths: &Paths, spec: &ContainerSpec) -> anyhow::Result<i32> {
    let cd = ContainerDir::create(paths, spec)?;
    let io = if spec.interactive {
        ChildIo::Inherit
    } else {
        // Like docker: without -i the container's stdin is empty.
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        ChildIo::Fds {
            stdin: null.into(),
            stdout: std::io::stdout().as_raw_fd_owned()?,
            stderr: std::io::stderr().as_raw_fd_owned()?,
        }
    };
    let started = match launch::launch(spec, &cd.dir, io) {
        Ok(s) => s,
        Err(e) => {
            let _ = cd.remove();
            return Err(e.into());
        }
    };
    let mut started = started;
    FORWARD_TO.store(started.pid.as_raw(), Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls kill(2). Handlers (unlike ignored
        // signals) are reset by execve, so the container starts with default dispositions.
        unsafe { libc::signal(sig, forward_signal as *const () as libc::sighandler_t) };
    }
    let mut st =
        ContainerState::running(&spec.id, started.pid.as_raw(), started.cgroup.placement());
    if !spec.auto_remove {
        cd.save(&st)?;
    }
    let status = launch::wait(started.pid);
    started.timeline.mark("container exited, reaped");
    FORWARD_TO.store(0, Ordering::Relaxed);
    let oom_killed = started.clean_up(&status);
    started.timeline.mark("cgroup removed");
    if spec.auto_remove {
        cd.remove()?;
        started.timeline.mark("container folder removed");
    } else {
        st.exited(status.code, oom_killed);
        cd.save(&st)?;
    }
    if std::env::var_os("GANTRY_TIMING").is_some() {
        eprint!("{}", started.timeline.render());
    }
    if oom_killed {
        eprintln!(
            "gantry: container {} was killed by the OOM killer: it used more than its memory limit",
            spec.id
        );
    }
    Ok(status.code)
}

trait DupFd {
    fn as_raw_fd_owned(&self) -> anyhow::Result<std::os::fd::OwnedFd>;
}

impl<T: AsRawFd> DupFd for T {
    fn as_raw_fd_owned(&self) -> anyhow::Result<std::os::fd::OwnedFd> {
        // SAFETY: borrowing our own open stdio descriptor for the duration of the dup.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.as_raw_fd()) };
        fd.try_clone_to_owned().context("duplicating stdio")
    }
}
