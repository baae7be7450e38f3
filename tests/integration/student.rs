//! The scripted student (the labs issue): for every lab in the catalog, a session started
//! for it, and each step's commands typed into the real WebSocket terminal — into the lab
//! host, whose `gantry` CLI talks to the daemon over its unix socket. Every step with
//! checks must fail its check before its commands and pass it after.

use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};

async fn start_lab_session(srv: &Server, lab: &str) -> Session {
    let resp = reqwest::Client::new()
        .post(srv.url("/api/v1/sessions"))
        .json(&serde_json::json!({ "lab": lab }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["lab"], lab);
    Session::from_json(&v)
}

async fn check(srv: &Server, s: &Session, n: u64) -> Value {
    let resp = reqwest::Client::new()
        .post(srv.url(&format!("/api/v1/sessions/{}/steps/{n}/check", s.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    resp.json().await.unwrap()
}

/// Types one step's commands, a line at a time, each block followed by a marker echo
/// whose output says the shell is done with it.
async fn type_commands(t: &mut Term, lab: &str, n: u64, commands: &[Value]) {
    for (k, block) in commands.iter().enumerate() {
        for line in block.as_str().unwrap().lines() {
            t.send(&format!("{line}\r")).await;
        }
        // (Written `x""-y` so that the echo of the command line does not match.)
        t.send(&format!("echo {lab}-{n}\"\"-{k}-done\r")).await;
        t.expect(&format!("{lab}-{n}-{k}-done\r\n"), 90).await;
    }
}

async fn walk(lab: &str) {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let steps: Value = reqwest::get(srv.url(&format!("/api/v1/labs/{lab}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = start_lab_session(&srv, lab).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    let mut checked = 0;
    for step in steps["steps"].as_array().unwrap() {
        let n = step["number"].as_u64().unwrap();
        let has_check = step["has_check"].as_bool().unwrap();
        if has_check {
            let before = check(&srv, &s, n).await;
            assert_eq!(
                before["passed"], false,
                "lab {lab} step {n} passes before its commands were typed: {before}"
            );
            assert!(
                !before["message"].as_str().unwrap_or("").is_empty(),
                "a failing check tells the student why"
            );
        }
        type_commands(&mut t, lab, n, step["commands"].as_array().unwrap()).await;
        if has_check {
            // Some effects take a moment (an OOM kill, a freeze).
            let deadline = Instant::now() + Duration::from_secs(10);
            let after = loop {
                let v = check(&srv, &s, n).await;
                if v["passed"] == true || Instant::now() > deadline {
                    break v;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let picture: Value = reqwest::Client::new()
                .get(srv.url(&format!("/api/v1/sessions/{}/picture", s.id)))
                .bearer_auth(&s.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or_default();
            let containers: Vec<String> = picture["containers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| format!("{} {} {}", c["name"], c["status"], c["exit_code"]))
                        .collect()
                })
                .unwrap_or_default();
            let out = String::from_utf8_lossy(&t.output);
            let tail: String = out
                .chars()
                .rev()
                .take(1500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            assert_eq!(
                after["passed"], true,
                "lab {lab} step {n} fails after its commands: {after}\ncontainers: {containers:?}\nterminal:\n{tail}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "lab {lab} has checked steps");
    let v = get_session(&srv, &s).await;
    assert_eq!(
        v["passed_steps"].as_array().unwrap().len(),
        checked,
        "progress is stored: {v}"
    );
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn a_student_walks_lab_1_what_happens_when_you_run_a_container() {
    walk("run").await;
}

#[tokio::test]
async fn a_student_walks_lab_2_namespaces() {
    walk("namespaces").await;
}

#[tokio::test]
async fn a_student_walks_lab_3_cgroups() {
    walk("cgroups").await;
}

#[tokio::test]
async fn the_lab_api_answers_only_lab_hosts() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    // Over TCP there are no peer credentials: refused.
    let resp = reqwest::get(srv.url("/lab/v1/containers")).await.unwrap();
    assert_eq!(resp.status(), 403);
    // On the socket, host root is in no session's uid range: refused too.
    {
        use std::io::{Read, Write};
        let mut sock = std::os::unix::net::UnixStream::connect(d.state.join("api/gantry.sock"))
            .expect("the lab socket exists");
        sock.write_all(
            b"GET /lab/v1/containers HTTP/1.1\r\nHost: gantry\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
    // From a lab host, its own containers only: two sessions never see each other's.
    let a = create_session(&srv).await;
    let b = create_session(&srv).await;
    let mut ta = Term::connect(&srv, &a).await;
    let mut tb = Term::connect(&srv, &b).await;
    ta.expect("# ", 10).await;
    tb.expect("# ", 10).await;
    ta.send("gantry run -d --name mine busybox sleep 60; echo a\"\"-started\r")
        .await;
    ta.expect("a-started", 30).await;
    tb.send("gantry ps -a; gantry rm -f mine; echo b\"\"-done\r")
        .await;
    let out = tb.expect("b-done", 30).await;
    assert!(!out.contains("busybox"), "b sees no container of a: {out}");
    assert!(
        out.contains("no container mine"),
        "b cannot remove a's container: {out}"
    );
    ta.send("gantry ps; echo a\"\"-listed\r").await;
    let out = ta.expect("a-listed", 30).await;
    assert!(out.contains("mine"), "a's container is still there: {out}");
    delete_session(&srv, &a).await;
    delete_session(&srv, &b).await;
}

#[tokio::test]
async fn names_are_per_session_and_paused_or_resized_containers_behave() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let a = create_session(&srv).await;
    let b = create_session(&srv).await;
    let mut ta = Term::connect(&srv, &a).await;
    let mut tb = Term::connect(&srv, &b).await;
    ta.expect("# ", 10).await;
    tb.expect("# ", 10).await;
    // The same name in two sessions.
    for (t, tag) in [(&mut ta, "a"), (&mut tb, "b")] {
        t.send(&format!(
            "gantry run -d --name small --memory 64m busybox sleep 600 && echo {tag}\"\"-ran\r"
        ))
        .await;
        t.expect(&format!("{tag}-ran"), 30).await;
    }
    // Raising a memory limit from the page raises it in the kernel.
    let http = reqwest::Client::new();
    let put = http
        .put(srv.url(&format!(
            "/api/v1/sessions/{}/containers/small/limits",
            a.id
        )))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({ "memory": "128m" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    let pic: Value = http
        .get(srv.url(&format!("/api/v1/sessions/{}/picture", a.id)))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let small = &pic["containers"][0];
    assert_eq!(small["name"], "small");
    assert_eq!(
        small["cgroup"]["memory"]["limit_bytes"],
        128u64 << 20,
        "{pic}"
    );
    let host_pid = small["pids"]["host"].as_i64().unwrap();
    // A paused container can still be removed, and nothing of it stays.
    ta.send("gantry pause small && gantry rm -f small && echo a\"\"-removed\r")
        .await;
    ta.expect("a-removed", 30).await;
    eventually(10, "the paused container's process is gone", || {
        process_gone(host_pid)
    })
    .await;
    tb.send("gantry ps; echo b\"\"-listed\r").await;
    let out = tb.expect("b-listed", 30).await;
    assert!(out.contains("small"), "b's small is untouched: {out}");
    delete_session(&srv, &a).await;
    delete_session(&srv, &b).await;
}

#[tokio::test]
async fn a_student_walks_lab_4_networking_modes() {
    walk("networks").await;
}

#[tokio::test]
async fn a_student_walks_lab_5_storage() {
    walk("storage").await;
}

#[tokio::test]
async fn exec_with_a_terminal_gives_an_interactive_shell_in_a_container() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    t.send(
        "gantry run -d --name web --hostname webhost busybox sleep 600; gantry exec -it web sh\r",
    )
    .await;
    // The prompt of a shell inside web (its hostname), on a pty of its own.
    t.expect("webhost", 30).await;
    t.send("echo inside-$((40+2)); tty; exit 3\r").await;
    t.expect("inside-42", 10).await;
    t.expect("/dev/pts/", 10).await;
    // Back on the lab host once the shell in web has exited.
    t.expect("root@labhost:~# ", 10).await;
    t.send("echo code=$?\r").await;
    t.expect("code=3", 10).await;
    // And an interactive container of its own: gantry run -it.
    t.send("gantry run -it --rm --hostname inner busybox sh\r")
        .await;
    t.expect("inner", 30).await;
    t.send("echo run-$((1+2)); exit 5\r").await;
    t.expect("run-3", 10).await;
    t.expect("root@labhost:~# ", 10).await;
    t.send("echo code=$?\r").await;
    t.expect("code=5", 10).await;
    delete_session(&srv, &s).await;
}
