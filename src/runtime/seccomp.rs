//! The container's system call filter (seccomp(2), classic BPF): an allowlist.
//!
//! Allowed: every x86-64 system call up to [`LAST_KNOWN`] except the refused groups
//! below. Anything newer answers ENOSYS — the kernel adds calls faster than a teaching
//! lab can review them, and libc falls back when a call is missing. Other ABIs (32-bit,
//! x32) are killed: a filter written for one syscall table must not judge another.
//!
//! Refused with EPERM, group by group (docs/security.md says why each):
//! mounts, namespaces, keyrings, eBPF, perf, userfaultfd, io_uring, kexec, kernel
//! modules, file handles, swap, accounting, clocks, the kernel log, reboot, quotas,
//! NUMA policy, and a few obsolete calls. `clone` is allowed only without namespace
//! flags, and `clone3` answers ENOSYS so that libc falls back to `clone`, whose flags a
//! classic BPF filter can read (clone3 passes them in memory, out of the filter's reach).

/// Highest system call number this filter was written for (mseal, Linux 6.10).
pub const LAST_KNOWN: u32 = 462;

/// Refused system calls, each with the group it belongs to.
pub const REFUSED: &[(&str, &[libc::c_long])] = &[
    (
        "mounts",
        &[
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_open_tree,
            libc::SYS_move_mount,
            libc::SYS_fsopen,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fspick,
            libc::SYS_mount_setattr,
        ],
    ),
    ("namespaces", &[libc::SYS_unshare, libc::SYS_setns]),
    (
        "keyrings",
        &[libc::SYS_keyctl, libc::SYS_add_key, libc::SYS_request_key],
    ),
    ("eBPF", &[libc::SYS_bpf]),
    ("perf", &[libc::SYS_perf_event_open]),
    ("userfaultfd", &[libc::SYS_userfaultfd]),
    (
        "io_uring",
        &[
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ],
    ),
    ("kexec", &[libc::SYS_kexec_load, libc::SYS_kexec_file_load]),
    (
        "kernel modules",
        &[
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            174, // create_module (removed in 2.6, unnamed in libc)
            178, // query_module
            177, // get_kernel_syms
        ],
    ),
    (
        "file handles",
        &[libc::SYS_open_by_handle_at, libc::SYS_name_to_handle_at],
    ),
    ("swap", &[libc::SYS_swapon, libc::SYS_swapoff]),
    ("accounting", &[libc::SYS_acct]),
    (
        "clocks",
        &[
            libc::SYS_clock_settime,
            libc::SYS_clock_adjtime,
            libc::SYS_settimeofday,
        ],
    ),
    ("kernel log", &[libc::SYS_syslog]),
    ("reboot", &[libc::SYS_reboot]),
    ("quotas", &[libc::SYS_quotactl, libc::SYS_quotactl_fd]),
    (
        "NUMA policy",
        &[
            libc::SYS_mbind,
            libc::SYS_set_mempolicy,
            libc::SYS_get_mempolicy,
            libc::SYS_move_pages,
            libc::SYS_set_mempolicy_home_node,
        ],
    ),
    (
        "obsolete or hardware",
        &[
            libc::SYS_uselib,
            libc::SYS_ustat,
            libc::SYS_sysfs,
            libc::SYS__sysctl,
            libc::SYS_nfsservctl,
            libc::SYS_lookup_dcookie,
            libc::SYS_iopl,
            libc::SYS_ioperm,
            libc::SYS_kcmp,
            libc::SYS_fanotify_init,
        ],
    ),
];

/// Namespace flags `clone` may not carry.
pub const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u32;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// One classic BPF instruction (see linux/filter.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LOW: u32 = 16;

/// Builds the filter program (pure: unit tests run it through [`run`]).
pub fn program() -> Vec<Insn> {
    program_for(false)
}

/// The filter, with namespace creation allowed when `nested_namespaces` (a lab that
/// teaches nesting asks for it): `unshare`, `setns` and `clone` with namespace flags then
/// work — inside the container's own user namespace, which is where every new namespace
/// is created and owned, so they give no power over anything outside it.
pub fn program_for(nested_namespaces: bool) -> Vec<Insn> {
    let errno = |e: i32| RET_ERRNO | (e as u32 & 0xffff);
    let mut p = vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, OFF_NR),
        // x32 calls carry bit 30 and would alias these numbers.
        insn(JSET_K, 0, 1, X32_SYSCALL_BIT),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(JEQ_K, 0, 1, libc::SYS_clone3 as u32),
        insn(RET_K, 0, 0, errno(libc::ENOSYS)),
        insn(JEQ_K, 0, 4, libc::SYS_clone as u32),
        insn(LD_W_ABS, 0, 0, OFF_ARG0_LOW),
        insn(
            JSET_K,
            0,
            1,
            if nested_namespaces { 0 } else { CLONE_NS_FLAGS },
        ),
        insn(RET_K, 0, 0, errno(libc::EPERM)),
        insn(RET_K, 0, 0, RET_ALLOW),
    ];
    for (group, calls) in REFUSED {
        if nested_namespaces && *group == "namespaces" {
            continue;
        }
        for nr in *calls {
            p.push(insn(JEQ_K, 0, 1, *nr as u32));
            p.push(insn(RET_K, 0, 0, errno(libc::EPERM)));
        }
    }
    p.push(insn(JGT_K, 0, 1, LAST_KNOWN));
    p.push(insn(RET_K, 0, 0, errno(libc::ENOSYS)));
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    p
}

/// Installs the filter on the calling thread (and everything it execs and forks).
/// `no_new_privs` must already be set.
pub fn install(prog: &[Insn]) -> nix::Result<()> {
    #[repr(C)]
    struct Fprog {
        len: u16,
        filter: *const Insn,
    }
    let fprog = Fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `fprog` and the program it points to.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const Fprog,
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// A tiny classic-BPF interpreter for the instructions [`program`] uses, so the filter's
/// decisions can be unit-tested without installing it.
pub fn run(prog: &[Insn], arch: u32, nr: u32, arg0: u64) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    while pc < prog.len() {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                acc = match i.k {
                    OFF_NR => nr,
                    OFF_ARCH => arch,
                    OFF_ARG0_LOW => arg0 as u32,
                    _ => 0,
                }
            }
            JEQ_K | JGT_K | JSET_K => {
                let hit = match i.code {
                    JEQ_K => acc == i.k,
                    JGT_K => acc > i.k,
                    _ => acc & i.k != 0,
                };
                pc += if hit { i.jt } else { i.jf } as usize;
            }
            RET_K => return i.k,
            _ => return RET_KILL_PROCESS,
        }
    }
    RET_KILL_PROCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(nr: libc::c_long, arg0: u64) -> u32 {
        run(&program(), AUDIT_ARCH_X86_64, nr as u32, arg0)
    }

    #[test]
    fn ordinary_calls_are_allowed() {
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_openat,
            libc::SYS_exit_group,
        ] {
            assert_eq!(decide(nr, 0), RET_ALLOW, "{nr}");
        }
        // fork() is clone(SIGCHLD).
        assert_eq!(decide(libc::SYS_clone, libc::SIGCHLD as u64), RET_ALLOW);
    }

    #[test]
    fn every_refused_group_gets_eperm() {
        for (group, calls) in REFUSED {
            for nr in *calls {
                assert_eq!(
                    decide(*nr, 0),
                    RET_ERRNO | libc::EPERM as u32,
                    "{group}: {nr}"
                );
            }
        }
        assert_eq!(
            decide(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64
            ),
            RET_ERRNO | libc::EPERM as u32
        );
    }

    #[test]
    fn clone3_and_unknown_calls_say_enosys_and_other_abis_are_killed() {
        assert_eq!(decide(libc::SYS_clone3, 0), RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(
            decide(LAST_KNOWN as libc::c_long + 1, 0),
            RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(run(&program(), 0x4000_0003, 1, 0), RET_KILL_PROCESS, "i386");
        assert_eq!(
            decide((X32_SYSCALL_BIT | 1) as libc::c_long, 0),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn nested_namespaces_open_only_the_namespace_calls() {
        let nested = program_for(true);
        let call = |nr: libc::c_long, arg0: u64| run(&nested, AUDIT_ARCH_X86_64, nr as u32, arg0);
        assert_eq!(
            call(libc::SYS_unshare, libc::CLONE_NEWUSER as u64),
            RET_ALLOW
        );
        assert_eq!(call(libc::SYS_setns, 0), RET_ALLOW);
        assert_eq!(call(libc::SYS_clone, libc::CLONE_NEWPID as u64), RET_ALLOW);
        assert_eq!(call(libc::SYS_mount, 0), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(call(libc::SYS_bpf, 0), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(
            run(&program(), AUDIT_ARCH_X86_64, libc::SYS_unshare as u32, 0),
            RET_ERRNO | libc::EPERM as u32,
            "and the default still refuses them"
        );
    }

    #[test]
    fn the_program_fits_the_kernel_limit() {
        assert!(program().len() < 4096);
    }
}
