//! Storage inside a lab host (the networking and storage issue): named volumes that
//! outlive their containers, folders of the lab host bound in (read-only held), tmpfs,
//! --volumes-from, and the writable layer's diff, with copy-up visible from the lab host.

use crate::helpers::*;

#[tokio::test]
async fn volumes_persist_read_only_holds_and_diff_is_right() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;

    // A named volume outlives the container that wrote it.
    sh(&mut t, "gantry volume create data", "create").await;
    sh(
        &mut t,
        "gantry run --rm -v data:/srv busybox sh -c 'echo kept-across > /srv/note'",
        "w",
    )
    .await;
    let out = sh(
        &mut t,
        "gantry run --rm -v data:/srv busybox cat /srv/note",
        "r",
    )
    .await;
    assert!(out.contains("kept-across"), "{out}");
    // It is a folder of the lab host, where docker keeps volumes.
    let out = sh(
        &mut t,
        "cat /var/lib/gantry/volumes/data/_data/note; gantry volume ls",
        "ls",
    )
    .await;
    assert!(
        out.matches("kept-across").count() >= 1
            && out.contains("/var/lib/gantry/volumes/data/_data"),
        "{out}"
    );
    // :ro holds, even for root in the container.
    let out = sh(
        &mut t,
        "gantry run --rm -v data:/srv:ro busybox sh -c 'echo x > /srv/other'; echo code=$?",
        "ro",
    )
    .await;
    assert!(
        out.contains("Read-only file system") && out.contains("code=1"),
        "{out}"
    );
    // A folder of the lab host, bound read-only.
    let out = sh(
        &mut t,
        "mkdir -p /root/site && echo from-the-lab-host > /root/site/index.html && gantry run --rm -v /root/site:/www:ro busybox cat /www/index.html",
        "bind",
    )
    .await;
    assert!(out.contains("from-the-lab-host"), "{out}");
    // tmpfs with its size.
    let out = sh(
        &mut t,
        "gantry run --rm --tmpfs /cache:8m busybox df -k /cache",
        "tmpfs",
    )
    .await;
    assert!(out.contains("8192"), "{out}");
    // --volumes-from.
    sh(
        &mut t,
        "gantry run -d --name holder -v data:/srv busybox sleep 600",
        "holder",
    )
    .await;
    let out = sh(
        &mut t,
        "gantry run --rm --volumes-from holder busybox cat /srv/note",
        "from",
    )
    .await;
    assert!(out.contains("kept-across"), "{out}");
    // A volume in use cannot go.
    let out = sh(&mut t, "gantry volume rm data", "rmbusy").await;
    assert!(out.contains("used by holder"), "{out}");

    // The writable layer: diff, and copy-up seen from the lab host.
    sh(
        &mut t,
        "gantry run -d --name w busybox sh -c 'echo new > /added; rm /etc/passwd; echo hi >> /etc/group; sleep 600'",
        "w",
    )
    .await;
    let mut out = String::new();
    for _ in 0..20 {
        out = sh(&mut t, "gantry diff w", "diff").await;
        if out.contains("D /etc/passwd") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for line in ["A /added", "C /etc", "C /etc/group", "D /etc/passwd"] {
        assert!(out.contains(line), "{line} in: {out}");
    }
    // The page's picture carries the same changes, live.
    let pic: serde_json::Value = reqwest::Client::new()
        .get(srv.url(&format!("/api/v1/sessions/{}/picture", s.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let w = pic["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "w")
        .expect("w in the picture");
    let changes: Vec<&str> = w["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(changes.contains(&"D /etc/passwd"), "{changes:?}");
    assert!(w["upper"].as_str().unwrap().ends_with("/rootfs/upper"));
    let out = sh(
        &mut t,
        "ls /var/lib/gantry/containers/$(gantry ps -q | head -1)/rootfs/upper/etc 2>/dev/null; gantry inspect w | grep upper",
        "upper",
    )
    .await;
    assert!(out.contains("rootfs/upper"), "{out}");
    // Removing containers removes their layers from the lab host; the volume stays.
    let out = sh(
        &mut t,
        "gantry rm -f w holder && ls /var/lib/gantry/containers | wc -l && gantry volume rm data && gantry volume ls",
        "cleanup",
    )
    .await;
    assert!(out.contains("\r\n0\r\n"), "no layer left: {out}");
    assert!(!out.contains("/var/lib/gantry/volumes/data"), "{out}");
    delete_session(&srv, &s).await;
}

#[tokio::test]
async fn volumes_count_against_the_session_disk_budget() {
    let d = Dirs::new();
    let srv = Server::start(&d, &["--session-disk", "16m"]);
    let s = create_session(&srv).await;
    let mut t = Term::connect(&srv, &s).await;
    t.expect("# ", 10).await;
    let out = sh(
        &mut t,
        "gantry run --rm -v big:/srv busybox dd if=/dev/zero of=/srv/fill bs=1M count=40",
        "fill",
    )
    .await;
    assert!(out.contains("No space left on device"), "{out}");
    // The host is untouched and the session goes on.
    let out = sh(&mut t, "df -k /var/lib/gantry | tail -1", "df").await;
    assert!(out.contains("16384"), "{out}");
    delete_session(&srv, &s).await;
}
