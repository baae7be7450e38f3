//! Container networking inside a lab host, with [`crate::runtime::netlink`]: user
//! bridge networks (a Linux bridge in the lab host's network namespace, one veth pair per
//! container), as Docker's `bridge` driver builds them on a real host.
//!
//! ```text
//!   lab host netns                         container netns
//!   gt-<net> (bridge, 10.88.N.1/24) ── gt<id> ═══ veth ═══ eth0 (10.88.N.k/24)
//!                                                          default via 10.88.N.1
//! ```
//!
//! The veth is created from a netlink socket in the lab host's namespace, with its peer
//! placed directly in the container's namespace; the container end is then configured
//! from a socket opened in the container's namespace. Nothing is ever created in the real
//! host's namespace, and everything goes when the lab host's namespace does.

use crate::runtime::netlink::{Netlink, NetlinkError};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// A container's place on a user bridge network (in its spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeNet {
    /// The network's name, as the student gave it.
    pub network: String,
    /// The bridge device in the lab host (for a macvlan network: its parent device).
    pub bridge: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// `macvlan`: the container's interface is a macvlan of `bridge` (its own MAC address
    /// on the parent's segment) instead of a veth plugged into a bridge.
    #[serde(default)]
    pub macvlan: bool,
    /// An overlay network: the bridge's frames cross to the other lab host in VXLAN, so
    /// the container's MTU leaves room for the 50 bytes of encapsulation.
    #[serde(default)]
    pub overlay: bool,
}

/// The MTU inside an overlay network (1500 minus VXLAN's 50 bytes of headers).
pub const OVERLAY_MTU: u32 = 1450;

/// The underlay between a session's two lab hosts: a veth pair `gt-under`, one end in
/// each lab host's network namespace, 192.168.200.1 ⇄ .2.
pub fn create_underlay(
    first_pid: i32,
    second_pid: i32,
) -> Result<(Ipv4Addr, Ipv4Addr), NetlinkError> {
    let (a, b) = (
        Ipv4Addr::new(192, 168, 200, 1),
        Ipv4Addr::new(192, 168, 200, 2),
    );
    let mut one = Netlink::open_in(first_pid)?;
    let ns = std::fs::File::open(format!("/proc/{second_pid}/ns/net")).map_err(|e| {
        NetlinkError::Namespace(
            format!("process {second_pid}"),
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    one.add_veth(UNDERLAY, None, UNDERLAY, ns.as_raw_fd(), None)?;
    let i = one.index(UNDERLAY)?;
    one.add_address(i, a, 30)?;
    let mut two = Netlink::open_in(second_pid)?;
    let j = two.index(UNDERLAY)?;
    two.add_address(j, b, 30)?;
    two.set_up(j)?;
    let lo = two.index("lo")?;
    two.set_up(lo)?;
    Ok((a, b))
}

/// The underlay device's name in both lab hosts.
pub const UNDERLAY: &str = "gt-under";

/// One side of an overlay network: bridge `bridge` (with `gateway` if given) and a VXLAN
/// port on it towards `remote`.
pub fn create_overlay_side(
    pid: i32,
    bridge: &str,
    gateway: Option<(Ipv4Addr, u8)>,
    vni: u32,
    remote: Ipv4Addr,
) -> Result<(), NetlinkError> {
    let mut nl = Netlink::open_in(pid)?;
    nl.add_bridge(bridge)?;
    let br = nl.index(bridge)?;
    if let Some((gw, prefix)) = gateway {
        nl.add_address(br, gw, prefix)?;
    }
    nl.set_mtu(br, OVERLAY_MTU)?;
    nl.set_up(br)?;
    let under = nl.index(UNDERLAY)?;
    let vx = format!("gv-{}", bridge.trim_start_matches("gt-"));
    let mut vx = vx;
    vx.truncate(15);
    nl.add_vxlan(&vx, vni, remote, under, br)
}

/// First octets of every session network: 10.88.N.0/24 for network N (each lab host has
/// its own network namespace, so sessions may all use the same addresses).
pub const SUBNET_BASE: [u8; 2] = [10, 88];

/// The bridge's address on network `n`.
pub fn gateway_of(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET_BASE[0], SUBNET_BASE[1], n, 1)
}

/// The name of the host end of a container's veth: `gt` + 12 hex of its id (15 bytes is
/// the kernel's limit for interface names).
pub fn veth_name(container_id: &str, ifname: &str) -> String {
    let tag = if ifname == "eth0" {
        String::new()
    } else {
        ifname.trim_start_matches("eth").to_string()
    };
    let mut n = format!("gt{}{}", &container_id[..container_id.len().min(12)], tag);
    n.truncate(15);
    n
}

/// Creates network bridge `bridge` with `gateway/prefix` in the namespace of `netns_pid`.
pub fn create_bridge(
    netns_pid: i32,
    bridge: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetlinkError> {
    let mut nl = Netlink::open_in(netns_pid)?;
    nl.add_bridge(bridge)?;
    let idx = nl.index(bridge)?;
    nl.add_address(idx, gateway, prefix)?;
    nl.set_up(idx)
}

/// Creates the parent of a macvlan network in the namespace of `netns_pid`: a veth pair
/// `parent` ⇄ `parent`+`p`, both up (a lab host has no network card of its own), with
/// `address/prefix` on `parent`.
pub fn create_macvlan_parent(
    netns_pid: i32,
    parent: &str,
    address: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetlinkError> {
    let mut nl = Netlink::open_in(netns_pid)?;
    let ns = std::fs::File::open(format!("/proc/{netns_pid}/ns/net")).map_err(|e| {
        NetlinkError::Namespace(
            format!("process {netns_pid}"),
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    let peer = format!("{parent}p");
    nl.add_veth(parent, None, &peer, ns.as_raw_fd(), None)?;
    let p = nl.index(&peer)?;
    nl.set_up(p)?;
    let idx = nl.index(parent)?;
    nl.add_address(idx, address, prefix)
}

/// Deletes the bridge, and the VXLAN tunnel end of an overlay network if there is one
/// (veths stay, detached).
pub fn delete_bridge(netns_pid: i32, bridge: &str) -> Result<(), NetlinkError> {
    let mut nl = Netlink::open_in(netns_pid)?;
    let mut vx = format!("gv-{}", bridge.trim_start_matches("gt-"));
    vx.truncate(15);
    if let Ok(v) = nl.index(&vx) {
        nl.delete_link(v)?;
    }
    let idx = nl.index(bridge)?;
    nl.delete_link(idx)
}

/// Plugs the container whose first process is `container_pid` into `net`, as interface
/// `ifname`; with `default_route`, its default route goes through the bridge.
pub fn attach(
    labhost_pid: i32,
    container_pid: i32,
    container_id: &str,
    net: &BridgeNet,
    ifname: &str,
    default_route: bool,
) -> Result<(), NetlinkError> {
    let mut host = Netlink::open_in(labhost_pid)?;
    let bridge = host.index(&net.bridge)?;
    let ns = std::fs::File::open(format!("/proc/{container_pid}/ns/net")).map_err(|e| {
        NetlinkError::Namespace(
            format!("container process {container_pid}"),
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    if net.macvlan {
        host.add_macvlan(bridge, ifname, ns.as_raw_fd())?;
    } else {
        let veth = veth_name(container_id, ifname);
        host.add_veth(&veth, Some(bridge), ifname, ns.as_raw_fd(), None)?;
    }
    if net.overlay {
        let veth = veth_name(container_id, ifname);
        let v = host.index(&veth)?;
        host.set_mtu(v, OVERLAY_MTU)?;
    }
    let mut inside = Netlink::open_in(container_pid)?;
    let eth = inside.index(ifname)?;
    inside.add_address(eth, net.address, net.prefix)?;
    if net.overlay {
        inside.set_mtu(eth, OVERLAY_MTU)?;
    }
    // (Created up, the peer fails with ENOTCONN: it is brought up here.)
    inside.set_up(eth)?;
    // (A macvlan network has no gateway: macvlan children cannot even reach their
    // parent's own address.)
    if default_route && !net.macvlan {
        inside.add_default_route(net.gateway, eth)?;
    }
    Ok(())
}

/// Unplugs interface `ifname` of a running container (deleting one end of a veth deletes
/// both).
pub fn detach(container_pid: i32, ifname: &str) -> Result<(), NetlinkError> {
    let mut inside = Netlink::open_in(container_pid)?;
    let idx = inside.index(ifname)?;
    inside.delete_link(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_the_kernel_limit() {
        assert_eq!(veth_name("0123456789abcdef", "eth0"), "gt0123456789ab");
        assert_eq!(veth_name("0123456789ab", "eth1"), "gt0123456789ab1");
        assert!(veth_name("0123456789ab", "eth12").len() <= 15);
        assert_eq!(gateway_of(3), Ipv4Addr::new(10, 88, 3, 1));
    }
}
