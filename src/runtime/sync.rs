//! The parent/child handshake of a launch, over a `socketpair(2)`.
//!
//! `SOCK_SEQPACKET` keeps message boundaries, so each message is one JSON datagram; a file
//! descriptor (the pty master) travels beside it as `SCM_RIGHTS` (see unix(7)). Both ends
//! are close-on-exec: when the container's command is exec'd the parent reads EOF, which
//! is how it learns that `execve` succeeded.

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Messages of the launch handshake.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum SyncMsg {
    /// parent → child: the uid/gid maps are written; the idmapped image mount rides along.
    Mapped,
    /// child → parent: the root filesystem is ready (a pty master may ride along), with
    /// the child's steps and when each finished (ns since the launch began).
    RootfsReady { steps: Vec<(String, u64)> },
    /// parent → child: cgroups are joined, networking is set; go on and exec.
    Go,
    /// child → parent: the steps after Go, sent right before `execve`.
    Exec { steps: Vec<(String, u64)> },
    /// child → parent: a step failed; the launch is over.
    Failed {
        step: String,
        message: String,
        exit_code: i32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("socketpair: {0}")]
    Pair(nix::Error),
    #[error("sync send: {0}")]
    Send(nix::Error),
    #[error("sync receive: {0}")]
    Recv(nix::Error),
    #[error("sync message is not valid: {0}")]
    Decode(serde_json::Error),
}

/// One end of the handshake.
pub struct SyncSocket(OwnedFd);

const MAX_MSG: usize = 16 * 1024;
/// Most descriptors one message carries (the image and a container's bind mounts).
pub const MAX_FDS: usize = 8;

impl SyncSocket {
    pub fn pair() -> Result<(SyncSocket, SyncSocket), SyncError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(SyncError::Pair)?;
        Ok((SyncSocket(a), SyncSocket(b)))
    }

    pub fn send(&self, msg: &SyncMsg, fd: Option<RawFd>) -> Result<(), SyncError> {
        self.send_fds(msg, fd.as_slice())
    }

    /// Sends a message with any number of descriptors (up to [`MAX_FDS`]).
    pub fn send_fds(&self, msg: &SyncMsg, fds: &[RawFd]) -> Result<(), SyncError> {
        let body = serde_json::to_vec(msg).expect("sync messages always serialise");
        let iov = [IoSlice::new(&body)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<()>(self.0.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)
            .map_err(SyncError::Send)?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` is EOF (the peer exec'd or died).
    pub fn recv(&self) -> Result<Option<(SyncMsg, Option<OwnedFd>)>, SyncError> {
        Ok(self
            .recv_fds()?
            .map(|(msg, fds)| (msg, fds.into_iter().next())))
    }

    /// Receives one message with all the descriptors that came with it, in order.
    pub fn recv_fds(&self) -> Result<Option<(SyncMsg, Vec<OwnedFd>)>, SyncError> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = loop {
                match recvmsg::<()>(
                    self.0.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::Error::EINTR) => continue,
                    r => break r.map_err(SyncError::Recv)?,
                }
            };
            let mut got = vec![];
            for c in msg.cmsgs().map_err(SyncError::Recv)? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for f in fds {
                        // SAFETY: the kernel just installed this descriptor for us.
                        got.push(unsafe { OwnedFd::from_raw_fd(f) });
                    }
                }
            }
            (msg.bytes, got)
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n]).map_err(SyncError::Decode)?;
        Ok(Some((msg, fds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_descriptors_cross_the_pair() {
        let (a, b) = SyncSocket::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let ready = SyncMsg::RootfsReady {
            steps: vec![("mount proc".into(), 42)],
        };
        a.send(&ready, Some(file.as_raw_fd())).unwrap();
        let (msg, fd) = b.recv().unwrap().unwrap();
        assert_eq!(msg, ready);
        assert!(fd.is_some());
        b.send(&SyncMsg::Go, None).unwrap();
        assert_eq!(a.recv().unwrap().unwrap().0, SyncMsg::Go);
        drop(b);
        assert!(
            a.recv().unwrap().is_none(),
            "closing one end is EOF on the other"
        );
    }
}
