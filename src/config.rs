//! Where gantry keeps things.
//!
//! - the **data dir** (`--data-dir`, default `/var/lib/gantry`) holds what must survive a
//!   reboot: `gantry.db` (SQLite) and `images/`;
//! - the **state dir** (`--state-dir`, default `/run/gantry`) holds what only makes sense
//!   while the machine is up: one folder per container with its spec, its state, its
//!   monitor's socket and the mount point of its writable layer.

use std::path::{Path, PathBuf};

/// Default data dir, as in the README.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/gantry";
/// Default runtime state dir (a tmpfs on every systemd machine).
pub const DEFAULT_STATE_DIR: &str = "/run/gantry";

/// The two roots gantry works under.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Paths {
    pub fn new(data_dir: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Paths {
            data_dir: data_dir.into(),
            state_dir: state_dir.into(),
        }
    }

    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir.join("gantry.db")
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.state_dir.join("containers")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }
}

/// Creates `dir` (and parents) with mode 0700, as it holds sockets and state of root's.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
