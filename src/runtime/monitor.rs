//! The per-container monitor (like conmon or a containerd shim).
//!
//! `gantry monitor --id ID` is spawned by the server (or by `gantry run -d/-t`). It
//! forks once and lets its parent exit, so it belongs to no server process: a server that
//! is restarted, or killed with SIGKILL, leaves every container and its monitor running.
//! The monitor then
//!
//! - starts the container (it is the container's parent, so it can reap it),
//! - owns the pty master (or the pipes of a non-tty container),
//! - keeps the last [`RING_BYTES`] of output as scrollback, replayed to every new client,
//! - serves clients on `monitor.sock` with the frames of [`crate::runtime::monitor_proto`],
//! - records the exit status (and whether the OOM killer struck) in `state.json`, removes
//!   the cgroup, and exits.
//!
//! Flow control: the monitor stops reading the pty while any client has more than
//! [`CLIENT_HIGH_WATER`] bytes it has not taken yet, so a flood blocks the writer in the
//! container and never grows memory here.

use crate::config::Paths;
use crate::runtime::launch::{self, ChildIo, Started};
use crate::runtime::monitor_proto::{Decoder, ExitInfo, Frame};
use crate::runtime::state::{ContainerDir, ContainerState};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Scrollback kept for replay on reconnect.
pub const RING_BYTES: usize = 64 * 1024;
/// Output a client may have queued before the monitor stops reading the pty.
pub const CLIENT_HIGH_WATER: usize = 256 * 1024;
/// Most output gathered into one frame.
const BURST_BYTES: usize = 64 * 1024;
/// More than [`FLOOD_BYTES`] of output within [`FLOOD_WINDOW`] (100 KiB/s) means the
/// container floods its terminal — no one reads that fast. If it floods in small pieces
/// (a line at a time, like `yes`: a frame per line is what costs CPU), the monitor waits
/// [`FLOOD_PAUSE`] before reading again, so the flood arrives in bigger frames and the
/// flooding program blocks on its full pty meanwhile, leaving the CPU to the interactive
/// sessions beside it. Bulk output already comes in big reads and is not paced. Echoes
/// of keystrokes, even fast ones, stay far below the rate and are never delayed.
const FLOOD_WINDOW: Duration = Duration::from_millis(5);
const FLOOD_BYTES: usize = 512;
const FLOOD_PAUSE: Duration = Duration::from_millis(1);
/// Where the monitor leaves the container's last output when it exits.
pub const OUTPUT_LOG: &str = "output.log";

/// Reads smaller than this during a flood are "small pieces".
const SMALL_READ: usize = 4 * 1024;
/// While it floods, the container is in the idle scheduling class (see
/// [`crate::runtime::cgroups::ContainerCgroup::set_cpu_idle`]): every other session's
/// keystrokes preempt it. It gets its normal class back this long after the flood ends.
const CALM_AFTER: Duration = Duration::from_millis(500);
/// Input queued for the container before the monitor stops reading clients.
const INPUT_LIMIT: usize = 64 * 1024;
/// A client that stays above the high-water mark this long is dropped: a healthy client
/// drains 256 KiB in milliseconds, and a vanished one (a laptop lid closed mid-flood)
/// must not hold the shell, or a reconnecting browser, hostage.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// The one line a monitor prints on stdout once the container runs (or failed to).
#[derive(Debug, Serialize, Deserialize)]
pub struct Ready {
    pub ok: bool,
    pub pid: Option<i32>,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
}

fn report(r: &Ready) {
    let mut line = serde_json::to_string(r).expect("ready line serialises");
    line.push('\n');
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
}

/// `gantry monitor`: returns the process exit code.
pub fn main(paths: &Paths, id: &str) -> i32 {
    let cd = ContainerDir::new(paths, id);
    let fail = |error: String, exit_code: i32| {
        report(&Ready {
            ok: false,
            pid: None,
            error: Some(error),
            exit_code: Some(exit_code),
        });
        1
    };
    let spec = match cd.spec() {
        Ok(s) => s,
        Err(e) => return fail(e.to_string(), launch::EXIT_SETUP_FAILED),
    };
    let sock_path = cd.socket_path();
    let _ = std::fs::remove_file(&sock_path);
    let listener = match UnixListener::bind(&sock_path) {
        Ok(l) => l,
        Err(e) => {
            return fail(
                format!("{}: {e}", sock_path.display()),
                launch::EXIT_SETUP_FAILED,
            )
        }
    };
    let _ = listener.set_nonblocking(true);

    // SAFETY: the monitor is single-threaded; the child carries on alone.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => return fail(format!("fork: {e}"), launch::EXIT_SETUP_FAILED),
    }
    let _ = nix::unistd::setsid();

    let (io, output, input) = match child_io(&spec) {
        Ok(v) => v,
        Err(e) => {
            fail(format!("pipes: {e}"), launch::EXIT_SETUP_FAILED);
            let _ = cd.remove();
            std::process::exit(1);
        }
    };
    let started = match launch::launch(&spec, &cd.dir, io) {
        Ok(s) => s,
        Err(e) => {
            fail(e.to_string(), e.exit_code());
            let _ = cd.remove();
            std::process::exit(1);
        }
    };
    let _ = std::fs::write(
        cd.dir.join(launch::TRACE_FILE),
        serde_json::to_vec(&started.timeline.entries()).unwrap_or_default(),
    );
    let mut st =
        ContainerState::running(&spec.id, started.pid.as_raw(), started.cgroup.placement());
    let _ = cd.save(&st);
    report(&Ready {
        ok: true,
        pid: Some(started.pid.as_raw()),
        error: None,
        exit_code: None,
    });
    detach_stdio(&cd);

    let (output, input) = match started.pty_master.as_ref() {
        Some(m) => {
            let dup = m.try_clone().ok();
            (m.try_clone().ok(), dup)
        }
        None => (output, input),
    };
    let mut mon = Monitor::new(listener, started, output, input);
    let record_dir = cd.clone();
    mon.on_exit = Some(Box::new(move |exit: &ExitInfo, scrollback: &[u8]| {
        // The scrollback outlives the monitor: `gantry logs` of an exited container,
        // and a client that attached too late, read it here.
        let _ = std::fs::write(record_dir.dir.join(OUTPUT_LOG), scrollback);
        st.exited(exit.exit_code, exit.oom_killed);
        let _ = record_dir.save(&st);
    }));
    mon.run();
    let _ = std::fs::remove_file(&sock_path);
    if spec.auto_remove {
        let _ = cd.remove();
    }
    std::process::exit(0);
}

/// stdio of the container and the monitor's ends: (io, output to read, input to write).
type IoEnds = (ChildIo, Option<OwnedFd>, Option<OwnedFd>);

fn child_io(spec: &crate::runtime::spec::ContainerSpec) -> std::io::Result<IoEnds> {
    if spec.tty {
        return Ok((ChildIo::Pty, None, None));
    }
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (stdin, input) = if spec.interactive {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        (r, Some(w))
    } else {
        (std::fs::File::open("/dev/null")?.into(), None)
    };
    let stderr = out_w.try_clone()?;
    Ok((
        ChildIo::Fds {
            stdin,
            stdout: out_w,
            stderr,
        },
        Some(out_r),
        input,
    ))
}

/// After the ready line: stdin and stdout to /dev/null, stderr to monitor.log.
fn detach_stdio(cd: &ContainerDir) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        // SAFETY: dup2 onto our own stdio.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    if let Ok(log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cd.dir.join("monitor.log"))
    {
        // SAFETY: as above.
        unsafe { libc::dup2(log.as_raw_fd(), 2) };
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

struct Client {
    stream: UnixStream,
    decoder: Decoder,
    out: VecDeque<u8>,
    closed: bool,
    stalled_since: Option<Instant>,
}

impl Client {
    fn queue(&mut self, frame: &Frame) {
        self.out.extend(frame.encode());
    }

    /// Writes what the socket takes now.
    fn flush(&mut self) {
        while !self.out.is_empty() && !self.closed {
            let (a, _) = self.out.as_slices();
            match self.stream.write(a) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => self.closed = true,
            }
        }
    }
}

/// What the monitor does with the exit and the last output (see `Monitor::on_exit`).
type OnExit = Box<dyn FnOnce(&ExitInfo, &[u8])>;

struct Monitor {
    listener: UnixListener,
    started: Started,
    pidfd: Option<OwnedFd>,
    output: Option<OwnedFd>,
    input: Option<OwnedFd>,
    input_buf: Vec<u8>,
    ring: VecDeque<u8>,
    clients: Vec<Client>,
    /// While flooding, output is not read again before this instant.
    resume_output: Option<Instant>,
    /// Start of the current rate window, and the bytes read in it.
    window: (Instant, usize),
    /// When output last came at flood rate, and whether the container has been moved to
    /// the idle scheduling class for it.
    last_flood: Option<Instant>,
    idle_class: bool,
    /// Called once the container has exited and been cleaned up, before any client
    /// hears of it: whoever reads the state after an Exit frame sees it exited.
    on_exit: Option<OnExit>,
}

impl Monitor {
    fn new(
        listener: UnixListener,
        started: Started,
        output: Option<OwnedFd>,
        input: Option<OwnedFd>,
    ) -> Self {
        for fd in output.iter().chain(input.iter()) {
            set_nonblocking(fd);
        }
        Monitor {
            pidfd: pidfd_open(started.pid).ok(),
            listener,
            started,
            output,
            input,
            input_buf: Vec::new(),
            ring: VecDeque::new(),
            clients: Vec::new(),
            resume_output: None,
            window: (Instant::now(), 0),
            last_flood: None,
            idle_class: false,
            on_exit: None,
        }
    }

    /// Serves until the container exits; returns how it ended.
    fn run(&mut self) -> ExitInfo {
        loop {
            let now = Instant::now();
            for c in &mut self.clients {
                if c.out.len() <= CLIENT_HIGH_WATER {
                    c.stalled_since = None;
                } else if now.duration_since(*c.stalled_since.get_or_insert(now)) > STALL_LIMIT {
                    c.closed = true;
                }
            }
            self.clients.retain(|c| !c.closed);
            let paused = self.clients.iter().any(|c| c.out.len() > CLIENT_HIGH_WATER);
            let pacing = self.resume_output.filter(|t| *t > now);
            // A flood that stopped gives the container its normal CPU class back. (While a
            // slow viewer holds the output back, the flood has not stopped.)
            if self.idle_class
                && !paused
                && self
                    .last_flood
                    .is_none_or(|t| now.duration_since(t) > CALM_AFTER)
            {
                self.idle_class = self.started.cgroup.set_cpu_idle(false).is_err();
            }
            let take_input = self.input_buf.len() < INPUT_LIMIT;
            let raw = |fd: Option<&OwnedFd>| fd.map(|f| f.as_raw_fd()).unwrap_or(-1);
            let mut fds = vec![
                pollfd(self.listener.as_raw_fd(), libc::POLLIN),
                pollfd(raw(self.pidfd.as_ref()), libc::POLLIN),
                pollfd(
                    if paused || pacing.is_some() {
                        -1
                    } else {
                        raw(self.output.as_ref())
                    },
                    libc::POLLIN,
                ),
                pollfd(
                    if self.input_buf.is_empty() {
                        -1
                    } else {
                        raw(self.input.as_ref())
                    },
                    libc::POLLOUT,
                ),
            ];
            for c in &self.clients {
                let mut ev = 0;
                if take_input {
                    ev |= libc::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= libc::POLLOUT;
                }
                fds.push(pollfd(c.stream.as_raw_fd(), ev));
            }
            // Without a pidfd (very old kernels), fall back to polling waitpid; while paused,
            // wake up to check for stalled clients.
            let timeout = match (self.pidfd.is_some(), paused, pacing) {
                (_, _, Some(t)) => t.duration_since(now).as_millis() as i32 + 1,
                (_, _, None) if self.idle_class => CALM_AFTER.as_millis() as i32,
                (false, _, _) => 100,
                (true, true, _) => 1000,
                (true, false, _) => -1,
            };
            // SAFETY: fds is a valid array of pollfd for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue; // EINTR
            }
            if fds[2].revents != 0 {
                let n = self.read_output();
                let t = Instant::now();
                if t.duration_since(self.window.0) > FLOOD_WINDOW {
                    self.window = (t, 0);
                }
                self.window.1 += n;
                if self.window.1 > FLOOD_BYTES {
                    if n < SMALL_READ {
                        self.resume_output = Some(t + FLOOD_PAUSE);
                    }
                    self.last_flood = Some(t);
                    if !self.idle_class {
                        self.idle_class = self.started.cgroup.set_cpu_idle(true).is_ok();
                    }
                }
            }
            if fds[3].revents != 0 {
                self.write_input();
            }
            for (i, pfd) in fds.iter().enumerate().skip(4) {
                if pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read_client(i - 4);
                }
                if pfd.revents & libc::POLLOUT != 0 {
                    self.clients[i - 4].flush();
                }
            }
            self.clients.retain(|c| !c.closed);
            if fds[0].revents != 0 {
                self.accept();
            }
            let exited = if self.pidfd.is_some() {
                fds[1].revents != 0
            } else {
                true
            };
            if exited {
                if let Some(status) = launch::try_wait(self.started.pid) {
                    return self.finish(status);
                }
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(true);
            let mut c = Client {
                stream,
                decoder: Decoder::default(),
                out: VecDeque::new(),
                closed: false,
                stalled_since: None,
            };
            let (a, b) = self.ring.as_slices();
            let mut replay = a.to_vec();
            replay.extend_from_slice(b);
            c.queue(&Frame::Replay(replay));
            c.flush();
            self.clients.push(c);
        }
    }

    fn broadcast(&mut self, frame: &Frame) {
        for c in &mut self.clients {
            c.queue(frame);
            c.flush();
        }
    }

    /// Reads everything the container has written so far (up to [`BURST_BYTES`]) and
    /// sends it as one frame: a flood then costs one frame per burst instead of one per
    /// line. Returns how many bytes it read.
    fn read_output(&mut self) -> usize {
        let mut data = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while data.len() < BURST_BYTES {
            let Some(fd) = self.output.as_ref() else {
                break;
            };
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => {
                    // EIO: every slave of the pty is closed.
                    self.output = None;
                }
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(nix::Error::EAGAIN) => break,
                Err(nix::Error::EINTR) => continue,
                Err(_) => self.output = None,
            }
        }
        if !data.is_empty() {
            self.ring.extend(&data);
            let excess = self.ring.len().saturating_sub(RING_BYTES);
            self.ring.drain(..excess);
            self.broadcast(&Frame::Data(data.clone()));
        }
        data.len()
    }

    fn write_input(&mut self) {
        let Some(fd) = self.input.as_ref() else {
            self.input_buf.clear();
            return;
        };
        match nix::unistd::write(fd, &self.input_buf) {
            Ok(n) => {
                self.input_buf.drain(..n);
            }
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
            Err(_) => {
                self.input = None;
                self.input_buf.clear();
            }
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 16 * 1024];
        let n = match self.clients[i].stream.read(&mut buf) {
            Ok(0) => {
                self.clients[i].closed = true;
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => {
                self.clients[i].closed = true;
                return;
            }
        };
        self.clients[i].decoder.push(&buf[..n]);
        loop {
            match self.clients[i].decoder.next_frame() {
                Ok(Some(frame)) => self.handle(frame),
                Ok(None) => break,
                Err(_) => {
                    // A broken client is dropped; the container is not affected.
                    self.clients[i].closed = true;
                    break;
                }
            }
        }
    }

    fn handle(&mut self, frame: Frame) {
        match frame {
            Frame::Data(d) => {
                if self.input.is_some() {
                    self.input_buf.extend_from_slice(&d);
                    self.write_input();
                }
            }
            Frame::Resize { cols, rows } => {
                if let (true, Some(fd)) = (self.started.pty_master.is_some(), self.output.as_ref())
                {
                    let ws = libc::winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    // SAFETY: TIOCSWINSZ reads a winsize; the kernel signals SIGWINCH.
                    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                }
            }
            Frame::Kill => {
                let _ = nix::sys::signal::kill(self.started.pid, nix::sys::signal::Signal::SIGKILL);
                // A paused (frozen) container only dies once thawed.
                if self.started.cgroup.frozen() {
                    let _ = self.started.cgroup.set_frozen(false);
                }
            }
            Frame::CloseStdin => {
                if self.started.pty_master.is_none() {
                    self.input = None;
                    self.input_buf.clear();
                }
            }
            Frame::Exit(_) | Frame::Replay(_) => {}
        }
    }

    /// The container's first process is gone: drain its output, clean up, tell everyone.
    fn finish(&mut self, status: launch::ExitStatus) -> ExitInfo {
        while self.output.is_some() && self.read_output() > 0 {}
        let oom_killed = self.started.clean_up(&status);
        let info = ExitInfo {
            exit_code: status.code,
            signal: status.signal,
            oom_killed,
        };
        if let Some(record) = self.on_exit.take() {
            let (a, b) = self.ring.as_slices();
            record(&info, &[a, b].concat());
        }
        self.broadcast(&Frame::Exit(info));
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.clients.iter().any(|c| !c.out.is_empty() && !c.closed)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
            for c in &mut self.clients {
                c.flush();
            }
        }
        info
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
