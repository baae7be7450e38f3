//! What an attacker with root inside a container tries first, and that it is refused
//! (the multi-tenant hardening issue; this covers capabilities, no_new_privs, masked and
//! read-only paths, descriptor leaks and the runtime binary).

use crate::helpers::*;

/// Runs a shell script in a fresh container and returns its stdout and stderr.
fn inside(d: &Dirs, script: &str) -> (String, String) {
    let o = d.run(&["--rm", "busybox", "sh", "-c", script]);
    (stdout(&o), stderr(&o))
}

#[test]
fn capabilities_are_dockers_default_set_and_no_new_privs_is_set() {
    let d = Dirs::new();
    let (out, _) = inside(&d, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    for (field, want) in [
        ("CapInh", "0000000000000000"),
        ("CapPrm", "00000000a80425fb"),
        ("CapEff", "00000000a80425fb"),
        ("CapBnd", "00000000a80425fb"),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(field) && l.ends_with(want)),
            "{field} should be {want}:\n{out}"
        );
    }
}

#[test]
fn root_in_a_container_cannot_mount_unshare_or_rename_the_host() {
    let d = Dirs::new();
    let (out, err) = inside(
        &d,
        "mount -t tmpfs none /mnt || echo mount-refused; \
         unshare -n true || echo unshare-refused; \
         hostname evil || echo hostname-refused",
    );
    for refused in ["mount-refused", "unshare-refused", "hostname-refused"] {
        assert!(out.contains(refused), "{refused}: {out} {err}");
    }
}

#[test]
fn proc_secrets_are_masked_and_kernel_tunables_read_only() {
    let d = Dirs::new();
    let (out, err) = inside(
        &d,
        "for f in /proc/keys /proc/timer_list; do echo $f=$(wc -c < $f); done; \
         echo firmware=$(ls /sys/firmware | wc -l); \
         echo 1 > /proc/sys/kernel/shm_rmid_forced 2>/dev/null || echo sysctl-refused; \
         echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo drop-caches-refused",
    );
    for want in [
        "/proc/keys=0",
        "/proc/timer_list=0",
        "firmware=0",
        "sysctl-refused",
        "drop-caches-refused",
    ] {
        assert!(out.contains(want), "{want}: {out} {err}");
    }
}

#[test]
fn no_host_descriptor_leaks_in_and_the_cwd_is_inside() {
    let d = Dirs::new();
    // ls is the container's first process: it sees its stdio and the directory it lists.
    let o = d.run(&["--rm", "busybox", "ls", "/proc/self/fd"]);
    assert_eq!(stdout(&o), "0\n1\n2\n3\n", "{}", stderr(&o));
    let (out, _) = inside(
        &d,
        "readlink /proc/self/cwd; cd -P /proc/self/cwd && cd -P .. && pwd -P",
    );
    assert_eq!(out, "/\n/\n");
}

#[test]
fn the_runtime_binary_is_out_of_reach() {
    let d = Dirs::new();
    // CVE-2019-5736 overwrote runc through /proc/<pid>/exe of a runtime process inside
    // the container's pid namespace. No gantry process is ever in there.
    let (out, _) = inside(&d, "for e in /proc/[0-9]*/exe; do readlink $e; done");
    assert!(out.lines().all(|l| l == "/bin/busybox"), "{out}");
}

#[test]
fn no_block_or_memory_device_can_be_created_or_opened() {
    let d = Dirs::new();
    // CAP_MKNOD is in Docker's set; the devices cgroup refuses the node (or its open).
    let (out, err) = inside(
        &d,
        "(mknod /tmp/disk b 8 0 && head -c1 /tmp/disk) >/dev/null 2>&1 || echo disk-refused; \
         (mknod /tmp/mem c 1 1 && head -c1 /tmp/mem) >/dev/null 2>&1 || echo mem-refused; \
         head -c1 /dev/zero | wc -c",
    );
    assert!(
        out.contains("disk-refused") && out.contains("mem-refused"),
        "{out} {err}"
    );
    assert!(out.ends_with("1\n"), "the allowed devices work: {out}");
}

#[test]
fn every_container_has_limits_even_without_flags() {
    let d = Dirs::new();
    let o = d.run(&["-d", "busybox", "sleep", "300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let pid = d.container_state(&id)["pid"].as_i64().unwrap();
    let read = |ctrl: &str, file: &str| {
        std::fs::read_to_string(cgroup_dir(pid, ctrl).join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (512u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max"), "1024");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "100000");
    let (out, _) = inside(&d, "ulimit -n");
    let host_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    assert_eq!(out.trim(), 4096.min(host_hard).to_string());
}

#[tokio::test]
async fn a_container_reaches_nothing_on_the_host_not_even_gantry() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let port = srv.base.rsplit(':').next().unwrap().to_string();
    // The server answers on the host's loopback...
    assert!(reqwest::get(srv.url("/healthz"))
        .await
        .unwrap()
        .status()
        .is_success());
    // ...but the container's 127.0.0.1 is its own, and it has no other interface.
    let script = format!(
        "ls /sys/class/net; wget -q -T 2 -O - http://127.0.0.1:{port}/healthz || echo unreachable; \
         wc -l < /proc/net/route"
    );
    let (out, err) = inside(&d, &script);
    assert_eq!(out, "lo\nunreachable\n1\n", "{err}");
}

#[test]
fn the_seccomp_filter_refuses_every_dangerous_group() {
    let d = Dirs::new();
    // A static probe in an image of its own: busybox plus /probe.
    let probe_src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/escape/probe.c");
    let images = d.data.join("images");
    assert!(
        d.run(&["--rm", "busybox", "true"]).status.success(),
        "builds the busybox image"
    );
    let root = images.join("probe/rootfs");
    std::fs::create_dir_all(images.join("probe")).unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(images.join("busybox/rootfs"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(cp.success());
    let gcc = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(root.join("probe"))
        .arg(probe_src)
        .output()
        .expect("gcc builds the escape probe (Debian's gcc, with libc6-dev for -static)");
    assert!(gcc.status.success(), "{}", stderr(&gcc));
    std::fs::write(
        images.join("probe/image.json"),
        r#"{"name":"probe","created_at":0,"size_bytes":0,"source":"test"}"#,
    )
    .unwrap();
    let o = d.run(&["--rm", "probe", "/probe"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let status = inside(&d, "grep -E '^Seccomp' /proc/self/status").0;
    assert!(
        status.contains("Seccomp:\t2") && status.contains("Seccomp_filters:\t1"),
        "{status}"
    );
    for line in out.lines() {
        let (name, errno) = line.split_once(' ').unwrap();
        let want = if name == "clone3" {
            libc::ENOSYS
        } else {
            libc::EPERM
        };
        assert_eq!(
            errno.parse::<i32>().unwrap(),
            want,
            "{name} must be refused:\n{out}"
        );
    }
    assert_eq!(out.lines().count(), 25, "{out}");
}

#[test]
fn an_image_symlink_cannot_redirect_the_runtimes_mounts() {
    let d = Dirs::new();
    assert!(d.run(&["--rm", "busybox", "true"]).status.success());
    let images = d.data.join("images");
    let root = images.join("trap/rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(images.join("busybox/rootfs/bin"))
        .arg(root.join("bin"))
        .status()
        .unwrap();
    assert!(cp.success());
    // /dev in this image points at a host directory.
    let bait = d.tmp.path().join("bait");
    std::fs::create_dir(&bait).unwrap();
    std::os::unix::fs::symlink(&bait, root.join("dev")).unwrap();
    std::fs::write(
        images.join("trap/image.json"),
        r#"{"name":"trap","created_at":0,"size_bytes":0,"source":"test"}"#,
    )
    .unwrap();
    let o = d.run(&["--rm", "trap", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("symbolic link at /dev"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_dir(&bait).unwrap().count(),
        0,
        "nothing was created through the link"
    );
}

/// The host uid a container process runs as, from the host's /proc.
fn host_uids(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string()
}

#[test]
fn container_root_is_an_unprivileged_host_uid_and_the_image_still_belongs_to_root() {
    let d = Dirs::new();
    let (out, err) = inside(
        &d,
        "cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u:%g' /bin/busybox /etc; id -u; \
         touch /new && stat -c '%u' /new",
    );
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}{err}");
    for map in &lines[..2] {
        let f: Vec<u64> = map.split_whitespace().map(|x| x.parse().unwrap()).collect();
        assert_eq!(f[0], 0, "container root is mapped: {map}");
        assert!(f[1] >= 1 << 30, "to a high host id, never host root: {map}");
        assert_eq!(f[2], 65536);
    }
    assert_eq!(
        lines[2], "0:0",
        "the idmapped image is owned by the container's root"
    );
    assert_eq!(lines[3], "0:0");
    assert_eq!(lines[4], "0");
    assert_eq!(lines[5], "0", "new files too");

    // Seen from the host: the container's processes run as the range's base uid.
    let o = d.run(&["-d", "busybox", "sleep", "60"]);
    let id = stdout(&o).trim().to_string();
    let pid = d.container_state(&id)["pid"].as_i64().unwrap();
    let uids = host_uids(pid);
    let host_uid: u64 = uids.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(host_uid >= 1 << 30, "host view: {uids}");
}

#[tokio::test]
async fn two_sessions_get_disjoint_uid_ranges_and_give_them_back() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let a = create_session(&srv).await;
    let b = create_session(&srv).await;
    let uid = |s: &Session| {
        let pid = d.container_state(&s.container_id)["pid"].as_i64().unwrap();
        host_uids(pid)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let (ua, ub) = (uid(&a), uid(&b));
    assert!(ua >= 1 << 30 && ub >= 1 << 30);
    assert!(
        ua.abs_diff(ub) >= 65536,
        "ranges of 65536 ids never overlap: {ua} {ub}"
    );
    let ranges = || std::fs::read_dir(d.state.join("idmap")).unwrap().count();
    assert_eq!(ranges(), 2);
    delete_session(&srv, &a).await;
    delete_session(&srv, &b).await;
    assert_eq!(ranges(), 0, "ending a session gives its range back");
}

#[tokio::test]
async fn only_a_lab_that_teaches_nesting_may_create_namespaces_and_only_inside_its_own() {
    let d = Dirs::new();
    let labs = d.tmp.path().join("labs");
    std::fs::create_dir_all(labs.join("01-nest/steps")).unwrap();
    std::fs::write(
        labs.join("01-nest/lab.toml"),
        "title = \"Nesting\"\nsummary = \"Namespaces inside a container.\"\nminutes = 5\n\n[session]\nfeatures = [\"lab-host\", \"nested-namespaces\"]\n",
    )
    .unwrap();
    std::fs::write(
        labs.join("01-nest/steps/01-unshare.md"),
        "+++\ntitle = \"unshare\"\n+++\nTry:\n\n```sh\nunshare -U id\n```\n",
    )
    .unwrap();
    let srv = Server::start(&d, &["--labs-dir", labs.to_str().unwrap()]);
    let resp = reqwest::Client::new()
        .post(srv.url("/api/v1/sessions"))
        .json(&serde_json::json!({ "lab": "nest" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let nest = Session::from_json(&resp.json().await.unwrap());
    let plain = create_session(&srv).await;
    let mut t = Term::connect(&srv, &nest).await;
    let mut p = Term::connect(&srv, &plain).await;
    t.expect("# ", 10).await;
    p.expect("# ", 10).await;
    // The new user namespace is a child of the lab host's: its root is nobody outside.
    t.send("unshare -U sh -c 'id -u; echo n\"\"-$(cat /proc/self/uid_map | wc -l)'; gantry run --rm busybox unshare -U true && echo child\"\"-ok\r")
        .await;
    let out = t.expect("child-ok", 30).await;
    assert!(
        out.contains("65534"),
        "unmapped inside the nested namespace: {out}"
    );
    assert!(out.contains("n-0"), "with an empty map: {out}");
    p.send("unshare -U true || echo refused\"\"-ok\r").await;
    let out = p.expect("refused-ok", 10).await;
    assert!(out.contains("Operation not permitted"), "{out}");
    delete_session(&srv, &nest).await;
    delete_session(&srv, &plain).await;
}
