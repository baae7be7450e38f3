//! A real browser (Debian's chromium, driven by playwright-core) against a real server.

use crate::helpers::*;
use std::process::Command;

fn run_browser_script(script: &str) {
    let d = Dirs::new();
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(root)
            .join("node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `npm ci` in {root} (scripts/test does)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: run `apt-get install chromium` (scripts/test does)"
    );
    let srv = Server::start(&d, &[]);
    let shots = std::path::Path::new(root).join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(
            std::path::Path::new(root)
                .join("tests/browser")
                .join(script),
        )
        .arg(&srv.base)
        .arg(&shots)
        .output()
        .expect("node is needed for the browser tests");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && text.contains("browser: ok"),
        "{script}:\n{text}"
    );
}

#[test]
fn a_browser_opens_a_shell_types_and_sees_the_output() {
    run_browser_script("open_shell.mjs");
}

#[test]
fn a_browser_reconnects_to_the_same_shell() {
    run_browser_script("reconnect.mjs");
}

#[test]
fn a_browser_shows_a_labs_steps_with_run_and_check_buttons() {
    run_browser_script("lab_page.mjs");
}

/// The labs issue: "A browser test opens a lab, clicks a code block's button, and sees the
/// step turn green" — and the pictures under the terminal show that container's launch.
#[test]
fn a_browser_runs_a_lab_step_from_its_button_and_sees_it_pass() {
    run_browser_script("lab_click.mjs");
}

/// The topology issue: the networks lab's steps 2 and 3, run from their buttons, are drawn
/// on the Network tab (bridge gt-lan, web and client with their addresses); clicking web
/// shows its interfaces; the Storage tab shows its layers.
#[test]
fn a_browser_draws_a_labs_network_and_shows_a_containers_interfaces() {
    run_browser_script("lab_network.mjs");
}
