//! Server-rendered pages (askama templates, one `base.html`).

use super::auth;
use super::error::{ApiError, PageError};
use super::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

/// A lab in the catalog, as the landing page lists it.
pub struct LabSummary {
    pub id: String,
    pub title: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    labs: Vec<LabSummary>,
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    id: String,
    image: String,
    container_id: String,
    created_at: i64,
    expires_at: i64,
}

fn html(t: impl Template) -> Result<HttpResponse, PageError> {
    let body = t
        .render()
        .map_err(|e| PageError(ApiError::Internal(format!("rendering a page: {e}"))))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub async fn index() -> Result<HttpResponse, PageError> {
    html(IndexPage { labs: vec![] })
}

/// The landing page's "Open a shell" form.
pub async fn start_session(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let (created, cookie) = super::api::start_session(&state, &req, None, None).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/sessions/{}", created.session.id)))
        .cookie(cookie)
        .finish())
}

pub async fn session_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let token = auth::token(&req);
    let row = state.sessions.authorize(&id, token.as_deref())?;
    let mut resp = html(SessionPage {
        id: row.id.clone(),
        image: row.image.clone(),
        container_id: row.container_id.clone(),
        created_at: row.created_at,
        expires_at: row.expires_at,
    })?;
    // A link with ?token= (e.g. from the API) becomes the cookie the page's scripts use.
    if let Some(t) = token {
        let _ = resp.add_cookie(&auth::session_cookie(
            &t,
            row.expires_at - crate::runtime::state::now(),
        ));
    }
    Ok(resp)
}
