//! The image store: read-only root filesystems under `<data-dir>/images/<name>/rootfs`,
//! each with an `image.json`.
//!
//! The default image `busybox` is built on first use from Debian's busybox-static: one
//! static binary and a symlink per applet — nothing is downloaded at run time.

use crate::config::Paths;
use crate::runtime::spec::ImageName;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];
pub const DEFAULT_IMAGE: &str = "busybox";
/// The image of a session's lab host: busybox, plus the C library the `gantry` binary
/// needs (the binary itself is bound in read-only when a lab host starts, so it is always
/// the server's own).
pub const LABHOST_IMAGE: &str = "labhost";
/// Where a lab host finds the gantry CLI.
pub const LABHOST_GANTRY: &str = "/usr/local/bin/gantry";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "unknown image {0:?}: see `gantry images` for what is here (the default image is busybox)"
    )]
    Unknown(String),
    #[error("busybox is not installed: install Debian's busybox-static (`apt-get install busybox-static`) so gantry can build its default image")]
    NoBusybox,
    #[error("{0} is dynamically linked and would not run inside a container: install Debian's busybox-static (`apt-get install busybox-static`)")]
    DynamicBusybox(String),
    #[error("building image {name} in {path}: {source}")]
    Build {
        name: String,
        path: String,
        source: std::io::Error,
    },
}

/// What `gantry images` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    pub created_at: i64,
    pub size_bytes: u64,
    pub source: String,
}

pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    pub fn new(paths: &Paths) -> Self {
        ImageStore {
            dir: paths.images_dir(),
        }
    }

    /// The read-only rootfs of `name`; builds the default image if it is asked for and
    /// missing.
    pub fn rootfs(&self, name: &ImageName) -> Result<PathBuf, ImageError> {
        let root = self.dir.join(name.as_str()).join("rootfs");
        if self.dir.join(name.as_str()).join("image.json").is_file() {
            return Ok(root);
        }
        if name.as_str() == DEFAULT_IMAGE || name.as_str() == LABHOST_IMAGE {
            self.build(name.as_str())?;
            return Ok(root);
        }
        Err(ImageError::Unknown(name.to_string()))
    }

    /// Builds the default image unless it is there.
    pub fn ensure_default(&self) -> Result<(), ImageError> {
        self.rootfs(&ImageName::parse(DEFAULT_IMAGE).expect("default image name is valid"))
            .map(|_| ())
    }

    pub fn list(&self) -> Vec<ImageInfo> {
        let mut out = vec![];
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if let Ok(bytes) = std::fs::read(e.path().join("image.json")) {
                    if let Ok(info) = serde_json::from_slice::<ImageInfo>(&bytes) {
                        out.push(info);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn build(&self, name: &str) -> Result<(), ImageError> {
        let bin = BUSYBOX_CANDIDATES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or(ImageError::NoBusybox)?;
        if is_dynamic_elf(bin) {
            return Err(ImageError::DynamicBusybox(bin.display().to_string()));
        }
        let final_dir = self.dir.join(name);
        // Build in a private temporary folder, then rename: concurrent first starts never
        // see half an image.
        let tmp = self
            .dir
            .join(format!(".{name}.build-{}", std::process::id()));
        let err = |source: std::io::Error| ImageError::Build {
            name: name.into(),
            path: tmp.display().to_string(),
            source,
        };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("rootfs")).map_err(err)?;
        let mut size = populate_busybox(bin, &tmp.join("rootfs")).map_err(err)?;
        let mut source = format!("{} (Debian busybox-static)", bin.display());
        if name == LABHOST_IMAGE {
            size += add_gantry_runtime_libs(&tmp.join("rootfs")).map_err(err)?;
            source.push_str(", the C library of gantry, and gantry itself bound in");
        }
        let info = ImageInfo {
            name: name.into(),
            created_at: crate::runtime::state::now(),
            size_bytes: size,
            source,
        };
        std::fs::write(
            tmp.join("image.json"),
            serde_json::to_vec_pretty(&info).expect("image info serialises"),
        )
        .map_err(err)?;
        match std::fs::rename(&tmp, &final_dir) {
            Ok(()) => Ok(()),
            // Someone else finished first: theirs is as good as ours.
            Err(_) if final_dir.join("image.json").is_file() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// Copies the shared libraries this very process has mapped (the C library, libm,
/// libgcc_s and the dynamic loader: what the `gantry` binary needs) into `root` at the
/// same paths, plus the loader at the path the binary asks for. Returns bytes copied.
fn add_gantry_runtime_libs(root: &Path) -> std::io::Result<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut libs: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .collect();
    libs.sort();
    libs.dedup();
    let mut size = 0;
    let copy = |from: &Path, to: &Path| -> std::io::Result<u64> {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(from, to)
    };
    for lib in libs {
        let from = Path::new(lib);
        size += copy(from, &root.join(lib.trim_start_matches('/')))?;
        // The binary's PT_INTERP is /lib64/ld-linux-x86-64.so.2; Debian keeps the real
        // file under /usr/lib.
        if lib.contains("/ld-linux") {
            let name = from.file_name().unwrap_or_default();
            size += copy(from, &root.join("lib64").join(name))?;
        }
    }
    std::fs::create_dir_all(root.join("usr/local/bin"))?;
    std::fs::write(root.join(LABHOST_GANTRY.trim_start_matches('/')), b"")?;
    Ok(size)
}

/// True if the ELF file at `path` asks for a dynamic loader (has a PT_INTERP header).
fn is_dynamic_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) == 3
    })
}

/// Lays out a busybox root filesystem in `root`; returns its size in bytes.
fn populate_busybox(bin: &Path, root: &Path) -> std::io::Result<u64> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("var/tmp", 0o1777),
        ("var/log", 0o755),
        ("run", 0o755),
        ("mnt", 0o755),
    ] {
        let p = root.join(dir);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    let size = std::fs::copy(bin, root.join("bin/busybox"))?;
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let list = std::process::Command::new(bin)
        .arg("--list-full")
        .output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet.contains("..") || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::os::unix::fs::symlink("/bin/busybox", &link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    for (file, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        ("etc/os-release", "NAME=\"gantry busybox\"\nID=busybox\nPRETTY_NAME=\"gantry's default image (busybox)\"\n"),
        ("etc/profile", "export PS1='\\u@\\h:\\w\\$ '\n"),
    ] {
        std::fs::write(root.join(file), text)?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_is_told_apart_from_a_static_one() {
        // The test binary itself is dynamically linked.
        let me = std::env::current_exe().unwrap();
        assert!(is_dynamic_elf(&me));
        assert!(!is_dynamic_elf(Path::new("/etc/hostname")));
    }

    #[test]
    fn unknown_images_say_where_to_look() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(&Paths::new(dir.path(), dir.path()));
        let err = store
            .rootfs(&ImageName::parse("alpine").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("gantry images"), "{err}");
    }
}
