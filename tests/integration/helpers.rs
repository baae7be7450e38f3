//! What every integration test needs: the real gantry binary, private data and state dirs,
//! a real server on port 0, a real WebSocket client.

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub fn gantry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gantry")
}

/// These tests use real namespaces, cgroups and mounts: without root they cannot run,
/// and they say so instead of passing.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for real namespaces, cgroups and mounts: run the suite with sudo (CI runs it as root)"
    );
}

/// A private data dir and state dir; every container in them is removed on drop.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub state: PathBuf,
}

impl Dirs {
    pub fn new() -> Self {
        require_root();
        let tmp = tempfile::Builder::new()
            .prefix("gantry-test-")
            .tempdir()
            .unwrap();
        let data = tmp.path().join("data");
        let state = tmp.path().join("state");
        Dirs { tmp, data, state }
    }

    pub fn gantry(&self) -> Command {
        let mut c = Command::new(gantry_bin());
        c.arg("--data-dir")
            .arg(&self.data)
            .arg("--state-dir")
            .arg(&self.state);
        c
    }

    /// `gantry run ARGS` with empty stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.gantry()
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn container_state(&self, id: &str) -> serde_json::Value {
        let p = self.state.join("containers").join(id).join("state.json");
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = self
            .gantry()
            .args(["rm", "-f", "--all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The directory of a container's cgroup in one v1 controller, as the host sees it.
pub fn cgroup_dir(pid: i64, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} controller in /proc/{pid}/cgroup"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel.trim_start_matches('/'))
}

/// A real `gantry serve` on a free port.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(dirs: &Dirs, extra: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dirs.tmp.path().join("server.log"))
            .unwrap();
        let mut child = dirs
            .gantry()
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("gantry listening on ")
            .unwrap_or_else(|| {
                let log =
                    std::fs::read_to_string(dirs.tmp.path().join("server.log")).unwrap_or_default();
                panic!("server did not start: {line:?}\n{log}")
            })
            .to_string();
        Server { child, base }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&mut self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }
}

/// A session made through the API.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub container_id: String,
}

pub async fn create_session(server: &Server) -> Session {
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    Session::from_json(&resp.json().await.unwrap())
}

impl Session {
    /// From the body of a 201 answer to `POST /api/v1/sessions`.
    pub fn from_json(v: &serde_json::Value) -> Session {
        Session {
            id: v["id"].as_str().unwrap().into(),
            token: v["token"].as_str().unwrap().into(),
            container_id: v["container_id"].as_str().unwrap().into(),
        }
    }
}

pub async fn get_session(server: &Server, s: &Session) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/sessions/{}", s.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub async fn delete_session(server: &Server, s: &Session) -> reqwest::Response {
    reqwest::Client::new()
        .delete(server.url(&format!("/api/v1/sessions/{}", s.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal client speaking docs/terminal-protocol.md, answering the cursor-position
/// query as xterm.js does.
pub struct Term {
    pub ws: Ws,
    /// All output received so far.
    pub output: Vec<u8>,
    /// Where the last `expect` matched.
    mark: usize,
    pub hello: Option<serde_json::Value>,
    pub exit: Option<serde_json::Value>,
    pub closed: Option<(u16, String)>,
}

impl Term {
    pub async fn connect(server: &Server, s: &Session) -> Term {
        let url = format!(
            "{}/api/v1/sessions/{}/terminal?token={}",
            server.base.replace("http://", "ws://"),
            s.id,
            s.token
        );
        // disable_nagle: like a browser, send each small frame at once.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .unwrap();
        Term {
            ws,
            output: vec![],
            mark: 0,
            hello: None,
            exit: None,
            closed: None,
        }
    }

    pub async fn send_raw(&mut self, frame: Vec<u8>) {
        self.ws.send(Message::Binary(frame.into())).await.unwrap();
    }

    pub async fn send(&mut self, text: &str) {
        let mut f = vec![0u8];
        f.extend_from_slice(text.as_bytes());
        self.send_raw(f).await;
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) {
        let mut f = vec![1u8];
        f.extend_from_slice(format!("{{\"cols\":{cols},\"rows\":{rows}}}").as_bytes());
        self.send_raw(f).await;
    }

    /// Handles one incoming message; false when the connection is over.
    pub async fn pump(&mut self) -> bool {
        match self.ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                match b.first() {
                    Some(0) => {
                        let data = &b[1..];
                        self.output.extend_from_slice(data);
                        if data.windows(4).any(|w| w == b"\x1b[6n") {
                            self.send("\x1b[24;3R").await;
                        }
                    }
                    Some(3) => self.exit = serde_json::from_slice(&b[1..]).ok(),
                    Some(5) => self.hello = serde_json::from_slice(&b[1..]).ok(),
                    _ => {}
                }
                true
            }
            Some(Ok(Message::Close(c))) => {
                self.closed = Some(
                    c.map(|c| (u16::from(c.code), c.reason.to_string()))
                        .unwrap_or((1005, String::new())),
                );
                false
            }
            Some(Ok(_)) => true,
            Some(Err(_)) | None => {
                self.closed.get_or_insert((1006, String::new()));
                false
            }
        }
    }

    /// Reads until the output after the last match contains `needle`; returns that
    /// output. Fails the test (showing what arrived) after `secs` seconds.
    pub async fn expect(&mut self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        // Search only what arrived since the last look (floods make the output large).
        let mut scanned = self.mark;
        loop {
            if let Some(pos) = find(&self.output[scanned..], needle.as_bytes()) {
                let end = scanned + pos + needle.len();
                let text = String::from_utf8_lossy(&self.output[self.mark..end]).into_owned();
                self.mark = end;
                return text;
            }
            scanned = self
                .output
                .len()
                .saturating_sub(needle.len())
                .max(self.mark);
            let left = deadline.saturating_duration_since(Instant::now());
            let alive = tokio::time::timeout(left, self.pump())
                .await
                .unwrap_or_default();
            if !alive || Instant::now() >= deadline {
                let tail = &self.output[self.mark.max(self.output.len().saturating_sub(2000))..];
                panic!(
                    "waited {secs}s for {needle:?}; closed: {:?}; the last output: {:?}",
                    self.closed,
                    String::from_utf8_lossy(tail)
                );
            }
        }
    }

    /// Reads until the server closes the connection.
    pub async fn until_closed(&mut self, secs: u64) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, self.pump()).await.is_err() {
                panic!("the server did not close the terminal within {secs}s");
            }
        }
        self.closed.clone().unwrap()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// True once `pid` has exited (a zombie counts: it only waits to be reaped).
pub fn process_gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| matches!(rest.split_whitespace().next(), Some("Z" | "X"))),
        Err(_) => true,
    }
}

/// Waits (polling) until `cond` holds; fails with `what` after `secs` seconds.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, what: &str, mut cond: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Types `line` into the shell of `t`, followed by a marker echo, and returns the output up
/// to the marker (written `x""-y` so the echo of the typed line does not match).
pub async fn sh(t: &mut Term, line: &str, tag: &str) -> String {
    t.send(&format!("{line}; echo {tag}\"\"-end\r")).await;
    t.expect(&format!("{tag}-end\r\n"), 60).await
}
