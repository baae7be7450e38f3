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
/// File name of the lab API's socket, on the host and in a lab host.
pub const API_SOCKET_NAME: &str = "gantry.sock";

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

    /// The folder of the lab API's unix socket, bound into every lab host (the folder,
    /// not the socket, so a restarted server's new socket shows up in running lab hosts).
    pub fn api_dir(&self) -> PathBuf {
        self.state_dir.join("api")
    }

    /// The lab API's unix socket.
    pub fn api_socket(&self) -> PathBuf {
        self.api_dir().join(API_SOCKET_NAME)
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
