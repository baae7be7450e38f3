//! The lab pages' live pictures and their controls:
//!
//! - `GET /api/v1/sessions/{id}/picture[?trace=1]`: one sample (see
//!   [`crate::session::picture`]);
//! - `GET /api/v1/sessions/{id}/picture/stream`: server-sent events, one sample a second
//!   (`event: picture`), the trace with the first and whenever a container appears;
//! - `POST /api/v1/sessions/{id}/containers/{key}/pause` and `/unpause`, and
//!   `PUT /api/v1/sessions/{id}/containers/{key}/limits` `{"memory": "64m", "cpus": "0.5",
//!   "pids": "20"}`: the page's buttons, acting on the session's own containers.
//!
//! A stream samples only for its own session and only while its page is open; a sample
//! is a few dozen reads from /proc and cgroupfs, so a hundred open pages cost a hundred
//! small samples a second (see benches/sessions.rs for the figure).

use super::api::authorized;
use super::error::ApiError;
use super::AppState;
use crate::runtime::spec::{CpuLimit, Limits, MemoryLimit, PidsLimit};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::time::Duration;

/// How often a stream sends a sample.
pub const STREAM_INTERVAL: Duration = Duration::from_secs(1);
/// A stream ends after this long; the page's EventSource reconnects by itself.
pub const STREAM_MAX: Duration = Duration::from_secs(600);

#[derive(Deserialize, Default)]
pub struct PictureQuery {
    #[serde(default)]
    trace: Option<u8>,
}

pub async fn picture(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<PictureQuery>,
) -> Result<HttpResponse, ApiError> {
    let row = authorized(&state, &req, &id)?;
    let sessions = state.sessions.clone();
    let with_trace = q.trace.unwrap_or(0) > 0;
    let pic = web::block(move || sessions.picture(&row, with_trace))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(pic))
}

pub async fn picture_stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = authorized(&state, &req, &id)?;
    let sessions = state.sessions.clone();
    let stream = futures_util::stream::unfold((0u64, String::new()), move |(n, known)| {
        let sessions = sessions.clone();
        let row = row.clone();
        async move {
            if n as u128 * STREAM_INTERVAL.as_millis() > STREAM_MAX.as_millis() {
                return None;
            }
            if n > 0 {
                tokio::time::sleep(STREAM_INTERVAL).await;
            }
            let (pic, ids) = web::block(move || {
                let quick = sessions.picture(&row, false);
                let ids: String = quick
                    .containers
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                (quick, ids)
            })
            .await
            .ok()?;
            // The trace only when the set of containers changed (it never changes
            // for a running one).
            let body = if ids != known {
                let mut v = serde_json::to_value(&pic).ok()?;
                v["containers_changed"] = serde_json::Value::Bool(true);
                v.to_string()
            } else {
                serde_json::to_string(&pic).ok()?
            };
            let frame = format!("event: picture\ndata: {body}\n\n");
            Some((
                Ok::<_, actix_web::Error>(web::Bytes::from(frame)),
                (n + 1, ids),
            ))
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", "text/event-stream"))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

async fn set_paused(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    super::auth::same_origin(&req)?;
    let (id, key) = path.into_inner();
    let row = authorized(&state, &req, &id)?;
    let cd = state.sessions.find_nested(&row, &key)?;
    state.sessions.set_paused(&cd, paused)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": cd.id, "paused": paused })))
}

pub async fn pause(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, req, path, true).await
}

pub async fn unpause(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, req, path, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    memory: Option<String>,
    cpus: Option<String>,
    pids: Option<String>,
}

/// Changes a running container's limits: what `docker update` does, one cgroup file
/// write each.
pub async fn set_limits(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    super::auth::same_origin(&req)?;
    let (id, key) = path.into_inner();
    let row = authorized(&state, &req, &id)?;
    let body: LimitsRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the limits are not valid JSON: {e}")))?;
    let bad = |e: crate::runtime::spec::SpecError| ApiError::BadRequest(e.to_string());
    let limits = Limits {
        memory: body
            .memory
            .as_deref()
            .map(MemoryLimit::parse)
            .transpose()
            .map_err(bad)?,
        cpus: body
            .cpus
            .as_deref()
            .map(CpuLimit::parse)
            .transpose()
            .map_err(bad)?,
        pids: body
            .pids
            .as_deref()
            .map(PidsLimit::parse)
            .transpose()
            .map_err(bad)?,
        disk: None,
    };
    let cd = state.sessions.find_nested(&row, &key)?;
    let st = cd
        .state()
        .ok()
        .filter(crate::runtime::state::container_alive)
        .ok_or_else(|| ApiError::BadRequest(format!("container {key} is not running")))?;
    let placement = st
        .cgroup
        .ok_or_else(|| ApiError::Internal("a running container without a cgroup".into()))?;
    web::block(move || crate::runtime::cgroups::ContainerCgroup::open(&placement).apply(&limits))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": cd.id, "updated": true })))
}

/// Registers the routes (inside `/api/v1`).
pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/sessions/{id}/picture", web::get().to(picture))
        .route(
            "/sessions/{id}/picture/stream",
            web::get().to(picture_stream),
        )
        .route(
            "/sessions/{id}/containers/{key}/pause",
            web::post().to(pause),
        )
        .route(
            "/sessions/{id}/containers/{key}/unpause",
            web::post().to(unpause),
        )
        .route(
            "/sessions/{id}/containers/{key}/limits",
            web::put().to(set_limits),
        )
}
