//! A client of the terminal WebSocket (docs/terminal-protocol.md): binary frames whose
//! first byte is an opcode.

use super::SessionRef;
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub const OP_DATA: u8 = 0;
pub const OP_RESIZE: u8 = 1;
pub const OP_ACK: u8 = 2;
pub const OP_EXIT: u8 = 3;
pub const OP_HELLO: u8 = 5;

/// busybox's "where is the cursor?" query, and the answer xterm.js would give.
pub const DSR: &[u8] = b"\x1b[6n";
pub const CPR: &[u8] = b"\x1b[24;3R";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A client of the terminal protocol (docs/terminal-protocol.md).
pub struct Terminal {
    ws: Ws,
    /// Last bytes of output, to find a DSR split across frames.
    tail: Vec<u8>,
    pub hello: serde_json::Value,
    /// Output bytes received (op 0 payloads).
    pub received: u64,
    /// Output frames received (op 0).
    pub frames: u64,
    /// Output already received that [`Terminal::read_until`] did not consume (what came
    /// after its needle in the same frame); returned first by [`Terminal::output`].
    pending: Vec<u8>,
    /// Acknowledge output as gantry's front end does (static/terminal.js): in batches of
    /// 32 KiB, or half the server's flow window if that is smaller. Switches the server
    /// to ack-based flow control. (The front end also flushes after 100 ms of quiet; with
    /// a window of at least two batches nothing stalls without it.)
    pub auto_ack: bool,
    unacked: u64,
    ack_every: u64,
}

impl Terminal {
    /// Connects (Nagle off, as browsers do for WebSockets) and reads the hello frame.
    pub async fn connect(addr: SocketAddr, s: &SessionRef) -> Result<Terminal> {
        let url = format!(
            "ws://{addr}/api/v1/sessions/{}/terminal?token={}",
            s.id, s.token
        );
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .with_context(|| format!("opening the terminal WebSocket of session {}", s.id))?;
        let mut t = Terminal {
            ws,
            tail: vec![],
            hello: serde_json::Value::Null,
            received: 0,
            frames: 0,
            pending: vec![],
            auto_ack: false,
            unacked: 0,
            ack_every: 32 * 1024,
        };
        let first = tokio::time::timeout(Duration::from_secs(10), t.next_frame())
            .await
            .map_err(|_| anyhow!("no hello frame within 10 s from session {}", s.id))??
            .ok_or_else(|| anyhow!("session {} closed the terminal before its hello", s.id))?;
        if first.first() != Some(&OP_HELLO) {
            bail!(
                "the first terminal frame has opcode {:?}, not hello (5)",
                first.first()
            );
        }
        t.hello = serde_json::from_slice(&first[1..]).context("parsing the hello frame")?;
        if let Some(window) = t.hello["flow_window"].as_u64().filter(|w| *w > 0) {
            t.ack_every = t.ack_every.min(window / 2).max(1);
        }
        Ok(t)
    }

    async fn send_frame(&mut self, op: u8, payload: &[u8]) -> Result<()> {
        let mut f = Vec::with_capacity(payload.len() + 1);
        f.push(op);
        f.extend_from_slice(payload);
        self.ws
            .send(Message::binary(f))
            .await
            .context("sending a terminal frame")
    }

    /// Keystrokes (op 0).
    pub async fn input(&mut self, data: &[u8]) -> Result<()> {
        self.send_frame(OP_DATA, data).await
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<()> {
        self.send_frame(
            OP_RESIZE,
            format!("{{\"cols\":{cols},\"rows\":{rows}}}").as_bytes(),
        )
        .await
    }

    /// Acknowledges `n` processed output bytes (op 2; switches on flow control).
    pub async fn ack(&mut self, n: u32) -> Result<()> {
        self.send_frame(OP_ACK, &n.to_be_bytes()).await
    }

    /// The next binary frame, whole; `None` once the server closed.
    async fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
                Some(Ok(Message::Close(c))) => {
                    if let Some(c) = c {
                        if u16::from(c.code) != 1000 {
                            bail!(
                                "the server closed the terminal with {}: {}",
                                c.code,
                                c.reason
                            );
                        }
                    }
                    return Ok(None);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the terminal WebSocket"),
                None => return Ok(None),
            }
        }
    }

    /// The next output payload (op 0), answering every cursor query in it as xterm.js
    /// would; `None` when the shell exited or the server closed.
    pub async fn output(&mut self) -> Result<Option<Vec<u8>>> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        loop {
            let Some(f) = self.next_frame().await? else {
                return Ok(None);
            };
            match f.first() {
                Some(&OP_DATA) => {
                    let data = f[1..].to_vec();
                    self.received += data.len() as u64;
                    self.frames += 1;
                    // The tail is shorter than a query, so every match here is new.
                    let mut window = std::mem::take(&mut self.tail);
                    window.extend_from_slice(&data);
                    let queries = window.windows(DSR.len()).filter(|w| *w == DSR).count();
                    self.tail = window[window.len().saturating_sub(DSR.len() - 1)..].to_vec();
                    for _ in 0..queries {
                        self.input(CPR).await?;
                    }
                    if self.auto_ack {
                        self.unacked += data.len() as u64;
                        if self.unacked >= self.ack_every {
                            let n = std::mem::take(&mut self.unacked);
                            self.ack(n as u32).await?;
                        }
                    }
                    return Ok(Some(data));
                }
                Some(&OP_EXIT) => return Ok(None),
                _ => continue, // unknown opcodes are ignored, as the protocol asks
            }
        }
    }

    /// Reads output until `needle` has appeared in it (keeping only a short tail, so a
    /// flood of any size can be read through). What follows the needle is kept for the
    /// next read.
    pub async fn read_until(&mut self, needle: &[u8], limit: Duration) -> Result<()> {
        let mut seen: Vec<u8> = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let chunk = tokio::time::timeout_at(deadline, self.output())
                .await
                .map_err(|_| {
                    anyhow!(
                        "{:?} did not appear within {limit:?}; last output: {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&seen[seen.len().saturating_sub(200)..])
                    )
                })??
                .ok_or_else(|| {
                    anyhow!(
                        "the terminal closed while waiting for {:?}",
                        String::from_utf8_lossy(needle)
                    )
                })?;
            let from = seen.len().saturating_sub(needle.len() - 1);
            seen.extend_from_slice(&chunk);
            if let Some(at) = find(&seen[from..], needle) {
                self.pending = seen[from + at + needle.len()..].to_vec();
                return Ok(());
            }
            if seen.len() > 64 * 1024 {
                seen.drain(..seen.len() - 1024);
            }
        }
    }

    /// Reads and discards output until none came for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Result<()> {
        loop {
            match tokio::time::timeout(quiet, self.output()).await {
                Err(_) => return Ok(()),
                Ok(r) => {
                    if r?.is_none() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Closes the WebSocket (the shell keeps running): sends a close frame and waits for
    /// the server's, then drops the connection without waiting for the server to end the
    /// TCP connection (gantry's server does that only about a second later).
    pub async fn close(mut self) -> Result<()> {
        self.ws
            .close(None)
            .await
            .context("sending the close frame")?;
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await;
        answered.map_err(|_| anyhow!("the server did not answer the close frame within 5 s"))
    }
}

/// The shell prompt's end (`root@<hostname>:~# `).
pub const PROMPT_END: &[u8] = b"# ";
