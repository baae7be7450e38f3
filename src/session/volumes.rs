//! A session's named volumes (`gantry volume create` in a lab host): folders on the lab
//! host's data tmpfs, `/var/lib/gantry/volumes/<name>/_data` — where Docker keeps them on a
//! real host — so they outlive their containers, count against the session's disk
//! budget, and the student can look at them from the lab host.
//!
//! The server reaches the lab host's files through `/proc/<lab host pid>/root` (it never
//! mounts anything for this); a nested container mounts them itself, from its copy of the
//! lab host's mount namespace.

use super::labfs;
use super::{SessionError, Sessions};
use crate::runtime::launch::LABHOST_DATA;
use crate::runtime::spec::NetworkName;
use crate::store::SessionRow;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct VolumeView {
    pub name: String,
    /// Where it is in the lab host.
    pub mountpoint: String,
    pub size_bytes: u64,
    /// Containers (names or ids) that mount it.
    pub used_by: Vec<String>,
}

fn internal(e: impl std::fmt::Display) -> SessionError {
    SessionError::Start(e.to_string())
}

/// Bytes used by the files under `dir` (not following symlinks).
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.path().symlink_metadata() {
                if m.is_dir() {
                    total += du(&e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

impl Sessions {
    /// The lab host's root folder (see [`labfs`]).
    pub(crate) fn labhost_root(
        &self,
        row: &SessionRow,
    ) -> Result<std::os::fd::OwnedFd, SessionError> {
        labfs::root_of(self.labhost_pid(row)?).map_err(internal)
    }

    /// `gantry volume create NAME` (also done by `run -v NAME:/path` on first use).
    pub fn volume_create(&self, row: &SessionRow, name: &str) -> Result<VolumeView, SessionError> {
        let name = NetworkName::parse(name)
            .map_err(|_| {
                SessionError::BadRequest(format!(
                    "invalid volume name {name:?}: use 1 to 12 of a-z 0-9 - _"
                ))
            })?
            .0;
        let root = self.labhost_root(row)?;
        if labfs::open(&root, &format!("{LABHOST_DATA}/volumes/{name}/_data")).is_ok() {
            return Err(SessionError::Conflict(format!(
                "volume {name} already exists"
            )));
        }
        // Owned by the lab host's root (the session range's first uid), like everything
        // the lab host makes, so its containers may write there.
        labfs::mkdir_all(
            &root,
            &format!("{LABHOST_DATA}/volumes/{name}/_data"),
            self.session_root_uid(row),
        )
        .map_err(|e| {
            SessionError::BadRequest(format!(
                "cannot make {LABHOST_DATA}/volumes/{name} in the lab host: {e}"
            ))
        })?;
        self.volume_view(row, &name)
    }

    fn session_root_uid(&self, row: &SessionRow) -> u32 {
        self.container(row)
            .spec()
            .map(|s| s.idmap.base)
            .unwrap_or(crate::runtime::idmap::FIRST_HOST_ID)
    }

    pub fn volume_view(&self, row: &SessionRow, name: &str) -> Result<VolumeView, SessionError> {
        let root = self.labhost_root(row)?;
        let data =
            labfs::open(&root, &format!("{LABHOST_DATA}/volumes/{name}/_data")).map_err(|_| {
                SessionError::Missing(format!("no volume {name}: see gantry volume ls"))
            })?;
        let used_by = self
            .nested(row)
            .iter()
            .filter_map(|cd| {
                let spec = cd.spec().ok()?;
                spec.volumes
                    .iter()
                    .any(|v| v.volume.as_deref() == Some(name))
                    .then(|| spec.name.map(|n| n.to_string()).unwrap_or(cd.id.clone()))
            })
            .collect();
        Ok(VolumeView {
            name: name.to_string(),
            mountpoint: format!("{LABHOST_DATA}/volumes/{name}/_data"),
            size_bytes: du(&labfs::fd_path(&data)),
            used_by,
        })
    }

    pub fn volume_list(&self, row: &SessionRow) -> Result<Vec<VolumeView>, SessionError> {
        let mut out = vec![];
        let root = self.labhost_root(row)?;
        let Ok(dir) = labfs::open(&root, &format!("{LABHOST_DATA}/volumes")) else {
            return Ok(out);
        };
        if let Ok(rd) = std::fs::read_dir(labfs::fd_path(&dir)) {
            for e in rd.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    if let Ok(v) = self.volume_view(row, name) {
                        out.push(v);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `gantry volume rm NAME`: only when no container uses it.
    pub fn volume_remove(&self, row: &SessionRow, name: &str) -> Result<(), SessionError> {
        let v = self.volume_view(row, name)?;
        if !v.used_by.is_empty() {
            return Err(SessionError::Conflict(format!(
                "volume {name} is used by {}: remove those containers first",
                v.used_by.join(", ")
            )));
        }
        let root = self.labhost_root(row)?;
        let dir = labfs::open(&root, &format!("{LABHOST_DATA}/volumes")).map_err(internal)?;
        std::fs::remove_dir_all(labfs::fd_path(&dir).join(name)).map_err(internal)
    }

    /// Deletes a nested container's folder in the lab host (its writable layer).
    pub(crate) fn remove_layer(&self, row: &SessionRow, container_id: &str) {
        let Ok(root) = self.labhost_root(row) else {
            return;
        };
        if let Ok(dir) = labfs::open(&root, &format!("{LABHOST_DATA}/containers")) {
            let _ = std::fs::remove_dir_all(labfs::fd_path(&dir).join(container_id));
        }
    }

    /// Whether `path` is a folder in the lab host (for `-v /dir:/path`).
    pub(crate) fn labhost_has_dir(&self, row: &SessionRow, path: &str) -> bool {
        self.labhost_root(row)
            .ok()
            .and_then(|root| labfs::open(&root, path).ok())
            .is_some_and(|fd| labfs::fd_path(&fd).is_dir())
    }
}

/// One line of `gantry diff`: `A` added, `C` changed, `D` deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: char,
    pub path: String,
}

/// Compares a writable layer (overlay's upper dir) with the image below it: a whiteout
/// (a character device 0:0, see the kernel's overlayfs docs) is a deletion; a path the
/// image has too is a change; anything else was added.
pub fn layer_changes(upper: &Path, lower: &Path) -> Vec<Change> {
    layer_changes_at_most(upper, lower, usize::MAX)
}

/// [`layer_changes`], stopping after `max` entries (the live picture reads a layer every
/// second, and a layer may hold thousands of files).
pub fn layer_changes_at_most(upper: &Path, lower: &Path, max: usize) -> Vec<Change> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, rel: &str, lower: &Path, out: &mut Vec<Change>, max: usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if out.len() >= max {
                return;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{rel}/{name}");
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            let in_image = lower
                .join(path.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok();
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                out.push(Change { kind: 'D', path });
                continue;
            }
            out.push(Change {
                kind: if in_image { 'C' } else { 'A' },
                path: path.clone(),
            });
            if meta.is_dir() {
                walk(&e.path(), &path, lower, out, max);
            }
        }
    }
    let mut out = vec![];
    walk(upper, "", lower, &mut out, max);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

impl Sessions {
    /// The changes in the writable layer of nested container `id` of the lab host whose
    /// first process is `labhost_pid` (empty if it cannot be read).
    pub(crate) fn layer_changes_of(&self, labhost_pid: i32, id: &str, image: &Path) -> Vec<Change> {
        let Ok(root) = labfs::root_of(labhost_pid) else {
            return vec![];
        };
        match labfs::open(
            &root,
            &format!("{LABHOST_DATA}/containers/{id}/rootfs/upper"),
        ) {
            Ok(upper) => layer_changes(&labfs::fd_path(&upper), image),
            Err(_) => vec![],
        }
    }

    /// `gantry diff CONTAINER`: what the container added, changed and deleted.
    pub fn diff(
        &self,
        row: &SessionRow,
        cd: &crate::runtime::state::ContainerDir,
    ) -> Result<Vec<Change>, SessionError> {
        let spec = cd.spec().map_err(internal)?;
        let root = self.labhost_root(row)?;
        let upper = labfs::open(
            &root,
            &format!("{LABHOST_DATA}/containers/{}/rootfs/upper", cd.id),
        )
        .map_err(|_| {
            SessionError::Conflict(format!(
                "container {} has no writable layer any more",
                cd.id
            ))
        })?;
        Ok(layer_changes(&labfs::fd_path(&upper), &spec.image_rootfs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_lists_what_was_added_changed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::write(lower.join("etc/passwd"), "root\n").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/group"), "root:x:0:\nhi\n").unwrap();
        nix::sys::stat::mknod(
            &upper.join("etc/passwd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        std::fs::write(upper.join("added"), "new\n").unwrap();
        let got: Vec<String> = layer_changes(&upper, &lower)
            .into_iter()
            .map(|c| format!("{} {}", c.kind, c.path))
            .collect();
        assert_eq!(got, ["A /added", "C /etc", "C /etc/group", "D /etc/passwd"]);
    }
}
