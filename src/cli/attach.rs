//! `gantry run -t`: a monitor owns the pty; this command attaches to it with the local
//! terminal in raw mode, forwards window size changes, and exits with the container's
//! code.

use crate::config::Paths;
use crate::runtime::client::{start_with_monitor, Attachment};
use crate::runtime::monitor_proto::Frame;
use crate::runtime::spec::ContainerSpec;
use anyhow::Context;
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

/// Restores the terminal on drop, also on error paths.
pub(crate) struct RawMode(Option<Termios>);

impl RawMode {
    pub(crate) fn enter() -> Self {
        let stdin = std::io::stdin();
        match termios::tcgetattr(&stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                termios::cfmakeraw(&mut raw);
                let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
                RawMode(Some(orig))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, orig);
        }
    }
}

pub(crate) fn window_size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize.
    let r = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

pub fn run_attached(paths: &Paths, spec: &ContainerSpec) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("finding the gantry binary")?;
    let (cd, _pid) = start_with_monitor(&exe, paths, spec)?;
    let mut att = Attachment::connect(&cd)?;
    if let Some((cols, rows)) = window_size() {
        att.send(&Frame::Resize { cols, rows })?;
    }
    let _raw = RawMode::enter();
    let mut sock = att
        .stream
        .try_clone()
        .context("cloning the monitor socket")?;
    let interactive = spec.interactive;
    // Keystrokes go to the monitor from a second thread; this thread prints output. The
    // window size is re-read on SIGWINCH-free terminals by polling it with each input.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        let mut last = window_size();
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = window_size();
            if now != last {
                if let Some((cols, rows)) = now {
                    let _ = sock.write_all(&Frame::Resize { cols, rows }.encode());
                }
                last = now;
            }
            if interactive
                && sock
                    .write_all(&Frame::Data(buf[..n].to_vec()).encode())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut out = std::io::stdout();
    loop {
        match att.recv()? {
            Some(Frame::Data(d)) | Some(Frame::Replay(d)) => {
                let _ = out.write_all(&d);
                let _ = out.flush();
            }
            Some(Frame::Exit(info)) => {
                drop(_raw);
                if info.oom_killed {
                    eprintln!("gantry: container {} was killed by the OOM killer", spec.id);
                }
                return Ok(info.exit_code);
            }
            Some(_) => {}
            None => {
                drop(_raw);
                let st = cd.state().ok();
                return Ok(st
                    .and_then(|s| s.exit_code)
                    .unwrap_or(crate::runtime::launch::EXIT_SETUP_FAILED));
            }
        }
    }
}
