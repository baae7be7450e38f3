//! A `gantry serve` for one benchmark, and the sessions it creates there.

use super::{gantry_binary, remove_all_containers, vm_rss_kib, BenchDirs, Terminal};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A session the bench created: what it needs to talk to it and to delete it.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub id: String,
    pub token: String,
}

/// A session's container, as the server's state dir describes it.
#[derive(Debug, Clone)]
pub struct SessionContainer {
    pub id: String,
    pub monitor_pid: i32,
    /// The monitor's socket (frames of `gantry::runtime::monitor_proto`).
    pub socket: PathBuf,
}

/// `gantry serve` on 127.0.0.1:0, with its own temporary dirs.
///
/// Dropping it deletes the sessions still registered, stops the server with SIGTERM
/// (SIGKILL after 5 s), runs `gantry rm -f --all` on its state dir and removes the dirs.
pub struct Server {
    pub bin: PathBuf,
    pub addr: SocketAddr,
    pub pid: i32,
    child: Option<Child>,
    log: PathBuf,
    sessions: Mutex<Vec<SessionRef>>,
    http: reqwest::Client,
    // Last, so that it is dropped after the cleanup in `drop` ran.
    pub dirs: BenchDirs,
}

impl Server {
    /// Starts the server with `extra` flags after `serve --listen 127.0.0.1:0`, then those
    /// of `$GANTRY_BENCH_SERVE_ARGS`.
    pub fn start(bench: &str, extra: &[&str]) -> Result<Server> {
        let bin = gantry_binary()?;
        // More flags to try (e.g. `--workers 4`), last so they override the bench's.
        let extra_from_env = std::env::var("GANTRY_BENCH_SERVE_ARGS").unwrap_or_default();
        let dirs = BenchDirs::new(bench)?;
        let log = dirs.path().join("server.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--data-dir")
            .arg(&dirs.data)
            .arg("--state-dir")
            .arg(&dirs.state)
            // A benchmark creates hundreds of sessions from one address: no rate limit.
            .args(["serve", "--listen", "127.0.0.1:0", "--create-rate", "0"])
            .args(extra)
            .args(extra_from_env.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        // Its own process group: Ctrl-C in the terminal reaches the bench, which then
        // stops the server itself, after deleting its sessions.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep the pipe open (and drained) for the server's lifetime.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let mut server = Server {
            bin,
            addr: "127.0.0.1:0".parse().expect("a valid address"),
            pid,
            child: Some(child),
            log,
            sessions: Mutex::new(vec![]),
            http,
            dirs,
        };
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("gantry listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .ok_or_else(|| {
                anyhow!(
                    "gantry serve did not print `gantry listening on http://ADDR` (got {:?}); its log:\n{}",
                    line.trim(),
                    server.log_tail()
                )
            })?;
        if !addr.ip().is_loopback() {
            bail!("gantry serve listens on {addr}, not on a loopback address");
        }
        server.addr = addr;
        Ok(server)
    }

    /// The last lines of the server's log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server process's VmRSS in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        vm_rss_kib(self.pid).ok_or_else(|| {
            anyhow!(
                "the server (pid {}) is gone; its log:\n{}",
                self.pid,
                self.log_tail()
            )
        })
    }

    /// `POST /api/v1/sessions`; the session is registered for cleanup.
    pub async fn create_session(&self) -> Result<SessionRef> {
        let resp = self
            .http
            .post(self.url("/api/v1/sessions"))
            .send()
            .await
            .context("POST /api/v1/sessions")?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .context("reading the POST /api/v1/sessions answer")?;
        if status != reqwest::StatusCode::CREATED {
            bail!("POST /api/v1/sessions answered {status}: {body}");
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).context("parsing the new session's JSON")?;
        let s = SessionRef {
            id: v["id"]
                .as_str()
                .ok_or_else(|| anyhow!("no id in {body}"))?
                .to_string(),
            token: v["token"]
                .as_str()
                .ok_or_else(|| anyhow!("no token in {body}"))?
                .to_string(),
        };
        self.sessions.lock().expect("not poisoned").push(s.clone());
        Ok(s)
    }

    /// `DELETE /api/v1/sessions/{id}`.
    pub async fn delete_session(&self, s: &SessionRef) -> Result<()> {
        let resp = self
            .http
            .delete(self.url(&format!("/api/v1/sessions/{}", s.id)))
            .bearer_auth(&s.token)
            .send()
            .await
            .with_context(|| format!("DELETE /api/v1/sessions/{}", s.id))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            bail!("DELETE /api/v1/sessions/{} answered {status}: {body}", s.id);
        }
        self.sessions
            .lock()
            .expect("not poisoned")
            .retain(|x| x.id != s.id);
        Ok(())
    }

    /// Deletes every registered session, `parallel` at a time.
    pub async fn delete_all(&self, parallel: usize) -> Result<()> {
        let all = self.sessions.lock().expect("not poisoned").clone();
        let results: Vec<Result<()>> =
            futures_util::stream::iter(all.iter().map(|s| self.delete_session(s)))
                .buffer_unordered(parallel)
                .collect()
                .await;
        results.into_iter().collect()
    }

    /// The container of session `s`: the folder under `<state>/containers/` whose
    /// `config.json` names the session.
    pub fn container_of(&self, s: &SessionRef) -> Result<SessionContainer> {
        let dir = self.dirs.state.join("containers");
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let d = entry?.path();
            let Ok(spec) = std::fs::read(d.join("config.json")) else {
                continue;
            };
            let spec: serde_json::Value = serde_json::from_slice(&spec)
                .with_context(|| format!("parsing {}/config.json", d.display()))?;
            if spec["session"].as_str() != Some(s.id.as_str()) {
                continue;
            }
            let state: serde_json::Value = serde_json::from_slice(
                &std::fs::read(d.join("state.json"))
                    .with_context(|| format!("reading {}/state.json", d.display()))?,
            )
            .with_context(|| format!("parsing {}/state.json", d.display()))?;
            let monitor_pid = state["monitor_pid"]
                .as_i64()
                .ok_or_else(|| anyhow!("{}/state.json has no monitor_pid", d.display()))?;
            return Ok(SessionContainer {
                id: d
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                monitor_pid: monitor_pid as i32,
                socket: d.join("monitor.sock"),
            });
        }
        bail!("no container of session {} in {}", s.id, dir.display())
    }

    /// A terminal connection to a session.
    pub async fn terminal(&self, s: &SessionRef) -> Result<Terminal> {
        Terminal::connect(self.addr, s).await
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = vec![];
        // Blocking HTTP on purpose: this runs in Drop, maybe outside any runtime.
        let left = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for s in &left {
            if let Err(e) = blocking_delete(self.addr, s) {
                problems.push(format!("deleting session {}: {e}", s.id));
            }
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: a signal to our own child, which we have not reaped yet.
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        problems.push(format!(
                            "the server (pid {}) ignored SIGTERM for 5 s: killed",
                            self.pid
                        ));
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Err(e) = remove_all_containers(&self.bin, &self.dirs) {
            problems.push(e.to_string());
        }
        problems
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for p in self.cleanup() {
            eprintln!("cleanup: {p}");
        }
    }
}

/// DELETE over a plain blocking socket (for guards).
fn blocking_delete(addr: SocketAddr, s: &SessionRef) -> Result<()> {
    let mut sock = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    sock.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        sock,
        "DELETE /api/v1/sessions/{} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        s.id, s.token
    )?;
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if !status.contains(" 200 ") {
        bail!("answered {status:?}");
    }
    Ok(())
}
