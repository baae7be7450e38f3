//! Where a request carries its session token: `Authorization: Bearer <token>`, the
//! `gantry_session` cookie (set by the pages, HttpOnly), or `?token=` (for WebSocket
//! clients that cannot set headers).

use super::error::ApiError;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;

pub const COOKIE: &str = "gantry_session";

/// The token a request presents, if any.
pub fn token(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        if let Some(t) = h.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            return Some(t.trim().to_string());
        }
    }
    if let Some(t) = query_token(req.query_string()) {
        return Some(t);
    }
    req.cookie(COOKIE).map(|c| c.value().to_string())
}

fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

/// Refuses a request that a browser sent on behalf of another site: if it carries an
/// `Origin` header, the origin's host must be this server's `Host`. (Scripts and `curl`
/// send no Origin and authenticate with the token; the cookie is SameSite=Strict too, so
/// this is the second lock on the same door.) Applied to WebSocket upgrades and to every
/// request that changes something.
pub fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "cross-origin request refused: {origin:?} is not this server ({host})"
        )))
    }
}

/// The session cookie: HttpOnly (scripts cannot read it), SameSite=Strict (other sites
/// cannot make the browser use it).
pub fn session_cookie(token: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(COOKIE, token.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_token_must_look_like_a_token() {
        assert_eq!(query_token("a=1&token=abc123"), Some("abc123".into()));
        assert_eq!(query_token("token="), None);
        assert_eq!(query_token("token=<script>"), None);
    }
}
