//! Which namespaces a process is in (namespaces(7)): the inode number behind each
//! `/proc/<pid>/ns/<type>` link identifies the namespace; two processes share a
//! namespace exactly when the numbers match.

use serde::Serialize;

/// The namespace types gantry shows, in the order of the course.
pub const TYPES: &[&str] = &["mnt", "uts", "ipc", "pid", "net", "user", "cgroup"];

/// Inode of one namespace of `pid` (`"self"` works too).
pub fn inode(pid: &str, ns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    // stat follows the magic link to the namespace's nsfs inode.
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

/// One row of the namespace picture.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NamespaceRow {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub container: Option<u64>,
    pub host: Option<u64>,
    pub shared: bool,
}

/// The container's namespaces next to the host's (those of gantry itself).
pub fn compare(container_pid: i32) -> Vec<NamespaceRow> {
    compare_with(container_pid, "self")
}

/// The container's namespaces next to those of `host` (a pid, or `"self"`): for a
/// container nested in a lab host, the lab host is its host.
pub fn compare_with(container_pid: i32, host: &str) -> Vec<NamespaceRow> {
    let pid = container_pid.to_string();
    TYPES
        .iter()
        .map(|kind| {
            let container = inode(&pid, kind);
            let host = inode(host, kind);
            NamespaceRow {
                kind,
                container,
                host,
                shared: container.is_some() && container == host,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_shares_every_namespace_with_itself() {
        let me = std::process::id() as i32;
        let rows = compare(me);
        assert_eq!(rows.len(), TYPES.len());
        assert!(rows.iter().all(|r| r.shared), "{rows:?}");
    }
}
