//! A container's record on disk, under `<state-dir>/containers/<id>/`:
//!
//! - `config.json`: its [`ContainerSpec`];
//! - `state.json`: what happened to it ([`ContainerState`]), rewritten atomically;
//! - `monitor.sock`: its monitor's socket (while it has one);
//! - `rootfs/`: the mount point of its writable layer (mounted only inside the
//!   container's own mount namespace).
//!
//! Names are unique: `<state-dir>/names/<name>` is a symlink to the id, created with
//! `symlink(2)`, which fails if the name is taken — no lock needed.

use crate::config::{ensure_private_dir, Paths};
use crate::runtime::cgroups::{CgroupPlacement, ContainerCgroup};
use crate::runtime::spec::ContainerSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no such container: {0} (see `gantry ps -a`)")]
    NotFound(String),
    #[error("the name {0:?} is already in use by container {1}: pick another --name or remove it with `gantry rm -f {0}`")]
    NameInUse(String, String),
    #[error("container {0} is running: stop it first or use `gantry rm -f`")]
    Running(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {source}")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// What happened to a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub status: Status,
    /// Host pid of the container's first process.
    pub pid: Option<i32>,
    /// Its start time in clock ticks since boot (guards against pid reuse).
    pub pid_start: Option<u64>,
    /// The process that owns the container (monitor, or the foreground CLI).
    pub monitor_pid: Option<i32>,
    pub cgroup: Option<CgroupPlacement>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
}

impl ContainerState {
    /// A container that just started, owned by the calling process.
    pub fn running(id: &str, pid: i32, cgroup: &CgroupPlacement) -> Self {
        ContainerState {
            id: id.to_string(),
            status: Status::Running,
            pid: Some(pid),
            pid_start: process_start_time(pid),
            monitor_pid: Some(std::process::id() as i32),
            cgroup: Some(cgroup.clone()),
            created_at: now(),
            finished_at: None,
            exit_code: None,
            oom_killed: false,
        }
    }

    /// Running, and its owner (monitor or CLI) is there to say when it stops.
    pub fn is_live(&self) -> bool {
        self.status == Status::Running && owner_alive(self)
    }

    /// Recorded as running, but its owner is gone (a crash): only clean-up is left.
    pub fn is_orphan(&self) -> bool {
        self.status == Status::Running && !owner_alive(self)
    }

    /// Records how the container ended.
    pub fn exited(&mut self, exit_code: i32, oom_killed: bool) {
        self.status = Status::Exited;
        self.exit_code = Some(exit_code);
        self.oom_killed = oom_killed;
        self.finished_at = Some(now());
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Start time of a process (field 22 of /proc/<pid>/stat), `None` if it has exited.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // A zombie (Z) or dead (X) process has exited; only its parent has not reaped it yet.
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Is `pid` still the process that started at `start`?
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    match (process_start_time(pid), start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        _ => false,
    }
}

/// One container's folder.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    pub id: String,
    pub dir: PathBuf,
    names_dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl ContainerDir {
    pub fn new(paths: &Paths, id: &str) -> Self {
        ContainerDir {
            id: id.to_string(),
            dir: paths.container_dir(id),
            names_dir: paths.state_dir.join("names"),
        }
    }

    /// Creates the folder, claims the name, writes the spec.
    pub fn create(paths: &Paths, spec: &ContainerSpec) -> Result<Self, StateError> {
        let cd = ContainerDir::new(paths, &spec.id);
        ensure_private_dir(&paths.containers_dir()).map_err(io(&paths.containers_dir()))?;
        // (A nested container's name is its session's own: see Sessions::find_nested.)
        if let Some(name) = spec.name.as_ref().filter(|_| spec.nest.is_none()) {
            ensure_private_dir(&cd.names_dir).map_err(io(&cd.names_dir))?;
            let link = cd.names_dir.join(name.as_str());
            if let Err(e) = std::os::unix::fs::symlink(&spec.id, &link) {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    let owner = std::fs::read_link(&link)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    return Err(StateError::NameInUse(name.to_string(), owner));
                }
                return Err(io(&link)(e));
            }
        }
        std::fs::create_dir(&cd.dir).map_err(io(&cd.dir))?;
        std::fs::create_dir(cd.dir.join("rootfs")).map_err(io(&cd.dir))?;
        // A container nested in a session's lab host is listed under its session too, so
        // finding a session's containers does not mean reading every container's spec.
        if let (Some(session), Some(_)) = (&spec.session, &spec.nest) {
            let index = session_index(paths, session);
            std::fs::create_dir_all(&index).map_err(io(&index))?;
            let _ = std::fs::File::create(index.join(&spec.id));
        }
        write_atomic(
            &cd.dir.join("config.json"),
            &serde_json::to_vec(spec).expect("specs serialise"),
        )?;
        Ok(cd)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }

    pub fn spec(&self) -> Result<ContainerSpec, StateError> {
        let p = self.dir.join("config.json");
        let bytes = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound(self.id.clone())
            } else {
                io(&p)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Decode {
            path: p.display().to_string(),
            source,
        })
    }

    pub fn state(&self) -> Result<ContainerState, StateError> {
        let p = self.dir.join("state.json");
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Decode {
                path: p.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.dir.is_dir() => {
                Ok(ContainerState {
                    id: self.id.clone(),
                    status: Status::Created,
                    pid: None,
                    pid_start: None,
                    monitor_pid: None,
                    cgroup: None,
                    created_at: now(),
                    finished_at: None,
                    exit_code: None,
                    oom_killed: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StateError::NotFound(self.id.clone()))
            }
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// The host pid of the container's first process, if it is running.
    pub fn running_pid(&self) -> Option<i32> {
        self.state()
            .ok()
            .filter(container_alive)
            .and_then(|s| s.pid)
    }

    pub fn save(&self, state: &ContainerState) -> Result<(), StateError> {
        write_atomic(
            &self.dir.join("state.json"),
            &serde_json::to_vec(state).expect("states serialise"),
        )
    }

    /// Deletes the folder and releases the name. The container must be gone.
    pub fn remove(&self) -> Result<(), StateError> {
        if let Ok(spec) = self.spec() {
            if let (Some(session), Some(state_dir)) = (&spec.session, self.names_dir.parent()) {
                let index = state_dir.join("sessions").join(session);
                let _ = std::fs::remove_file(index.join(&self.id));
                // The folder goes with the session's last container.
                let _ = std::fs::remove_dir(&index);
            }
            if let Some(name) = spec.name.filter(|_| spec.nest.is_none()) {
                let link = self.names_dir.join(name.as_str());
                if std::fs::read_link(&link).ok().as_deref() == Some(Path::new(&self.id)) {
                    let _ = std::fs::remove_file(&link);
                }
            }
        }
        let removed = match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.dir)(e)),
        };
        // A container outside a session had a uid range of its own; give it back.
        if removed.is_ok() {
            if let Some(state_dir) = self.names_dir.parent() {
                crate::runtime::idmap::Registry::new(state_dir)
                    .release(&crate::runtime::idmap::Owner::Container(self.id.clone()));
            }
        }
        removed
    }
}

/// Is the container's owner (monitor or CLI) alive?
pub fn owner_alive(state: &ContainerState) -> bool {
    state
        .monitor_pid
        .is_some_and(|p| process_start_time(p).is_some())
}

/// Is the container's first process alive?
pub fn container_alive(state: &ContainerState) -> bool {
    state.status == Status::Running && state.pid.is_some_and(|p| process_alive(p, state.pid_start))
}

/// Where the containers nested in `session` are listed (one empty file per id).
pub fn session_index(paths: &Paths, session: &str) -> PathBuf {
    paths.state_dir.join("sessions").join(session)
}

/// The containers nested in a session's lab host, from its index (entries whose folder is
/// gone are dropped).
pub fn list_session(paths: &Paths, session: &str) -> Vec<ContainerDir> {
    let index = session_index(paths, session);
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(&index) {
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str() {
                let cd = ContainerDir::new(paths, id);
                if cd.dir.is_dir() {
                    out.push(cd);
                } else {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    out
}

/// Every container folder in the state dir.
pub fn list(paths: &Paths) -> Vec<ContainerDir> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(paths.containers_dir()) {
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str() {
                out.push(ContainerDir::new(paths, id));
            }
        }
    }
    out
}

/// Finds a container by id, unique id prefix, or name.
pub fn find(paths: &Paths, key: &str) -> Result<ContainerDir, StateError> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return Err(StateError::NotFound(key.to_string()));
    }
    if let Ok(target) = std::fs::read_link(paths.state_dir.join("names").join(key)) {
        if let Some(id) = target.to_str() {
            return Ok(ContainerDir::new(paths, id));
        }
    }
    let exact = ContainerDir::new(paths, key);
    if exact.dir.is_dir() {
        return Ok(exact);
    }
    let matches: Vec<_> = list(paths)
        .into_iter()
        .filter(|c| c.id.starts_with(key))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        _ => Err(StateError::NotFound(key.to_string())),
    }
}

/// [`reap_orphan`] if the container's owner is gone; a no-op otherwise.
pub fn reap_if_orphaned(cd: &ContainerDir, state: &mut ContainerState) {
    if state.is_orphan() {
        reap_orphan(cd, state);
    }
}

/// Cleans up after a container whose owner is gone (a crash): kill what is left in its
/// cgroup, remove the cgroup, record it as exited.
pub fn reap_orphan(cd: &ContainerDir, state: &mut ContainerState) {
    if let Some(p) = &state.cgroup {
        let cg = ContainerCgroup::open(p);
        cg.kill_all();
        let _ = cg.remove();
    }
    if state.status != Status::Exited {
        state.status = Status::Exited;
        state.finished_at = Some(now());
        state.exit_code.get_or_insert(137);
        let _ = cd.save(state);
    }
}
