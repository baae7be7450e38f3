//! The `gantry` CLI inside a lab host: every command is a REST request to the daemon
//! over the unix socket named by `GANTRY_HOST` (`unix:///run/gantry/gantry.sock`), as the
//! `docker` CLI talks to `dockerd`. Terminals (`run -it`, and the output of a foreground
//! `run`) use the same WebSocket protocol as the browser's.
//!
//! The HTTP here is the smallest that works: one request per connection, `Connection:
//! close`, a Content-Length body or a chunked one.

use super::containers::{LogsArgs, PsArgs, RmArgs};
use super::run::RunArgs;
use super::{ExecArgs, NameArgs};
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// A connection to the daemon.
pub struct Daemon {
    socket: std::path::PathBuf,
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the daemon's answer is not JSON")
    }

    /// The body as JSON if the status is 2xx, else the daemon's error message.
    fn ok(self) -> anyhow::Result<serde_json::Value> {
        if (200..300).contains(&self.status) {
            return self.json();
        }
        let msg = self
            .json()
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        bail!("{msg}")
    }
}

impl Daemon {
    /// From `GANTRY_HOST=unix:///path`.
    pub fn from_env(host: &str) -> anyhow::Result<Self> {
        let path = host.strip_prefix("unix://").with_context(|| {
            format!("GANTRY_HOST={host} is not supported: use unix:///path/to/gantry.sock")
        })?;
        Ok(Daemon {
            socket: path.into(),
        })
    }

    fn connect(&self) -> anyhow::Result<UnixStream> {
        UnixStream::connect(&self.socket).with_context(|| {
            format!(
                "cannot reach the gantry daemon at {}: is the server running?",
                self.socket.display()
            )
        })
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let mut s = self.connect()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: gantry\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = vec![];
        s.read_to_end(&mut raw)
            .context("reading the daemon's answer")?;
        parse_response(&raw)
    }
}

/// Parses an HTTP/1.1 response (status line, headers, a Content-Length, chunked or
/// until-close body).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<Answer> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the daemon's answer has no header end")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("the daemon's answer has no status")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut out = vec![];
        let mut p = rest;
        while let Some(nl) = p.windows(2).position(|w| w == b"\r\n") {
            let size_txt = String::from_utf8_lossy(&p[..nl]);
            let size = usize::from_str_radix(size_txt.split(';').next().unwrap_or("0").trim(), 16)
                .context("bad chunk size")?;
            p = &p[nl + 2..];
            if size == 0 || p.len() < size {
                break;
            }
            out.extend_from_slice(&p[..size]);
            p = &p[(size + 2).min(p.len())..];
        }
        out
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, body })
}

/// Runs one CLI command against the daemon; returns the exit code.
pub fn main(host: &str, command: super::Command) -> anyhow::Result<i32> {
    use super::Command as C;
    let d = Daemon::from_env(host)?;
    match command {
        C::Run(a) => run(&d, *a),
        C::Ps(a) => ps(&d, a),
        C::Rm(a) => rm(&d, a),
        C::Logs(a) => logs(&d, a),
        C::Images => images(&d),
        C::Inspect(a) => {
            let v = d
                .request("GET", &format!("/lab/v1/containers/{}", a.container), None)?
                .ok()?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        C::Stats(a) => stats(&d, a),
        C::Exec(a) => exec(&d, a),
        C::Network(a) => network(&d, a.command),
        C::Volume(a) => volume(&d, a.command),
        C::Diff(a) => {
            let v = d
                .request(
                    "GET",
                    &format!("/lab/v1/containers/{}/diff", a.container),
                    None,
                )?
                .ok()?;
            for c in v.as_array().cloned().unwrap_or_default() {
                println!(
                    "{} {}",
                    c["kind"].as_str().unwrap_or("?"),
                    c["path"].as_str().unwrap_or("")
                );
            }
            Ok(0)
        }
        C::Pause(a) => pause(&d, a, true),
        C::Unpause(a) => pause(&d, a, false),
        C::Serve(_) | C::Monitor { .. } | C::ExecIn { .. } | C::Lab(_) => {
            bail!("this command runs on the real host, not inside a lab host")
        }
    }
}

fn run(d: &Daemon, a: RunArgs) -> anyhow::Result<i32> {
    let req = serde_json::json!({
        "image": a.image,
        "name": a.name,
        "command": a.command,
        "env": a.env,
        "hostname": a.hostname,
        "workdir": a.workdir,
        "tty": a.tty,
        "interactive": a.interactive,
        "memory": a.memory,
        "cpus": a.cpus,
        "pids_limit": a.pids_limit,
        "network": a.network,
        "volumes": a.volumes,
        "tmpfs": a.tmpfs,
        "volumes_from": a.volumes_from,
        "publish": a.publish,
        "node": a.node,
        // A foreground --rm is removed by this command once it has the exit code.
        "rm": a.rm && a.detach,
    });
    let v = d.request("POST", "/lab/v1/containers", Some(&req))?.ok()?;
    let id = v["id"]
        .as_str()
        .context("the daemon did not say the id")?
        .to_string();
    if a.detach {
        println!("{id}");
        return Ok(0);
    }
    let code = attach(d, &id, a.tty, a.interactive)?;
    if a.rm {
        let _ = d.request(
            "DELETE",
            &format!("/lab/v1/containers/{id}?force=true"),
            None,
        );
    }
    Ok(code)
}

/// Follows a container's terminal until it exits; returns its exit code.
fn attach(d: &Daemon, id: &str, tty: bool, interactive: bool) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let socket = d.socket.clone();
    let id2 = id.to_string();
    let path = format!("/lab/v1/containers/{id}/attach");
    let streamed =
        rt.block_on(async move { stream_terminal(&socket, &path, &id2, tty, interactive).await });
    // Its stdin reader may be blocked in read(2), which nothing can interrupt: do not
    // wait for it.
    rt.shutdown_background();
    match streamed {
        Ok(Some(code)) => Ok(code),
        // Gone before we attached: its output is in the log, its code in `wait`.
        Ok(None) | Err(_) => {
            let out = d
                .request("GET", &format!("/lab/v1/containers/{id}/logs"), None)?
                .body;
            std::io::stdout().write_all(&out)?;
            let v = d
                .request("GET", &format!("/lab/v1/containers/{id}/wait"), None)?
                .ok()?;
            Ok(v["exit_code"].as_i64().unwrap_or(125) as i32)
        }
    }
}

/// The terminal WebSocket over the unix socket. `Ok(None)` if it closed without an
/// exit frame.
async fn stream_terminal(
    socket: &std::path::Path,
    path: &str,
    id: &str,
    tty: bool,
    interactive: bool,
) -> anyhow::Result<Option<i32>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let url = format!("ws://gantry{path}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    let (mut tx, mut rx) = ws.split();
    let _raw = if tty {
        Some(super::attach::RawMode::enter())
    } else {
        None
    };
    if let Some((cols, rows)) = super::attach::window_size() {
        let mut f = vec![1u8];
        f.extend_from_slice(format!("{{\"cols\":{cols},\"rows\":{rows}}}").as_bytes());
        tx.send(Message::Binary(f.into())).await?;
    }
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 4096];
    let mut stdin_open = interactive;
    loop {
        tokio::select! {
            n = stdin.read(&mut buf), if stdin_open => {
                match n {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                    }
                    Ok(n) => {
                        let mut f = vec![0u8];
                        f.extend_from_slice(&buf[..n]);
                        tx.send(Message::Binary(f.into())).await?;
                    }
                }
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { return Ok(None) };
                match msg {
                    Message::Binary(b) if !b.is_empty() => match b[0] {
                        0 => {
                            stdout.write_all(&b[1..]).await?;
                            stdout.flush().await?;
                        }
                        3 => {
                            let v: serde_json::Value = serde_json::from_slice(&b[1..]).unwrap_or_default();
                            if v["oom_killed"].as_bool() == Some(true) {
                                eprintln!("\r\ngantry: container {id} was killed by the OOM killer\r");
                            }
                            return Ok(Some(v["exit_code"].as_i64().unwrap_or(125) as i32));
                        }
                        _ => {}
                    },
                    Message::Close(_) => return Ok(None),
                    _ => {}
                }
            }
        }
    }
}

fn ps(d: &Daemon, a: PsArgs) -> anyhow::Result<i32> {
    let path = if a.all {
        "/lab/v1/containers?all=true"
    } else {
        "/lab/v1/containers"
    };
    let v = d.request("GET", path, None)?.ok()?;
    let list = v.as_array().cloned().unwrap_or_default();
    if a.quiet {
        for c in &list {
            println!("{}", c["id"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    println!(
        "{:<14}{:<10}{:<24}{:<10}{:<8}{:<10}NAME",
        "CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "PID", "HOST PID"
    );
    for c in &list {
        let cmd = c["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let status = match (c["status"].as_str(), c["exit_code"].as_i64()) {
            (Some("exited"), Some(code)) => format!("exited({code})"),
            (Some(s), _) => s.to_string(),
            _ => "?".into(),
        };
        let num = |k: &str| c[k].as_i64().map(|p| p.to_string()).unwrap_or("-".into());
        println!(
            "{:<14}{:<10}{:<24}{:<10}{:<8}{:<10}{}",
            c["id"].as_str().unwrap_or(""),
            c["image"].as_str().unwrap_or(""),
            format!("\"{}\"", truncate(&cmd, 20)),
            status,
            num("labhost_pid"),
            num("pid"),
            c["name"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn rm(d: &Daemon, a: RmArgs) -> anyhow::Result<i32> {
    let mut keys = a.containers.clone();
    if a.all {
        let v = d
            .request("GET", "/lab/v1/containers?all=true", None)?
            .ok()?;
        keys = v
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
    }
    if keys.is_empty() {
        bail!("name the containers to remove, e.g. gantry rm -f web (or --all)");
    }
    delete_each(d, &keys, |k| {
        format!("/lab/v1/containers/{k}?force={}", a.force)
    })
}

/// DELETEs `path(name)` for each name, printing the ones removed and the errors of the
/// others (as `docker rm` does); exit code 1 if any failed.
fn delete_each(d: &Daemon, names: &[String], path: impl Fn(&str) -> String) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in names {
        match d.request("DELETE", &path(name), None)?.ok() {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("gantry: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn logs(d: &Daemon, a: LogsArgs) -> anyhow::Result<i32> {
    let ans = d.request(
        "GET",
        &format!("/lab/v1/containers/{}/logs", a.container),
        None,
    )?;
    if ans.status != 200 {
        ans.ok()?;
        return Ok(1);
    }
    std::io::stdout().write_all(&ans.body)?;
    Ok(0)
}

fn images(d: &Daemon) -> anyhow::Result<i32> {
    let v = d.request("GET", "/lab/v1/images", None)?.ok()?;
    println!("{:<16}{:<10}SOURCE", "IMAGE", "SIZE");
    for i in v.as_array().cloned().unwrap_or_default() {
        println!(
            "{:<16}{:<10}{}",
            i["name"].as_str().unwrap_or(""),
            format!("{:.1}MB", i["size_bytes"].as_f64().unwrap_or(0.0) / 1e6),
            i["source"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

fn stats(d: &Daemon, a: NameArgs) -> anyhow::Result<i32> {
    let v = d
        .request(
            "GET",
            &format!("/lab/v1/containers/{}/stats", a.container),
            None,
        )?
        .ok()?;
    let c = &v["cgroup"];
    let mib = |x: &serde_json::Value| {
        x.as_u64()
            .map(|b| format!("{:.1}MiB", b as f64 / 1048576.0))
            .unwrap_or("unlimited".into())
    };
    println!(
        "{:<14}{:<24}{:<12}{:<10}PAUSED",
        "CONTAINER", "MEM USAGE / LIMIT", "PIDS", "CPU TIME"
    );
    println!(
        "{:<14}{:<24}{:<12}{:<10}{}",
        a.container,
        format!(
            "{} / {}",
            mib(&c["memory"]["usage_bytes"]),
            mib(&c["memory"]["limit_bytes"])
        ),
        format!(
            "{} / {}",
            c["pids"]["current"].as_u64().unwrap_or(0),
            c["pids"]["limit"]
                .as_u64()
                .map(|l| l.to_string())
                .unwrap_or("max".into())
        ),
        format!(
            "{:.2}s",
            c["cpu"]["usage_ns"].as_u64().unwrap_or(0) as f64 / 1e9
        ),
        v["paused"].as_bool().unwrap_or(false)
    );
    Ok(0)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn exec(d: &Daemon, a: ExecArgs) -> anyhow::Result<i32> {
    if a.tty {
        let command = serde_json::to_string(&a.command)?;
        let path = format!(
            "/lab/v1/containers/{}/exec-tty?command={}",
            a.container,
            query_escape(&command)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let socket = d.socket.clone();
        let name = a.container.clone();
        let code = rt.block_on(async move {
            stream_terminal(&socket, &path, &name, true, a.interactive).await
        });
        rt.shutdown_background();
        return Ok(code?.unwrap_or(125));
    }
    let v = d
        .request(
            "POST",
            &format!("/lab/v1/containers/{}/exec", a.container),
            Some(&serde_json::json!({ "command": a.command })),
        )?
        .ok()?;
    print!("{}", v["output"].as_str().unwrap_or(""));
    std::io::stdout().flush()?;
    Ok(v["exit_code"].as_i64().unwrap_or(125) as i32)
}

fn network(d: &Daemon, cmd: super::NetworkCommand) -> anyhow::Result<i32> {
    use super::NetworkCommand as N;
    match cmd {
        N::Create { name, driver } => {
            let v = d
                .request(
                    "POST",
                    "/lab/v1/networks",
                    Some(&serde_json::json!({ "name": name, "driver": driver })),
                )?
                .ok()?;
            println!("{}", v["name"].as_str().unwrap_or(""));
        }
        N::Ls => {
            let v = d.request("GET", "/lab/v1/networks", None)?.ok()?;
            println!(
                "{:<14}{:<8}{:<14}{:<16}CONTAINERS",
                "NAME", "DRIVER", "BRIDGE", "SUBNET"
            );
            for n in v.as_array().cloned().unwrap_or_default() {
                let names: Vec<String> = n["containers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<14}{:<8}{:<14}{:<16}{}",
                    n["name"].as_str().unwrap_or(""),
                    n["driver"].as_str().unwrap_or(""),
                    n["bridge"].as_str().unwrap_or(""),
                    n["subnet"].as_str().unwrap_or(""),
                    names.join(", ")
                );
            }
        }
        N::Inspect { name } => {
            let v = d
                .request("GET", &format!("/lab/v1/networks/{name}"), None)?
                .ok()?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        N::Rm { names } => {
            return delete_each(d, &names, |n| format!("/lab/v1/networks/{n}"));
        }
        N::Connect { network, container } => {
            let v = d
                .request(
                    "POST",
                    &format!("/lab/v1/networks/{network}/connect"),
                    Some(&serde_json::json!({ "container": container })),
                )?
                .ok()?;
            println!(
                "{container}: {} on {network}",
                v["address"].as_str().unwrap_or("")
            );
        }
        N::Disconnect { network, container } => {
            d.request(
                "POST",
                &format!("/lab/v1/networks/{network}/disconnect"),
                Some(&serde_json::json!({ "container": container })),
            )?
            .ok()?;
            println!("{container}");
        }
    }
    Ok(0)
}

fn volume(d: &Daemon, cmd: super::VolumeCommand) -> anyhow::Result<i32> {
    use super::VolumeCommand as V;
    match cmd {
        V::Create { name } => {
            let v = d
                .request(
                    "POST",
                    "/lab/v1/volumes",
                    Some(&serde_json::json!({ "name": name })),
                )?
                .ok()?;
            println!("{}", v["name"].as_str().unwrap_or(""));
        }
        V::Ls => {
            let v = d.request("GET", "/lab/v1/volumes", None)?.ok()?;
            println!(
                "{:<14}{:<10}{:<44}USED BY",
                "VOLUME", "SIZE", "MOUNTPOINT (in this lab host)"
            );
            for x in v.as_array().cloned().unwrap_or_default() {
                let used: Vec<String> = x["used_by"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| u.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<14}{:<10}{:<44}{}",
                    x["name"].as_str().unwrap_or(""),
                    format!("{}B", x["size_bytes"].as_u64().unwrap_or(0)),
                    x["mountpoint"].as_str().unwrap_or(""),
                    used.join(", ")
                );
            }
        }
        V::Inspect { name } => {
            let v = d
                .request("GET", &format!("/lab/v1/volumes/{name}"), None)?
                .ok()?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        V::Rm { names } => {
            return delete_each(d, &names, |n| format!("/lab/v1/volumes/{n}"));
        }
    }
    Ok(0)
}

fn pause(d: &Daemon, a: NameArgs, paused: bool) -> anyhow::Result<i32> {
    let verb = if paused { "pause" } else { "unpause" };
    d.request(
        "POST",
        &format!("/lab/v1/containers/{}/{verb}", a.container),
        None,
    )?
    .ok()?;
    println!("{}", a.container);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_or_chunks_are_read() {
        let a = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"{}"[..]));
        let c = parse_response(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((c.status, c.body.as_slice()), (404, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}
