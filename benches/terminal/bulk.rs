//! Bulk output through one session, next to the same command on a host pty.

use super::common::{Server, SessionRef, PROMPT_END};
use super::echo::HostShell;
use super::KILL_LINE;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::time::{Duration, Instant};

pub struct Bulk {
    pub bytes: u64,
    pub secs: f64,
}

impl Bulk {
    pub fn row(&self, name: &str) -> Vec<String> {
        vec![
            name.into(),
            format!("{:.1}", self.bytes as f64 / self.secs / 1e6),
            self.bytes.to_string(),
            format!("{:.2}", self.secs),
        ]
    }
}

/// `n` bytes of one letter, no newline: the pty passes them through in big blocks.
pub fn letters(n: usize) -> String {
    format!("head -c {n} /dev/zero | tr '\\000' a")
}

/// `n` bytes of "y\n": the pty's newline translation (ONLCR) handles every line apart.
pub fn lines(n: usize) -> String {
    format!("yes | head -c {n}")
}

/// Runs `cmd` in the session's shell, from Enter until the marker echoed after it.
pub async fn through_session(
    server: &Server,
    s: &SessionRef,
    cmd: &str,
    n: usize,
    acks: bool,
) -> Result<Bulk> {
    let mut term = server.terminal(s).await?;
    term.auto_ack = acks;
    // The replay (scrollback) comes first; let it pass.
    term.drain(Duration::from_millis(100)).await?;
    term.input(KILL_LINE).await?;
    term.drain(Duration::from_millis(50)).await?;
    // The quotes keep the typed command from matching the marker when it is echoed.
    term.input(format!("{cmd}; echo BULK_\"\"DONE").as_bytes())
        .await?;
    term.drain(Duration::from_millis(100)).await?;
    let before = term.received;
    let t0 = Instant::now();
    term.input(b"\r").await?;
    term.read_until(b"BULK_DONE", Duration::from_secs(900))
        .await?;
    let secs = t0.elapsed().as_secs_f64();
    let bytes = term.received - before;
    term.read_until(PROMPT_END, Duration::from_secs(10)).await?;
    term.close().await?;
    if bytes < n as u64 {
        bail!("`{cmd}`: only {bytes} of {n} bytes came back");
    }
    Ok(Bulk { bytes, secs })
}

/// The same on a host pty, read as fast as possible: what the kernel allows.
pub fn through_host_pty(cmd: &str) -> Result<Bulk> {
    let mut sh = HostShell::start(&["-c", cmd])?;
    let t0 = Instant::now();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sh.master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            // EIO: the last slave closed, the command is done.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => return Err(e).context("reading the pty"),
        }
    }
    Ok(Bulk {
        bytes,
        secs: t0.elapsed().as_secs_f64(),
    })
}
