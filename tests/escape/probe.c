/* Tries system calls a container must not make, and prints "name errno" for each.
 * Built static by tests/integration/escape.rs and run inside a container. Arguments are
 * harmless nonsense: an allowed call would fail with EINVAL/EFAULT/EBADF, a refused one
 * fails with EPERM (or ENOSYS for clone3) before the kernel looks at them. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TRY(name, ...)                                              \
    do {                                                            \
        errno = 0;                                                  \
        long r = syscall(__VA_ARGS__);                              \
        printf("%s %d\n", name, r == -1 ? errno : 0);               \
    } while (0)

int main(void) {
    TRY("mount", SYS_mount, "none", "/mnt", "tmpfs", 0, 0);
    TRY("umount2", SYS_umount2, "/proc", 0);
    TRY("pivot_root", SYS_pivot_root, "/", "/");
    TRY("fsopen", SYS_fsopen, "tmpfs", 0);
    TRY("unshare", SYS_unshare, 0x10000000 /* CLONE_NEWUSER */);
    TRY("setns", SYS_setns, -1, 0);
    TRY("keyctl", SYS_keyctl, 0, 0, 0, 0, 0);
    TRY("add_key", SYS_add_key, "user", "x", "y", 1, 0);
    TRY("bpf", SYS_bpf, 0, 0, 0);
    TRY("perf_event_open", SYS_perf_event_open, 0, 0, -1, -1, 0);
    TRY("userfaultfd", SYS_userfaultfd, 0);
    TRY("io_uring_setup", SYS_io_uring_setup, 1, 0);
    TRY("kexec_load", SYS_kexec_load, 0, 0, 0, 0);
    TRY("init_module", SYS_init_module, 0, 0, "");
    TRY("finit_module", SYS_finit_module, -1, "", 0);
    TRY("delete_module", SYS_delete_module, "x", 0);
    TRY("open_by_handle_at", SYS_open_by_handle_at, -1, 0, 0);
    TRY("swapon", SYS_swapon, "/x", 0);
    TRY("acct", SYS_acct, 0);
    TRY("clock_settime", SYS_clock_settime, 0, 0);
    TRY("settimeofday", SYS_settimeofday, 0, 0);
    TRY("syslog", SYS_syslog, 3, 0, 0);
    TRY("reboot", SYS_reboot, 0, 0, 0, 0);
    TRY("clone_newns", SYS_clone, 0x00020000 /* CLONE_NEWNS */ | 17, 0, 0, 0, 0);
    TRY("clone3", SYS_clone3, 0, 0);
    return 0;
}
