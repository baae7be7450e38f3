//! Server-rendered pages (askama templates, one `base.html`).

use super::auth;
use super::error::{ApiError, PageError};
use super::labs::LabSummary;
use super::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

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

pub(super) fn html(t: impl Template) -> Result<HttpResponse, PageError> {
    let body = t
        .render()
        .map_err(|e| PageError(ApiError::Internal(format!("rendering a page: {e}"))))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub async fn index(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    html(IndexPage {
        labs: state.labs.labs().iter().map(LabSummary::from).collect(),
    })
}

/// The fields of the "Open a shell" and "Start this lab" forms.
#[derive(Debug, Default, Deserialize)]
pub struct StartForm {
    /// The lab the session is for (`/labs/{id}`'s form sends it).
    pub lab: Option<String>,
}

/// The landing page's "Open a shell" form, and a lab page's "Start this lab": a new
/// session, then its page (the lab's page, for a lab).
pub async fn start_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Option<web::Form<StartForm>>,
) -> Result<HttpResponse, PageError> {
    let form = form.map(web::Form::into_inner).unwrap_or_default();
    // An unknown lab is refused before a session is spent on it.
    let lab = match form.lab.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(id) => Some(state.labs.get(id).ok_or_else(|| {
            ApiError::NotFound(format!("no lab with id {id:?}: see /labs for the labs"))
        })?),
    };
    let (created, cookie) =
        super::api::start_session(&state, &req, None, lab.map(|l| l.id.as_str())).await?;
    let location = match lab {
        Some(lab) => format!("/labs/{}?session={}", lab.id, created.session.id),
        None => format!("/sessions/{}", created.session.id),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", location))
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
