//! Applying a mount plan inside the container's new mount namespace: mount(2),
//! move_mount(2), pivot_root(2).
//!
//! Runs in the container's first process, before `execve`, single-threaded.

use crate::runtime::plan::MountOp;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};
use std::os::fd::OwnedFd;
use std::path::Path;

/// A failed step, naming the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: String,
        source: nix::Error,
    },
    #[error("the image has a symbolic link at {path}, where the runtime mounts or creates something: refusing to follow it")]
    Symlink { path: String },
    #[error("create {path}: {source}")]
    Mkdir {
        path: String,
        source: std::io::Error,
    },
}

fn sys<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Applies `ops` in order, calling `done` after each. Every target inside `root` (the
/// new root, not yet pivoted into) is checked first: no component of it below `root` may
/// be a symbolic link, so an image that ships `dev -> /proc/sys/kernel` or `mnt/x -> /`
/// cannot redirect a mount, a mknod or a mkdir anywhere else.
///
/// `image` is the idmapped image mount the parent made (for [`MountOp::AttachImage`]),
/// `binds` the bind mounts (for [`MountOp::AttachBind`]).
pub fn apply(
    ops: &[MountOp],
    root: &Path,
    image: Option<&OwnedFd>,
    binds: &[OwnedFd],
    mut done: impl FnMut(&MountOp),
) -> Result<(), RootfsError> {
    for op in ops {
        if let Some(target) = target_of(op) {
            refuse_symlinks(root, target)?;
        }
        apply_one(op, image, binds)?;
        done(op);
    }
    Ok(())
}

fn target_of(op: &MountOp) -> Option<&Path> {
    match op {
        MountOp::Mkdir { path, .. }
        | MountOp::BindDevice { path, .. }
        | MountOp::Mask { path, .. }
        | MountOp::ReadOnly { path } => Some(path),
        MountOp::Mount { target, .. } => Some(target),
        MountOp::Symlink { link, .. } => Some(link),
        MountOp::AttachImage { target } => Some(target),
        MountOp::AttachBind { target, .. } => Some(target),
        MountOp::BindPath { target, .. } => Some(target),
        MountOp::MakeRootPrivate | MountOp::PivotRoot { .. } => None,
    }
}

/// Fails if any component of `target` below `root` is a symlink. Targets outside `root`
/// (gantry's own folders) are not the image's to shape and are not checked.
pub fn refuse_symlinks(root: &Path, target: &Path) -> Result<(), RootfsError> {
    let Ok(rel) = target.strip_prefix(root) else {
        return Ok(());
    };
    let mut p = root.to_path_buf();
    for part in rel.components() {
        p.push(part);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(RootfsError::Symlink {
                    path: format!("/{}", p.strip_prefix(root).unwrap_or(&p).display()),
                })
            }
            Ok(_) => {}
            // Not there yet (the op creates it) or beyond: nothing to follow.
            Err(_) => break,
        }
    }
    Ok(())
}

/// A short description of an operation, as the step-by-step trace shows it.
pub fn describe(op: &MountOp, root: &Path) -> String {
    let rel = |p: &Path| match p.strip_prefix(root) {
        Ok(r) => format!("/{}", r.display()),
        Err(_) => p.display().to_string(),
    };
    match op {
        MountOp::MakeRootPrivate => "mount --make-rprivate /".into(),
        MountOp::Mkdir { path, .. } => format!("mkdir {}", rel(path)),
        MountOp::Mount { fstype, target, .. } => format!("mount -t {fstype} {}", rel(target)),
        MountOp::BindDevice { source, path } => {
            format!("mount --bind {} {}", source.display(), rel(path))
        }
        MountOp::AttachImage { target } => {
            format!("move_mount idmapped image {}", rel(target))
        }
        MountOp::AttachBind { target, .. } => format!("move_mount bind {}", rel(target)),
        MountOp::BindPath {
            source,
            target,
            readonly,
        } => format!(
            "mount --bind{} {} {}",
            if *readonly { " -o ro" } else { "" },
            source.display(),
            rel(target)
        ),
        MountOp::Symlink { target, link } => format!("ln -s {target} {}", rel(link)),
        MountOp::Mask { path, .. } => format!("mask {}", rel(path)),
        MountOp::ReadOnly { path } => format!("mount -o remount,bind,ro {}", rel(path)),
        MountOp::PivotRoot { .. } => "pivot_root . . && umount -l .".into(),
    }
}

fn apply_one(op: &MountOp, image: Option<&OwnedFd>, binds: &[OwnedFd]) -> Result<(), RootfsError> {
    match op {
        MountOp::MakeRootPrivate => mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(sys("make-rprivate", Path::new("/"))),
        MountOp::Mkdir { path, mode } => {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new()
                .recursive(true)
                .mode(*mode)
                .create(path)
            {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(source) => Err(RootfsError::Mkdir {
                    path: path.display().to_string(),
                    source,
                }),
            }
        }
        MountOp::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => mount(
            Some(source.as_str()),
            target,
            Some(fstype.as_str()),
            *flags,
            data.as_deref(),
        )
        .map_err(sys("mount", target)),
        MountOp::BindDevice { source, path } => {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|source| RootfsError::Mkdir {
                    path: path.display().to_string(),
                    source,
                })?;
            mount(
                Some(source.as_path()),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind device", path))
        }
        MountOp::AttachImage { target } => {
            let tree = image.ok_or(RootfsError::Sys {
                op: "attach image",
                path: target.display().to_string(),
                source: nix::Error::EBADF,
            })?;
            crate::runtime::idmap::move_mount(tree, target).map_err(sys("move_mount", target))
        }
        MountOp::BindPath {
            source,
            target,
            readonly,
        } => {
            std::fs::create_dir_all(target).map_err(|source| RootfsError::Mkdir {
                path: target.display().to_string(),
                source,
            })?;
            mount(
                Some(source.as_path()),
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind", target))?;
            if *readonly {
                // In a user namespace the flags the source mount came with (nosuid,
                // nodev, its atime rule) are locked: the remount must repeat them.
                let kept = locked_flags(target);
                mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept,
                    None::<&str>,
                )
                .map_err(sys("remount read-only", target))?;
            }
            Ok(())
        }
        MountOp::AttachBind {
            index,
            target,
            file,
        } => {
            let tree = binds.get(*index).ok_or(RootfsError::Sys {
                op: "attach bind",
                path: target.display().to_string(),
                source: nix::Error::EBADF,
            })?;
            let created = if *file {
                target
                    .parent()
                    .map(std::fs::create_dir_all)
                    .unwrap_or(Ok(()))
                    .and_then(|_| {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .open(target)
                            .map(drop)
                    })
            } else {
                std::fs::create_dir_all(target)
            };
            created.map_err(|source| RootfsError::Mkdir {
                path: target.display().to_string(),
                source,
            })?;
            crate::runtime::idmap::move_mount(tree, target).map_err(sys("move_mount", target))
        }
        MountOp::Symlink { target, link } => {
            nix::unistd::symlinkat(target.as_str(), nix::fcntl::AT_FDCWD, link)
                .map_err(sys("symlink", link))
        }
        MountOp::Mask { path, null } => {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                return Ok(()); // not on this kernel: nothing to hide
            };
            if meta.is_dir() {
                mount(
                    Some("tmpfs"),
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("size=0"),
                )
                .map_err(sys("mask", path))
            } else {
                mount(
                    Some(null),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys("mask", path))
            }
        }
        MountOp::ReadOnly { path } => {
            if std::fs::symlink_metadata(path).is_err() {
                return Ok(());
            }
            mount(
                Some(path),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind", path))?;
            mount(
                None::<&str>,
                path,
                None::<&str>,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(sys("remount read-only", path))
        }
        MountOp::PivotRoot { new_root } => {
            // The pivot_root(".", ".") idiom: stack the old root under the new one, then
            // detach it; no directory for the old root is needed.
            chdir(new_root).map_err(sys("chdir", new_root))?;
            pivot_root(".", ".").map_err(sys("pivot_root", new_root))?;
            umount2(".", MntFlags::MNT_DETACH).map_err(sys("umount old root", new_root))?;
            chdir("/").map_err(sys("chdir", Path::new("/")))
        }
    }
}

/// The per-mount flags of the mount at `path`, as mount(2) flags (see statvfs(3)).
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (have, want) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(have) {
            out |= want;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_through_an_image_symlink_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::os::unix::fs::symlink("/", root.join("mnt")).unwrap();
        std::fs::create_dir(root.join("proc")).unwrap();
        let err = refuse_symlinks(root, &root.join("mnt/x")).unwrap_err();
        assert!(err.to_string().contains("symbolic link at /mnt"), "{err}");
        assert!(
            refuse_symlinks(root, &root.join("mnt")).is_err(),
            "the link itself too"
        );
        assert!(refuse_symlinks(root, &root.join("proc/kcore")).is_ok());
        assert!(refuse_symlinks(root, &root.join("new/dir")).is_ok());
        assert!(refuse_symlinks(root, Path::new("/elsewhere")).is_ok());
    }
}
