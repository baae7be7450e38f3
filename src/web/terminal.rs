//! The terminal WebSocket (see docs/terminal-protocol.md): bridges a browser to the
//! session's monitor socket.
//!
//! Output is read from the monitor only while the browser keeps up: with acks, at most
//! [`FLOW_WINDOW`] bytes are in flight; without, the WebSocket's own back-pressure (a full
//! TCP send buffer makes `send` wait) stops the loop. Either way the monitor then stops
//! reading the pty, and the flood stops at its source.

use super::error::ApiError;
use super::AppState;
use crate::runtime::monitor_proto::{Decoder, Frame};
use crate::session::SessionError;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage as Message, CloseCode, CloseReason};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often an idle terminal connection is pinged.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// Unacknowledged output allowed per connection once the client sends acks.
pub const FLOW_WINDOW: u64 = 1 << 20;

pub const OP_DATA: u8 = 0;
pub const OP_RESIZE: u8 = 1;
pub const OP_ACK: u8 = 2;
pub const OP_EXIT: u8 = 3;
pub const OP_HELLO: u8 = 5;

/// A client → server frame, parsed.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    Data(Vec<u8>),
    Resize { cols: u16, rows: u16 },
    Ack(u32),
}

#[derive(Deserialize)]
struct Resize {
    cols: u32,
    rows: u32,
}

/// Parses a binary frame from the browser. The error is the close reason.
pub fn parse_client_frame(frame: &[u8]) -> Result<ClientFrame, String> {
    let (&op, payload) = frame
        .split_first()
        .ok_or("empty frame: the first byte must be an opcode")?;
    match op {
        OP_DATA => Ok(ClientFrame::Data(payload.to_vec())),
        OP_RESIZE => {
            let r: Resize = serde_json::from_slice(payload)
                .map_err(|e| format!("resize needs JSON {{\"cols\":N,\"rows\":N}}: {e}"))?;
            if !(1..=1000).contains(&r.cols) || !(1..=500).contains(&r.rows) {
                return Err(format!(
                    "resize to {}x{} refused: cols must be 1..=1000 and rows 1..=500",
                    r.cols, r.rows
                ));
            }
            Ok(ClientFrame::Resize {
                cols: r.cols as u16,
                rows: r.rows as u16,
            })
        }
        OP_ACK => {
            let b: [u8; 4] = payload
                .try_into()
                .map_err(|_| "ack needs a 4-byte big-endian count".to_string())?;
            Ok(ClientFrame::Ack(u32::from_be_bytes(b)))
        }
        other => Err(format!("unknown opcode {other}")),
    }
}

fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(op);
    v.extend_from_slice(payload);
    v
}

pub async fn open_terminal(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    super::auth::same_origin(&req)?;
    let row = super::api::authorized(&state, &req, &id)?;
    let row = state.sessions.refresh(row)?;
    let cd = state.sessions.container(&row);
    open_for(&state, &req, body, &row, &cd).await
}

/// Bridges a WebSocket to the monitor of container `cd` of session `row` (the session's
/// lab host, or a container nested in it).
pub async fn open_for(
    state: &AppState,
    req: &HttpRequest,
    body: web::Payload,
    row: &crate::store::SessionRow,
    cd: &crate::runtime::state::ContainerDir,
) -> Result<HttpResponse, ApiError> {
    let monitor = if row.state == "running" {
        tokio::net::UnixStream::connect(cd.socket_path()).await.ok()
    } else {
        None
    };
    let (resp, ws, stream) =
        actix_ws::handle(req, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let Some(monitor) = monitor else {
        // Upgrade, then close with a reason: a browser sees the code (an HTTP error
        // before the upgrade would only show up as 1006) and stops reconnecting.
        let why = if cd.id == row.container_id {
            SessionError::Ended(row.id.clone()).to_string()
        } else {
            format!("container {} is not running", cd.id)
        };
        let _ = ws
            .close(Some(CloseReason {
                code: CloseCode::Other(4404),
                description: Some(why),
            }))
            .await;
        return Ok(resp);
    };
    state.sessions.touch(&row.id);
    let sessions = state.sessions.clone();
    let session_id = row.id.clone();
    actix_web::rt::spawn(async move {
        let reason = bridge(&sessions, &session_id, &mut ws.clone(), stream, monitor).await;
        let _ = ws.close(Some(reason)).await;
    });
    Ok(resp)
}

async fn bridge(
    sessions: &crate::session::Sessions,
    session_id: &str,
    ws: &mut actix_ws::Session,
    stream: actix_ws::MessageStream,
    monitor: tokio::net::UnixStream,
) -> CloseReason {
    let mut stream = stream.max_frame_size(256 * 1024).aggregate_continuations();
    let (mut rd, mut wr) = monitor.into_split();
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut acks = false;
    let mut unacked: u64 = 0;
    // Pings find connections whose peer vanished without closing (a sleeping laptop).
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = std::time::Instant::now();
    let close = |code: CloseCode, msg: &str| CloseReason {
        code,
        description: Some(msg.to_string()),
    };
    loop {
        let window_open = !acks || unacked < FLOW_WINDOW;
        tokio::select! {
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > 3 * HEARTBEAT {
                    return close(CloseCode::Away, "no answer to pings");
                }
                let _ = ws.ping(b"gantry").await;
            }
            msg = stream.recv() => {
                last_heard = std::time::Instant::now();
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => match parse_client_frame(&b) {
                        Ok(ClientFrame::Data(d)) => Frame::Data(d),
                        Ok(ClientFrame::Resize { cols, rows }) => Frame::Resize { cols, rows },
                        Ok(ClientFrame::Ack(n)) => {
                            acks = true;
                            unacked = unacked.saturating_sub(n as u64);
                            continue;
                        }
                        Err(why) => return close(CloseCode::Unsupported, &why),
                    },
                    Some(Ok(Message::Text(t))) => Frame::Data(t.as_bytes().to_vec()),
                    Some(Ok(Message::Ping(p))) => {
                        let _ = ws.pong(&p).await;
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None => return close(CloseCode::Normal, "bye"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return close(CloseCode::Protocol, &format!("bad WebSocket frame: {e}")),
                };
                sessions.touch(session_id);
                if wr.write_all(&data.encode()).await.is_err() {
                    return close(CloseCode::Error, "the session's monitor went away");
                }
            }
            n = rd.read(&mut buf), if window_open => {
                let n = match n {
                    Ok(0) | Err(_) => return close(CloseCode::Error, "the session's monitor went away"),
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                // Consecutive output frames from one read go out as one message.
                let mut out = vec![OP_DATA];
                loop {
                    let f = match decoder.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => return close(CloseCode::Error, &e.to_string()),
                    };
                    match f {
                        Frame::Data(d) => out.extend_from_slice(&d),
                        Frame::Replay(d) => {
                            let hello = serde_json::json!({
                                "session": session_id,
                                "replay_bytes": d.len(),
                                "flow_window": FLOW_WINDOW,
                            });
                            if ws.binary(frame(OP_HELLO, hello.to_string().as_bytes())).await.is_err() {
                                return close(CloseCode::Normal, "client gone");
                            }
                            out.extend_from_slice(&d);
                        }
                        Frame::Exit(info) => {
                            if out.len() > 1 {
                                let _ = ws.binary(out.split_off(0)).await;
                            }
                            let exit = serde_json::json!({ "exit_code": info.exit_code });
                            let _ = ws.binary(frame(OP_EXIT, exit.to_string().as_bytes())).await;
                            return close(CloseCode::Normal, "the shell exited");
                        }
                        _ => {}
                    }
                }
                if out.len() > 1 {
                    unacked += (out.len() - 1) as u64;
                    if ws.binary(out).await.is_err() {
                        return close(CloseCode::Normal, "client gone");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse() {
        assert_eq!(
            parse_client_frame(b"\x00ls\r"),
            Ok(ClientFrame::Data(b"ls\r".to_vec()))
        );
        assert_eq!(
            parse_client_frame(b"\x01{\"cols\":100,\"rows\":40}"),
            Ok(ClientFrame::Resize {
                cols: 100,
                rows: 40
            })
        );
        assert_eq!(
            parse_client_frame(&[2, 0, 1, 0, 0]),
            Ok(ClientFrame::Ack(65536))
        );
    }

    #[test]
    fn bad_client_frames_say_why() {
        assert!(parse_client_frame(b"").unwrap_err().contains("opcode"));
        assert!(parse_client_frame(b"\x09x")
            .unwrap_err()
            .contains("unknown opcode 9"));
        assert!(parse_client_frame(b"\x01{\"cols\":0,\"rows\":40}")
            .unwrap_err()
            .contains("refused"));
        assert!(parse_client_frame(b"\x01{\"cols\":99999999999,\"rows\":40}").is_err());
        assert!(parse_client_frame(b"\x01nope")
            .unwrap_err()
            .contains("JSON"));
        assert!(parse_client_frame(&[2, 1]).unwrap_err().contains("4-byte"));
    }
}
