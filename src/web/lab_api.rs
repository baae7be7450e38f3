//! The lab API: what the `gantry` CLI inside a lab host talks to, over the unix socket
//! bound into it (`/lab/v1/...`). It is the course's client/daemon architecture — a
//! client sending REST requests to a daemon over a socket — and it is scoped: every
//! request acts on the session whose lab host made it.
//!
//! Who is calling is not a token but the kernel's word: the socket's peer credentials
//! (`SO_PEERCRED`, see unix(7)) give the caller's host uid, which falls in exactly one
//! session's uid range. Requests over TCP carry no peer credentials and are refused.

use super::error::ApiError;
use super::AppState;
use crate::session::labhost::{nspid, RunRequest};
use crate::session::SessionError;
use crate::store::SessionRow;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::time::Duration;

/// The peer of a unix-socket connection, recorded when it connects.
#[derive(Debug, Clone, Copy)]
pub struct LabPeer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// The session of the lab host on the other end of the socket.
fn session_of(state: &AppState, req: &HttpRequest) -> Result<SessionRow, ApiError> {
    let peer = req.conn_data::<LabPeer>().ok_or_else(|| {
        ApiError::Forbidden("the lab API answers only inside a lab host, on its unix socket".into())
    })?;
    let row = state.sessions.by_peer_uid(peer.uid).map_err(|e| match e {
        SessionError::Unauthorized => ApiError::Forbidden(
            "this socket serves lab hosts only, and the caller is not in one".into(),
        ),
        other => other.into(),
    })?;
    state.sessions.touch(&row.id);
    Ok(row)
}

fn blocking_err(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::Internal(e.to_string())
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let sessions = state.sessions.clone();
    let all = q.all;
    let views = web::block(move || {
        let mut v: Vec<_> = sessions
            .nested(&row)
            .iter()
            .filter_map(|cd| sessions.nested_view(cd))
            .filter(|v| all || v.status == "running")
            .collect();
        v.sort_by_key(|v| v.created_at);
        v
    })
    .await
    .map_err(blocking_err)?;
    Ok(HttpResponse::Ok().json(views))
}

pub async fn run(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let run: RunRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the run request is not valid: {e}")))?;
    let cd = state.sessions.run_nested(&row, &run).await?;
    let view = state.sessions.nested_view(&cd);
    Ok(HttpResponse::Created().json(view))
}

pub async fn inspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let sessions = state.sessions.clone();
    let host_pid = sessions.container(&row).state().ok().and_then(|s| s.pid);
    let labhost_id = Some(row.container_id.clone());
    let out = web::block(move || -> Result<serde_json::Value, ApiError> {
        let cd = sessions.find_nested(&row, &key)?;
        let spec = cd.spec().map_err(|e| ApiError::Internal(e.to_string()))?;
        let view = sessions.nested_view(&cd);
        let st = cd.state().ok();
        let pid = view.as_ref().and_then(|v| v.pid);
        let cgroup = st
            .as_ref()
            .and_then(|s| s.cgroup.clone())
            .filter(|_| pid.is_some())
            .map(|p| crate::runtime::cgroups::ContainerCgroup::open(&p));
        Ok(serde_json::json!({
            "id": cd.id,
            "name": spec.name,
            "image": spec.image,
            "command": spec.command,
            "hostname": spec.hostname,
            "state": view,
            "pids": {
                "host": pid,
                "labhost": pid.and_then(|p| nspid(p, 1)),
                "container": pid.and_then(|p| nspid(p, 2)),
            },
            "limits": spec.limits,
            "idmap": {
                "uid_map": spec.idmap.map_line().trim(),
                "gid_map": spec.idmap.map_line().trim(),
            },
            "namespaces": pid.map(|p| crate::observe::namespaces::compare_with(
                p,
                &host_pid.map(|h| h.to_string()).unwrap_or_else(|| "self".into()),
            )),
            "cgroup": cgroup.as_ref().map(|c| c.stats()),
            "paused": cgroup.as_ref().is_some_and(|c| c.frozen()),
            "ports": spec.publish.iter().map(|p| format!("{}->{}/tcp", p.host, p.container)).collect::<Vec<_>>(),
            "layers": {
                "driver": "overlay",
                "lower": "the image (read-only, idmapped)",
                "upper": format!("/var/lib/gantry/containers/{}/rootfs/upper", cd.id),
                "work": format!("/var/lib/gantry/containers/{}/rootfs/work", cd.id),
                "merged": format!("/var/lib/gantry/containers/{}/rootfs/merged (inside the container's mount namespace: its /)", cd.id),
            },
            "mounts": spec.volumes.iter().map(|v| serde_json::json!({
                "source": v.source, "destination": v.target, "read_only": v.readonly, "volume": v.volume,
            })).chain(spec.tmpfs.iter().map(|t| serde_json::json!({
                "type": "tmpfs", "destination": t.target, "size": t.size,
            }))).collect::<Vec<_>>(),
            "network": {
                "mode": match &spec.network {
                    crate::runtime::spec::NetworkMode::None => "none".to_string(),
                    crate::runtime::spec::NetworkMode::Container(id) if Some(id) == labhost_id.as_ref() => "host".into(),
                    crate::runtime::spec::NetworkMode::Container(id) => format!("container:{id}"),
                    crate::runtime::spec::NetworkMode::Bridge(b) => b.network.clone(),
                    other => format!("{other:?}"),
                },
                "networks": sessions.networks_of(&row.id, &cd.id).into_iter().map(|(n, m)| serde_json::json!({
                    "network": n, "address": m.address, "interface": m.ifname,
                })).collect::<Vec<_>>(),
            },
        }))
    })
    .await
    .map_err(blocking_err)??;
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    q: web::Query<RemoveQuery>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let id = cd.id.clone();
    state.sessions.remove_nested(cd, q.force).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "removed": id })))
}

pub async fn logs(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let out = state.sessions.logs(&cd).await;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(out))
}

pub async fn stats(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let st = cd
        .state()
        .ok()
        .filter(crate::runtime::state::container_alive)
        .ok_or_else(|| {
            ApiError::Session(SessionError::Conflict(format!(
                "container {key} is not running"
            )))
        })?;
    let placement = st
        .cgroup
        .ok_or_else(|| ApiError::Internal("a running container without a cgroup".into()))?;
    let stats = web::block(move || {
        let cg = crate::runtime::cgroups::ContainerCgroup::open(&placement);
        serde_json::json!({ "cgroup": cg.stats(), "paused": cg.frozen() })
    })
    .await
    .map_err(blocking_err)?;
    Ok(HttpResponse::Ok().json(stats))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    command: Vec<String>,
    /// Seconds before the command is killed (default 60, at most 3600).
    #[serde(default)]
    timeout_secs: Option<u64>,
}

pub async fn exec(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let body: ExecRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the exec request is not valid: {e}")))?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let timeout = Duration::from_secs(body.timeout_secs.unwrap_or(60).clamp(1, 3600));
    let result = state.sessions.exec(&cd, &body.command, timeout).await?;
    Ok(HttpResponse::Ok().json(result))
}

async fn set_paused(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: String,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    state.sessions.set_paused(&cd, paused)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": cd.id, "paused": paused })))
}

pub async fn pause(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, req, key.into_inner(), true).await
}

pub async fn unpause(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, req, key.into_inner(), false).await
}

/// Waits for the container to exit (at most an hour) and says how it ended.
pub async fn wait(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let st = cd.state().map_err(|e| ApiError::NotFound(e.to_string()))?;
        if !st.is_live() {
            let mut st = st;
            crate::runtime::state::reap_if_orphaned(&cd, &mut st);
            return Ok(HttpResponse::Ok().json(serde_json::json!({
                "exit_code": st.exit_code,
                "oom_killed": st.oom_killed,
            })));
        }
        if std::time::Instant::now() > deadline {
            return Err(ApiError::Session(SessionError::Conflict(
                "still running after an hour".into(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The terminal of a nested container: the same WebSocket protocol as a session's.
pub async fn attach(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    super::terminal::open_for(&state, &req, body, &row, &cd).await
}

#[derive(Deserialize)]
pub struct ExecTtyQuery {
    /// The command, as a JSON array of strings.
    command: String,
}

/// `gantry exec -it`: a WebSocket (the terminal protocol) to a new process in the
/// container, on a pty of its own; the exit frame carries its exit code.
pub async fn exec_tty(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
    q: web::Query<ExecTtyQuery>,
) -> Result<HttpResponse, ApiError> {
    use crate::runtime::monitor_proto::Frame;
    use actix_ws::AggregatedMessage as Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let command: Vec<String> = serde_json::from_str(&q.command).map_err(|e| {
        ApiError::BadRequest(format!("command must be a JSON array of strings: {e}"))
    })?;
    let mut child = state.sessions.exec_tty(&cd, &command)?;
    let (resp, mut ws, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ApiError::Internal("exec without pipes".into()));
    };
    actix_web::rt::spawn(async move {
        let mut stream = stream.max_frame_size(256 * 1024).aggregate_continuations();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                msg = stream.recv() => {
                    let frame = match msg {
                        Some(Ok(Message::Binary(b))) => match super::terminal::parse_client_frame(&b) {
                            Ok(super::terminal::ClientFrame::Data(d)) => Frame::Data(d),
                            Ok(super::terminal::ClientFrame::Resize { cols, rows }) => Frame::Resize { cols, rows },
                            Ok(super::terminal::ClientFrame::Ack(_)) => continue,
                            Err(_) => break,
                        },
                        Some(Ok(Message::Text(t))) => Frame::Data(t.as_bytes().to_vec()),
                        Some(Ok(Message::Ping(p))) => {
                            let _ = ws.pong(&p).await;
                            continue;
                        }
                        Some(Ok(_)) => continue,
                        // The client went away: so does the command (kill_on_drop).
                        _ => return,
                    };
                    if stdin.write_all(&frame.encode()).await.is_err() {
                        break;
                    }
                }
                n = stdout.read(&mut buf) => {
                    match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut out = vec![super::terminal::OP_DATA];
                            out.extend_from_slice(&buf[..n]);
                            if ws.binary(out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
        let code = match child.wait().await {
            Ok(s) => s.code().unwrap_or(137),
            Err(_) => 125,
        };
        let mut exit = vec![super::terminal::OP_EXIT];
        exit.extend_from_slice(
            serde_json::json!({ "exit_code": code })
                .to_string()
                .as_bytes(),
        );
        let _ = ws.binary(exit).await;
        let _ = ws.close(None).await;
    });
    Ok(resp)
}

pub async fn images(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    session_of(&state, &req)?;
    let images = crate::image::ImageStore::new(&state.sessions.paths).list();
    Ok(HttpResponse::Ok().json(images))
}

fn network_view(
    sessions: &crate::session::Sessions,
    row: &SessionRow,
    n: &crate::session::networks::Network,
) -> serde_json::Value {
    let containers: Vec<_> = n
        .members
        .iter()
        .map(|(id, m)| {
            serde_json::json!({
                "id": id, "name": m.name, "address": m.address, "interface": m.ifname,
            })
        })
        .collect();
    serde_json::json!({
        "name": n.name,
        "driver": n.driver,
        "bridge": n.bridge,
        "subnet": n.subnet(),
        "gateway": n.gateway(),
        "created_at": n.created_at,
        "containers": containers,
        "hosts_file": sessions.hosts_file(&row.id, &n.name),
    })
}

pub async fn networks(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let nets = state.sessions.networks(&row.id);
    let list: Vec<_> = nets
        .networks
        .values()
        .map(|n| network_view(&state.sessions, &row, n))
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    name: String,
    /// `bridge` (the default) or `macvlan`.
    #[serde(default)]
    driver: Option<String>,
}

pub async fn network_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let body: NetworkRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the network request is not valid: {e}")))?;
    let net = state
        .sessions
        .network_create_with(&row, &body.name, body.driver.as_deref().unwrap_or("bridge"))
        .await?;
    Ok(HttpResponse::Created().json(network_view(&state.sessions, &row, &net)))
}

pub async fn network_inspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let nets = state.sessions.networks(&row.id);
    let n = nets
        .networks
        .get(name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no network {name}: see gantry network ls")))?;
    Ok(HttpResponse::Ok().json(network_view(&state.sessions, &row, n)))
}

pub async fn network_remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    state.sessions.network_remove(&row, &name).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "removed": name.as_str() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    container: String,
}

async fn connect_or_not(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: String,
    body: web::Bytes,
    connect: bool,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let body: ConnectRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request is not valid: {e}")))?;
    let cd = state.sessions.find_nested(&row, &body.container)?;
    if connect {
        let m = state.sessions.network_connect(&row, &name, &cd).await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({
            "network": name, "container": cd.id, "address": m.address, "interface": m.ifname,
        })))
    } else {
        state.sessions.network_disconnect(&row, &name, &cd).await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({ "network": name, "container": cd.id })))
    }
}

pub async fn network_connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    connect_or_not(state, req, name.into_inner(), body, true).await
}

pub async fn network_disconnect(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    connect_or_not(state, req, name.into_inner(), body, false).await
}

pub async fn volumes(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let sessions = state.sessions.clone();
    let list = web::block(move || sessions.volume_list(&row))
        .await
        .map_err(blocking_err)??;
    Ok(HttpResponse::Ok().json(list))
}

pub async fn volume_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let body: NetworkRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the volume request is not valid: {e}")))?;
    let sessions = state.sessions.clone();
    let v = web::block(move || sessions.volume_create(&row, &body.name))
        .await
        .map_err(blocking_err)??;
    Ok(HttpResponse::Created().json(v))
}

pub async fn volume_inspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let sessions = state.sessions.clone();
    let v = web::block(move || sessions.volume_view(&row, &name))
        .await
        .map_err(blocking_err)??;
    Ok(HttpResponse::Ok().json(v))
}

pub async fn volume_remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let sessions = state.sessions.clone();
    let n = name.clone();
    web::block(move || sessions.volume_remove(&row, &n))
        .await
        .map_err(blocking_err)??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "removed": name.as_str() })))
}

pub async fn diff(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = session_of(&state, &req)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    let sessions = state.sessions.clone();
    let changes = web::block(move || sessions.diff(&row, &cd))
        .await
        .map_err(blocking_err)??;
    Ok(HttpResponse::Ok().json(changes))
}

/// Registers `/lab/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/lab/v1")
            .route("/containers", web::get().to(list))
            .route("/containers", web::post().to(run))
            .route("/containers/{key}", web::get().to(inspect))
            .route("/containers/{key}", web::delete().to(remove))
            .route("/containers/{key}/logs", web::get().to(logs))
            .route("/containers/{key}/stats", web::get().to(stats))
            .route("/containers/{key}/exec", web::post().to(exec))
            .route("/containers/{key}/pause", web::post().to(pause))
            .route("/containers/{key}/unpause", web::post().to(unpause))
            .route("/containers/{key}/wait", web::get().to(wait))
            .route("/containers/{key}/attach", web::get().to(attach))
            .route("/containers/{key}/exec-tty", web::get().to(exec_tty))
            .route("/images", web::get().to(images))
            .route("/containers/{key}/diff", web::get().to(diff))
            .route("/volumes", web::get().to(volumes))
            .route("/volumes", web::post().to(volume_create))
            .route("/volumes/{name}", web::get().to(volume_inspect))
            .route("/volumes/{name}", web::delete().to(volume_remove))
            .route("/networks", web::get().to(networks))
            .route("/networks", web::post().to(network_create))
            .route("/networks/{name}", web::get().to(network_inspect))
            .route("/networks/{name}", web::delete().to(network_remove))
            .route("/networks/{name}/connect", web::post().to(network_connect))
            .route(
                "/networks/{name}/disconnect",
                web::post().to(network_disconnect),
            )
            .default_service(web::to(super::api::not_found)),
    );
}
