//! The container's security profile, as pure data applied in the container's first
//! process just before `execve`: capabilities (capabilities(7)), `no_new_privs`
//! (prctl(2)), and the /proc and /sys paths that are masked or read-only.
//!
//! The defaults follow Docker's (see docs/security.md for why each is there).

use std::path::{Path, PathBuf};

/// Capabilities a container keeps: Docker's default set, nothing more.
pub const DEFAULT_CAPS: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("NET_BIND_SERVICE", 10),
    ("NET_RAW", 13),
    ("SYS_CHROOT", 18),
    ("MKNOD", 27),
    ("AUDIT_WRITE", 29),
    ("SETFCAP", 31),
];

/// Files under /proc and /sys that leak host information or reach host hardware:
/// `/dev/null` is bind-mounted over files, an empty read-only tmpfs over directories.
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths that stay visible but cannot be written: kernel tunables and triggers that are
/// global to the host, whatever namespace writes them.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The bitmask of [`DEFAULT_CAPS`], as /proc/<pid>/status shows `CapEff`.
pub fn default_cap_mask() -> u64 {
    DEFAULT_CAPS.iter().fold(0, |m, (_, bit)| m | (1u64 << bit))
}

/// Highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Where a masked or read-only path lands under the new root, before `pivot_root`.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Drops every capability outside `keep` from the bounding set, clears the ambient and
/// inheritable sets, and sets `no_new_privs`. Called after the mounts (which need
/// CAP_SYS_ADMIN) and right before `execve`: root's capabilities after exec are the
/// bounding set, so what is dropped here is gone for good, also for setuid binaries.
pub fn drop_privileges(keep: u64) -> nix::Result<()> {
    // SAFETY: prctl and capset with plain integer and struct arguments.
    unsafe {
        for cap in 0..=cap_last_cap() {
            if keep & (1u64 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
            {
                // EINVAL: a capability this kernel does not have.
                let e = nix::Error::last();
                if e != nix::Error::EINVAL {
                    return Err(e);
                }
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) < 0
        {
            return Err(nix::Error::last());
        }
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3: two 32-bit words
            pid: 0,
        };
        let word = |shift: u32| Data {
            effective: (keep >> shift) as u32,
            permitted: (keep >> shift) as u32,
            inheritable: 0,
        };
        let data = [word(0), word(32)];
        if libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) < 0 {
            return Err(nix::Error::last());
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_is_dockers() {
        // `docker run busybox grep CapEff /proc/self/status` shows this mask.
        assert_eq!(default_cap_mask(), 0x0000_0000_a804_25fb);
    }

    #[test]
    fn masked_and_read_only_paths_land_under_the_new_root() {
        assert_eq!(
            under(Path::new("/c/merged"), "/proc/kcore"),
            Path::new("/c/merged/proc/kcore")
        );
        assert!(MASKED.contains(&"/proc/kcore") && READ_ONLY.contains(&"/proc/sys"));
    }
}
