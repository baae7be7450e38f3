//! Planning: a [`ContainerSpec`] becomes pure data — the namespaces to `clone(2)` into and
//! the list of mount operations that build the root filesystem.
//!
//! Nothing here touches the system, so unit tests can check every plan without root;
//! [`crate::runtime::rootfs`] applies a plan, one operation at a time.

use crate::runtime::spec::ContainerSpec;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use std::path::{Path, PathBuf};

/// Namespaces a container gets at `clone(2)` time (see namespaces(7)).
///
/// The user namespace comes with the others in one `clone`, so that the new mount, pid,
/// uts, ipc and net namespaces are *owned* by it: the container's root has capabilities
/// over them (it can bring up `lo`, set its hostname, use raw sockets) and over nothing
/// of the host's (see user_namespaces(7), "Interaction of user namespaces and other
/// types of namespaces").
///
/// The cgroup namespace is *not* here: it is created by the container's first process
/// with `unshare(CLONE_NEWCGROUP)` after it joined its own cgroup, so the namespace's
/// root is the container's cgroup (as runc does).
///
/// A container that shares another's network namespace (`container:<name>`) does not get
/// a new one: see [`clone_flags_for`].
pub fn clone_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
}

/// [`clone_flags`] for this network mode.
pub fn clone_flags_for(network: &crate::runtime::spec::NetworkMode) -> CloneFlags {
    if network.shared_with().is_some() {
        clone_flags() - CloneFlags::CLONE_NEWNET
    } else {
        clone_flags()
    }
}

/// One step of building the root filesystem, applied inside the container's new mount
/// namespace, so none of these mounts is ever visible on the host — and the kernel drops
/// them all when the namespace's last process exits, even after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// `mount --make-rprivate /`: our mounts must not propagate back to the host.
    MakeRootPrivate,
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
        flags: MsFlags,
        data: Option<String>,
    },
    /// A host character device bound onto an empty file: in a user namespace `mknod(2)`
    /// is refused, and a bind mount of the host's node is how a container gets one.
    BindDevice {
        source: PathBuf,
        path: PathBuf,
    },
    /// Attach the image, idmapped by the parent into the container's id range (see
    /// [`crate::runtime::idmap::detached_tree`]), at `target` with `move_mount(2)`.
    AttachImage {
        target: PathBuf,
    },
    /// Bind a folder of the (lab host's) mount namespace at `target`, creating the target
    /// first; read-only if asked (bind, then remount read-only).
    BindPath {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    /// Attach bind mount number `index` of the spec (opened by the parent, passed by fd)
    /// at `target`, creating the target (a file, or folders) first.
    AttachBind {
        index: usize,
        target: PathBuf,
        file: bool,
    },
    Symlink {
        target: String,
        link: PathBuf,
    },
    /// Hide a path if it exists: `/dev/null` (at `null`) bound over a file, an empty
    /// read-only tmpfs over a directory.
    Mask {
        path: PathBuf,
        null: PathBuf,
    },
    /// Make a path read-only if it exists: bind it onto itself, remount read-only.
    ReadOnly {
        path: PathBuf,
    },
    /// `pivot_root(2)` into `new_root` and detach the old root.
    PivotRoot {
        new_root: PathBuf,
    },
}

/// The devices of the minimal /dev (as Docker's default): (name, major, minor).
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Default size of a container's writable layer when the spec sets none.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

/// Where a container's writable layer lives, under its folder in the state dir.
#[derive(Debug, Clone)]
pub struct LayerDirs {
    /// tmpfs mount point (the writable layer's disk budget is this tmpfs's size).
    pub rw: PathBuf,
    /// Where the idmapped image is attached: the overlay's lower layer.
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl LayerDirs {
    pub fn under(container_dir: &Path) -> Self {
        let rw = container_dir.join("rootfs");
        LayerDirs {
            lower: rw.join("lower"),
            upper: rw.join("upper"),
            work: rw.join("work"),
            merged: rw.join("merged"),
            rw,
        }
    }
}

fn mount(
    source: &str,
    target: PathBuf,
    fstype: &str,
    flags: MsFlags,
    data: Option<String>,
) -> MountOp {
    MountOp::Mount {
        source: source.to_string(),
        target,
        fstype: fstype.to_string(),
        flags,
        data,
    }
}

fn mkdir(path: PathBuf, mode: u32) -> MountOp {
    MountOp::Mkdir { path, mode }
}

/// The mount operations that turn an image into the container's root, in order.
///
/// The writable layer is an overlay (see the kernel's overlayfs docs): the image is the
/// read-only lower dir, and the upper dir is on a tmpfs whose size is the container's
/// disk budget — a full disk is ENOSPC inside, never on the host — and which mounts about
/// five times faster than a dir on ext4.
pub fn rootfs_plan(spec: &ContainerSpec, dirs: &LayerDirs) -> Vec<MountOp> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let hardened = nosuid_nodev | MsFlags::MS_NOEXEC;
    let disk = spec
        .limits
        .disk
        .map(|d| d.bytes())
        .unwrap_or(DEFAULT_DISK_BYTES);
    let m = &dirs.merged;
    let dev = m.join("dev");

    // A nested container's layer is a folder on its lab host's data tmpfs (the session's
    // budget); any other gets a tmpfs of its own.
    let rw = if spec.nest.is_some() {
        mkdir(dirs.rw.clone(), 0o755)
    } else {
        mount(
            "gantry-rw",
            dirs.rw.clone(),
            "tmpfs",
            nosuid_nodev,
            Some(format!("size={disk},mode=0755")),
        )
    };
    let mut ops = vec![
        MountOp::MakeRootPrivate,
        rw,
        mkdir(dirs.lower.clone(), 0o755),
        MountOp::AttachImage {
            target: dirs.lower.clone(),
        },
        mkdir(dirs.upper.clone(), 0o755),
        mkdir(dirs.work.clone(), 0o700),
        mkdir(m.clone(), 0o755),
        // `userxattr`: in a user namespace overlay keeps its whiteouts and opaque markers
        // in `user.overlay.*` xattrs, since `trusted.*` needs host root.
        mount(
            "overlay",
            m.clone(),
            "overlay",
            MsFlags::empty(),
            Some(format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                dirs.lower.display(),
                dirs.upper.display(),
                dirs.work.display()
            )),
        ),
    ];
    for d in ["proc", "sys", "dev", "tmp"] {
        ops.push(mkdir(m.join(d), 0o755));
    }
    ops.push(mount("proc", m.join("proc"), "proc", hardened, None));
    if spec.network.shared_with().is_none() {
        ops.push(mount(
            "sysfs",
            m.join("sys"),
            "sysfs",
            hardened | MsFlags::MS_RDONLY,
            None,
        ));
    } else {
        // sysfs belongs to a network namespace, and only its owner's root may mount it:
        // a container in another's network namespace gets an empty, read-only /sys.
        ops.push(mount(
            "tmpfs",
            m.join("sys"),
            "tmpfs",
            hardened | MsFlags::MS_RDONLY,
            Some("size=0".into()),
        ));
    }
    ops.push(mount(
        "tmpfs",
        dev.clone(),
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k".into()),
    ));
    for (name, _, _) in DEVICES {
        ops.push(MountOp::BindDevice {
            source: Path::new("/dev").join(name),
            path: dev.join(name),
        });
    }
    ops.push(mkdir(dev.join("pts"), 0o755));
    ops.push(mkdir(dev.join("shm"), 0o1777));
    // A devpts of its own: the container's ptys are numbered from 0 and invisible to the
    // host's /dev/pts (see pts(4), "newinstance").
    ops.push(mount(
        "devpts",
        dev.join("pts"),
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620".into()),
    ));
    ops.push(mount(
        "shm",
        dev.join("shm"),
        "tmpfs",
        hardened,
        Some("mode=1777,size=65536k".into()),
    ));
    for (target, link) in [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        ops.push(MountOp::Symlink {
            target: target.into(),
            link: dev.join(link),
        });
    }
    for v in &spec.volumes {
        ops.push(MountOp::BindPath {
            source: PathBuf::from(&v.source),
            target: crate::runtime::security::under(m, &v.target),
            readonly: v.readonly,
        });
    }
    for t in &spec.tmpfs {
        let target = crate::runtime::security::under(m, &t.target);
        ops.push(MountOp::Mkdir {
            path: target.clone(),
            mode: 0o755,
        });
        ops.push(mount(
            "tmpfs",
            target,
            "tmpfs",
            nosuid_nodev,
            Some(format!("size={},mode=0755", t.size)),
        ));
    }
    for (index, b) in spec.binds.iter().enumerate() {
        ops.push(MountOp::AttachBind {
            index,
            target: crate::runtime::security::under(m, &b.target),
            file: b.file,
        });
    }
    // Docker's masked and read-only paths (see runtime::security); not in a lab host
    // (see `unmasked_proc`), where the user namespace keeps those files host root's.
    let masked: &[&str] = if spec.unmasked_proc {
        &[]
    } else {
        crate::runtime::security::MASKED
    };
    let read_only: &[&str] = if spec.unmasked_proc {
        &[]
    } else {
        crate::runtime::security::READ_ONLY
    };
    for p in masked {
        ops.push(MountOp::Mask {
            path: crate::runtime::security::under(m, p),
            null: dev.join("null"),
        });
    }
    for p in read_only {
        ops.push(MountOp::ReadOnly {
            path: crate::runtime::security::under(m, p),
        });
    }
    ops.push(MountOp::PivotRoot {
        new_root: m.clone(),
    });
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "abc".into(),
            name: None,
            image: ImageName::parse("busybox").unwrap(),
            image_rootfs: "/var/lib/gantry/images/busybox/rootfs".into(),
            command: vec!["sh".into()],
            env: vec![],
            hostname: Hostname::parse("abc").unwrap(),
            workdir: "/".into(),
            tty: true,
            interactive: true,
            limits: Limits {
                disk: Some(DiskLimit::parse("64m").unwrap()),
                ..Limits::default()
            },
            network: NetworkMode::None,
            auto_remove: false,
            session: None,
            idmap: crate::runtime::idmap::IdRange::of_slot(0),
            binds: vec![],
            nest: None,
            nested_namespaces: false,
            volumes: vec![],
            tmpfs: vec![],
            unmasked_proc: false,
            publish: vec![],
        }
    }

    #[test]
    fn volumes_and_tmpfs_mount_inside_the_new_root_before_pivot_root() {
        let mut s = spec();
        s.volumes = vec![VolumeMount::parse("data:/srv:ro").unwrap()];
        s.tmpfs = vec![TmpfsMount::parse("/cache:8m").unwrap()];
        let ops = rootfs_plan(&s, &LayerDirs::under(Path::new("/c")));
        let bind = ops
            .iter()
            .position(|o| {
                o == &MountOp::BindPath {
                    source: "/var/lib/gantry/volumes/data/_data".into(),
                    target: "/c/rootfs/merged/srv".into(),
                    readonly: true,
                }
            })
            .expect("the volume is bound");
        let tmpfs = ops
            .iter()
            .position(|o| matches!(o, MountOp::Mount { target, data: Some(d), .. } if target.ends_with("merged/cache") && d.starts_with("size=8388608")))
            .expect("the tmpfs is mounted");
        assert!(bind < ops.len() - 1 && tmpfs < ops.len() - 1);
    }

    fn find_mount<'a>(
        ops: &'a [MountOp],
        fstype: &str,
    ) -> (&'a PathBuf, MsFlags, Option<&'a String>) {
        ops.iter()
            .find_map(|op| match op {
                MountOp::Mount {
                    fstype: f,
                    target,
                    flags,
                    data,
                    ..
                } if f == fstype => Some((target, *flags, data.as_ref())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {fstype} mount in plan"))
    }

    #[test]
    fn the_plan_starts_private_and_ends_with_pivot_root() {
        let dirs = LayerDirs::under(Path::new("/run/gantry/containers/abc"));
        let ops = rootfs_plan(&spec(), &dirs);
        assert_eq!(ops.first(), Some(&MountOp::MakeRootPrivate));
        assert_eq!(
            ops.last(),
            Some(&MountOp::PivotRoot {
                new_root: "/run/gantry/containers/abc/rootfs/merged".into()
            })
        );
    }

    #[test]
    fn the_idmapped_image_is_the_read_only_lower_layer_of_an_overlay() {
        let dirs = LayerDirs::under(Path::new("/c"));
        let ops = rootfs_plan(&spec(), &dirs);
        let attach = ops
            .iter()
            .position(|o| {
                o == &MountOp::AttachImage {
                    target: dirs.lower.clone(),
                }
            })
            .expect("the image is attached");
        let overlay = ops
            .iter()
            .position(|o| matches!(o, MountOp::Mount { fstype, .. } if fstype == "overlay"))
            .unwrap();
        assert!(attach < overlay);
        let (target, _, data) = find_mount(&ops, "overlay");
        assert_eq!(target, &dirs.merged);
        assert_eq!(
            data.unwrap(),
            "lowerdir=/c/rootfs/lower,upperdir=/c/rootfs/upper,workdir=/c/rootfs/work,userxattr"
        );
        let (_, _, tmpfs) = find_mount(&ops, "tmpfs");
        assert!(tmpfs.unwrap().starts_with(&format!("size={}", 64 << 20)));
    }

    #[test]
    fn sys_is_read_only_and_devpts_is_a_new_instance() {
        let ops = rootfs_plan(&spec(), &LayerDirs::under(Path::new("/c")));
        let (_, flags, _) = find_mount(&ops, "sysfs");
        assert!(flags.contains(MsFlags::MS_RDONLY));
        let (target, _, data) = find_mount(&ops, "devpts");
        assert!(target.ends_with("dev/pts"));
        assert!(data.unwrap().contains("newinstance"));
    }

    #[test]
    fn dev_has_exactly_the_minimal_devices_bound_from_the_host() {
        let ops = rootfs_plan(&spec(), &LayerDirs::under(Path::new("/c")));
        let nodes: Vec<_> = ops
            .iter()
            .filter_map(|op| match op {
                MountOp::BindDevice { source, path } => {
                    assert_eq!(source.file_name(), path.file_name());
                    assert!(source.starts_with("/dev"));
                    Some(path.file_name().unwrap().to_str().unwrap())
                }
                _ => None,
            })
            .collect();
        assert_eq!(nodes, ["null", "zero", "full", "random", "urandom", "tty"]);
    }

    #[test]
    fn proc_secrets_are_masked_and_tunables_read_only_before_pivot_root() {
        let ops = rootfs_plan(&spec(), &LayerDirs::under(Path::new("/c")));
        let pos = |want: &MountOp| ops.iter().position(|o| o == want).unwrap();
        let kcore = pos(&MountOp::Mask {
            path: "/c/rootfs/merged/proc/kcore".into(),
            null: "/c/rootfs/merged/dev/null".into(),
        });
        let sys = pos(&MountOp::ReadOnly {
            path: "/c/rootfs/merged/proc/sys".into(),
        });
        let null = ops
            .iter()
            .position(
                |o| matches!(o, MountOp::BindDevice { path, .. } if path.ends_with("dev/null")),
            )
            .unwrap();
        assert!(
            null < kcore,
            "/dev/null exists before it is bound over /proc/kcore"
        );
        assert!(
            kcore < ops.len() - 1 && sys < ops.len() - 1,
            "before pivot_root"
        );
    }

    #[test]
    fn clone_flags_leave_cgroup_namespace_for_after_the_cgroup_join() {
        let f = clone_flags();
        assert!(f.contains(
            CloneFlags::CLONE_NEWUSER
                | CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWNET
        ));
        assert!(!f.contains(CloneFlags::CLONE_NEWCGROUP));
    }
}
