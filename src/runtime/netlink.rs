//! A small rtnetlink client (see rtnetlink(7) and netlink(7)): what `ip link`, `ip addr`
//! and `ip route` send to the kernel, for the few requests gantry needs — create a bridge
//! or a veth pair, set a link up, give it an address, add a default route, delete a link.
//!
//! A netlink socket belongs to the network namespace it was created in, so the caller
//! picks the namespace by opening the socket there ([`Netlink::open_in`]). A veth pair is
//! created with its peer *directly* in the container's namespace (`IFLA_NET_NS_FD` in the
//! peer's attributes): moving a device between namespaces afterwards costs tens of
//! milliseconds, creating it there costs a fraction of one.
//!
//! Messages are built by hand: a `nlmsghdr`, the request's fixed header, then attributes
//! (`rtattr`: length, type, payload, padded to 4 bytes), some nested.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(nix::Error),
    #[error("{what}: {source}")]
    Request { what: String, source: nix::Error },
    #[error("no network interface {0}")]
    NoLink(String),
    #[error("entering the network namespace of {0}: {1}")]
    Namespace(String, nix::Error),
}

/// A netlink message under construction.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Msg { buf }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// An attribute with a payload.
    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A nested attribute: `fill` appends its contents.
    fn nested(&mut self, kind: u16, fill: impl FnOnce(&mut Msg)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        fill(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.align();
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// `struct ifinfomsg`: family, type, index, flags, change.
fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// A route netlink socket in one network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A socket in the caller's (thread's) network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(NetlinkError::Socket(nix::Error::last()));
        }
        // SAFETY: we own the new descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 1 })
    }

    /// A socket in the network namespace of process `pid` (the calling thread visits it
    /// and comes back; a network namespace may be changed per thread).
    pub fn open_in(pid: i32) -> Result<Self, NetlinkError> {
        let ns_err = |e| NetlinkError::Namespace(format!("process {pid}"), e);
        let io = |e: std::io::Error| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
        let own = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| ns_err(io(e)))?;
        let there =
            std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| ns_err(io(e)))?;
        nix::sched::setns(there, nix::sched::CloneFlags::CLONE_NEWNET).map_err(ns_err)?;
        let sock = Self::open();
        nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWNET).map_err(ns_err)?;
        sock
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&mut self, what: &str, msg: &mut Msg) -> Result<Vec<u8>, NetlinkError> {
        self.seq += 1;
        let seq = self.seq;
        let bytes = msg.finish(seq);
        let fail = |source| NetlinkError::Request {
            what: what.to_string(),
            source,
        };
        // SAFETY: send(2) of our buffer on our socket (the kernel is the default peer).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(fail(nix::Error::last()));
        }
        let mut reply = vec![0u8; 16384];
        loop {
            // SAFETY: recv(2) into our buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            if n < 0 {
                let e = nix::Error::last();
                if e == nix::Error::EINTR {
                    continue;
                }
                return Err(fail(e));
            }
            let data = &reply[..n as usize];
            let mut off = 0;
            let mut payload = None;
            while off + 16 <= data.len() {
                let len =
                    u32::from_ne_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(data[off + 4..off + 6].try_into().expect("2 bytes"));
                let mseq = u32::from_ne_bytes(data[off + 8..off + 12].try_into().expect("4 bytes"));
                if len < 16 || off + len > data.len() {
                    break;
                }
                if mseq == seq {
                    if kind == NLMSG_ERROR {
                        let code = i32::from_ne_bytes(
                            data[off + 16..off + 20].try_into().expect("4 bytes"),
                        );
                        if code != 0 {
                            return Err(fail(nix::Error::from_raw(-code)));
                        }
                        return Ok(payload.unwrap_or_default());
                    }
                    payload = Some(data[off..off + len].to_vec());
                }
                off += (len + 3) & !3;
            }
            if let Some(p) = payload {
                return Ok(p);
            }
        }
    }

    /// The index of interface `name`.
    pub fn index(&mut self, name: &str) -> Result<i32, NetlinkError> {
        let mut m = Msg::new(RTM_GETLINK, 0);
        m.bytes(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name);
        let reply = self
            .request(&format!("ip link show {name}"), &mut m)
            .map_err(|e| match e {
                NetlinkError::Request {
                    source: nix::Error::ENODEV,
                    ..
                } => NetlinkError::NoLink(name.to_string()),
                other => other,
            })?;
        if reply.len() < 32 {
            return Err(NetlinkError::NoLink(name.to_string()));
        }
        Ok(i32::from_ne_bytes(
            reply[20..24].try_into().expect("4 bytes"),
        ))
    }

    /// `ip link add NAME type bridge`.
    pub fn add_bridge(&mut self, name: &str) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.bytes(&ifinfomsg(0, 0, 0))
            .attr_str(IFLA_IFNAME, name)
            .nested(IFLA_LINKINFO, |m| {
                m.attr_str(IFLA_INFO_KIND, "bridge");
            });
        self.request(&format!("ip link add {name} type bridge"), &mut m)
            .map(drop)
    }

    /// `ip link add NAME master MASTER up type veth peer name PEER netns PEER_NS`: the
    /// pair with one end here (on the bridge `master`) and the other created directly in
    /// the namespace of `peer_ns`; this end is created up.
    pub fn add_veth(
        &mut self,
        name: &str,
        master: Option<i32>,
        peer: &str,
        peer_ns: RawFd,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetlinkError> {
        let up = libc::IFF_UP as u32;
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.bytes(&ifinfomsg(0, up, up)).attr_str(IFLA_IFNAME, name);
        if let Some(idx) = master {
            m.attr_u32(IFLA_MASTER, idx as u32);
        }
        m.nested(IFLA_LINKINFO, |m| {
            m.attr_str(IFLA_INFO_KIND, "veth");
            m.nested(IFLA_INFO_DATA, |m| {
                m.nested(VETH_INFO_PEER, |m| {
                    m.bytes(&ifinfomsg(0, 0, 0));
                    m.attr_str(IFLA_IFNAME, peer);
                    m.attr_u32(IFLA_NET_NS_FD, peer_ns as u32);
                    if let Some(mac) = peer_mac {
                        m.attr(IFLA_ADDRESS, &mac);
                    }
                });
            });
        });
        self.request(
            &format!("ip link add {name} type veth peer name {peer} netns <container>"),
            &mut m,
        )
        .map(drop)
    }

    /// `ip link add link PARENT name NAME netns NS type macvlan mode bridge`: a macvlan of
    /// `parent` (here), created directly in the namespace `ns`.
    pub fn add_macvlan(&mut self, parent: i32, name: &str, ns: RawFd) -> Result<(), NetlinkError> {
        const IFLA_LINK: u16 = 5;
        const IFLA_MACVLAN_MODE: u16 = 1;
        const MACVLAN_MODE_BRIDGE: u32 = 4;
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.bytes(&ifinfomsg(0, 0, 0))
            .attr_str(IFLA_IFNAME, name)
            .attr_u32(IFLA_LINK, parent as u32)
            .attr_u32(IFLA_NET_NS_FD, ns as u32)
            .nested(IFLA_LINKINFO, |m| {
                m.attr_str(IFLA_INFO_KIND, "macvlan");
                m.nested(IFLA_INFO_DATA, |m| {
                    m.attr_u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE);
                });
            });
        self.request(
            &format!(
                "ip link add link {parent} name {name} netns <container> type macvlan mode bridge"
            ),
            &mut m,
        )
        .map(drop)
    }

    /// `ip link add NAME type vxlan id VNI remote REMOTE dstport 4789 dev UNDERLAY`,
    /// enslaved to bridge `master` and up: one end of a VXLAN tunnel (RFC 7348) carrying
    /// a bridge's Ethernet frames over UDP to the other host.
    pub fn add_vxlan(
        &mut self,
        name: &str,
        vni: u32,
        remote: Ipv4Addr,
        underlay: i32,
        master: i32,
    ) -> Result<(), NetlinkError> {
        const IFLA_VXLAN_ID: u16 = 1;
        const IFLA_VXLAN_GROUP: u16 = 2;
        const IFLA_VXLAN_LINK: u16 = 3;
        const IFLA_VXLAN_PORT: u16 = 15;
        let up = libc::IFF_UP as u32;
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.bytes(&ifinfomsg(0, up, up))
            .attr_str(IFLA_IFNAME, name)
            .attr_u32(IFLA_MASTER, master as u32)
            .nested(IFLA_LINKINFO, |m| {
                m.attr_str(IFLA_INFO_KIND, "vxlan");
                m.nested(IFLA_INFO_DATA, |m| {
                    m.attr_u32(IFLA_VXLAN_ID, vni);
                    m.attr(IFLA_VXLAN_GROUP, &remote.octets());
                    m.attr_u32(IFLA_VXLAN_LINK, underlay as u32);
                    m.attr(IFLA_VXLAN_PORT, &4789u16.to_be_bytes());
                });
            });
        self.request(
            &format!("ip link add {name} type vxlan id {vni} remote {remote} dstport 4789"),
            &mut m,
        )
        .map(drop)
    }

    /// `ip link set dev INDEX up`.
    pub fn set_up(&mut self, index: i32) -> Result<(), NetlinkError> {
        let up = libc::IFF_UP as u32;
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.bytes(&ifinfomsg(index, up, up));
        self.request(&format!("ip link set {index} up"), &mut m)
            .map(drop)
    }

    /// `ip link set dev INDEX mtu MTU`.
    pub fn set_mtu(&mut self, index: i32, mtu: u32) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.bytes(&ifinfomsg(index, 0, 0)).attr_u32(IFLA_MTU, mtu);
        self.request(&format!("ip link set {index} mtu {mtu}"), &mut m)
            .map(drop)
    }

    /// `ip addr add ADDR/PREFIX dev INDEX`.
    pub fn add_address(
        &mut self,
        index: i32,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut h = [0u8; 8];
        h[0] = libc::AF_INET as u8;
        h[1] = prefix;
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        m.bytes(&h)
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets());
        self.request(&format!("ip addr add {addr}/{prefix} dev {index}"), &mut m)
            .map(drop)
    }

    /// `ip route add default via GATEWAY dev INDEX`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr, index: i32) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let mut h = [0u8; 12];
        h[0] = libc::AF_INET as u8;
        h[4] = RT_TABLE_MAIN;
        h[5] = RTPROT_BOOT;
        h[6] = RT_SCOPE_UNIVERSE;
        h[7] = RTN_UNICAST;
        m.bytes(&h)
            .attr(RTA_GATEWAY, &gateway.octets())
            .attr_u32(RTA_OIF, index as u32);
        self.request(&format!("ip route add default via {gateway}"), &mut m)
            .map(drop)
    }

    /// `ip link del dev INDEX` (a veth's peer goes with it).
    pub fn delete_link(&mut self, index: i32) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.bytes(&ifinfomsg(index, 0, 0));
        self.request(&format!("ip link del {index}"), &mut m)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_carry_their_length() {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.bytes(&ifinfomsg(0, 0, 0))
            .attr_str(IFLA_IFNAME, "br0")
            .nested(IFLA_LINKINFO, |m| {
                m.attr_str(IFLA_INFO_KIND, "bridge");
            });
        let b = m.finish(7).to_vec();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        // ifname: len 4 + "br0\0" = 8, no padding.
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 8);
        assert_eq!(&b[36..40], b"br0\0");
        // linkinfo nest: its header, then kind (4 + "bridge\0" = 11, padded to 12).
        let nest_len = u16::from_ne_bytes(b[40..42].try_into().unwrap());
        assert_eq!(nest_len, 4 + 12, "the inner attribute's padding counts");
        assert_eq!(
            u16::from_ne_bytes(b[42..44].try_into().unwrap()),
            IFLA_LINKINFO | NLA_F_NESTED
        );
    }
}
