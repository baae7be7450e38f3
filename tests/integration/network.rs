//! Networking modes inside a lab host (the networking and storage issue), with real
//! traffic: busybox ping, wget against httpd, nc. Everything is typed into a session's
//! terminal, as a student would.

use crate::helpers::*;

#[tokio::test]
async fn containers_on_a_user_network_talk_by_name_and_other_modes_hold() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;

    let out = sh(
        &mut t,
        "gantry network create lan && gantry network ls",
        "create",
    )
    .await;
    assert!(
        out.contains("gt-lan") && out.contains("10.88.1.0/24"),
        "{out}"
    );
    sh(
        &mut t,
        "gantry run -d --name web --network lan busybox sh -c 'echo hello-from-web > /tmp/index.html; httpd -f -p 80 -h /tmp'",
        "web",
    )
    .await;
    sh(
        &mut t,
        "gantry run -d --name db --network lan busybox sh -c 'echo pong-from-db | nc -l -p 5000'",
        "db",
    )
    .await;
    // By name, through the bridge: ICMP, HTTP, raw TCP.
    let out = sh(
        &mut t,
        "gantry run --rm --network lan busybox ping -c 2 -W 2 web",
        "ping",
    )
    .await;
    assert!(out.contains("2 packets received"), "{out}");
    let out = sh(
        &mut t,
        "gantry run --rm --network lan busybox wget -q -O- http://web/",
        "wget",
    )
    .await;
    assert!(out.contains("hello-from-web"), "{out}");
    let out = sh(
        &mut t,
        "gantry run --rm --network lan busybox nc db 5000 </dev/null",
        "nc",
    )
    .await;
    assert!(out.contains("pong-from-db"), "{out}");
    // The lab host reaches the container through its bridge too.
    let out = sh(&mut t, "wget -q -O- http://10.88.1.2/", "fromhost").await;
    assert!(out.contains("hello-from-web"), "{out}");
    // inspect shows the address.
    let out = sh(
        &mut t,
        "gantry inspect web | grep -A3 '\"address\"'",
        "inspect",
    )
    .await;
    assert!(out.contains("10.88.1.2"), "{out}");

    // none: loopback only.
    let out = sh(&mut t, "gantry run --rm busybox ip -o link | wc -l", "none").await;
    assert!(out.contains("\r\n1\r\n"), "only lo: {out}");
    // host: the lab host's namespace (it sees the bridge), never the real host's.
    let out = sh(
        &mut t,
        "gantry run --rm --network host busybox ip -o link",
        "hostmode",
    )
    .await;
    assert!(out.contains("gt-lan"), "{out}");
    let real_host_links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    for link in &real_host_links {
        assert!(
            !out.contains(&format!(": {link}:")),
            "the real host's {link} is not there: {out}"
        );
    }
    // container:web shares web's namespace.
    let out = sh(
        &mut t,
        "gantry run --rm --network container:web busybox wget -q -O- http://127.0.0.1/",
        "shared",
    )
    .await;
    assert!(out.contains("hello-from-web"), "{out}");

    // connect / disconnect a running container.
    sh(
        &mut t,
        "gantry network create back && gantry run -d --name solo busybox sleep 600",
        "solo",
    )
    .await;
    let out = sh(
        &mut t,
        "gantry network connect back solo && gantry exec solo ip -o -4 addr",
        "connect",
    )
    .await;
    assert!(out.contains("10.88.2.2"), "{out}");
    let out = sh(
        &mut t,
        "gantry network disconnect back solo && gantry exec solo ip -o link | wc -l",
        "disconnect",
    )
    .await;
    assert!(out.contains("\r\n1\r\n"), "{out}");

    // A network with containers cannot be removed; an empty one can.
    let out = sh(&mut t, "gantry network rm lan", "rmbusy").await;
    assert!(out.contains("still has containers"), "{out}");
    let out = sh(
        &mut t,
        "gantry rm -f web db solo && gantry network rm lan back && gantry network ls",
        "rm",
    )
    .await;
    assert!(!out.contains("gt-lan"), "{out}");
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn one_session_cannot_reach_another_sessions_containers() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let a = create_session(&srv).await;
    let b = create_session(&srv).await;
    let mut ta = Term::connect(&srv, &a).await;
    let mut tb = Term::connect(&srv, &b).await;
    ta.expect("# ", 10).await;
    tb.expect("# ", 10).await;
    // b: two containers, the server at 10.88.1.3.
    sh(
        &mut tb,
        "gantry network create lan && gantry run -d --name first --network lan busybox sleep 600",
        "b1",
    )
    .await;
    sh(
        &mut tb,
        "gantry run -d --name web --network lan busybox sh -c 'echo secret-of-b > /tmp/index.html; httpd -f -p 80 -h /tmp'",
        "b2",
    )
    .await;
    let out = sh(
        &mut tb,
        "gantry run --rm --network lan busybox wget -q -O- http://10.88.1.3/",
        "b3",
    )
    .await;
    assert!(
        out.contains("secret-of-b"),
        "b reaches its own server: {out}"
    );
    // a: the same addresses exist only in a's own lab host.
    sh(
        &mut ta,
        "gantry network create lan && gantry run -d --name probe --network lan busybox sleep 600",
        "a1",
    )
    .await;
    let out = sh(
        &mut ta,
        "gantry exec probe wget -q -T 2 -O- http://10.88.1.3/ 2>&1; wget -q -T 2 -O- http://10.88.1.3/ 2>&1",
        "a2",
    )
    .await;
    assert!(
        !out.contains("secret-of-b"),
        "a cannot reach b's container: {out}"
    );
    delete_session(&srv, &a).await;
    delete_session(&srv, &b).await;
}

#[tokio::test]
async fn a_published_port_of_the_lab_host_reaches_the_container() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    sh(
        &mut t,
        "gantry network create lan && gantry run -d --name web --network lan -p 8080:80 busybox sh -c 'echo published-hello > /tmp/index.html; httpd -f -p 80 -h /tmp'",
        "start",
    )
    .await;
    // From the lab host, on its own port; and from another container, via the gateway.
    let out = sh(&mut t, "wget -q -O- http://127.0.0.1:8080/", "local").await;
    assert!(out.contains("published-hello"), "{out}");
    let out = sh(
        &mut t,
        "gantry run --rm --network lan busybox wget -q -O- http://10.88.1.1:8080/",
        "via-gateway",
    )
    .await;
    assert!(out.contains("published-hello"), "{out}");
    // The same port twice is refused; -p without a network too; the port goes with the
    // container.
    let out = sh(
        &mut t,
        "gantry run -d --network lan -p 8080:80 busybox sleep 60",
        "twice",
    )
    .await;
    assert!(out.contains("cannot publish port 8080"), "{out}");
    let out = sh(&mut t, "gantry run -d -p 9090:80 busybox sleep 60", "nonet").await;
    assert!(out.contains("needs the container on a network"), "{out}");
    let out = sh(
        &mut t,
        "gantry rm -f web && wget -q -T 2 -O- http://127.0.0.1:8080/ 2>&1",
        "gone",
    )
    .await;
    assert!(!out.contains("published-hello"), "{out}");
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn macvlan_containers_have_their_own_mac_and_talk_to_each_other() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    let out = sh(
        &mut t,
        "gantry network create --driver macvlan mv && gantry network ls",
        "create",
    )
    .await;
    assert!(out.contains("macvlan"), "{out}");
    sh(
        &mut t,
        "gantry run -d --name a --network mv busybox sleep 600",
        "a",
    )
    .await;
    let out = sh(
        &mut t,
        "gantry run --rm --network mv busybox sh -c 'ip -o link show eth0; ping -c 2 -W 2 a'",
        "ping",
    )
    .await;
    assert!(out.contains("eth0@"), "a macvlan of the parent: {out}");
    assert!(out.contains("2 packets received"), "{out}");
    // Its parent's own address does not reach its macvlan children (bridge mode).
    let out = sh(&mut t, "ping -c 1 -W 1 10.88.1.2", "parent").await;
    assert!(out.contains("0 packets received"), "{out}");
    sh(&mut t, "gantry rm -f a && gantry network rm mv", "rm").await;
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn an_overlay_network_joins_containers_on_two_lab_hosts() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    // The first overlay network starts labhost2 and the underlay link to it.
    let out = sh(&mut t, "gantry network create --driver overlay ov && gantry network ls && ip -o addr show gt-under", "create").await;
    assert!(
        out.contains("overlay") && out.contains("192.168.200.1/30"),
        "{out}"
    );
    sh(
        &mut t,
        "gantry run -d --name far --node labhost2 --network ov busybox sh -c 'echo over-the-tunnel > /tmp/index.html; hostname > /tmp/host; httpd -f -p 80 -h /tmp'",
        "far",
    )
    .await;
    // far's processes are not in this lab host's pid namespace: it runs on labhost2.
    let out = sh(&mut t, "ps | grep -c '[h]ttpd -f'", "ps").await;
    assert!(out.contains("\r\n0\r\n"), "{out}");
    let out = sh(
        &mut t,
        "gantry run --rm --network ov busybox sh -c 'ping -c 2 -W 2 far; wget -q -O- http://far/'",
        "tunnel",
    )
    .await;
    assert!(
        out.contains("2 packets received") && out.contains("over-the-tunnel"),
        "{out}"
    );
    // Without an overlay there is no labhost2 to run on.
    let s2 = create_session(&srv).await;
    let mut t2 = Term::connect(&srv, &s2).await;
    t2.expect("# ", 10).await;
    let out = sh(
        &mut t2,
        "gantry run --rm --node labhost2 busybox true",
        "nonode",
    )
    .await;
    assert!(out.contains("there is no labhost2 yet"), "{out}");
    sh(&mut t, "gantry rm -f far && gantry network rm ov", "rm").await;
    delete_session(&srv, &s).await;
    delete_session(&srv, &s2).await;
}
