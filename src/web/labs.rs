//! The lab catalog over HTTP: `GET /api/v1/labs`, `GET /api/v1/labs/{id}`, and the pages
//! `/labs` and `/labs/{id}` built from the same views.

use super::auth;
use super::error::{ApiError, PageError};
use super::pages::html;
use super::AppState;
use crate::lab::{Lab, SessionNeeds, Step};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

/// A lab as the catalog lists it.
#[derive(Debug, Serialize)]
pub struct LabSummary {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub minutes: u32,
    /// How many steps.
    pub steps: usize,
}

impl From<&Lab> for LabSummary {
    fn from(lab: &Lab) -> Self {
        LabSummary {
            id: lab.id.to_string(),
            title: lab.title.clone(),
            summary: lab.summary.clone(),
            minutes: lab.minutes,
            steps: lab.steps.len(),
        }
    }
}

/// What a session for the lab is started with.
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub image: String,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    pub disk_bytes: Option<u64>,
    pub features: Vec<&'static str>,
}

impl From<&SessionNeeds> for SessionView {
    fn from(s: &SessionNeeds) -> Self {
        SessionView {
            image: s.image.to_string(),
            memory_bytes: s.memory.map(|m| m.bytes()),
            cpus: s.cpus.map(|c| c.cpus()),
            pids: s.pids.map(|p| p.get()),
            disk_bytes: s.disk.map(|d| d.bytes()),
            features: s.features.iter().map(|f| f.as_str()).collect(),
        }
    }
}

/// One step as the page and the API show it (the checks stay on the server).
#[derive(Debug, Serialize)]
pub struct StepView {
    pub number: usize,
    pub title: String,
    /// Rendered and escaped by the server; each command has a `button.run-code`.
    pub html: String,
    pub commands: Vec<String>,
    pub has_check: bool,
    pub hints: Vec<String>,
}

impl From<&Step> for StepView {
    fn from(s: &Step) -> Self {
        StepView {
            number: s.number,
            title: s.title.clone(),
            html: s.html.clone(),
            commands: s.commands.clone(),
            has_check: s.has_check(),
            hints: s.hints.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LabView {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub minutes: u32,
    pub session: SessionView,
    pub steps: Vec<StepView>,
}

impl From<&Lab> for LabView {
    fn from(lab: &Lab) -> Self {
        LabView {
            id: lab.id.to_string(),
            title: lab.title.clone(),
            summary: lab.summary.clone(),
            minutes: lab.minutes,
            session: (&lab.session).into(),
            steps: lab.steps.iter().map(StepView::from).collect(),
        }
    }
}

fn find<'a>(state: &'a AppState, id: &str) -> Result<&'a Lab, ApiError> {
    state.labs.get(id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no lab with id {id:?}: GET /api/v1/labs lists the labs"
        ))
    })
}

pub async fn list_labs(state: web::Data<AppState>) -> HttpResponse {
    let labs: Vec<LabSummary> = state.labs.labs().iter().map(LabSummary::from).collect();
    HttpResponse::Ok().json(labs)
}

pub async fn get_lab(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(LabView::from(find(&state, &id)?)))
}

#[derive(Template)]
#[template(path = "labs.html")]
struct CatalogPage {
    labs: Vec<LabSummary>,
}

#[derive(Template)]
#[template(path = "lab.html")]
struct LabPage {
    lab: LabView,
    /// The session whose terminal the page shows, if the student started one.
    session: Option<String>,
    /// The tab of the "What the kernel did" panel the page opens on.
    picture_view: &'static str,
}

/// The picture a lab is about: the launch trace for the lab on `run`, the cgroup charts
/// for the cgroups lab, the topology for the networks lab, the layers and mounts for the
/// storage lab, and the namespace map for the namespaces lab and any other.
fn picture_view(lab_id: &str) -> &'static str {
    match lab_id {
        "run" => "trace",
        "cgroups" => "cgroups",
        "networks" => "network",
        "storage" => "storage",
        _ => "namespaces",
    }
}

pub async fn catalog_page(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    html(CatalogPage {
        labs: state.labs.labs().iter().map(LabSummary::from).collect(),
    })
}

#[derive(Debug, Deserialize)]
pub struct LabPageQuery {
    pub session: Option<String>,
}

/// `/labs/{id}`: the steps, and with `?session=<id>` that session's terminal beside them.
pub async fn lab_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<LabPageQuery>,
) -> Result<HttpResponse, PageError> {
    let lab = LabView::from(find(&state, &id)?);
    let picture_view = picture_view(&lab.id);
    let Some(sid) = query.into_inner().session else {
        return html(LabPage {
            lab,
            session: None,
            picture_view,
        });
    };
    let token = auth::token(&req);
    let row = state.sessions.authorize(&sid, token.as_deref())?;
    let mut resp = html(LabPage {
        lab,
        session: Some(row.id.clone()),
        picture_view,
    })?;
    // As on the session page: a link with ?token= becomes the cookie the scripts use.
    if let Some(t) = token {
        let _ = resp.add_cookie(&auth::session_cookie(
            &t,
            row.expires_at - crate::runtime::state::now(),
        ));
    }
    Ok(resp)
}

/// `POST /api/v1/sessions/{id}/steps/{n}/check` → `{"passed": bool, "message": "..."}`:
/// runs step `n` (from 1) of the session's lab against the session, and records it when
/// it passes.
pub async fn check_step(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, u32)>,
) -> Result<HttpResponse, ApiError> {
    super::auth::same_origin(&req)?;
    let (id, n) = path.into_inner();
    let row = super::api::authorized(&state, &req, &id)?;
    let row = state.sessions.refresh(row)?;
    if row.state != "running" {
        return Err(crate::session::SessionError::Ended(row.id).into());
    }
    let lab_id = row.lab.clone().ok_or_else(|| {
        ApiError::BadRequest(
            "this session was not started for a lab: start one with {\"lab\": \"<id>\"}".into(),
        )
    })?;
    let lab = state
        .labs
        .get(&lab_id)
        .ok_or_else(|| ApiError::NotFound(format!("lab {lab_id} is no longer in the catalog")))?;
    let step = lab.step(n as usize).ok_or_else(|| {
        ApiError::NotFound(format!(
            "lab {lab_id} has steps 1 to {}, not {n}",
            lab.steps.len()
        ))
    })?;
    let outcome = crate::lab::evaluate::check_step(&state.sessions, &row, n, &step.checks).await;
    Ok(HttpResponse::Ok().json(outcome))
}

#[cfg(test)]
mod tests {
    use super::picture_view;

    #[test]
    fn each_lab_page_opens_on_the_picture_its_lab_is_about() {
        assert_eq!(picture_view("run"), "trace");
        assert_eq!(picture_view("namespaces"), "namespaces");
        assert_eq!(picture_view("cgroups"), "cgroups");
        assert_eq!(picture_view("networks"), "network");
        assert_eq!(picture_view("storage"), "storage");
        assert_eq!(picture_view("networking"), "namespaces");
    }
}
