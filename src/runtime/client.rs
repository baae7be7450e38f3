//! Talking to a container's monitor from a blocking program (the CLI, tests): spawn it,
//! attach to it, kill through it.

use crate::config::Paths;
use crate::runtime::monitor::Ready;
use crate::runtime::monitor_proto::{Decoder, Frame};
use crate::runtime::spec::ContainerSpec;
use crate::runtime::state::{self, ContainerDir, StateError, Status};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("starting the monitor {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("the monitor exited without saying whether the container started (see {log})")]
    NoReady { log: String },
    #[error("{message}")]
    Launch { message: String, exit_code: i32 },
    #[error("container {0} has no monitor to talk to (it has exited)")]
    NoMonitor(String),
    #[error("talking to the monitor of {id}: {source}")]
    Io { id: String, source: std::io::Error },
}

/// The arguments that start a monitor for container `id` with the gantry binary `exe`.
pub fn monitor_command(exe: &Path, paths: &Paths, id: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir")
        .arg(&paths.data_dir)
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .arg("monitor")
        .arg("--id")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Parses the monitor's one stdout line.
pub fn parse_ready(line: &str, cd: &ContainerDir) -> Result<i32, ClientError> {
    match serde_json::from_str::<Ready>(line.trim()) {
        Ok(Ready {
            ok: true,
            pid: Some(pid),
            ..
        }) => Ok(pid),
        Ok(r) => {
            let _ = cd.remove();
            Err(ClientError::Launch {
                message: r
                    .error
                    .unwrap_or_else(|| "the container did not start".into()),
                exit_code: r
                    .exit_code
                    .unwrap_or(crate::runtime::launch::EXIT_SETUP_FAILED),
            })
        }
        Err(_) => {
            let log = cd.dir.join("monitor.log").display().to_string();
            Err(ClientError::NoReady { log })
        }
    }
}

/// Creates the container's folder and starts it under a new monitor; returns the
/// container's host pid once it runs.
pub fn start_with_monitor(
    exe: &Path,
    paths: &Paths,
    spec: &ContainerSpec,
) -> Result<(ContainerDir, i32), ClientError> {
    let cd = ContainerDir::create(paths, spec)?;
    let mut child = monitor_command(exe, paths, &spec.id)
        .spawn()
        .map_err(|source| ClientError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let _ = child.wait();
    let pid = parse_ready(&line, &cd)?;
    Ok((cd, pid))
}

/// A connection to a monitor.
pub struct Attachment {
    pub stream: UnixStream,
    decoder: Decoder,
}

impl Attachment {
    pub fn connect(cd: &ContainerDir) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(cd.socket_path())
            .map_err(|_| ClientError::NoMonitor(cd.id.clone()))?;
        Ok(Attachment {
            stream,
            decoder: Decoder::default(),
        })
    }

    pub fn send(&mut self, frame: &Frame) -> Result<(), ClientError> {
        self.stream
            .write_all(&frame.encode())
            .map_err(|source| ClientError::Io {
                id: String::new(),
                source,
            })
    }

    /// The next frame; `None` when the monitor closed the connection.
    pub fn recv(&mut self) -> Result<Option<Frame>, ClientError> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => {
                    return Err(ClientError::Io {
                        id: String::new(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    })
                }
            }
            let mut buf = [0u8; 32 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ClientError::Io {
                        id: String::new(),
                        source,
                    })
                }
            }
        }
    }
}

/// Kills a running container through its monitor and waits until the monitor has
/// recorded the exit and cleaned up; cleans up itself (kills the cgroup) if the monitor
/// is gone or never records the exit.
pub fn kill(cd: &ContainerDir) -> Result<(), ClientError> {
    let st = cd.state()?;
    if st.status != Status::Running {
        return Ok(());
    }
    match Attachment::connect(cd) {
        Ok(mut a) => {
            let _ = a.send(&Frame::Kill);
            // Wait for the monitor to close the connection after its Exit frame: 2 s,
            // then (a frozen cgroup, a task stuck in the kernel) kill every task of the
            // cgroup ourselves, thawing it first, and wait 8 s more.
            let gone = |a: &mut Attachment, secs: u64| {
                let deadline = Instant::now() + Duration::from_secs(secs);
                let _ = a.stream.set_read_timeout(Some(Duration::from_secs(secs)));
                while Instant::now() < deadline {
                    match a.recv() {
                        Ok(Some(_)) => continue,
                        Ok(None) => return true,
                        Err(_) => return false,
                    }
                }
                false
            };
            if !gone(&mut a, 2) {
                if let Some(p) = &st.cgroup {
                    crate::runtime::cgroups::ContainerCgroup::open(p).kill_all();
                }
                gone(&mut a, 8);
            }
            if let Some(mp) = st.monitor_pid {
                let deadline = Instant::now() + Duration::from_secs(5);
                while state::process_start_time(mp).is_some() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let mut st = cd.state().unwrap_or(st);
            state::reap_if_orphaned(cd, &mut st);
        }
        Err(_) => {
            let mut st = st;
            state::reap_orphan(cd, &mut st);
        }
    }
    Ok(())
}
