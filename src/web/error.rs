//! One error type for the web layer that knows its status code: JSON for the API, an
//! HTML page for pages. 5xx answers say little and log everything; 4xx say what was wrong.

use crate::session::SessionError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Session(e) => match e {
                SessionError::NotFound(_) | SessionError::Missing(_) => StatusCode::NOT_FOUND,
                SessionError::Unauthorized => StatusCode::UNAUTHORIZED,
                SessionError::Full(_) => StatusCode::TOO_MANY_REQUESTS,
                SessionError::BadRequest(_) => StatusCode::BAD_REQUEST,
                SessionError::Ended(_) => StatusCode::GONE,
                SessionError::Conflict(_) => StatusCode::CONFLICT,
                SessionError::Start(_) | SessionError::Store(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told.
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error: the server could not complete the request (see its log)".into()
        } else {
            self.to_string()
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status());
        if self.status() == StatusCode::TOO_MANY_REQUESTS {
            resp.insert_header(("Retry-After", "30"));
        }
        resp.json(serde_json::json!({ "error": self.public_message() }))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    status: u16,
    message: String,
}

/// The same errors, rendered as a page.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub ApiError);

impl From<SessionError> for PageError {
    fn from(e: SessionError) -> Self {
        PageError(ApiError::Session(e))
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.0.status();
        let body = ErrorTemplate {
            status: status.as_u16(),
            message: self.0.public_message(),
        }
        .render()
        .unwrap_or_else(|_| "error".into());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}
