//! Restarting or crashing the server never takes a shell away.

use crate::helpers::*;
use nix::sys::signal::Signal;

#[tokio::test]
async fn killing_the_server_keeps_every_shell() {
    let d = Dirs::new();
    let mut srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    t.send("export KEPT=yes-$((40+2)); echo before-crash\r")
        .await;
    t.expect("before-crash\r\n", 10).await;
    let shell_pid = d.container_state(&s.container_id)["pid"].as_i64().unwrap();

    for sig in [Signal::SIGKILL, Signal::SIGTERM] {
        srv.signal(sig);
        assert!(
            !process_gone(shell_pid),
            "the shell outlives the server ({sig})"
        );
        srv = Server::start(&d, &[]);
        let v = get_session(&srv, &s).await;
        assert_eq!(v["state"], "running", "{sig}: {v}");
        let mut t = Term::connect(&srv, &s).await;
        t.expect("before-crash", 10).await;
        t.send("echo $KEPT\r").await;
        t.expect("yes-42\r\n", 10).await;
    }
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn a_crashed_monitor_is_cleaned_up() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--reap-interval", "1s"]);
    let s = create_session(&srv).await;
    let st = d.container_state(&s.container_id);
    let (pid, monitor) = (
        st["pid"].as_i64().unwrap(),
        st["monitor_pid"].as_i64().unwrap(),
    );
    let mem = cgroup_dir(pid, "memory");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor as i32), Signal::SIGKILL).unwrap();
    let cdir = d.state.join("containers").join(&s.container_id);
    eventually(20, "the reaper cleans up after the dead monitor", || {
        !cdir.exists()
    })
    .await;
    assert!(process_gone(pid), "the shell died with its monitor");
    assert!(!mem.exists(), "its cgroup is removed");
    let v = get_session(&srv, &s).await;
    assert_eq!(v["state"], "ended");
}

#[tokio::test]
async fn a_restart_removes_session_containers_that_no_session_owns() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    drop(srv);
    // The database loses the session (as if the server crashed before recording it).
    let deleted = delete_session_row(&d.data.join("gantry.db"), &s.id);
    assert!(deleted, "session row deleted");
    let pid = d.container_state(&s.container_id)["pid"].as_i64().unwrap();
    let _srv = Server::start(&d, &[]);
    assert!(
        process_gone(pid),
        "the unowned shell is stopped at start-up"
    );
    assert!(!d.state.join("containers").join(&s.container_id).exists());
}

/// Deletes a session row straight from the SQLite file.
fn delete_session_row(db: &std::path::Path, id: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute("DELETE FROM sessions WHERE id = ?1", [id])
        .unwrap()
        == 1
}
