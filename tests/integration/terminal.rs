//! The terminal WebSocket with a real client (tokio-tungstenite).

use crate::helpers::*;

#[tokio::test]
async fn the_terminal_runs_a_command_and_returns_its_output() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    assert!(
        t.hello
            .as_ref()
            .is_some_and(|h| h["session"] == s.id.as_str()),
        "{:?}",
        t.hello
    );
    t.send("echo $((6*7))-ok; hostname\r").await;
    t.expect("42-ok", 10).await;
    t.expect("labhost", 10).await;
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn a_resize_reaches_the_pty() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    t.resize(100, 40).await;
    t.send("stty size\r").await;
    t.expect("40 100", 10).await;
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn a_reconnect_gets_the_same_shell_and_replays_recent_output() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    t.send("export MARK=same-shell; echo replay-$((1+1))\r")
        .await;
    t.expect("replay-2", 10).await;
    drop(t);
    let mut t = Term::connect(&srv, &s).await;
    // Before typing anything, the replay brings back what was on the screen.
    t.expect("replay-2", 10).await;
    assert!(t.hello.as_ref().unwrap()["replay_bytes"].as_u64().unwrap() > 0);
    t.send("echo $MARK\r").await;
    t.expect("same-shell\r\n", 10).await;
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn bad_frames_close_with_a_reason_and_the_shell_survives() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    for (frame, reason) in [
        (vec![9u8, 1, 2], "unknown opcode 9"),
        (b"\x01{\"cols\":100000,\"rows\":1}".to_vec(), "refused"),
        (b"\x01not json".to_vec(), "JSON"),
        (vec![], "opcode"),
    ] {
        let mut t = Term::connect(&srv, &s).await;
        t.send_raw(frame).await;
        let (code, why) = t.until_closed(10).await;
        assert_eq!(code, 1003, "{why}");
        assert!(why.contains(reason), "{why}");
    }
    let mut t = Term::connect(&srv, &s).await;
    t.send("echo still-$((2*2))\r").await;
    t.expect("still-4", 10).await;
    let bad_token = Session {
        token: "f".repeat(64),
        ..s.clone()
    };
    let url = format!(
        "{}/api/v1/sessions/{}/terminal?token={}",
        srv.base.replace("http://", "ws://"),
        s.id,
        bad_token.token
    );
    let refused = tokio_tungstenite::connect_async(url).await;
    assert!(refused.is_err(), "a wrong token gets no terminal");
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn exit_ends_the_session_with_its_code() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    t.send("exit 5\r").await;
    let (code, _) = t.until_closed(10).await;
    assert_eq!(code, 1000);
    assert_eq!(t.exit.as_ref().unwrap()["exit_code"], 5);
    let v = get_session(&srv, &s).await;
    assert_eq!(
        (
            v["state"].as_str(),
            v["end_reason"].as_str(),
            v["exit_code"].as_i64()
        ),
        (Some("ended"), Some("exited"), Some(5))
    );
    let mut again = Term::connect(&srv, &s).await;
    let (code, why) = again.until_closed(10).await;
    assert_eq!(code, 4404, "{why}");
}

#[tokio::test]
async fn a_flood_keeps_server_memory_bounded_and_other_sessions_responsive() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let flood = create_session(&srv).await;
    let calm = create_session(&srv).await;
    let mut f = Term::connect(&srv, &flood).await;
    f.expect("# ", 10).await;
    f.send("yes flood-flood-flood-flood\r").await;
    f.expect("flood-flood", 10).await;
    // While it floods, the flooding container yields the CPU to everyone else.
    let pid = d.container_state(&flood.container_id)["pid"]
        .as_i64()
        .unwrap();
    let idle = cgroup_dir(pid, "cpu").join("cpu.idle");
    let read_idle = || std::fs::read_to_string(&idle).unwrap().trim().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read_idle() != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "a flooding container is put in the idle CPU class"
        );
        f.pump().await;
    }
    let rss_before = rss_kib(srv.pid());
    // The flooding client stops reading for a while: nothing may pile up in the server.
    let mut c = Term::connect(&srv, &calm).await;
    c.expect("# ", 10).await;
    for i in 0..20 {
        c.send(&format!("echo calm-{i}\r")).await;
        c.expect(&format!("calm-{i}\r\n"), 10).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let rss_paused = rss_kib(srv.pid());
    assert!(
        rss_paused < rss_before + 32 * 1024,
        "server grew from {rss_before} KiB to {rss_paused} KiB while a client was not reading"
    );
    // Reading again, the flood flows, and stops on ^C.
    for _ in 0..200 {
        f.pump().await;
    }
    f.send("\x03").await;
    f.send("echo after-flood\r").await;
    f.expect("after-flood\r\n", 20).await;
    eventually(
        10,
        "the calm container gets its normal CPU class back",
        || read_idle() == "0",
    )
    .await;
    delete_session(&srv, &flood).await;
    delete_session(&srv, &calm).await;
}

#[tokio::test]
async fn a_viewer_that_stops_reading_cannot_hold_the_shell_hostage() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut stuck = Term::connect(&srv, &s).await;
    stuck.expect("# ", 10).await;
    stuck.send("yes stalled-stalled-stalled\r").await;
    stuck.expect("stalled-stalled", 10).await;
    // `stuck` never reads again (a laptop closed mid-flood). After the monitor's stall
    // limit, a new connection gets the shell back.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let mut fresh = Term::connect(&srv, &s).await;
    fresh.send("\x03").await;
    fresh.send("echo free-$((3*3))\r").await;
    fresh.expect("free-9\r\n", 30).await;
    drop(stuck);
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn each_terminal_has_its_own_pty_and_session() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let a = create_session(&srv).await;
    let b = create_session(&srv).await;
    let mut ta = Term::connect(&srv, &a).await;
    let mut tb = Term::connect(&srv, &b).await;
    ta.expect("# ", 10).await;
    tb.expect("# ", 10).await;
    // Its own devpts: no other session's pty exists in here, so TIOCSTI has nowhere
    // else to type. The shell leads its own session with that pty as controlling tty.
    ta.send("echo pts=$(ls /dev/pts | tr '\\n' ,) tty=$(tty) sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$\r")
        .await;
    ta.expect("pts=0,ptmx, tty=/dev/pts/0 sid=1 pid=1", 10)
        .await;
    delete_session(&srv, &a).await;
    delete_session(&srv, &b).await;
}
