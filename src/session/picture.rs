//! The live picture of a session, as the lab pages draw it: the lab host and each
//! container with their namespaces (inode numbers: equal means shared), their pids in
//! every pid namespace they are seen from, their cgroup usage against its limits, and the
//! steps the runtime took to start them.
//!
//! Everything here is read from /proc, the cgroup files and the containers' folders; a
//! sample costs a few dozen small reads, so a page may ask for one every second.

use super::Sessions;
use crate::observe::namespaces::{inode, TYPES};
use crate::runtime::cgroups::{CgroupStats, ContainerCgroup};
use crate::runtime::launch::{TraceEntry, TRACE_FILE};
use crate::runtime::state::{self, ContainerDir};
use crate::store::SessionRow;
use serde::Serialize;
use std::collections::BTreeMap;

/// One process tree's worth of picture: the lab host or a container.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: String,
    /// The container's name (the lab host is called `labhost`).
    pub name: String,
    pub image: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub paused: bool,
    /// The first process's pid on the host, in the lab host, and in the container.
    pub pids: Pids,
    /// Namespace type → inode.
    pub namespaces: BTreeMap<&'static str, u64>,
    pub cgroup: Option<CgroupStats>,
    /// The launch's steps, with what each would be in a shell and its man page.
    pub trace: Vec<TraceStep>,
    /// `none`, `host`, `container:<name>` or the network it was started on.
    pub network_mode: String,
    /// Volumes, lab host folders and tmpfs mounted in: "source -> target (ro)".
    pub mounts: Vec<String>,
    /// The writable layer's upper folder, as the lab host sees it (nested containers).
    pub upper: Option<String>,
    /// Which lab host it runs on: `labhost` or `labhost2` (an overlay's second host).
    pub node: String,
    /// What it changed in its writable layer so far (`gantry diff`, at most
    /// [`CHANGES_SHOWN`] lines): copy-up, live.
    pub changes: Vec<String>,
}

/// Most `changes` lines a sample carries.
pub const CHANGES_SHOWN: usize = 40;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pids {
    pub host: Option<i32>,
    pub labhost: Option<i32>,
    pub container: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceStep {
    pub step: String,
    pub ms: f64,
    /// The same thing done by hand, where there is a command for it.
    pub shell: Option<String>,
    /// The man page that explains it, e.g. `clone(2)`.
    pub man: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Picture {
    pub sampled_at_ms: i64,
    /// The real host's namespaces (gantry's own), for comparison.
    pub host_namespaces: BTreeMap<&'static str, u64>,
    pub labhost: Option<Node>,
    pub containers: Vec<Node>,
    /// The session's user networks: bridges in the lab host, and who is plugged in.
    pub networks: Vec<NetworkPicture>,
}

/// One user network as the topology picture draws it.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPicture {
    pub name: String,
    /// `bridge`, `macvlan` or `overlay`.
    pub driver: String,
    /// For an overlay network: its VXLAN tunnel between the two lab hosts, e.g.
    /// "gv-ov: VNI 101, labhost 192.168.200.1 ⇄ labhost2 192.168.200.2 (UDP 4789, over gt-under)".
    pub tunnel: Option<String>,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub links: Vec<LinkPicture>,
}

/// A veth pair: the container's interface and address, and the lab host's end.
#[derive(Debug, Clone, Serialize)]
pub struct LinkPicture {
    pub container_id: String,
    pub container: String,
    pub interface: String,
    pub address: String,
    /// The veth end in the lab host, on the bridge.
    pub veth: String,
}

fn namespaces_of(pid: &str) -> BTreeMap<&'static str, u64> {
    TYPES
        .iter()
        .filter_map(|t| inode(pid, t).map(|i| (*t, i)))
        .collect()
}

/// What a runtime step is in shell terms, and where to read about it.
pub fn explain(step: &str) -> (Option<String>, Option<&'static str>) {
    let s = step.trim_start_matches("child: ");
    let pick = |shell: &str, man: &'static str| (Some(shell.to_string()), Some(man));
    if s.starts_with("cgroup created") {
        pick(
            "mkdir /sys/fs/cgroup/<controller>/gantry/<id>; echo <limit> > memory.limit_in_bytes …",
            "cgroups(7)",
        )
    } else if s.starts_with("clone into new namespaces") {
        pick(
            "unshare --user --mount --pid --uts --ipc --net --fork",
            "clone(2)",
        )
    } else if s.starts_with("write uid_map") {
        pick(
            &format!(
                "echo '{}' > /proc/<pid>/uid_map",
                s.trim_start_matches("write uid_map, gid_map: ")
            ),
            "user_namespaces(7)",
        )
    } else if s.starts_with("open_tree") {
        pick(
            "mount --bind -o X-mount.idmap=… <image> <lower>",
            "mount_setattr(2)",
        )
    } else if s.starts_with("echo 0 > tasks") {
        pick(
            "echo $$ > /sys/fs/cgroup/<controller>/gantry/<id>/tasks",
            "cgroups(7)",
        )
    } else if s.starts_with("setresgid") {
        pick("setpriv --reuid 0 --regid 0 --clear-groups", "setresuid(2)")
    } else if s.starts_with("mount --make-rprivate") {
        pick(s, "mount_namespaces(7)")
    } else if s.starts_with("mount -t overlay") {
        pick(
            "mount -t overlay overlay -o lowerdir=…,upperdir=…,workdir=… merged",
            "mount(8)",
        )
    } else if s.starts_with("mount -t proc") {
        pick("mount -t proc proc /proc", "proc(5)")
    } else if s.starts_with("mount -t sysfs") {
        pick("mount -t sysfs -o ro sysfs /sys", "sysfs(5)")
    } else if s.starts_with("mount -t devpts") {
        pick("mount -t devpts -o newinstance devpts /dev/pts", "pts(4)")
    } else if s.starts_with("mount") || s.starts_with("move_mount") {
        pick(s, "mount(2)")
    } else if s.starts_with("mkdir") || s.starts_with("ln -s") {
        (Some(s.to_string()), None)
    } else if s.starts_with("mask") {
        pick(
            &format!("mount --bind /dev/null {}", s.trim_start_matches("mask ")),
            "mount(8)",
        )
    } else if s.starts_with("pivot_root") {
        pick("cd <root>; pivot_root . .; umount -l .", "pivot_root(2)")
    } else if s.starts_with("sethostname") {
        pick(
            &format!("hostname {}", s.trim_start_matches("sethostname ")),
            "sethostname(2)",
        )
    } else if s.starts_with("ip link set lo up") {
        pick(s, "netdevice(7)")
    } else if s.starts_with("open /dev/ptmx") {
        (None, Some("pty(7)"))
    } else if s.starts_with("unshare(CLONE_NEWCGROUP)") {
        pick("unshare --cgroup", "cgroup_namespaces(7)")
    } else if s.starts_with("setsid") {
        pick("setsid -c", "setsid(2)")
    } else if s.starts_with("setrlimit") {
        pick("ulimit -n 4096", "setrlimit(2)")
    } else if s.starts_with("capset") {
        pick("capsh --drop=cap_sys_admin,… --", "capabilities(7)")
    } else if s.starts_with("close_range") {
        (None, Some("close_range(2)"))
    } else if s.starts_with("seccomp") {
        (None, Some("seccomp(2)"))
    } else if s.starts_with("execve") {
        pick(
            &format!("exec {}", s.trim_start_matches("execve ")),
            "execve(2)",
        )
    } else {
        (None, None)
    }
}

fn trace_of(cd: &ContainerDir) -> Vec<TraceStep> {
    let entries: Vec<TraceEntry> = std::fs::read(cd.dir.join(TRACE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    entries
        .into_iter()
        .map(|e| {
            let (shell, man) = explain(&e.step);
            TraceStep {
                step: e.step,
                ms: e.ms,
                shell,
                man,
            }
        })
        .collect()
}

impl Sessions {
    fn node(
        &self,
        cd: &ContainerDir,
        depth: usize,
        with_trace: bool,
        labhost_id: &str,
    ) -> Option<Node> {
        let spec = cd.spec().ok()?;
        let mut st = cd.state().ok()?;
        state::reap_if_orphaned(cd, &mut st);
        let alive = state::container_alive(&st);
        let pid = st.pid.filter(|_| alive);
        let cg = st
            .cgroup
            .as_ref()
            .filter(|_| alive)
            .map(ContainerCgroup::open);
        let nspid = |d| pid.and_then(|p| super::labhost::nspid(p, d));
        Some(Node {
            id: cd.id.clone(),
            name: spec
                .name
                .map(|n| n.to_string())
                .unwrap_or_else(|| "labhost".into()),
            image: spec.image.to_string(),
            status: if alive { "running" } else { "exited" }.into(),
            exit_code: st.exit_code,
            oom_killed: st.oom_killed,
            paused: cg.as_ref().is_some_and(|c| c.frozen()),
            pids: Pids {
                host: pid,
                labhost: nspid(1),
                container: if depth > 0 { nspid(depth + 1) } else { None },
            },
            namespaces: pid
                .map(|p| namespaces_of(&p.to_string()))
                .unwrap_or_default(),
            cgroup: cg.map(|c| c.stats()),
            trace: if with_trace { trace_of(cd) } else { vec![] },
            network_mode: match &spec.network {
                crate::runtime::spec::NetworkMode::None => "none".into(),
                crate::runtime::spec::NetworkMode::Container(id) => {
                    if spec.nest.as_ref().is_some_and(|n| &n.host == id) {
                        "host".into()
                    } else {
                        format!("container:{}", &id[..12.min(id.len())])
                    }
                }
                crate::runtime::spec::NetworkMode::Bridge(b) => b.network.clone(),
                other => format!("{other:?}").to_lowercase(),
            },
            mounts: spec
                .volumes
                .iter()
                .map(|v| {
                    format!(
                        "{} -> {}{}",
                        v.volume.clone().unwrap_or(v.source.clone()),
                        v.target,
                        if v.readonly { " (ro)" } else { "" }
                    )
                })
                .chain(
                    spec.tmpfs
                        .iter()
                        .map(|t| format!("tmpfs ({} MiB) -> {}", t.size >> 20, t.target)),
                )
                .collect(),
            node: match &spec.nest {
                Some(n) if n.host != labhost_id => "labhost2".into(),
                None if spec.hostname.as_str() == "labhost2" => "labhost2".into(),
                _ => "labhost".into(),
            },
            changes: match (&spec.nest, pid) {
                (Some(n), Some(_)) => self
                    .layer_changes_of(n.host_pid, &cd.id, &spec.image_rootfs)
                    .into_iter()
                    .take(CHANGES_SHOWN)
                    .map(|c| format!("{} {}", c.kind, c.path))
                    .collect(),
                _ => vec![],
            },
            upper: spec.nest.as_ref().map(|_| {
                format!(
                    "{}/rootfs/upper",
                    crate::runtime::launch::labhost_container_dir(&cd.id).display()
                )
            }),
        })
    }

    /// A sample of the session's picture. The trace (which does not change) only when
    /// asked for.
    pub fn picture(&self, row: &SessionRow, with_trace: bool) -> Picture {
        let mut containers: Vec<Node> = self
            .nested(row)
            .iter()
            .filter_map(|cd| self.node(cd, 1, with_trace, &row.container_id))
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Picture {
            sampled_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            host_namespaces: namespaces_of("self"),
            labhost: self.node(&self.container(row), 0, with_trace, &row.container_id),
            containers,
            networks: self
                .networks(&row.id)
                .networks
                .values()
                .map(|n| NetworkPicture {
                    name: n.name.clone(),
                    driver: n.driver.clone(),
                    tunnel: (n.driver == "overlay").then(|| {
                        format!(
                            "{}: VNI {}, labhost 192.168.200.1 ⇄ labhost2 192.168.200.2 (UDP 4789, over {})",
                            {
                                let mut v = format!("gv-{}", n.name);
                                v.truncate(15);
                                v
                            },
                            100 + n.n as u32,
                            crate::runtime::network::UNDERLAY
                        )
                    }),
                    bridge: n.bridge.clone(),
                    subnet: n.subnet(),
                    gateway: n.gateway().to_string(),
                    links: n
                        .members
                        .iter()
                        .map(|(id, m)| LinkPicture {
                            container_id: id.clone(),
                            container: m.name.clone(),
                            interface: m.ifname.clone(),
                            address: format!("{}/24", m.address),
                            veth: crate::runtime::network::veth_name(id, &m.ifname),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_step_names_its_man_page() {
        for step in [
            "clone into new namespaces",
            "write uid_map, gid_map: 0 1073741824 65536",
            "child: mount -t overlay /",
            "child: pivot_root . . && umount -l .",
            "child: capset: keep Docker's 14 capabilities, prctl(PR_SET_NO_NEW_PRIVS)",
            "child: seccomp(SET_MODE_FILTER): 90-instruction allowlist",
            "child: execve sh",
        ] {
            assert!(explain(step).1.is_some(), "{step}");
        }
        assert_eq!(
            explain("write uid_map, gid_map: 0 1073741824 65536")
                .0
                .unwrap(),
            "echo '0 1073741824 65536' > /proc/<pid>/uid_map"
        );
    }
}
