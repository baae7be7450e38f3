//! A session's lab host, and the containers a student starts from it.
//!
//! The lab host is the container the session's terminal opens on: its own namespaces,
//! the session's cgroup budget, and a `gantry` CLI that talks to this server over a unix
//! socket bound in under [`API_DIR`] — the client/daemon architecture of the course, live.
//! Containers started that way *nest* in the session:
//!
//! - their pid namespace is a child of the lab host's, so `ps` on the lab host shows their
//!   processes, the way a host shows its containers' (and `/proc/<pid>/ns` there shows
//!   their namespaces);
//! - their cgroup is below the lab host's, so the session's budget covers them;
//! - they share the session's uid range.
//!
//! Their names are the session's own: two students can both call a container `web`.

use super::{SessionError, Sessions};
use crate::image::{ImageStore, LABHOST_GANTRY, LABHOST_IMAGE};
use crate::runtime::idmap::IdRange;
use crate::runtime::spec::*;
use crate::runtime::state::{self, ContainerDir, ContainerState};
use crate::store::SessionRow;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the lab host finds the daemon's socket folder; `GANTRY_HOST` names the socket.
pub const API_DIR: &str = "/run/gantry";

/// What `gantry run` in a lab host asks for (the lab API's request body).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub image: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub cpus: Option<String>,
    #[serde(default)]
    pub pids_limit: Option<String>,
    #[serde(default)]
    pub rm: bool,
    /// `none` (the default), `host`, `container:<name>` or a network's name.
    #[serde(default)]
    pub network: Option<String>,
    /// `-v NAME:/path[:ro]`, `-v /dir:/path[:ro]`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `--tmpfs /path[:size]`.
    #[serde(default)]
    pub tmpfs: Vec<String>,
    /// `--volumes-from CONTAINER`.
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// `-p HOSTPORT:CPORT`.
    #[serde(default)]
    pub publish: Vec<String>,
    /// The lab host to run on: `labhost` (the default) or `labhost2`.
    #[serde(default)]
    pub node: Option<String>,
}

/// A nested container as the lab API lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NestedView {
    pub id: String,
    pub name: Option<String>,
    pub image: String,
    pub command: Vec<String>,
    pub status: String,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// Pid on the real host.
    pub pid: Option<i32>,
    /// The same process as the lab host numbers it (NSpid in /proc/<pid>/status).
    pub labhost_pid: Option<i32>,
    pub created_at: i64,
}

fn bad(e: impl std::fmt::Display) -> SessionError {
    SessionError::BadRequest(e.to_string())
}

impl Sessions {
    /// The session's lab host: a shell with the session's limits, uid range and the
    /// `gantry` CLI, whose `GANTRY_HOST` points at the daemon's socket.
    pub(super) fn labhost_spec(
        &self,
        session: &str,
        container_id: &str,
        image: ImageName,
        image_rootfs: PathBuf,
        idmap: IdRange,
    ) -> ContainerSpec {
        let mut binds = vec![];
        let mut env = vec![EnvVar {
            key: "PS1".into(),
            value: "\\u@\\h:\\w\\$ ".into(),
        }];
        if image.as_str() == LABHOST_IMAGE {
            binds.push(Bind {
                source: self.cfg.helper_exe.clone(),
                target: LABHOST_GANTRY.into(),
                readonly: true,
                file: true,
            });
            if self.paths.api_socket().exists() {
                binds.push(Bind {
                    source: self.paths.api_dir(),
                    target: API_DIR.into(),
                    readonly: true,
                    file: false,
                });
                env.push(EnvVar {
                    key: "GANTRY_HOST".into(),
                    value: format!("unix://{API_DIR}/{}", crate::config::API_SOCKET_NAME),
                });
            }
        }
        ContainerSpec {
            id: container_id.to_string(),
            name: None,
            image,
            image_rootfs,
            command: vec!["/bin/sh".into()],
            env,
            hostname: Hostname::parse("labhost").expect("a valid hostname"),
            workdir: "/root".into(),
            tty: true,
            interactive: true,
            limits: self.cfg.limits,
            network: NetworkMode::None,
            auto_remove: false,
            session: Some(session.to_string()),
            idmap,
            binds,
            nest: None,
            nested_namespaces: false,
            volumes: vec![],
            unmasked_proc: true,
            publish: vec![],
            // The lab host's "disk" for its containers' writable layers and volumes,
            // sized to the session's disk budget.
            tmpfs: vec![TmpfsMount {
                target: crate::runtime::launch::LABHOST_DATA.into(),
                size: self
                    .cfg
                    .limits
                    .disk
                    .map(|d| d.bytes())
                    .unwrap_or(crate::runtime::plan::DEFAULT_DISK_BYTES),
            }],
        }
    }

    /// The host pid of the session's (first) lab host, which must be running.
    pub(crate) fn labhost_pid(&self, row: &SessionRow) -> Result<i32, SessionError> {
        self.container(row)
            .running_pid()
            .ok_or_else(|| SessionError::Ended(row.id.clone()))
    }

    /// The running session whose lab host runs as host uid `uid` (the peer of a lab API
    /// connection): the uid range says which session it is; no token is needed or
    /// accepted, the kernel vouches for the caller.
    pub fn by_peer_uid(&self, uid: u32) -> Result<SessionRow, SessionError> {
        let denied = || SessionError::Unauthorized;
        let owner = self
            .ids
            .list()
            .into_iter()
            .find(|(slot, _)| {
                let r = IdRange::of_slot(*slot);
                uid >= r.base && uid - r.base < r.size
            })
            .map(|(_, o)| o)
            .ok_or_else(denied)?;
        let crate::runtime::idmap::Owner::Session(sid) = owner else {
            return Err(denied());
        };
        let row = self.store.session(&sid)?.ok_or_else(denied)?;
        if row.state != "running" {
            return Err(SessionError::Ended(sid));
        }
        Ok(row)
    }

    /// The containers started from the session's lab host.
    pub fn nested(&self, row: &SessionRow) -> Vec<ContainerDir> {
        state::list_session(&self.paths, &row.id)
    }

    /// A nested container by name, id or unique id prefix.
    pub fn find_nested(&self, row: &SessionRow, key: &str) -> Result<ContainerDir, SessionError> {
        let all = self.nested(row);
        let by_name = all.iter().find(|cd| {
            cd.spec()
                .ok()
                .and_then(|s| s.name)
                .is_some_and(|n| n.as_str() == key)
        });
        if let Some(cd) = by_name {
            return Ok(cd.clone());
        }
        let matches: Vec<_> = all.into_iter().filter(|c| c.id.starts_with(key)).collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => Err(SessionError::Missing(format!(
                "no container {key} in this session: see gantry ps -a"
            ))),
            _ => Err(bad(format!(
                "{key} matches several containers: use more of the id"
            ))),
        }
    }

    /// Starts a container in the session, nested in its lab host.
    pub async fn run_nested(
        &self,
        row: &SessionRow,
        req: &RunRequest,
    ) -> Result<ContainerDir, SessionError> {
        let host = self.lab_node(row, req.node.as_deref().unwrap_or("labhost"))?;
        let host_state = host
            .state()
            .ok()
            .filter(state::container_alive)
            .ok_or_else(|| SessionError::Ended(row.id.clone()))?;
        let name = req
            .name
            .as_deref()
            .map(ContainerName::parse)
            .transpose()
            .map_err(bad)?;
        if let Some(n) = &name {
            if self.find_nested(row, n.as_str()).is_ok() {
                return Err(SessionError::Conflict(format!(
                    "the name {n} is in use in this session: remove that container first (gantry rm -f {n})"
                )));
            }
        }
        let running = self.nested(row).len();
        if running >= MAX_NESTED {
            return Err(bad(format!(
                "this session already has {running} containers, the most it may have: remove some (gantry rm -f NAME)"
            )));
        }
        let image = ImageName::parse(&req.image).map_err(bad)?;
        let image_rootfs = ImageStore::new(&self.paths).rootfs(&image).map_err(bad)?;
        let id = new_container_id();
        let parse_limit = |v: &Option<String>, default: &str| v.clone().unwrap_or(default.into());
        // Each container's own limits, within the session's (the lab host's cgroup is
        // the parent, so the session's budget holds whatever is asked here).
        let limits = Limits {
            memory: Some(MemoryLimit::parse(&parse_limit(&req.memory, "256m")).map_err(bad)?),
            cpus: Some(CpuLimit::parse(&parse_limit(&req.cpus, "1")).map_err(bad)?),
            pids: Some(PidsLimit::parse(&parse_limit(&req.pids_limit, "256")).map_err(bad)?),
            disk: Some(DiskLimit::parse("64m").map_err(bad)?),
        };
        let idmap = self
            .ids
            .allocate(&crate::runtime::idmap::Owner::Session(row.id.clone()))
            .map_err(|e| SessionError::Start(e.to_string()))?;
        let mut volumes = vec![];
        for v in &req.volumes {
            volumes.push(VolumeMount::parse(v).map_err(bad)?);
        }
        for other in &req.volumes_from {
            let cd = self.find_nested(row, other)?;
            let spec = cd.spec().map_err(|e| SessionError::Start(e.to_string()))?;
            volumes.extend(spec.volumes);
        }
        for v in &volumes {
            match &v.volume {
                // A named volume is made on first use, as docker does.
                Some(name) => {
                    if self.volume_view(row, name).is_err() {
                        self.volume_create(row, name)?;
                    }
                }
                None => {
                    if !self.labhost_has_dir(row, &v.source) {
                        return Err(bad(format!(
                            "{} is not a folder in the lab host: make it first (mkdir -p {})",
                            v.source, v.source
                        )));
                    }
                }
            }
        }
        let tmpfs = req
            .tmpfs
            .iter()
            .map(|t| TmpfsMount::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let mut binds = vec![];
        let network =
            match NetworkMode::parse(req.network.as_deref().unwrap_or("none")).map_err(bad)? {
                NetworkMode::Container(key) => {
                    let other = self.find_nested(row, &key)?;
                    if !other.state().is_ok_and(|s| state::container_alive(&s)) {
                        return Err(SessionError::Conflict(format!(
                            "container {key} is not running: start it before sharing its network"
                        )));
                    }
                    NetworkMode::Container(other.id)
                }
                // The lab host's network namespace (never the real host's).
                NetworkMode::Host => NetworkMode::Container(host.id.clone()),
                NetworkMode::Named(net) => {
                    let label = name.as_ref().map(|n| n.to_string()).unwrap_or(id.clone());
                    let (place, hosts) = self.network_reserve(row, &net, &id, &label).await?;
                    // Its neighbours by name.
                    binds.push(Bind {
                        source: hosts,
                        target: "/etc/hosts".into(),
                        readonly: true,
                        file: true,
                    });
                    NetworkMode::Bridge(place)
                }
                NetworkMode::Bridge(_) => return Err(bad("give a network by its name")),
                NetworkMode::None => NetworkMode::None,
            };
        let spec = ContainerSpec {
            name,
            image,
            image_rootfs,
            command: if req.command.is_empty() {
                vec!["sh".into()]
            } else {
                req.command.clone()
            },
            env: req
                .env
                .iter()
                .map(|e| EnvVar::parse(e))
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            hostname: match &req.hostname {
                Some(h) => Hostname::parse(h).map_err(bad)?,
                None => Hostname::parse(&id).expect("ids are valid hostnames"),
            },
            workdir: req.workdir.clone().unwrap_or_else(|| "/".into()),
            tty: req.tty,
            interactive: req.interactive,
            limits,
            network: network.clone(),
            auto_remove: req.rm,
            session: Some(row.id.clone()),
            idmap,
            binds: binds.clone(),
            // A lab that teaches nesting allows it in its lab host and so in its
            // containers.
            nested_namespaces: host.spec().is_ok_and(|s| s.nested_namespaces),
            volumes,
            tmpfs,
            unmasked_proc: false,
            publish: super::ports::parse_ports(&req.publish)?,
            nest: Some(Nest {
                host: host.id.clone(),
                host_pid: host_state.pid.expect("a live container has a pid"),
                cgroup: host_state
                    .cgroup
                    .clone()
                    .ok_or_else(|| SessionError::Ended(row.id.clone()))?,
            }),
            id,
        };
        if !spec.workdir.starts_with('/') {
            return Err(bad("the working directory must be an absolute path"));
        }
        if !spec.publish.is_empty() && !matches!(spec.network, NetworkMode::Bridge(_)) {
            return Err(bad(
                "-p needs the container on a network: add --network NAME",
            ));
        }
        if let Err(e) = self.start_container(&spec).await {
            self.network_forget(&row.id, &spec.id).await;
            return Err(e);
        }
        if let Err(e) = self.publish_ports(&ContainerDir::new(&self.paths, &spec.id)) {
            self.stop_container(&spec.id).await;
            return Err(e);
        }
        self.touch(&row.id);
        Ok(ContainerDir::new(&self.paths, &spec.id))
    }

    /// What `gantry ps` in the lab host shows.
    pub fn nested_view(&self, cd: &ContainerDir) -> Option<NestedView> {
        let spec = cd.spec().ok()?;
        let mut st: ContainerState = cd.state().ok()?;
        state::reap_if_orphaned(cd, &mut st);
        let alive = state::container_alive(&st);
        Some(NestedView {
            id: cd.id.clone(),
            name: spec.name.map(|n| n.to_string()),
            image: spec.image.to_string(),
            command: spec.command,
            status: if alive {
                "running".into()
            } else if st.exit_code.is_some() {
                "exited".into()
            } else {
                "created".into()
            },
            exit_code: st.exit_code,
            oom_killed: st.oom_killed,
            pid: st.pid.filter(|_| alive),
            labhost_pid: st.pid.filter(|_| alive).and_then(|p| nspid(p, 1)),
            created_at: st.created_at,
        })
    }

    /// Removes a nested container (killing it first if `force`).
    pub async fn remove_nested(&self, cd: ContainerDir, force: bool) -> Result<(), SessionError> {
        let live = cd.state().is_ok_and(|s| s.is_live());
        if live && !force {
            return Err(SessionError::Conflict(format!(
                "container {} is running: stop it first, or use gantry rm -f",
                cd.id
            )));
        }
        self.stop_container(&cd.id).await;
        Ok(())
    }
}

/// Most containers one session may have at once.
pub const MAX_NESTED: usize = 16;

/// The pid of host process `pid` as seen `depth` pid namespaces below the host's
/// (the `NSpid:` line of /proc/<pid>/status lists one per level).
pub fn nspid(pid: i32, depth: usize) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().nth(1 + depth)?.parse().ok()
}

/// Most output an exec returns; the rest is cut (a check or a quick command needs far
/// less).
pub const EXEC_OUTPUT_MAX: usize = 1 << 20;

/// What an exec returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecResult {
    pub exit_code: i32,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub timed_out: bool,
}

impl Sessions {
    /// Runs `command` inside the running container `cd` (via `gantry exec-in`), waits at
    /// most `timeout`, and returns its exit code and output.
    pub async fn exec(
        &self,
        cd: &ContainerDir,
        command: &[String],
        timeout: std::time::Duration,
    ) -> Result<ExecResult, SessionError> {
        use tokio::io::AsyncReadExt;
        if command.is_empty() {
            return Err(bad("exec needs a command"));
        }
        if !cd.state().is_ok_and(|s| state::container_alive(&s)) {
            return Err(SessionError::Conflict(format!(
                "container {} is not running",
                cd.id
            )));
        }
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SessionError::Start(format!("pipe: {e}")))?;
        let wr2 = wr
            .try_clone()
            .map_err(|e| SessionError::Start(format!("pipe: {e}")))?;
        let mut cmd = tokio::process::Command::new(&self.cfg.helper_exe);
        cmd.arg("--data-dir")
            .arg(&self.paths.data_dir)
            .arg("--state-dir")
            .arg(&self.paths.state_dir)
            .arg("exec-in")
            .arg("--id")
            .arg(&cd.id)
            .arg("--")
            .args(command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(wr))
            .stderr(std::process::Stdio::from(wr2))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| SessionError::Start(format!("spawning exec: {e}")))?;
        // Our copies of the pipe's write end must go, or the read never sees EOF.
        drop(cmd);
        let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(rd)
            .map_err(|e| SessionError::Start(format!("pipe: {e}")))?;
        let mut out = Vec::new();
        let read_all = async {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out.len() < EXEC_OUTPUT_MAX {
                            out.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
            child.wait().await
        };
        let (status, timed_out) = match tokio::time::timeout(timeout, read_all).await {
            Ok(status) => (status.ok(), false),
            Err(_) => (None, true),
        };
        // On a timeout the helper is killed (kill_on_drop), and with it the command
        // (its parent-death signal).
        let exit_code = match status {
            Some(s) => s.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
            }),
            None => 124,
        };
        out.truncate(EXEC_OUTPUT_MAX);
        Ok(ExecResult {
            exit_code,
            output: String::from_utf8_lossy(&out).into_owned(),
            timed_out,
        })
    }

    /// The container's recent output: the monitor's scrollback while it runs, the log
    /// it left behind after.
    pub async fn logs(&self, cd: &ContainerDir) -> Vec<u8> {
        use crate::runtime::monitor_proto::{Decoder, Frame};
        use tokio::io::AsyncReadExt;
        if let Ok(mut sock) = tokio::net::UnixStream::connect(cd.socket_path()).await {
            let mut dec = Decoder::default();
            let mut buf = vec![0u8; 64 * 1024];
            let read = async {
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => dec.push(&buf[..n]),
                    }
                    match dec.next_frame() {
                        Ok(Some(Frame::Replay(d))) => return Some(d),
                        Ok(Some(_)) | Err(_) => return None,
                        Ok(None) => {}
                    }
                }
            };
            if let Ok(Some(d)) = tokio::time::timeout(std::time::Duration::from_secs(2), read).await
            {
                return d;
            }
        }
        std::fs::read(cd.dir.join(crate::runtime::monitor::OUTPUT_LOG)).unwrap_or_default()
    }

    /// Freezes or thaws a nested container (`gantry pause` / `unpause`).
    pub fn set_paused(&self, cd: &ContainerDir, paused: bool) -> Result<(), SessionError> {
        let st = cd
            .state()
            .ok()
            .filter(state::container_alive)
            .ok_or_else(|| SessionError::Conflict(format!("container {} is not running", cd.id)))?;
        let placement = st
            .cgroup
            .ok_or_else(|| SessionError::Conflict(format!("container {} has no cgroup", cd.id)))?;
        crate::runtime::cgroups::ContainerCgroup::open(&placement)
            .set_frozen(paused)
            .map_err(|e| SessionError::Start(e.to_string()))
    }
}

impl Sessions {
    /// Starts `command` in the running container `cd` with a pty (`gantry exec -it`): the
    /// returned process takes monitor frames on stdin and gives the pty's output on
    /// stdout; its exit code is the command's.
    pub fn exec_tty(
        &self,
        cd: &ContainerDir,
        command: &[String],
    ) -> Result<tokio::process::Child, SessionError> {
        if command.is_empty() {
            return Err(bad("exec needs a command"));
        }
        if !cd.state().is_ok_and(|s| state::container_alive(&s)) {
            return Err(SessionError::Conflict(format!(
                "container {} is not running",
                cd.id
            )));
        }
        tokio::process::Command::new(&self.cfg.helper_exe)
            .arg("--data-dir")
            .arg(&self.paths.data_dir)
            .arg("--state-dir")
            .arg(&self.paths.state_dir)
            .args(["exec-in", "--tty", "--id", &cd.id, "--"])
            .args(command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SessionError::Start(format!("spawning exec: {e}")))
    }
}
