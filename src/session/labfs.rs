//! Touching a lab host's files from the server, safely.
//!
//! The server is host root; the lab host's files belong to a student, who may replace
//! any folder by a symlink. A plain path like `/proc/<pid>/root/var/lib/gantry/volumes`
//! would follow an absolute symlink *on the host* (`volumes -> /` would make a `chown`
//! change the host's root). So every path is resolved with `openat2(2)` and
//! `RESOLVE_IN_ROOT` from the lab host's root (symlinks resolve inside the lab host, as
//! they would for the student) and created one component at a time with
//! `RESOLVE_NO_SYMLINKS`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(dir: &OwnedFd, path: &str, flags: i32, resolve: u64) -> std::io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: openat2(2) with a valid C string and a properly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The root folder of process `pid`.
pub fn root_of(pid: i32) -> std::io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(format!("/proc/{pid}/root"))?;
    Ok(f.into())
}

use std::os::unix::fs::OpenOptionsExt;

/// Opens `path` (absolute, as the lab host sees it) inside `root`.
pub fn open(root: &OwnedFd, path: &str) -> std::io::Result<OwnedFd> {
    openat2(
        root,
        path.trim_start_matches('/'),
        libc::O_PATH,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// Creates the folders of `path` that are missing, refusing any symlink on the way; new
/// ones are owned by `uid:uid`. Returns the last folder.
///
/// The work is done by a thread of its own whose file system ids are `uid` (setfsuid(2)
/// is per thread): a tmpfs mounted in the lab host's user namespace refuses new files
/// owned by an id it cannot map (EOVERFLOW), such as host root.
pub fn mkdir_all(root: &OwnedFd, path: &str, uid: u32) -> std::io::Result<OwnedFd> {
    let root = root.try_clone()?;
    let path = path.to_string();
    std::thread::spawn(move || {
        // SAFETY: setfsuid/setfsgid change only this thread's credentials.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, uid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
        mkdir_all_here(&root, &path, uid)
    })
    .join()
    .map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))?
}

fn mkdir_all_here(root: &OwnedFd, path: &str, uid: u32) -> std::io::Result<OwnedFd> {
    let mut cur = openat2(root, ".", libc::O_PATH | libc::O_DIRECTORY, RESOLVE_BENEATH)?;
    for comp in Path::new(path).components() {
        let std::path::Component::Normal(name) = comp else {
            continue;
        };
        let name = name
            .to_str()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let c = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: mkdirat with our fd and a valid C string.
        let made = unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), 0o755) } == 0;
        if !made {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        let next = openat2(
            &cur,
            name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        )?;
        if made {
            // SAFETY: fchownat on our own O_PATH descriptor with AT_EMPTY_PATH.
            unsafe {
                libc::fchownat(
                    next.as_raw_fd(),
                    c"".as_ptr(),
                    uid,
                    uid,
                    libc::AT_EMPTY_PATH,
                )
            };
        }
        cur = next;
    }
    Ok(cur)
}

/// A path that reaches what `fd` is open on (for std's directory walks).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_in_the_lab_host_never_leads_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let root: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        std::fs::create_dir_all(dir.path().join("var/lib")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("var/lib/gantry")).unwrap();
        // Creating through the symlink is refused...
        let err = mkdir_all(&root, "/var/lib/gantry/volumes/x", 0).unwrap_err();
        assert!(
            matches!(err.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)),
            "{err}"
        );
        assert!(!Path::new("/volumes").exists(), "nothing made on the host");
        // ...and resolving it stays inside: `/` is the lab host's root, not the host's.
        let fd = open(&root, "/var/lib/gantry").unwrap();
        let seen = std::fs::read_link(fd_path(&fd)).unwrap();
        assert_eq!(seen, dir.path());
        // Plain folders are made.
        mkdir_all(&root, "/srv/data", 0).unwrap();
        assert!(dir.path().join("srv/data").is_dir());
    }
}
