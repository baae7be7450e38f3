//! A session's user networks (`gantry network create` in a lab host): which exist, their
//! bridge and subnet, which containers are on them with which address, and the `hosts`
//! file through which those containers find each other by name.
//!
//! The record is one JSON file per session in the state dir; the kernel objects (bridges,
//! veths) live in the lab host's network namespace and vanish with it. Changes are made
//! under one lock, so two requests never hand out the same address.

use super::{SessionError, Sessions};
use crate::runtime::network::{self, BridgeNet};
use crate::runtime::spec::NetworkName;
use crate::runtime::state::{self, ContainerDir};
use crate::store::SessionRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Most user networks per session (each is a /24 in 10.88.0.0/16).
pub const MAX_NETWORKS: usize = 16;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionNetworks {
    pub networks: BTreeMap<String, Network>,
    /// The session's second lab host (container id), made for overlay networks.
    #[serde(default)]
    pub node2: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// `bridge` or `macvlan`.
    #[serde(default = "bridge_driver")]
    pub driver: String,
    /// The bridge device in the lab host (a macvlan network's parent device).
    pub bridge: String,
    /// The third octet of its subnet, 10.88.N.0/24.
    pub n: u8,
    pub created_at: i64,
    /// Container id → its place on the network.
    pub members: BTreeMap<String, Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub address: Ipv4Addr,
    /// The container's interface for this network (eth0, eth1, ...).
    pub ifname: String,
}

impl Network {
    pub fn subnet(&self) -> String {
        format!("10.88.{}.0/24", self.n)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        network::gateway_of(self.n)
    }

    fn free_address(&self) -> Option<Ipv4Addr> {
        (2..=254u8)
            .map(|k| Ipv4Addr::new(10, 88, self.n, k))
            .find(|a| !self.members.values().any(|m| m.address == *a))
    }
}

fn bridge_driver() -> String {
    "bridge".into()
}

fn bad(e: impl std::fmt::Display) -> SessionError {
    SessionError::BadRequest(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> SessionError {
    SessionError::Start(e.to_string())
}

impl Sessions {
    fn networks_dir(&self, session: &str) -> PathBuf {
        self.paths.state_dir.join("networks").join(session)
    }

    /// The `hosts` file of one network, bound into its containers at /etc/hosts.
    pub fn hosts_file(&self, session: &str, network: &str) -> PathBuf {
        self.networks_dir(session).join(format!("{network}.hosts"))
    }

    pub fn networks(&self, session: &str) -> SessionNetworks {
        std::fs::read(self.networks_dir(session).join("networks.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_networks(&self, session: &str, nets: &SessionNetworks) -> Result<(), SessionError> {
        let dir = self.networks_dir(session);
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let tmp = dir.join("networks.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(nets).expect("serialises"))
            .map_err(internal)?;
        std::fs::rename(&tmp, dir.join("networks.json")).map_err(internal)?;
        for net in nets.networks.values() {
            self.write_hosts(session, net)?;
        }
        Ok(())
    }

    /// Rewrites a network's hosts file *in place* (same inode), so that the bind mounts
    /// in running containers see the new lines.
    fn write_hosts(&self, session: &str, net: &Network) -> Result<(), SessionError> {
        use std::io::Write;
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
        text.push_str(&format!("{}\tlabhost\n", net.gateway()));
        for (id, m) in &net.members {
            text.push_str(&format!(
                "{}\t{} {}\n",
                m.address,
                m.name,
                &id[..12.min(id.len())]
            ));
        }
        let path = self.hosts_file(session, &net.name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(internal)?;
        f.write_all(text.as_bytes()).map_err(internal)?;
        // Readable by the containers' root (an unprivileged host uid).
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
        Ok(())
    }

    /// `gantry network create NAME`: a bridge with the next free /24.
    pub async fn network_create(
        &self,
        row: &SessionRow,
        name: &str,
    ) -> Result<Network, SessionError> {
        self.network_create_with(row, name, "bridge").await
    }

    /// `gantry network create --driver DRIVER NAME`: `bridge` (a Linux bridge, a veth per
    /// container) or `macvlan` (each container a macvlan of one parent device, with its
    /// own MAC address).
    pub async fn network_create_with(
        &self,
        row: &SessionRow,
        name: &str,
        driver: &str,
    ) -> Result<Network, SessionError> {
        if !["bridge", "macvlan", "overlay"].contains(&driver) {
            return Err(bad(format!(
                "unknown network driver {driver:?}: use bridge, macvlan or overlay"
            )));
        }
        let name = NetworkName::parse(name).map_err(bad)?.0;
        let _guard = self.net_lock.lock().await;
        let mut nets = self.networks(&row.id);
        if nets.networks.contains_key(&name) {
            return Err(SessionError::Conflict(format!(
                "network {name} already exists: see gantry network ls"
            )));
        }
        if nets.networks.len() >= MAX_NETWORKS {
            return Err(bad(format!(
                "this session has {MAX_NETWORKS} networks, the most it may have: remove one first"
            )));
        }
        let n = (1..=250u8)
            .find(|n| !nets.networks.values().any(|x| x.n == *n))
            .ok_or_else(|| bad("no free subnet"))?;
        let net = Network {
            bridge: format!("gt-{name}"),
            driver: driver.to_string(),
            name: name.clone(),
            n,
            created_at: state::now(),
            members: BTreeMap::new(),
        };
        let pid = self.labhost_pid(row)?;
        let (bridge, gw, macvlan) = (net.bridge.clone(), net.gateway(), driver == "macvlan");
        if driver == "overlay" {
            // Both lab hosts: a bridge each, joined by a VXLAN tunnel over the underlay.
            let node2 = self.second_node(row, &mut nets).await?;
            let pid2 = node2
                .running_pid()
                .ok_or_else(|| internal("the second lab host has no pid"))?;
            let vni = 100 + n as u32;
            std::thread::spawn(move || {
                network::create_overlay_side(
                    pid,
                    &bridge,
                    Some((gw, 24)),
                    vni,
                    std::net::Ipv4Addr::new(192, 168, 200, 2),
                )?;
                network::create_overlay_side(
                    pid2,
                    &bridge,
                    None,
                    vni,
                    std::net::Ipv4Addr::new(192, 168, 200, 1),
                )
            })
            .join()
            .map_err(|_| internal("the network thread panicked"))?
            .map_err(internal)?;
            nets.networks.insert(name, net.clone());
            self.save_networks(&row.id, &nets)?;
            return Ok(net);
        }
        std::thread::spawn(move || {
            if macvlan {
                network::create_macvlan_parent(pid, &bridge, gw, 24)
            } else {
                network::create_bridge(pid, &bridge, gw, 24)
            }
        })
        .join()
        .map_err(|_| internal("the network thread panicked"))?
        .map_err(internal)?;
        nets.networks.insert(name, net.clone());
        self.save_networks(&row.id, &nets)?;
        Ok(net)
    }

    /// `gantry network rm NAME`: only when no container is on it.
    pub async fn network_remove(&self, row: &SessionRow, name: &str) -> Result<(), SessionError> {
        let _guard = self.net_lock.lock().await;
        let mut nets = self.networks(&row.id);
        let net = nets.networks.get(name).ok_or_else(|| {
            SessionError::Missing(format!("no network {name}: see gantry network ls"))
        })?;
        if !net.members.is_empty() {
            let who: Vec<_> = net.members.values().map(|m| m.name.clone()).collect();
            return Err(SessionError::Conflict(format!(
                "network {name} still has containers ({}): remove or disconnect them first",
                who.join(", ")
            )));
        }
        let pid = self.labhost_pid(row)?;
        let bridge = net.bridge.clone();
        // An overlay network has its bridge and tunnel end on both lab hosts.
        let second = if net.driver == "overlay" {
            self.lab_node(row, "labhost2")
                .ok()
                .and_then(|cd| cd.running_pid())
        } else {
            None
        };
        std::thread::spawn(move || {
            for p in std::iter::once(pid).chain(second) {
                network::delete_bridge(p, &bridge)?;
            }
            Ok::<_, crate::runtime::netlink::NetlinkError>(())
        })
        .join()
        .map_err(|_| internal("the network thread panicked"))?
        .map_err(internal)?;
        nets.networks.remove(name);
        let _ = std::fs::remove_file(self.hosts_file(&row.id, name));
        self.save_networks(&row.id, &nets)
    }

    /// Takes an address on `name` for a container about to start (its veth is made by
    /// the launch). `bridge` is created on first use, as Docker's default network.
    pub(crate) async fn network_reserve(
        &self,
        row: &SessionRow,
        name: &str,
        container_id: &str,
        container_name: &str,
    ) -> Result<(BridgeNet, PathBuf), SessionError> {
        if name == "bridge" && !self.networks(&row.id).networks.contains_key("bridge") {
            self.network_create(row, "bridge").await?;
        }
        let _guard = self.net_lock.lock().await;
        let mut nets = self.networks(&row.id);
        let net = nets.networks.get_mut(name).ok_or_else(|| {
            SessionError::Missing(format!(
                "network {name}: create it first with gantry network create {name}"
            ))
        })?;
        let address = net
            .free_address()
            .ok_or_else(|| bad(format!("network {name} is full")))?;
        net.members.insert(
            container_id.to_string(),
            Member {
                name: container_name.to_string(),
                address,
                ifname: "eth0".into(),
            },
        );
        let spec = BridgeNet {
            network: net.name.clone(),
            bridge: net.bridge.clone(),
            address,
            prefix: 24,
            gateway: net.gateway(),
            macvlan: net.driver == "macvlan",
            overlay: net.driver == "overlay",
        };
        self.save_networks(&row.id, &nets)?;
        Ok((spec, self.hosts_file(&row.id, name)))
    }

    /// Forgets a container on every network (it is gone: its veths went with its network
    /// namespace).
    pub(crate) async fn network_forget(&self, session: &str, container_id: &str) {
        let _guard = self.net_lock.lock().await;
        let mut nets = self.networks(session);
        let mut changed = false;
        for net in nets.networks.values_mut() {
            changed |= net.members.remove(container_id).is_some();
        }
        if changed {
            let _ = self.save_networks(session, &nets);
        }
    }

    /// `gantry network connect NAME CONTAINER`: one more interface in a running
    /// container.
    pub async fn network_connect(
        &self,
        row: &SessionRow,
        name: &str,
        cd: &ContainerDir,
    ) -> Result<Member, SessionError> {
        let pid = self.labhost_pid(row)?;
        let cpid = cd
            .running_pid()
            .ok_or_else(|| SessionError::Conflict(format!("container {} is not running", cd.id)))?;
        let cname = cd
            .spec()
            .ok()
            .and_then(|s| s.name)
            .map(|n| n.to_string())
            .unwrap_or_else(|| cd.id.clone());
        let _guard = self.net_lock.lock().await;
        let mut nets = self.networks(&row.id);
        let used: Vec<String> = nets
            .networks
            .values()
            .filter_map(|n| n.members.get(&cd.id).map(|m| m.ifname.clone()))
            .collect();
        let net = nets.networks.get_mut(name).ok_or_else(|| {
            SessionError::Missing(format!("no network {name}: see gantry network ls"))
        })?;
        if net.members.contains_key(&cd.id) {
            return Err(SessionError::Conflict(format!(
                "{cname} is already on network {name}"
            )));
        }
        let ifname = (0..8)
            .map(|i| format!("eth{i}"))
            .find(|i| !used.contains(i))
            .ok_or_else(|| bad("too many networks on one container"))?;
        let address = net
            .free_address()
            .ok_or_else(|| bad(format!("network {name} is full")))?;
        let spec = BridgeNet {
            network: net.name.clone(),
            bridge: net.bridge.clone(),
            address,
            prefix: 24,
            gateway: net.gateway(),
            macvlan: net.driver == "macvlan",
            overlay: net.driver == "overlay",
        };
        let (id, ifn) = (cd.id.clone(), ifname.clone());
        // A container with no network yet gets its default route here.
        let default_route = used.is_empty();
        std::thread::spawn(move || network::attach(pid, cpid, &id, &spec, &ifn, default_route))
            .join()
            .map_err(|_| internal("the network thread panicked"))?
            .map_err(internal)?;
        let member = Member {
            name: cname,
            address,
            ifname,
        };
        net.members.insert(cd.id.clone(), member.clone());
        self.save_networks(&row.id, &nets)?;
        Ok(member)
    }

    /// `gantry network disconnect NAME CONTAINER`.
    pub async fn network_disconnect(
        &self,
        row: &SessionRow,
        name: &str,
        cd: &ContainerDir,
    ) -> Result<(), SessionError> {
        let _guard = self.net_lock.lock().await;
        let mut nets = self.networks(&row.id);
        let net = nets.networks.get_mut(name).ok_or_else(|| {
            SessionError::Missing(format!("no network {name}: see gantry network ls"))
        })?;
        let member = net.members.get(&cd.id).cloned().ok_or_else(|| {
            SessionError::Missing(format!("container {} is not on network {name}", cd.id))
        })?;
        if let Some(cpid) = cd.running_pid() {
            let ifname = member.ifname.clone();
            std::thread::spawn(move || network::detach(cpid, &ifname))
                .join()
                .map_err(|_| internal("the network thread panicked"))?
                .map_err(internal)?;
        }
        net.members.remove(&cd.id);
        self.save_networks(&row.id, &nets)
    }

    /// The networks a container is on: (network, member).
    pub fn networks_of(&self, session: &str, container_id: &str) -> Vec<(String, Member)> {
        self.networks(session)
            .networks
            .values()
            .filter_map(|n| {
                n.members
                    .get(container_id)
                    .map(|m| (n.name.clone(), m.clone()))
            })
            .collect()
    }

    /// Removes the session's network records (its bridges went with the lab host).
    pub(crate) fn forget_networks(&self, session: &str) {
        let _ = std::fs::remove_dir_all(self.networks_dir(session));
    }
}
