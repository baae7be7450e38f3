//! Sessions: what a student gets when they click "Open a shell".
//!
//! A session is a row in SQLite plus a container (with a tty, running a shell) owned by
//! its monitor. The server never holds a session's processes itself, so it can restart at
//! any time: [`Sessions::recover`] finds the monitors again. Sessions end when deleted,
//! when idle longer than the idle timeout, when older than the maximum lifetime, or when
//! their shell exits.

mod labfs;
pub mod labhost;
pub mod networks;
pub mod nodes;
pub mod picture;
pub mod ports;
pub mod volumes;

use crate::config::Paths;
use crate::image::ImageStore;
use crate::observe::namespaces::{self, NamespaceRow};
use crate::runtime::cgroups::{CgroupStats, ContainerCgroup};
use crate::runtime::client::{monitor_command, parse_ready, ClientError};
use crate::runtime::idmap::{Owner, Registry};
use crate::runtime::spec::*;
use crate::runtime::state::{self, ContainerDir};
use crate::store::{SessionRow, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such session: {0}")]
    NotFound(String),
    /// Something in a session (a container, network, volume) that is not there.
    #[error("{0}")]
    Missing(String),
    #[error("this session needs its token: send `Authorization: Bearer <token>`, the gantry_session cookie, or ?token=")]
    Unauthorized,
    #[error("the class is full: {0} sessions are running, the most this server admits; try again when one ends")]
    Full(usize),
    #[error("{0}")]
    BadRequest(String),
    #[error("session {0} has ended")]
    Ended(String),
    #[error("starting the session's container: {0}")]
    Start(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a lab asks of the session started for it.
pub struct LabNeeds<'a> {
    pub id: &'a str,
    /// Limits the lab sets (each `None` keeps the server's default).
    pub limits: Limits,
    /// Allow namespace creation inside its containers (`nested-namespaces`).
    pub nested_namespaces: bool,
}

/// Settings of the session layer (from `gantry serve` flags).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub max_sessions: usize,
    pub limits: Limits,
    /// The gantry binary that runs monitors.
    pub helper_exe: PathBuf,
}

pub struct Sessions {
    pub paths: Paths,
    pub store: Store,
    pub cfg: SessionConfig,
    images: ImageStore,
    /// uid/gid ranges: one per session.
    ids: Registry,
    /// Serialises changes to the sessions' network records.
    net_lock: tokio::sync::Mutex<()>,
    /// Port forwarders (`-p`) by container id.
    ports: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    /// Latest activity per session, flushed to SQLite by the reaper (a keystroke must
    /// not be a database write).
    activity: Mutex<HashMap<String, i64>>,
    /// Sessions admitted but not yet in the database (their container is starting), so
    /// concurrent creations are counted without holding a lock while containers start.
    starting: Mutex<usize>,
}

/// What a newly created session returns (the token only here).
#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub session: SessionView,
    pub token: String,
}

/// A session as the API shows it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: String,
    pub image: String,
    pub container_id: String,
    pub state: String,
    pub created_at: i64,
    pub last_active: i64,
    pub expires_at: i64,
    pub idle_timeout_secs: u64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub terminal_url: String,
    pub page_url: String,
    pub lab: Option<String>,
    /// The steps of its lab that have passed.
    pub passed_steps: Vec<u32>,
}

/// The live panel's data.
#[derive(Debug, Serialize)]
pub struct Isolation {
    pub state: String,
    pub pid: Option<i32>,
    pub namespaces: Vec<NamespaceRow>,
    pub cgroup: Option<CgroupStats>,
    pub sampled_at_ms: i64,
}

/// A place in the class being filled; see [`Sessions::admit`].
struct Seat<'a>(&'a Mutex<usize>);

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
    }
}

/// 32 random bytes, hex: unguessable session tokens.
fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the kernel's random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tokens_match(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    pub fn new(paths: Paths, store: Store, cfg: SessionConfig) -> Self {
        Sessions {
            images: ImageStore::new(&paths),
            ids: Registry::new(&paths.state_dir),
            net_lock: tokio::sync::Mutex::new(()),
            ports: Mutex::new(HashMap::new()),
            paths,
            store,
            cfg,
            activity: Mutex::new(HashMap::new()),
            starting: Mutex::new(0),
        }
    }

    pub fn view(&self, s: &SessionRow) -> SessionView {
        SessionView {
            id: s.id.clone(),
            image: s.image.clone(),
            container_id: s.container_id.clone(),
            state: s.state.clone(),
            created_at: s.created_at,
            last_active: self.last_active(s),
            expires_at: s.expires_at,
            idle_timeout_secs: self.cfg.idle_timeout.as_secs(),
            ended_at: s.ended_at,
            end_reason: s.end_reason.clone(),
            exit_code: s.exit_code,
            terminal_url: format!("/api/v1/sessions/{}/terminal", s.id),
            page_url: format!("/sessions/{}", s.id),
            lab: s.lab.clone(),
            passed_steps: if s.lab.is_some() {
                self.store.passed_steps(&s.id).unwrap_or_default()
            } else {
                vec![]
            },
        }
    }

    fn last_active(&self, s: &SessionRow) -> i64 {
        let mem = self
            .activity
            .lock()
            .map(|m| m.get(&s.id).copied())
            .unwrap_or(None);
        mem.unwrap_or(s.last_active).max(s.last_active)
    }

    /// Records activity (a keystroke, a connection).
    pub fn touch(&self, id: &str) {
        if let Ok(mut m) = self.activity.lock() {
            m.insert(id.to_string(), state::now());
        }
    }

    /// Starts a session: its lab host, a shell in `image` (default: the lab host image,
    /// busybox with the `gantry` CLI), prepared for `lab` if given.
    pub async fn create(
        &self,
        image: Option<&str>,
        lab: Option<&LabNeeds<'_>>,
    ) -> Result<Created, SessionError> {
        let image = ImageName::parse(image.unwrap_or(crate::image::LABHOST_IMAGE))
            .map_err(|e| SessionError::BadRequest(e.to_string()))?;
        let image_rootfs = self
            .images
            .rootfs(&image)
            .map_err(|e| SessionError::BadRequest(e.to_string()))?;
        let _seat = self.admit()?;
        let id = uuid::Uuid::new_v4().to_string();
        let container_id = new_container_id();
        let idmap = self
            .ids
            .allocate(&Owner::Session(id.clone()))
            .map_err(|e| SessionError::Start(e.to_string()))?;
        let mut spec = self.labhost_spec(&id, &container_id, image.clone(), image_rootfs, idmap);
        // A lab may ask for other limits than the server's defaults (each field it sets).
        if let Some(needs) = lab {
            spec.nested_namespaces = needs.nested_namespaces;
            let l = &needs.limits;
            let d = &mut spec.limits;
            d.memory = l.memory.or(d.memory);
            d.cpus = l.cpus.or(d.cpus);
            d.pids = l.pids.or(d.pids);
            d.disk = l.disk.or(d.disk);
        }
        if let Err(e) = self.start_container(&spec).await {
            self.ids.release(&Owner::Session(id.clone()));
            return Err(e);
        }
        let now = state::now();
        let row = SessionRow {
            id: id.clone(),
            token: new_token(),
            image: image.to_string(),
            container_id,
            state: "running".into(),
            created_at: now,
            last_active: now,
            expires_at: now + self.cfg.max_lifetime.as_secs() as i64,
            ended_at: None,
            end_reason: None,
            exit_code: None,
            lab: lab.map(|n| n.id.to_string()),
        };
        if let Err(e) = self.store.insert_session(&row) {
            self.stop_container(&row.container_id).await;
            self.ids.release(&Owner::Session(id.clone()));
            return Err(e.into());
        }
        tracing::info!(session = %id, container = %row.container_id, "session started");
        Ok(Created {
            token: row.token.clone(),
            session: self.view(&row),
        })
    }

    /// Takes a seat in the class, or says it is full. The seat is given back when the
    /// returned guard drops (by then the session is in the database, or failed).
    fn admit(&self) -> Result<Seat<'_>, SessionError> {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.count_running()? + *starting >= self.cfg.max_sessions {
            return Err(SessionError::Full(self.cfg.max_sessions));
        }
        *starting += 1;
        Ok(Seat(&self.starting))
    }

    pub(crate) async fn start_container(&self, spec: &ContainerSpec) -> Result<(), SessionError> {
        let cd = ContainerDir::create(&self.paths, spec)
            .map_err(|e| SessionError::Start(e.to_string()))?;
        let cmd = monitor_command(&self.cfg.helper_exe, &self.paths, &spec.id);
        let mut child = tokio::process::Command::from(cmd).spawn().map_err(|e| {
            SessionError::Start(format!("spawning {}: {e}", self.cfg.helper_exe.display()))
        })?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = tokio::io::BufReader::new(out).read_line(&mut line).await;
        }
        let _ = child.wait().await;
        parse_ready(&line, &cd).map_err(|e| match e {
            ClientError::Launch { message, .. } => SessionError::Start(message),
            other => SessionError::Start(other.to_string()),
        })?;
        Ok(())
    }

    /// Looks a session up and checks its token.
    pub fn authorize(&self, id: &str, token: Option<&str>) -> Result<SessionRow, SessionError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(SessionError::NotFound(id.to_string()));
        }
        let row = self
            .store
            .session(id)?
            .ok_or_else(|| SessionError::NotFound(id.to_string()))?;
        match token {
            Some(t) if tokens_match(t, &row.token) => Ok(row),
            _ => Err(SessionError::Unauthorized),
        }
    }

    pub fn container(&self, row: &SessionRow) -> ContainerDir {
        ContainerDir::new(&self.paths, &row.container_id)
    }

    /// The current row, first ending the session if its shell has exited.
    pub fn refresh(&self, row: SessionRow) -> Result<SessionRow, SessionError> {
        if row.state != "running" {
            return Ok(row);
        }
        let cd = self.container(&row);
        let st = cd.state().ok();
        let alive = st.as_ref().is_some_and(|s| s.is_live());
        if alive {
            return Ok(row);
        }
        let code = st.and_then(|s| s.exit_code);
        self.store
            .end_session(&row.id, "exited", code, state::now())?;
        Ok(self.store.session(&row.id)?.unwrap_or(row))
    }

    /// Stops a container through its monitor (SIGKILL) and removes its folder.
    pub(crate) async fn stop_container(&self, container_id: &str) {
        let cd = ContainerDir::new(&self.paths, container_id);
        let spec = cd.spec().ok();
        self.unpublish_ports(container_id);
        if let Some(session) = spec.as_ref().and_then(|s| s.session.clone()) {
            self.network_forget(&session, container_id).await;
        }
        let layer_in = spec
            .filter(|s| s.nest.is_some())
            .and_then(|s| s.session)
            .and_then(|sid| self.store.session(&sid).ok().flatten());
        // Blocking socket and file work: off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = crate::runtime::client::kill(&cd);
            let _ = cd.remove();
        })
        .await;
        // A nested container's writable layer is in its lab host's files.
        if let Some(row) = layer_in {
            self.remove_layer(&row, container_id);
        }
    }

    /// Ends a session: kills its containers and its lab host and marks it ended.
    pub async fn end(&self, row: &SessionRow, reason: &str) -> Result<(), SessionError> {
        let code = self.container(row).state().ok().and_then(|s| s.exit_code);
        for cd in self.nested(row) {
            self.stop_container(&cd.id).await;
        }
        self.stop_second_node(row).await;
        self.stop_container(&row.container_id).await;
        self.store
            .end_session(&row.id, reason, code, state::now())?;
        self.ids.release(&Owner::Session(row.id.clone()));
        self.forget_networks(&row.id);
        if let Ok(mut m) = self.activity.lock() {
            m.remove(&row.id);
        }
        tracing::info!(session = %row.id, reason, "session ended");
        Ok(())
    }

    /// One pass of the reaper: flushes activity, ends idle, expired and exited sessions.
    /// Returns how many sessions it ended.
    pub async fn reap(&self) -> Result<usize, SessionError> {
        let activity: Vec<(String, i64)> = self
            .activity
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        for (id, at) in activity {
            self.store.touch(&id, at)?;
        }
        let now = state::now();
        let mut ended = 0;
        for row in self.store.running_sessions()? {
            let reason = if now >= row.expires_at {
                Some("lifetime")
            } else if now - self.last_active(&row) >= self.cfg.idle_timeout.as_secs() as i64 {
                Some("idle")
            } else {
                let cd = self.container(&row);
                match cd.state() {
                    Ok(st) if st.is_live() => None,
                    _ => Some("exited"),
                }
            };
            if let Some(reason) = reason {
                self.end(&row, reason).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// After a (re)start: keeps sessions whose monitor is alive, ends the others and
    /// cleans up what they left, then sweeps session containers that no running session
    /// owns (a crash between starting a container and recording its session). Returns
    /// (kept, ended).
    pub async fn recover(&self) -> Result<(usize, usize), SessionError> {
        let (mut kept, mut ended) = (0, 0);
        let running: std::collections::HashSet<String> = self
            .store
            .running_sessions()?
            .into_iter()
            .map(|r| r.container_id)
            .collect();
        for cd in state::list(&self.paths) {
            let owned_by_session = cd.spec().map(|s| s.session.is_some()).unwrap_or(false);
            if owned_by_session && !running.contains(&cd.id) {
                tracing::warn!(container = %cd.id, "removing a session container no session owns");
                self.stop_container(&cd.id).await;
            }
        }
        // uid ranges of sessions that are not running any more.
        let sessions: std::collections::HashSet<String> = self
            .store
            .running_sessions()?
            .into_iter()
            .map(|r| r.id)
            .collect();
        for (_, owner) in self.ids.list() {
            if matches!(&owner, Owner::Session(s) if !sessions.contains(s)) {
                self.ids.release(&owner);
            }
        }
        self.ids.sweep_containers(&self.paths);
        self.republish_all();
        for row in self.store.running_sessions()? {
            let cd = self.container(&row);
            match cd.state() {
                Ok(st) if st.is_live() => kept += 1,
                _ => {
                    self.end(&row, "lost").await?;
                    ended += 1;
                }
            }
        }
        Ok((kept, ended))
    }

    /// The live picture: namespaces next to the host's, cgroup usage against limits.
    pub fn isolation(&self, row: &SessionRow) -> Isolation {
        let sampled_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let st = self.container(row).state().ok();
        match st {
            Some(st) if row.state == "running" && state::container_alive(&st) => {
                let pid = st.pid.expect("running containers have a pid");
                Isolation {
                    state: "running".into(),
                    pid: Some(pid),
                    namespaces: namespaces::compare(pid),
                    cgroup: st.cgroup.as_ref().map(|p| ContainerCgroup::open(p).stats()),
                    sampled_at_ms,
                }
            }
            _ => Isolation {
                state: if row.state == "running" {
                    "exited".into()
                } else {
                    row.state.clone()
                },
                pid: None,
                namespaces: vec![],
                cgroup: None,
                sampled_at_ms,
            },
        }
    }
}
