//! The sessions API: tokens, bad input, admission, reaping, clean deletion.

use crate::helpers::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Asks for one more session, expects 429, returns the JSON body.
async fn refused_with_429(srv: &Server) -> serde_json::Value {
    let r = client()
        .post(srv.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_session_needs_its_token() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let url = srv.url(&format!("/api/v1/sessions/{}", s.id));
    let no_token = client().get(&url).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let body: serde_json::Value = no_token.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    let wrong = client()
        .get(&url)
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = get_session(&srv, &s).await;
    assert_eq!(right["state"], "running");
    assert!(right.get("token").is_none(), "the token is only shown once");
    let cookie = client()
        .get(&url)
        .header("Cookie", format!("gantry_session={}", s.token))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status(), 200);
    for bad in [
        "nope",
        "00000000-0000-0000-0000-000000000000",
        "..%2F..%2Fetc",
    ] {
        let r = client()
            .get(srv.url(&format!("/api/v1/sessions/{bad}")))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    assert_eq!(delete_session(&srv, &s).await.status(), 200);
}

#[tokio::test]
async fn bad_bodies_get_a_400_that_says_what_is_wrong() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    for (body, expect) in [
        ("{bad", "invalid JSON"),
        ("{\"image\": \"../etc\"}", "invalid image name"),
        ("{\"image\": \"alpine\"}", "unknown image"),
        ("{\"imgae\": \"busybox\"}", "unknown field"),
        ("[1,2]", "invalid JSON"),
    ] {
        let r = client()
            .post(srv.url("/api/v1/sessions"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(expect), "{body}: {v}");
    }
    let huge = client()
        .post(srv.url("/api/v1/sessions"))
        .body(vec![b' '; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let r = client()
        .get(srv.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let health: serde_json::Value = client()
        .get(srv.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn a_full_class_answers_429_until_a_session_ends() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--max-sessions", "2"]);
    let a = create_session(&srv).await;
    let _b = create_session(&srv).await;
    let v = refused_with_429(&srv).await;
    assert!(
        v["error"].as_str().unwrap().contains("class is full"),
        "{v}"
    );
    delete_session(&srv, &a).await;
    let c = create_session(&srv).await;
    delete_session(&srv, &c).await;
}

#[tokio::test]
async fn deleting_a_session_removes_its_container_and_cgroup() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let cdir = d.state.join("containers").join(&s.container_id);
    let pid = d.container_state(&s.container_id)["pid"].as_i64().unwrap();
    let mem = cgroup_dir(pid, "memory");
    assert!(mem.exists() && cdir.exists());
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(
        limit.trim(),
        (256u64 << 20).to_string(),
        "sessions get the default memory limit"
    );
    let r = delete_session(&srv, &s).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["state"].as_str(), v["end_reason"].as_str()),
        (Some("ended"), Some("deleted"))
    );
    assert!(!mem.exists(), "cgroup removed");
    assert!(!cdir.exists(), "container folder removed");
    assert!(process_gone(pid), "shell gone");
    let again = client()
        .get(srv.url(&format!("/api/v1/sessions/{}/isolation", s.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = again.json().await.unwrap();
    assert_eq!(v["state"], "ended");
}

#[tokio::test]
async fn idle_sessions_are_reaped() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--idle-timeout", "2s", "--reap-interval", "1s"]);
    let s = create_session(&srv).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let v = get_session(&srv, &s).await;
        if v["state"] == "ended" {
            assert_eq!(v["end_reason"], "idle");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session never reaped: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(!d.state.join("containers").join(&s.container_id).exists());
}

#[tokio::test]
async fn the_isolation_panel_shows_private_namespaces_and_limits() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--session-memory", "64m", "--session-pids", "50"]);
    let s = create_session(&srv).await;
    let v: serde_json::Value = client()
        .get(srv.url(&format!("/api/v1/sessions/{}/isolation", s.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "running");
    let ns = v["namespaces"].as_array().unwrap();
    for kind in ["mnt", "uts", "ipc", "pid", "net", "cgroup"] {
        let row = ns.iter().find(|r| r["type"] == kind).unwrap();
        assert_eq!(row["shared"], false, "{row}");
        assert_ne!(row["container"], row["host"]);
    }
    assert_eq!(v["cgroup"]["memory"]["limit_bytes"], 64u64 << 20);
    assert_eq!(v["cgroup"]["pids"]["limit"], 50);
    assert!(v["cgroup"]["pids"]["current"].as_u64().unwrap() >= 1);
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn the_pages_set_a_safe_cookie_and_refuse_strangers() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = no_redirect
        .get(srv.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("Open a shell"));
    let r = no_redirect.post(srv.url("/sessions")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("gantry_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let stranger = no_redirect.get(srv.url(&location)).send().await.unwrap();
    assert_eq!(stranger.status(), 401);
    assert!(stranger.text().await.unwrap().contains("token"));
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("gantry_session=");
    let page = no_redirect
        .get(srv.url(&location))
        .header("Cookie", format!("gantry_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"terminal\""));
    let id = location.trim_start_matches("/sessions/").to_string();
    let s = Session {
        id,
        token: token.to_string(),
        container_id: String::new(),
    };
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn concurrent_creations_never_overfill_the_class() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--max-sessions", "3"]);
    let url = srv.url("/api/v1/sessions");
    let attempts = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { client().post(url).send().await.unwrap() })
    });
    let mut created = vec![];
    let mut full = 0;
    for a in attempts {
        let r = a.await.unwrap();
        match r.status().as_u16() {
            201 => {
                created.push(Session::from_json(&r.json().await.unwrap()));
            }
            429 => full += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created.len(), full), (3, 3));
    for s in &created {
        delete_session(&srv, s).await;
    }
}

#[tokio::test]
async fn other_sites_cannot_open_shells_or_terminals() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    for path in ["/sessions", "/api/v1/sessions"] {
        let r = client()
            .post(srv.url(path))
            .header("Origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.text().await.unwrap().contains("cross-origin"));
    }
    let s = create_session(&srv).await;
    let ws_url = |s: &Session| {
        format!(
            "{}/api/v1/sessions/{}/terminal?token={}",
            srv.base.replace("http://", "ws://"),
            s.id,
            s.token
        )
    };
    let mut evil = ws_url(&s).into_client_request().unwrap();
    evil.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(evil).await.is_err(),
        "a foreign page gets no terminal"
    );
    let mut own = ws_url(&s).into_client_request().unwrap();
    own.headers_mut()
        .insert("Origin", srv.base.parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(own).await.is_ok(),
        "gantry's own page does"
    );
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn one_client_cannot_create_sessions_without_limit() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--create-rate", "3"]);
    let mut made = vec![];
    for _ in 0..3 {
        made.push(create_session(&srv).await);
    }
    let v = refused_with_429(&srv).await;
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("too many new sessions"),
        "{v}"
    );
    for s in &made {
        delete_session(&srv, s).await;
    }
}
