//! Where a request carries its session token: `Authorization: Bearer <token>`, the
//! `gantry_session` cookie (set by the pages, HttpOnly), or `?token=` (for WebSocket
//! clients that cannot set headers).

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
