//! Network setup cost per container, bridge vs none (the networking and storage issue:
//! "target ≤ 1 ms added; Docker adds ~64 ms, podman ~185 ms on this machine kind").
//!
//! In one session's lab host, `GANTRY_BENCH_NET_N` containers (default 60) of each kind
//! are started one after another, alternating: `gantry run --network none busybox true`
//! and `gantry run --network lan busybox true` (a user bridge network). Two figures:
//!
//! - the runtime's own step, from each container's launch trace: the time between the
//!   step before and "veth ... ⇄ eth0" (create the veth pair with its peer in the
//!   container's namespace, plug it into the bridge, set addresses, routes, links up);
//! - the whole `gantry run` as a student sees it (CLI in the lab host → unix socket → the
//!   daemon → monitor → container exit), bridge minus none.
//!
//! Run: `cargo build --release && cargo bench --bench network` (as root).

mod common;

use anyhow::{bail, Context, Result};
use common::{ms, Server, Stats, Table};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    common::run_async("network", run);
}

/// The runtime's own network step of every container in the state dir, from the launch
/// traces the monitors saved.
fn veth_steps(state: &std::path::Path) -> Result<Vec<Duration>> {
    let mut out = vec![];
    for e in std::fs::read_dir(state.join("containers"))?.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("trace.json")) else {
            continue;
        };
        let trace: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut prev = 0.0;
        for step in &trace {
            let at = step["ms"].as_f64().unwrap_or(0.0);
            if step["step"]
                .as_str()
                .is_some_and(|s| s.starts_with("veth "))
            {
                out.push(Duration::from_secs_f64((at - prev).max(0.0) / 1000.0));
            }
            prev = at;
        }
    }
    Ok(out)
}

async fn run() -> Result<()> {
    let n = common::env_usize("GANTRY_BENCH_NET_N", 60)?;
    let server = Server::start("network", &[])?;
    let s = server.create_session().await?;
    let labhost = server.container_of(&s)?.id;
    let in_labhost = |script: &str| -> Result<std::process::Output> {
        Command::new(&server.bin)
            .arg("--data-dir")
            .arg(&server.dirs.data)
            .arg("--state-dir")
            .arg(&server.dirs.state)
            .args(["exec", &labhost, "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .context("running gantry exec in the lab host")
    };
    let o = in_labhost("gantry network create lan")?;
    if !o.status.success() {
        bail!(
            "gantry network create failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    println!("network setup cost: {n} containers of each kind, alternating, in one lab host");
    let (mut none, mut bridge) = (vec![], vec![]);
    let mut veth = vec![];
    for i in 0..n + 3 {
        common::check_interrupt()?;
        for (mode, samples) in [("none", &mut none), ("lan", &mut bridge)] {
            let t = Instant::now();
            let o = in_labhost(&format!("gantry run --network {mode} busybox true"))?;
            let took = t.elapsed();
            if !o.status.success() {
                bail!(
                    "gantry run --network {mode} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            if i >= 3 {
                samples.push(took);
            }
        }
        if i >= 3 {
            veth.extend(veth_steps(&server.dirs.state)?);
        }
        // A session holds 16 containers at most: clear them (traces read first).
        let _ = in_labhost("gantry rm -f --all")?;
    }
    let mut t = Table::new(&["ms", "median", "p90", "p99", "mean", "n"]);
    for (name, samples) in [
        ("gantry run --network none (whole command)", &none),
        ("gantry run --network lan (whole command)", &bridge),
        ("  runtime step: veth + addresses + routes", &veth),
    ] {
        let st = Stats::new(samples);
        t.row(vec![
            name.into(),
            ms(st.median()),
            ms(st.pct(90.0)),
            ms(st.pct(99.0)),
            ms(st.mean()),
            st.len().to_string(),
        ]);
    }
    t.print();
    let added = Stats::new(&bridge).median() - Stats::new(&none).median();
    println!(
        "\nbridge adds {} ms to a whole run (median difference), {} ms of it in the runtime's network step",
        ms(added),
        ms(Stats::new(&veth).median())
    );
    println!("references (from the issue, not measured here): Docker adds ~64 ms, podman ~185 ms");
    let _ = in_labhost("gantry rm -f --all");
    server.delete_session(&s).await?;
    Ok(())
}
