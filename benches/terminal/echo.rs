//! Echo round-trip probes: one key in, until its echo comes back. Each runs on a thread
//! of its own, so the flood clients on the main runtime do not delay its reads more than
//! the OS scheduler does.

use super::common::{self, SessionRef, Stats, Terminal, CPR, DSR, PROMPT_END};
use super::{KEYS, KILL_LINE, LINE_KEYS, WARMUP};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Runs a blocking job on a thread of its own and awaits its result.
pub async fn on_own_thread<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(job());
    });
    rx.await.map_err(|_| anyhow!("the probe thread panicked"))?
}

/// Runs an async probe on a thread of its own, on a current-thread runtime.
async fn probe_thread<T, F>(job: impl FnOnce() -> F + Send + 'static) -> Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T>>,
{
    on_own_thread(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(job())
    })
    .await
}

/// Echo round trips on a gantry session's terminal.
pub async fn gantry_probe(addr: SocketAddr, s: SessionRef, n: usize) -> Result<Stats> {
    probe_thread(move || async move {
        let mut term = Terminal::connect(addr, &s).await?;
        term.read_until(PROMPT_END, Duration::from_secs(10)).await?;
        term.drain(Duration::from_millis(100)).await?;
        term.input(KILL_LINE).await?;
        term.drain(Duration::from_millis(50)).await?;
        let mut samples = Vec::with_capacity(n);
        for i in 0..WARMUP + n {
            if i % 256 == 0 {
                common::check_interrupt()?;
            }
            if i % LINE_KEYS == LINE_KEYS - 1 {
                term.input(KILL_LINE).await?;
                term.drain(Duration::from_millis(30)).await?;
            }
            let key = KEYS[i % KEYS.len()];
            let t0 = Instant::now();
            term.input(&[key]).await?;
            term.read_until(&[key], Duration::from_secs(5)).await?;
            if i >= WARMUP {
                samples.push(t0.elapsed());
            }
        }
        term.input(KILL_LINE).await?;
        term.drain(Duration::from_millis(30)).await?;
        term.close().await?;
        Ok(Stats::new(&samples))
    })
    .await
}

/// The WebSocket alone: an echo server in this process, the same 2-byte frames.
pub async fn ws_loopback(n: usize) -> Result<Stats> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_binary() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let result = probe_thread(move || async move {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true)
                .await
                .context("connecting to the loopback echo server")?;
        let mut samples = Vec::with_capacity(n);
        for i in 0..WARMUP + n {
            let key = KEYS[i % KEYS.len()];
            let t0 = Instant::now();
            ws.send(Message::binary(vec![common::OP_DATA, key])).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) if b.last() == Some(&key) => break,
                    Some(Ok(_)) => continue,
                    other => bail!("the loopback echo server went away: {other:?}"),
                }
            }
            if i >= WARMUP {
                samples.push(t0.elapsed());
            }
        }
        let _ = ws.close(None).await;
        Ok(Stats::new(&samples))
    })
    .await;
    server.abort();
    result
}

/// busybox `sh` on a pty of the host, killed on drop.
pub struct HostShell {
    child: std::process::Child,
    pub master: std::fs::File,
}

impl Drop for HostShell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HostShell {
    /// `args` after `sh`: `["-i"]` for an interactive shell, `["-c", cmd]` for a command.
    pub fn start(args: &[&str]) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .ok_or_else(|| anyhow!("busybox is missing: `apt-get install busybox-static`"))?;
        let size = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).context("openpty")?;
        let slave: OwnedFd = pty.slave;
        let mut cmd = std::process::Command::new(busybox);
        // No HOME and no HISTFILE: the shell keeps no history file on the host.
        cmd.arg("sh")
            .args(args)
            .env_clear()
            .env("PS1", "root@host:~# ")
            .env("TERM", "xterm")
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe; the pty on fd 0 becomes the
        // controlling terminal of the new session, as in a real terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {busybox} sh on a pty"))?;
        drop(cmd);
        Ok(HostShell {
            child,
            master: std::fs::File::from(pty.master),
        })
    }

    /// What the shell wrote within `timeout` (empty if nothing), answering cursor queries.
    fn read(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        if r <= 0 {
            return Ok(vec![]);
        }
        let mut buf = [0u8; 4096];
        let got = self.master.read(&mut buf).context("reading the pty")?;
        if got == 0 {
            bail!("the host shell exited");
        }
        let data = buf[..got].to_vec();
        // A query split across reads would stall a sample for busybox's 20 ms: visible in max.
        for _ in data.windows(DSR.len()).filter(|w| *w == DSR) {
            self.master.write_all(CPR)?;
        }
        Ok(data)
    }

    fn read_until(&mut self, needle: &[u8]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            seen.extend(self.read(Duration::from_millis(100))?);
            if common::find(&seen, needle).is_some() {
                return Ok(());
            }
        }
        bail!(
            "the host shell did not write {:?}; it wrote {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&seen)
        )
    }

    fn drain(&mut self, quiet: Duration) -> Result<()> {
        while !self.read(quiet)?.is_empty() {}
        Ok(())
    }
}

/// Echo round trips on busybox sh on a host pty: what the container adds nothing to.
pub fn pty_probe(n: usize) -> Result<Stats> {
    let mut sh = HostShell::start(&["-i"])?;
    sh.read_until(PROMPT_END)?;
    sh.drain(Duration::from_millis(100))?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        if i % LINE_KEYS == LINE_KEYS - 1 {
            sh.master.write_all(KILL_LINE)?;
            sh.drain(Duration::from_millis(30))?;
        }
        let key = KEYS[i % KEYS.len()];
        let t0 = Instant::now();
        sh.master.write_all(&[key])?;
        sh.read_until(&[key])?;
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    Ok(Stats::new(&samples))
}

/// A direct connection to a session's monitor (the frames of
/// `gantry::runtime::monitor_proto` on its Unix socket), bypassing the server.
struct MonitorConn {
    sock: std::os::unix::net::UnixStream,
    decoder: gantry::runtime::monitor_proto::Decoder,
    buf: Vec<u8>,
}

impl MonitorConn {
    fn connect(socket: &std::path::Path) -> Result<Self> {
        let sock = std::os::unix::net::UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        Ok(MonitorConn {
            sock,
            decoder: Default::default(),
            buf: vec![0u8; 64 * 1024],
        })
    }

    fn input(&mut self, data: &[u8]) -> Result<()> {
        use gantry::runtime::monitor_proto::Frame;
        self.sock
            .write_all(&Frame::Data(data.to_vec()).encode())
            .context("writing to the monitor socket")
    }

    /// Reads output (answering cursor queries) until a frame holds `key`, or, without a
    /// key, until nothing came for `wait`.
    fn read(&mut self, key: Option<u8>, wait: Duration) -> Result<()> {
        use gantry::runtime::monitor_proto::Frame;
        self.sock.set_read_timeout(Some(wait))?;
        loop {
            while let Some(frame) = self.decoder.next_frame()? {
                let data = match frame {
                    Frame::Data(d) | Frame::Replay(d) => d,
                    Frame::Exit(_) => bail!("the probe's shell exited"),
                    _ => continue,
                };
                for _ in data.windows(DSR.len()).filter(|w| *w == DSR) {
                    self.input(CPR)?;
                }
                if key.is_some_and(|k| data.contains(&k)) {
                    return Ok(());
                }
            }
            match self.sock.read(&mut self.buf) {
                Ok(0) => bail!("the monitor closed the connection"),
                Ok(got) => self.decoder.push(&self.buf[..got]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if key.is_none() {
                        return Ok(());
                    }
                    bail!("no echo from the monitor within {wait:?}");
                }
                Err(e) => return Err(e).context("reading the monitor socket"),
            }
        }
    }
}

/// Echo round trips on a session's monitor socket, without the server: how much of the
/// WebSocket figure is the server's.
pub fn monitor_probe(socket: std::path::PathBuf, n: usize) -> Result<Stats> {
    let mut m = MonitorConn::connect(&socket)?;
    m.read(None, Duration::from_millis(100))?;
    m.input(KILL_LINE)?;
    m.read(None, Duration::from_millis(50))?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        if i % LINE_KEYS == LINE_KEYS - 1 {
            m.input(KILL_LINE)?;
            m.read(None, Duration::from_millis(30))?;
        }
        let key = KEYS[i % KEYS.len()];
        let t0 = Instant::now();
        m.input(&[key])?;
        m.read(Some(key), Duration::from_secs(5))?;
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    m.input(KILL_LINE)?;
    m.read(None, Duration::from_millis(30))?;
    Ok(Stats::new(&samples))
}
