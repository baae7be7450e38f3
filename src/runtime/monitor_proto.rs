//! Frames between a container's monitor and its clients (the server, `gantry run -t`).
//!
//! `[op: u8][len: u32 little-endian][payload]`. Pure encoding and decoding, no I/O.

use serde::{Deserialize, Serialize};

/// Largest payload accepted; a bigger length means a broken peer.
pub const MAX_PAYLOAD: usize = 1 << 20;

const OP_DATA: u8 = 0;
const OP_RESIZE: u8 = 1;
const OP_EXIT: u8 = 2;
const OP_REPLAY: u8 = 3;
const OP_KILL: u8 = 4;
const OP_CLOSE_STDIN: u8 = 5;

/// How the container ended, as the monitor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Terminal input (to the monitor) or output (from it).
    Data(Vec<u8>),
    Resize {
        cols: u16,
        rows: u16,
    },
    /// The container ended.
    Exit(ExitInfo),
    /// Recent output, sent once to every new client before live data.
    Replay(Vec<u8>),
    /// SIGKILL the container.
    Kill,
    /// Close the container's stdin (non-tty containers).
    CloseStdin,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("unknown monitor frame opcode {0}")]
    Opcode(u8),
    #[error("monitor frame of {0} bytes is larger than the limit")]
    TooLarge(usize),
    #[error("malformed monitor frame payload for opcode {0}")]
    Payload(u8),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let (op, payload): (u8, std::borrow::Cow<[u8]>) = match self {
            Frame::Data(d) => (OP_DATA, d.into()),
            Frame::Resize { cols, rows } => {
                let mut p = cols.to_le_bytes().to_vec();
                p.extend_from_slice(&rows.to_le_bytes());
                (OP_RESIZE, p.into())
            }
            Frame::Exit(info) => (
                OP_EXIT,
                serde_json::to_vec(info)
                    .expect("exit info serialises")
                    .into(),
            ),
            Frame::Replay(d) => (OP_REPLAY, d.into()),
            Frame::Kill => (OP_KILL, (&[][..]).into()),
            Frame::CloseStdin => (OP_CLOSE_STDIN, (&[][..]).into()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(op);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// Accumulates bytes and yields whole frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let op = self.buf[0];
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        let frame = match op {
            OP_DATA => Frame::Data(payload),
            OP_RESIZE if payload.len() == 4 => Frame::Resize {
                cols: u16::from_le_bytes([payload[0], payload[1]]),
                rows: u16::from_le_bytes([payload[2], payload[3]]),
            },
            OP_EXIT => {
                Frame::Exit(serde_json::from_slice(&payload).map_err(|_| FrameError::Payload(op))?)
            }
            OP_REPLAY => Frame::Replay(payload),
            OP_KILL => Frame::Kill,
            OP_CLOSE_STDIN => Frame::CloseStdin,
            OP_RESIZE => return Err(FrameError::Payload(op)),
            other => return Err(FrameError::Opcode(other)),
        };
        Ok(Some(frame))
    }

    /// Bytes buffered but not yet part of a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_even_when_split_anywhere() {
        let frames = vec![
            Frame::Data(b"ls -l\r".to_vec()),
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::Exit(ExitInfo {
                exit_code: 137,
                signal: Some(9),
                oom_killed: true,
            }),
            Frame::Replay(vec![b'x'; 3000]),
            Frame::Kill,
            Frame::CloseStdin,
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(|f| f.encode()).collect();
        for split in [1, 2, 5, 7, 100, bytes.len()] {
            let mut d = Decoder::default();
            let mut got = vec![];
            for chunk in bytes.chunks(split) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split {split}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decoder::default();
        d.push(&[9, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::Opcode(9)));
        let mut d = Decoder::default();
        d.push(&[0, 255, 255, 255, 255]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge(_))));
        let mut d = Decoder::default();
        d.push(&[1, 1, 0, 0, 0, 7]);
        assert_eq!(d.next_frame(), Err(FrameError::Payload(1)));
    }
}
