//! The JSON API under `/api/v1`, and `/healthz`.

use super::auth;
use super::error::ApiError;
use super::AppState;
use crate::session::Created;
use crate::store::SessionRow;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// Body of `POST /api/v1/sessions` (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub image: Option<String>,
    /// Start the session prepared for this lab (its id in the catalog).
    pub lab: Option<String>,
}

/// Parses an optional JSON body with a message that says what is wrong.
pub fn parse_body<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// The session a request names, if the request carries its token.
pub(super) fn authorized(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<SessionRow, ApiError> {
    Ok(state.sessions.authorize(id, auth::token(req).as_deref())?)
}

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let running = state.sessions.store.count_running().unwrap_or(0);
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "sessions": running }))
}

pub async fn create_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateSession = parse_body(&body)?;
    let (created, cookie) =
        start_session(&state, &req, body.image.as_deref(), body.lab.as_deref()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/api/v1/sessions/{}", created.session.id),
        ))
        .cookie(cookie)
        .json(created))
}

/// What the API and the landing page's form share: the Origin check, the client's rate
/// limit, the session itself, and the cookie that carries its token.
pub(super) async fn start_session(
    state: &AppState,
    req: &HttpRequest,
    image: Option<&str>,
    lab: Option<&str>,
) -> Result<(Created, actix_web::cookie::Cookie<'static>), ApiError> {
    auth::same_origin(req)?;
    let lab = match lab {
        None => None,
        Some(id) => {
            let lab = state.labs.get(id).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no lab with id {id:?}: GET /api/v1/labs lists them"
                ))
            })?;
            let n = &lab.session;
            Some(crate::session::LabNeeds {
                id: lab.id.as_str(),
                limits: crate::runtime::spec::Limits {
                    memory: n.memory,
                    cpus: n.cpus,
                    pids: n.pids,
                    disk: n.disk,
                },
                nested_namespaces: n.features.contains(&crate::lab::Feature::NestedNamespaces),
            })
        }
    };
    state.admit_client(req)?;
    let created = state.sessions.create(image, lab.as_ref()).await?;
    let max_age = created.session.expires_at - created.session.created_at;
    let cookie = auth::session_cookie(&created.token, max_age);
    Ok((created, cookie))
}

pub async fn get_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = authorized(&state, &req, &id)?;
    let row = state.sessions.refresh(row)?;
    Ok(HttpResponse::Ok().json(state.sessions.view(&row)))
}

pub async fn delete_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::same_origin(&req)?;
    let row = authorized(&state, &req, &id)?;
    if row.state == "running" {
        state.sessions.end(&row, "deleted").await?;
    }
    let row = state
        .sessions
        .store
        .session(&row.id)
        .map_err(crate::session::SessionError::from)?
        .unwrap_or(row);
    Ok(HttpResponse::Ok().json(state.sessions.view(&row)))
}

pub async fn isolation(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = authorized(&state, &req, &id)?;
    let sessions = state.sessions.clone();
    // Reading /proc and cgroupfs is blocking file I/O.
    let iso = web::block(move || sessions.isolation(&row))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(iso))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}
