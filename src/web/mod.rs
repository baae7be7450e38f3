//! The web layer: actix-web with server-rendered pages, the JSON API and the terminal
//! WebSocket. It knows sessions; it never makes a syscall about containers itself.
//!
//! - [`api`]: `/api/v1/...` and `/healthz`;
//! - [`terminal`]: the terminal WebSocket;
//! - [`pictures`]: the lab pages' live pictures (a sample, a server-sent event stream)
//!   and their controls (pause, limits);
//! - [`pages`]: the landing and session pages;
//! - [`labs`]: the lab catalog, as JSON and as pages;
//! - [`assets`]: embedded static files;
//! - [`lab_api`]: `/lab/v1/...`, the API a lab host's `gantry` CLI talks to over a unix
//!   socket;
//! - [`auth`]: where a request's session token is, and the Origin check;
//! - [`ratelimit`]: session creations per client;
//! - [`error`]: errors that know their status code.

pub mod api;
pub mod assets;
pub mod auth;
pub mod error;
pub mod lab_api;
pub mod labs;
pub mod pages;
pub mod pictures;
pub mod ratelimit;
pub mod terminal;

use crate::config::{ensure_private_dir, Paths};
use crate::image::ImageStore;
use crate::lab::Catalog;
use crate::runtime::spec::{CpuLimit, DiskLimit, Limits, MemoryLimit, PidsLimit};
use crate::session::{SessionConfig, Sessions};
use crate::store::Store;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Shared by every handler.
pub struct AppState {
    pub sessions: Arc<Sessions>,
    pub create_limit: ratelimit::RateLimiter,
    /// Loaded and validated once, at start.
    pub labs: Arc<Catalog>,
}

impl AppState {
    /// Charges one session creation to the request's client address.
    pub fn admit_client(&self, req: &actix_web::HttpRequest) -> Result<(), error::ApiError> {
        let Some(ip) = req.peer_addr().map(|a| a.ip()) else {
            return Ok(());
        };
        self.create_limit
            .take(ip, std::time::Instant::now())
            .map_err(|wait| {
                error::ApiError::TooManyRequests(format!(
                    "too many new sessions from {ip}: try again in {} s",
                    wait.as_secs() + 1
                ))
            })
    }
}

/// `gantry serve` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Most sessions running at once; more get "the class is full" (HTTP 429).
    #[arg(long, default_value_t = 200)]
    pub max_sessions: usize,
    /// End a session after this long without input, e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// End a session this long after it started, e.g. 4h.
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    pub max_lifetime: Duration,
    /// How often to look for sessions to end.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub reap_interval: Duration,
    /// Memory limit of each session's container.
    #[arg(long, default_value = "256m", value_parser = |s: &str| MemoryLimit::parse(s))]
    pub session_memory: MemoryLimit,
    /// CPU quota of each session's container.
    #[arg(long, default_value = "1", value_parser = |s: &str| CpuLimit::parse(s))]
    pub session_cpus: CpuLimit,
    /// Task limit of each session's container.
    #[arg(long, default_value = "256", value_parser = |s: &str| PidsLimit::parse(s))]
    pub session_pids: PidsLimit,
    /// Writable-layer size of each session's container.
    #[arg(long, default_value = "512m", value_parser = |s: &str| DiskLimit::parse(s))]
    pub session_disk: DiskLimit,
    /// New sessions allowed per client address per minute (also the burst); 0 = no limit.
    #[arg(long, default_value_t = 20)]
    pub create_rate: u32,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Serve the labs in this folder instead of those built into the binary (for lab
    /// authors; the server does not start if a lab is invalid).
    #[arg(long)]
    pub labs_dir: Option<std::path::PathBuf>,
}

/// Parses `90s`, `30m`, `4h`, `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        Some(b'd') => (&s[..s.len() - 1], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            format!("invalid duration {s:?}: use a positive number with s, m, h or d, e.g. 30m")
        })
}

/// Registers every route; the server and the tests build the same app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(64 * 1024))
        .route("/", web::get().to(pages::index))
        .route("/healthz", web::get().to(api::healthz))
        .route("/sessions", web::post().to(pages::start_session))
        .route("/sessions/{id}", web::get().to(pages::session_page))
        .route("/labs", web::get().to(labs::catalog_page))
        .route("/labs/{id}", web::get().to(labs::lab_page))
        .route("/static/{path:.*}", web::get().to(assets::static_file))
        .service(
            pictures::routes(web::scope("/api/v1"))
                .route("/labs", web::get().to(labs::list_labs))
                .route("/labs/{id}", web::get().to(labs::get_lab))
                .route(
                    "/sessions/{id}/steps/{n}/check",
                    web::post().to(labs::check_step),
                )
                .route("/sessions", web::post().to(api::create_session))
                .route("/sessions/{id}", web::get().to(api::get_session))
                .route("/sessions/{id}", web::delete().to(api::delete_session))
                .route("/sessions/{id}/isolation", web::get().to(api::isolation))
                .route(
                    "/sessions/{id}/terminal",
                    web::get().to(terminal::open_terminal),
                )
                .default_service(web::to(api::not_found)),
        )
        .configure(lab_api::routes);
}

/// `gantry serve`: prepares the data dir, finds surviving sessions, serves.
pub fn serve(paths: Paths, args: ServeArgs) -> anyhow::Result<i32> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let labs = Arc::new(match &args.labs_dir {
        Some(dir) => Catalog::load_dir(dir)
            .with_context(|| format!("loading the labs in {}", dir.display()))?,
        None => Catalog::embedded().context("loading the labs built into gantry")?,
    });
    crate::runtime::cgroups::check_controllers()?;
    ensure_private_dir(&paths.data_dir)
        .with_context(|| format!("creating {}", paths.data_dir.display()))?;
    ensure_private_dir(&paths.containers_dir())
        .with_context(|| format!("creating {}", paths.state_dir.display()))?;
    ImageStore::new(&paths).ensure_default()?;
    let store = Store::open(&paths.database())?;
    let cfg = SessionConfig {
        idle_timeout: args.idle_timeout,
        max_lifetime: args.max_lifetime,
        max_sessions: args.max_sessions,
        limits: Limits {
            memory: Some(args.session_memory),
            cpus: Some(args.session_cpus),
            pids: Some(args.session_pids),
            disk: Some(args.session_disk),
        },
        helper_exe: std::env::current_exe().context("finding the gantry binary")?,
    };
    let lab_socket = prepare_lab_socket(&paths.api_dir())?;
    let sessions = Arc::new(Sessions::new(paths, store, cfg));

    actix_web::rt::System::new().block_on(async move {
        let (kept, ended) = sessions.recover().await?;
        tracing::info!(kept, ended, "recovered sessions from the last run");
        let reaper = sessions.clone();
        let interval = args.reap_interval;
        actix_web::rt::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = reaper.reap().await {
                    tracing::warn!(error = %e, "reaping sessions");
                }
            }
        });
        let state = web::Data::new(AppState {
            sessions,
            create_limit: ratelimit::RateLimiter::new(args.create_rate),
            labs,
        });
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
            // Terminals send small packets both ways: without TCP_NODELAY, Nagle's algorithm
            // holds a second small write until the first is acknowledged (delayed ACKs make
            // that up to 40 ms).
            .on_connect(|conn, ext| {
                if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    let _ = tcp.set_nodelay(true);
                }
                // Lab hosts: who is calling, in the kernel's words (see lab_api).
                if let Some(unix) = conn.downcast_ref::<actix_web::rt::net::UnixStream>() {
                    if let Ok(cred) = unix.peer_cred() {
                        ext.insert(lab_api::LabPeer {
                            uid: cred.uid(),
                            pid: cred.pid(),
                        });
                    }
                }
            })
            .workers(args.workers)
            .shutdown_timeout(1)
            .bind(&args.listen)
            .with_context(|| {
                format!(
                    "listening on {}: is another server using it? pick another with --listen",
                    args.listen
                )
            })?;
        for addr in server.addrs() {
            // Tests and scripts read this line to find the port.
            println!("gantry listening on http://{addr}");
        }
        // (listen_uds, not bind_uds: only listen_uds runs on_connect for its connections.)
        let lab_listener = std::os::unix::net::UnixListener::bind(&lab_socket)
            .with_context(|| format!("listening on {}", lab_socket.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&lab_socket, std::fs::Permissions::from_mode(0o666))?;
        }
        let server = server.listen_uds(lab_listener)?;
        let _ = std::io::stdout().flush();
        server.run().await.context("serving")?;
        Ok(0)
    })
}

/// Prepares the lab API's socket path: a folder anyone may enter (lab hosts run as
/// unprivileged host uids), with any socket left by a previous run removed. The socket
/// itself is made connectable by anyone once bound; the peer's uid decides what it may
/// do (see [`lab_api`]).
fn prepare_lab_socket(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let sock = dir.join(crate::config::API_SOCKET_NAME);
    let _ = std::fs::remove_file(&sock);
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(14400)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("e.g. 30m"));
    }
}
