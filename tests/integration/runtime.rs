//! The runtime through the CLI, as a student would use it: `gantry run`, `ps`, `rm`.

use crate::helpers::*;
use std::io::Write;
use std::process::Stdio;

#[test]
fn a_container_is_pid_1_with_its_own_hostname() {
    let d = Dirs::new();
    let o = d.run(&[
        "--rm",
        "--hostname",
        "lab",
        "busybox",
        "sh",
        "-c",
        "echo $$; hostname",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\nlab\n");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(
        host.to_str().unwrap(),
        "lab",
        "the host's hostname is untouched"
    );
}

#[test]
fn a_containers_namespaces_differ_from_the_hosts() {
    let d = Dirs::new();
    let types = ["mnt", "uts", "ipc", "pid", "net", "cgroup"];
    let script = types
        .iter()
        .map(|t| format!("readlink /proc/self/ns/{t}"))
        .collect::<Vec<_>>()
        .join("; ");
    let o = d.run(&["--rm", "busybox", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let inside: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(inside.len(), types.len(), "{inside:?}");
    for (t, ns) in types.iter().zip(&inside) {
        let host = std::fs::read_link(format!("/proc/self/ns/{t}")).unwrap();
        assert!(ns.starts_with(&format!("{t}:[")), "{ns}");
        assert_ne!(ns, host.to_str().unwrap(), "{t} namespace must be private");
    }
}

#[test]
fn the_root_filesystem_is_an_overlay_with_proc_dev_and_read_only_sys() {
    let d = Dirs::new();
    let o = d.run(&[
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /proc/mounts; ls /dev; touch /sys/x 2>&1; echo new > /etc/motd && cat /etc/motd",
    ]);
    let out = stdout(&o);
    assert!(out.contains("overlay / overlay"), "{out}");
    assert!(out.contains("devpts /dev/pts devpts"), "{out}");
    assert!(out.contains("sysfs /sys sysfs ro"), "{out}");
    for dev in ["null", "zero", "urandom", "tty", "ptmx", "pts", "shm"] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("new"),
        "the writable layer takes writes: {out}"
    );
    let image_motd = d.data.join("images/busybox/rootfs/etc/motd");
    assert!(!image_motd.exists(), "writes never reach the image");
}

#[test]
fn stdio_env_and_exit_code_pass_through() {
    let d = Dirs::new();
    let mut child = d
        .gantry()
        .args([
            "run",
            "--rm",
            "-i",
            "-e",
            "GREETING=hi",
            "busybox",
            "sh",
            "-c",
            "read x; echo $GREETING-$x; echo oops >&2; exit 7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"there\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "hi-there\n");
    assert_eq!(stderr(&o), "oops\n");
}

#[test]
fn a_memory_hog_is_oom_killed_at_its_limit() {
    let d = Dirs::new();
    // dd with a 64 MiB block size needs a 64 MiB buffer: above a 32 MiB limit.
    let o = d.run(&[
        "--memory",
        "32m",
        "--name",
        "hog",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("OOM killer"), "{}", stderr(&o));
    let ps = stdout(&d.gantry().args(["ps", "-a"]).output().unwrap());
    assert!(
        ps.lines()
            .any(|l| l.contains("hog") && l.contains("OOMKilled")),
        "{ps}"
    );
    // The same work under the limit runs.
    let o = d.run(&[
        "--rm",
        "--memory",
        "32m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=8M",
        "count=1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_fork_loop_stops_at_the_pids_limit() {
    let d = Dirs::new();
    let o = d.run(&[
        "--rm",
        "--pids-limit",
        "16",
        "busybox",
        "sh",
        "-c",
        "while :; do echo forked; sleep 30 & done",
    ]);
    let started = stdout(&o).lines().count();
    assert!(stderr(&o).contains("can't fork"), "{}", stderr(&o));
    assert!(
        (10..=16).contains(&started),
        "{started} forks under a limit of 16"
    );
    assert!(!o.status.success());
}

#[test]
fn a_busy_loop_gets_its_cpu_quota() {
    let d = Dirs::new();
    let o = d.run(&[
        "-d",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let pid = d.container_state(&id)["pid"].as_i64().unwrap();
    let acct = cgroup_dir(pid, "cpuacct").join("cpuacct.usage");
    let cpu = cgroup_dir(pid, "cpu");
    assert_eq!(
        std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "50000"
    );
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let (t0, u0) = (std::time::Instant::now(), read(&acct));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (wall, used) = (t0.elapsed().as_nanos() as f64, (read(&acct) - u0) as f64);
    let share = used / wall;
    let stat = std::fs::read_to_string(cpu.join("cpu.stat")).unwrap();
    let throttled: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap()
        .parse()
        .unwrap();
    // Half a CPU, never more (other tests share the machine, so allow less).
    assert!(
        (0.2..=0.6).contains(&share),
        "used {share:.2} CPUs with a quota of 0.5"
    );
    assert!(throttled > 0, "the quota throttled the loop: {stat}");
    let rm = d.gantry().args(["rm", "-f", &id]).output().unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(!cpu.exists(), "rm -f removes the cgroup");
}

#[test]
fn bad_input_gets_an_error_that_says_what_to_do() {
    let d = Dirs::new();
    for (args, expect) in [
        (vec!["--memory", "12x", "busybox", "true"], "e.g. 64m"),
        (vec!["--cpus", "-1", "busybox", "true"], "--cpus"),
        (vec!["--pids-limit", "0", "busybox", "true"], "--pids-limit"),
        (
            vec!["--network", "bridge", "busybox", "true"],
            "user networks live inside lab hosts",
        ),
        (
            vec!["--network", "host", "busybox", "true"],
            "gantry refuses that",
        ),
        (
            vec!["--network", "Bad!", "busybox", "true"],
            "invalid network",
        ),
        (
            vec!["-v", "data:/srv", "busybox", "true"],
            "volumes live in lab hosts",
        ),
        (
            vec!["--tmpfs", "relative", "busybox", "true"],
            "invalid mount",
        ),
        (
            vec!["--name", "../x", "busybox", "true"],
            "invalid container name",
        ),
        (vec!["alpine", "true"], "gantry images"),
        (
            vec!["busybox", "no-such-command"],
            "executable file not found",
        ),
    ] {
        let o = d.run(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(
        d.run(&["busybox", "no-such-command"]).status.code(),
        Some(127)
    );
    assert_eq!(
        d.run(&["--memory", "12x", "busybox", "true"]).status.code(),
        Some(125)
    );
}

#[test]
fn detached_containers_are_listed_named_and_removed() {
    let d = Dirs::new();
    let o = d.run(&["-d", "--name", "web", "busybox", "sleep", "300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let ps = stdout(&d.gantry().arg("ps").output().unwrap());
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&id) && l.contains("web") && l.contains("Up")),
        "{ps}"
    );
    let again = d.run(&["-d", "--name", "web", "busybox", "true"]);
    assert!(
        stderr(&again).contains("already in use"),
        "{}",
        stderr(&again)
    );
    let rm = d.gantry().args(["rm", "web"]).output().unwrap();
    assert!(stderr(&rm).contains("rm -f"), "{}", stderr(&rm));
    let pid = d.container_state(&id)["pid"].as_i64().unwrap() as i32;
    let rm = d.gantry().args(["rm", "-f", "web"]).output().unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(process_gone(pid as i64), "the container's process is gone");
    assert!(
        d.run(&["--rm", "--name", "web", "busybox", "true"])
            .status
            .success(),
        "the name is free again"
    );
    let ps = stdout(&d.gantry().args(["ps", "-a"]).output().unwrap());
    assert_eq!(ps.lines().count(), 1, "{ps}");
    let none = d.gantry().args(["rm", "-f", "--all"]).output().unwrap();
    assert!(
        none.status.success(),
        "removing all of nothing is fine: {}",
        stderr(&none)
    );
    let missing = d.gantry().args(["rm"]).output().unwrap();
    assert!(
        stderr(&missing).contains("gantry rm [-f] CONTAINER"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn without_root_gantry_says_to_use_sudo() {
    let d = Dirs::new();
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            gantry_bin(),
        ])
        .arg("--data-dir")
        .arg(&d.data)
        .arg("--state-dir")
        .arg(&d.state)
        .args(["run", "busybox", "true"])
        .output()
        .expect("setpriv (util-linux) runs the command as nobody");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("run it with sudo"), "{}", stderr(&o));
}

#[test]
fn a_missing_cgroup_controller_is_named_with_a_fix() {
    let d = Dirs::new();
    // In a private mount namespace, hide the pids hierarchy from this one command.
    let script = format!(
        "umount /sys/fs/cgroup/pids && exec {} --data-dir {} --state-dir {} run --rm busybox true",
        gantry_bin(),
        d.data.display(),
        d.state.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cgroup controller 'pids' is not mounted")
            && err.contains("mount -t cgroup -o pids"),
        "{err}"
    );
}
