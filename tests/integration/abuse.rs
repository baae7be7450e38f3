//! One session misbehaving must not hurt another (the hardening issue, item 6), and a
//! thousand containers must leave nothing behind.

use crate::helpers::*;
use std::time::{Duration, Instant};

/// Echo round trips of `calm` while `abuse` runs in `bad`; returns the slowest (printed,
/// not asserted: speed is for the benchmarks).
async fn echo_while(
    srv: &Server,
    calm: &mut Term,
    bad: &mut Term,
    abuse: &str,
    settle: &str,
) -> Duration {
    // (The markers are written `x""-y` in the commands, so the terminal's echo of the
    // command line does not already match.)
    bad.send(&format!("{abuse}\r")).await;
    bad.expect(settle, 30).await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        calm.send(&format!("echo ok-{i}\r")).await;
        calm.expect(&format!("ok-{i}\r\n"), 20).await;
        worst = worst.max(t.elapsed());
    }
    let health = reqwest::get(srv.url("/healthz")).await.unwrap();
    assert!(
        health.status().is_success(),
        "the server stays healthy during: {abuse}"
    );
    worst
}

#[tokio::test]
async fn abuse_in_one_session_leaves_the_others_responsive() {
    let d = Dirs::new();
    let srv = Server::start(
        &d,
        &[
            "--session-memory",
            "64m",
            "--session-pids",
            "64",
            "--session-disk",
            "32m",
        ],
    );
    let bad = create_session(&srv).await;
    let good = create_session(&srv).await;
    let mut b = Term::connect(&srv, &bad).await;
    let mut g = Term::connect(&srv, &good).await;
    b.expect("# ", 10).await;
    g.expect("# ", 10).await;
    let cases = [
        // A fork bomb stops at the pids limit.
        ("f() { f | f & }; f; sleep 1; echo bomb\"\"-done", "bomb-done"),
        // A memory hog is OOM-killed inside its own cgroup.
        ("dd if=/dev/zero of=/dev/null bs=128M count=1; echo hog\"\"-done", "hog-done"),
        // A disk fill ends with ENOSPC inside, never on the host.
        ("dd if=/dev/zero of=/tmp/fill bs=1M count=100; echo fill\"\"-done", "fill-done"),
        // A CPU hog gets its quota and no more.
        ("(while :; do :; done) & echo hog\"\"-started", "hog-started"),
        // An fd flood stops at RLIMIT_NOFILE.
        ("i=0; while exec 3</dev/null 4</dev/null; [ $i -lt 9000 ]; do i=$((i+1)); done; ulimit -n; echo fds\"\"-done", "fds-done"),
    ];
    for (abuse, settle) in cases {
        let worst = echo_while(&srv, &mut g, &mut b, abuse, settle).await;
        println!("worst echo in the calm session during {settle}: {worst:?}");
    }
    let out = String::from_utf8_lossy(&b.output).into_owned();
    assert!(
        out.contains("can't fork") || out.contains("Resource temporarily unavailable"),
        "the bomb hit the pids limit"
    );
    assert!(
        out.contains("No space left on device"),
        "the disk fill hit ENOSPC inside"
    );
    delete_session(&srv, &bad).await;
    assert!(
        !d.state.join("containers").join(&bad.container_id).exists(),
        "deleting the session reclaims it"
    );
    g.send("echo still-here\r").await;
    g.expect("still-here\r\n", 10).await;
    delete_session(&srv, &good).await;
}

#[test]
fn a_thousand_containers_leave_nothing_behind() {
    let d = Dirs::new();
    let mut ids = vec![];
    for _ in 0..1000 {
        let o = d.run(&["--rm", "busybox", "true"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for _ in 0..20 {
        let o = d.run(&["-d", "busybox", "sleep", "300"]);
        assert!(o.status.success(), "{}", stderr(&o));
        ids.push(stdout(&o).trim().to_string());
    }
    let rm = d.gantry().args(["rm", "-f", "--all"]).output().unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    let left: Vec<_> = std::fs::read_dir(d.state.join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "container folders left: {left:?}");
    let ranges: Vec<_> = std::fs::read_dir(d.state.join("idmap"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(ranges.is_empty(), "uid ranges not given back: {ranges:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(d.state.to_str().unwrap()),
        "no mount under the state dir"
    );
    for id in &ids {
        for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
            let found = walk_for(
                std::path::Path::new("/sys/fs/cgroup").join(ctrl).as_path(),
                id,
                4,
            );
            assert!(found.is_none(), "cgroup left: {found:?}");
        }
    }
}

fn walk_for(dir: &std::path::Path, name: &str, depth: usize) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if e.file_name() == name {
            return Some(p);
        }
        if depth > 0 {
            if let Some(f) = walk_for(&p, name, depth - 1) {
                return Some(f);
            }
        }
    }
    None
}
