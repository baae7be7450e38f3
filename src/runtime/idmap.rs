//! User namespaces: which host uids and gids a container's ids stand for, and the
//! registry that hands out non-overlapping ranges (see user_namespaces(7)).
//!
//! A container's root is uid 0 only inside its user namespace; on the host it is
//! `range.base`, an ordinary unprivileged uid. Each session (or each `gantry run`
//! container outside a session) gets a range of 65,536 ids of its own, so per-uid kernel
//! limits (RLIMIT_NPROC, inotify watches, keyrings) never couple two tenants, and a file a
//! container leaves behind is owned by an id no one else has.
//!
//! The image on disk is owned by host root. To show it as owned by the container's root
//! (not `nobody`), the parent makes an *idmapped* copy of the image mount with
//! `open_tree(2)` + `mount_setattr(2)` (`MOUNT_ATTR_IDMAP`, Linux 5.12) and hands it to the
//! container, which uses it as the overlay's lower layer. The image's files stay owned by
//! host root on disk; only this mount shows them shifted into the range.
//!
//! The registry is a folder of small files under the state dir, one per range in use,
//! named by its slot and holding its owner (`c-<container id>` or `s-<session id>`).
//! Creating a slot file with `O_EXCL` is the lock, so two `gantry` processes never get
//! the same range.

use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Ids per range: a whole 16-bit id space, as /etc/subuid ranges usually are.
pub const RANGE_SIZE: u32 = 65_536;
/// First host id handed out: far above any real user or /etc/subuid range.
pub const FIRST_HOST_ID: u32 = 1 << 30;
/// Ranges available (1 << 30 .. 1 << 31).
pub const SLOTS: u32 = (1 << 30) / RANGE_SIZE;

/// A contiguous block of host ids; container id `n` is host id `base + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub base: u32,
    pub size: u32,
}

impl IdRange {
    pub fn of_slot(slot: u32) -> Self {
        IdRange {
            base: FIRST_HOST_ID + slot * RANGE_SIZE,
            size: RANGE_SIZE,
        }
    }

    /// The line for `/proc/<pid>/uid_map` and `gid_map`: inside, host, count.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.base, self.size)
    }

    /// The host id of container id `id`, if it is in the range.
    pub fn host_id(&self, id: u32) -> Option<u32> {
        (id < self.size).then(|| self.base + id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("uid range registry {path}: {source}")]
    Registry {
        path: String,
        source: std::io::Error,
    },
    #[error("all {SLOTS} uid ranges are in use: remove stopped containers (`gantry rm --all`) or end sessions")]
    Exhausted,
    #[error("write {path}: {source} (gantry needs root, and a kernel with user namespaces)")]
    Map {
        path: String,
        source: std::io::Error,
    },
    #[error("{call} {path}: {source} (idmapped mounts need Linux 5.12 and a filesystem that supports them, such as ext4, xfs, btrfs or tmpfs)")]
    Idmap {
        call: &'static str,
        path: String,
        source: nix::Error,
    },
}

/// Who holds a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A container outside any session (`gantry run` on the host).
    Container(String),
    /// A session: its lab host and every container in it share one range.
    Session(String),
}

impl Owner {
    fn key(&self) -> String {
        match self {
            Owner::Container(id) => format!("c-{id}"),
            Owner::Session(id) => format!("s-{id}"),
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        if let Some(id) = key.strip_prefix("c-") {
            Some(Owner::Container(id.to_string()))
        } else {
            key.strip_prefix("s-")
                .map(|id| Owner::Session(id.to_string()))
        }
    }
}

/// The registry of ranges in use, under `<state dir>/idmap/`.
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(state_dir: &Path) -> Self {
        Registry {
            dir: state_dir.join("idmap"),
        }
    }

    fn err(&self) -> impl FnOnce(std::io::Error) -> IdMapError + '_ {
        move |source| IdMapError::Registry {
            path: self.dir.display().to_string(),
            source,
        }
    }

    /// Every range in use: (slot, owner).
    pub fn list(&self) -> Vec<(u32, Owner)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| {
                let slot = e.file_name().to_str()?.parse().ok()?;
                let key = std::fs::read_to_string(e.path()).ok()?;
                Some((slot, Owner::from_key(key.trim())?))
            })
            .collect()
    }

    /// The owner's range: the one it already holds, or a free one.
    pub fn allocate(&self, owner: &Owner) -> Result<IdRange, IdMapError> {
        crate::config::ensure_private_dir(&self.dir).map_err(self.err())?;
        let used = self.list();
        if let Some((slot, _)) = used.iter().find(|(_, o)| o == owner) {
            return Ok(IdRange::of_slot(*slot));
        }
        let taken: std::collections::HashSet<u32> = used.iter().map(|(s, _)| *s).collect();
        // Start after the highest slot in use, so a range just released is not handed to
        // the next tenant at once (files it left in a volume would change hands).
        let start = taken.iter().max().map(|m| m + 1).unwrap_or(0);
        for i in 0..SLOTS {
            let slot = (start + i) % SLOTS;
            if taken.contains(&slot) {
                continue;
            }
            let path = self.dir.join(slot.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(owner.key().as_bytes()).map_err(self.err())?;
                    return Ok(IdRange::of_slot(slot));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.err()(e)),
            }
        }
        Err(IdMapError::Exhausted)
    }

    /// Gives the owner's range back (nothing happens if it holds none).
    pub fn release(&self, owner: &Owner) {
        for (slot, o) in self.list() {
            if &o == owner {
                let _ = std::fs::remove_file(self.dir.join(slot.to_string()));
            }
        }
    }

    /// Gives back the ranges of containers outside sessions whose state folder is gone
    /// (a `gantry run` that crashed between taking a range and writing its folder).
    pub fn sweep_containers(&self, paths: &crate::config::Paths) {
        for (_, owner) in self.list() {
            if let Owner::Container(id) = &owner {
                if !paths.container_dir(id).exists() {
                    self.release(&owner);
                }
            }
        }
    }
}

/// Writes the child's uid and gid maps (the parent, host root, may map any range; the
/// child cannot write its own maps to anything but its own uid).
pub fn write_maps(pid: i32, range: &IdRange) -> Result<(), IdMapError> {
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, range.map_line())
            .map_err(|source| IdMapError::Map { path, source })?;
    }
    Ok(())
}

// The new mount API (Linux 5.2 / 5.12); libc has the syscall numbers but no wrappers.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount at `dir` (a folder or a file): nosuid, nodev,
/// read-only if asked, and with its ids shifted by the user namespace of `idmap_pid` if
/// given — a file owned by host uid 0 then appears owned by that namespace's root. The
/// returned fd is the mount; `move_mount(2)` attaches it.
pub fn detached_tree(
    dir: &Path,
    idmap_pid: Option<i32>,
    readonly: bool,
) -> Result<OwnedFd, IdMapError> {
    let path = dir.display().to_string();
    let fail = |call, source| IdMapError::Idmap {
        call,
        path: path.clone(),
        source,
    };
    let cpath = std::ffi::CString::new(path.as_bytes())
        .map_err(|_| fail("open_tree", nix::Error::EINVAL))?;
    // SAFETY: open_tree(2) with a valid C string; returns a new fd or -1.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            cpath.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(fail("open_tree", nix::Error::last()));
    }
    // SAFETY: the kernel just gave us this descriptor.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let userns = match idmap_pid {
        Some(pid) => Some(
            std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| {
                fail(
                    "open user namespace",
                    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                )
            })?,
        ),
        None => None,
    };
    let mut attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if readonly {
        attr_set |= MOUNT_ATTR_RDONLY;
    }
    if userns.is_some() {
        attr_set |= MOUNT_ATTR_IDMAP;
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_ref().map(|f| f.as_raw_fd() as u64).unwrap_or(0),
    };
    let empty = c"";
    // SAFETY: mount_setattr(2) on our detached tree, with a properly sized attr struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(fail("mount_setattr", nix::Error::last()));
    }
    Ok(tree)
}

/// Attaches a detached mount (from [`detached_tree`]) at `target`.
pub fn move_mount(tree: &OwnedFd, target: &Path) -> nix::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let ctarget = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| nix::Error::EINVAL)?;
    let empty = c"";
    // SAFETY: move_mount(2) from an fd to a path; both strings are valid C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            ctarget.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_never_include_host_root_and_never_overlap() {
        let a = IdRange::of_slot(0);
        let b = IdRange::of_slot(1);
        let last = IdRange::of_slot(SLOTS - 1);
        assert!(a.base >= FIRST_HOST_ID, "never host root");
        assert_eq!(a.base + a.size, b.base);
        assert!(last.base.checked_add(last.size).is_some());
        assert_eq!(a.map_line(), format!("0 {} 65536\n", 1u32 << 30));
        assert_eq!(a.host_id(0), Some(a.base));
        assert_eq!(a.host_id(RANGE_SIZE), None);
    }

    #[test]
    fn each_owner_gets_one_range_and_gives_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(dir.path());
        let s1 = Owner::Session("one".into());
        let s2 = Owner::Session("two".into());
        let r1 = reg.allocate(&s1).unwrap();
        assert_eq!(
            reg.allocate(&s1).unwrap(),
            r1,
            "the same owner, the same range"
        );
        let r2 = reg.allocate(&s2).unwrap();
        assert_ne!(r1, r2);
        assert_eq!(reg.list().len(), 2);
        reg.release(&s1);
        assert_eq!(
            reg.list(),
            vec![(r2.base / RANGE_SIZE - (1 << 14), s2.clone())]
        );
        let r3 = reg.allocate(&Owner::Container("abc".into())).unwrap();
        assert_ne!(r3, r1, "a range just given back is not reused at once");
        reg.release(&s2);
        reg.release(&Owner::Container("abc".into()));
        assert!(reg.list().is_empty());
    }

    #[test]
    fn ranges_of_containers_whose_folder_is_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::config::Paths::new(dir.path().join("data"), dir.path().join("run"));
        let reg = Registry::new(&paths.state_dir);
        reg.allocate(&Owner::Container("gone".into())).unwrap();
        reg.allocate(&Owner::Container("here".into())).unwrap();
        reg.allocate(&Owner::Session("s".into())).unwrap();
        std::fs::create_dir_all(paths.container_dir("here")).unwrap();
        reg.sweep_containers(&paths);
        let owners: Vec<_> = reg.list().into_iter().map(|(_, o)| o).collect();
        assert!(owners.contains(&Owner::Container("here".into())));
        assert!(owners.contains(&Owner::Session("s".into())));
        assert!(!owners.contains(&Owner::Container("gone".into())));
    }
}
