//! Labs: `gantry lab check` on broken and real labs, and the catalog over HTTP.

use crate::helpers::*;
use std::process::Command;

fn lab_check(dir: &std::path::Path) -> std::process::Output {
    Command::new(gantry_bin())
        .args(["lab", "check"])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn lab_check_names_the_file_and_the_problem_of_a_broken_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("01-broken");
    std::fs::create_dir_all(lab.join("steps")).unwrap();
    std::fs::write(
        lab.join("lab.toml"),
        "title = \"Broken\"\nsummary = \"s\"\nminutes = 5\n[session]\nmemory = \"lots\"\n",
    )
    .unwrap();
    std::fs::write(
        lab.join("steps/01-start.md"),
        "+++\ntitle = \"Start\"\n[[check]]\nassert = \"memory_limt\"\ncontainer = \"web\"\nmessage = \"m\"\n+++\n```sh\ngantry run -d --name web busybox sleep 1\n```\n",
    )
    .unwrap();
    std::fs::write(lab.join("steps/limits.md"), "+++\ntitle = \"x\"\n+++\n").unwrap();

    let out = lab_check(tmp.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let shown = tmp.path().display().to_string();
    for expected in [
        format!("{shown}/01-broken/lab.toml: session.memory: invalid memory limit \"lots\""),
        format!(
            "{shown}/01-broken/steps/01-start.md: check 1: unknown assert kind \"memory_limt\""
        ),
        format!("{shown}/01-broken/steps/limits.md: a step file is named NN-slug.md"),
        "3 problems".to_string(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn lab_check_passes_on_the_labs_in_the_repository() {
    let out = lab_check(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"));
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.starts_with("5 labs, ") && line.trim_end().ends_with("checks: ok"),
        "{line}"
    );
}

#[tokio::test]
async fn the_catalog_and_a_labs_steps_are_served_as_json() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let client = reqwest::Client::new();

    let r = client.get(srv.url("/api/v1/labs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let labs: serde_json::Value = r.json().await.unwrap();
    let ids: Vec<&str> = labs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run", "namespaces", "cgroups", "networks", "storage"]);
    let run = &labs[0];
    assert!(run["title"].as_str().unwrap().contains("run a container"));
    assert!(run["steps"].as_u64().unwrap() >= 5, "{run}");
    assert!(run["minutes"].as_u64().unwrap() > 0, "{run}");

    let r = client
        .get(srv.url("/api/v1/labs/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let lab: serde_json::Value = r.json().await.unwrap();
    assert_eq!(lab["id"], "run");
    assert_eq!(lab["session"]["image"], "busybox");
    let steps = lab["steps"].as_array().unwrap();
    assert_eq!(steps.len() as u64, run["steps"].as_u64().unwrap());
    assert_eq!(steps[0]["number"], 1);
    let start = steps
        .iter()
        .find(|s| {
            s["commands"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "gantry run -d --name web busybox sleep 3600")
        })
        .expect("a step that starts web");
    assert_eq!(start["has_check"], true);
    assert!(start["html"]
        .as_str()
        .unwrap()
        .contains("class=\"run-code\""));
    assert!(start["hints"].is_array());
    assert!(start.get("checks").is_none(), "checks stay on the server");
}

#[tokio::test]
async fn an_unknown_lab_is_a_404_that_says_so() {
    let d = Dirs::new();
    let srv = Server::start(&d, &[]);
    let client = reqwest::Client::new();
    let r = client
        .get(srv.url("/api/v1/labs/no-such-lab"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("no-such-lab"),
        "{body}"
    );
    let page = client
        .get(srv.url("/labs/no-such-lab"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);

    let page = client.get(srv.url("/labs/run")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Start this lab") && html.contains("name=\"lab\" value=\"run\""));
    assert!(html.contains("class=\"check-step\""));
    let home = client
        .get(srv.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("href=\"/labs/run\""),
        "the start page lists the labs"
    );
}

#[test]
fn serve_refuses_to_start_with_an_invalid_labs_dir() {
    let d = Dirs::new();
    let labs = d.tmp.path().join("labs");
    std::fs::create_dir_all(labs.join("01-x")).unwrap();
    // `timeout`: if the server started anyway, the test fails instead of hanging.
    let out = Command::new("timeout")
        .arg("20")
        .arg(gantry_bin())
        .arg("--data-dir")
        .arg(&d.data)
        .arg("--state-dir")
        .arg(&d.state)
        .args(["serve", "--listen", "127.0.0.1:0", "--labs-dir"])
        .arg(&labs)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("loading the labs in") && err.contains("01-x: missing lab.toml"),
        "{err}"
    );
}
