//! `-p HOSTPORT:CPORT`: a TCP port of the lab host forwarded to a container on a user
//! network, as Docker's userland proxy does.
//!
//! The listening socket, and each connection to the container, must be made *in the lab
//! host's network namespace*. A network namespace is per thread: a short-lived thread
//! enters it (setns(2)), makes the socket, and hands it over; the socket stays in the
//! namespace it was made in, and the server's async runtime then copies bytes both ways.
//! The forwarders belong to the server: they stop when the container goes, and a
//! restarted server sets them up again from the container's spec.

use super::{SessionError, Sessions};
use crate::runtime::spec::{NetworkMode, PortMap};
use crate::runtime::state::{self, ContainerDir};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Runs `f` on a thread of its own inside the network namespace of process `pid`.
fn in_netns<T: Send + 'static>(
    pid: i32,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))?
}

impl Sessions {
    /// Starts forwarding the container's published ports (from its spec).
    pub(crate) fn publish_ports(&self, cd: &ContainerDir) -> Result<(), SessionError> {
        let spec = cd.spec().map_err(|e| SessionError::Start(e.to_string()))?;
        if spec.publish.is_empty() {
            return Ok(());
        }
        let NetworkMode::Bridge(net) = &spec.network else {
            return Err(SessionError::BadRequest(
                "-p needs the container on a network: add --network NAME".into(),
            ));
        };
        let labhost_pid = spec
            .nest
            .as_ref()
            .map(|n| n.host_pid)
            .ok_or_else(|| SessionError::BadRequest("-p works inside a lab host".into()))?;
        let mut tasks = vec![];
        for p in &spec.publish {
            let port = p.host;
            let listener = in_netns(labhost_pid, move || {
                let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .map_err(|e| {
                SessionError::Conflict(format!(
                    "cannot publish port {port} in the lab host: {e} (is it published already?)"
                ))
            })?;
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| SessionError::Start(e.to_string()))?;
            let target = SocketAddr::from((net.address, p.container));
            tasks.push(tokio::spawn(forward(listener, labhost_pid, target)));
        }
        if let Ok(mut m) = self.ports.lock() {
            m.insert(cd.id.clone(), tasks);
        }
        Ok(())
    }

    /// Stops forwarding a container's ports (it is going).
    pub(crate) fn unpublish_ports(&self, container_id: &str) {
        if let Ok(mut m) = self.ports.lock() {
            for t in m.remove(container_id).unwrap_or_default() {
                t.abort();
            }
        }
    }

    /// After a restart: forwards again the ports of every running container.
    pub(crate) fn republish_all(&self) {
        for cd in state::list(&self.paths) {
            let live = cd.state().is_ok_and(|s| state::container_alive(&s));
            let has = cd.spec().is_ok_and(|s| !s.publish.is_empty());
            if live && has {
                if let Err(e) = self.publish_ports(&cd) {
                    tracing::warn!(container = %cd.id, error = %e, "publishing ports again");
                }
            }
        }
    }
}

/// Accepts on the lab host's port and copies each connection to and from the container.
async fn forward(listener: tokio::net::TcpListener, labhost_pid: i32, target: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let outbound = tokio::task::spawn_blocking(move || {
                in_netns(labhost_pid, move || {
                    let s = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                })
            })
            .await;
            let Ok(Ok(s)) = outbound else {
                return;
            };
            let Ok(mut outbound) = tokio::net::TcpStream::from_std(s) else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

/// Parses every `-p` of a request.
pub fn parse_ports(list: &[String]) -> Result<Vec<PortMap>, SessionError> {
    list.iter()
        .map(|p| PortMap::parse(p).map_err(|e| SessionError::BadRequest(e.to_string())))
        .collect()
}
