//! Helpers shared by gantry's benchmarks (`cargo bench --bench startup|sessions|terminal`).
//!
//! Each benchmark is a plain `fn main` (`harness = false`) that drives the *release*
//! binary `target/release/gantry` as a user would: the CLI for `gantry run`, the HTTP API
//! and the terminal WebSocket for sessions. What they share:
//!
//! - this file: running a benchmark (errors, Ctrl-C, root, settings from the environment,
//!   finding the binary, temporary dirs);
//! - [`stats`]: percentiles and a plain-text table;
//! - [`procfs`]: memory and CPU figures from `/proc` (proc(5));
//! - [`server`]: a `gantry serve` on 127.0.0.1:0 with its own temporary data and state
//!   dirs, cleaned up by a guard on drop (sessions deleted, SIGTERM, `gantry rm -f --all`);
//! - [`terminal`]: a WebSocket client of the terminal protocol
//!   (docs/terminal-protocol.md) that answers busybox's cursor-position query as xterm.js
//!   does.
//!
//! Every failure is an `anyhow::Error` that travels back to `main`, so the guards run
//! before the process exits non-zero (see [`run_main`]).
//!
//! Settings for every bench: `GANTRY_BIN` (another gantry binary than
//! `target/release/gantry`), `GANTRY_BENCH_SERVE_ARGS` (more `gantry serve` flags, e.g.
//! `--workers 4`).

#![allow(dead_code)]

pub mod procfs;
pub mod server;
pub mod stats;
pub mod terminal;

pub use procfs::*;
pub use server::*;
pub use stats::*;
pub use terminal::*;

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs a benchmark body: Ctrl-C becomes an error at the next check (so the guards still
/// clean up), and any error is printed with its chain before exiting with status 1.
/// [`run_main`] for an async bench: needs root, runs `body` on a two-thread runtime.
pub fn run_async<F: std::future::Future<Output = Result<()>>>(
    name: &str,
    body: impl FnOnce() -> F,
) {
    run_main(name, || {
        require_root()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(body())
    });
}

pub fn run_main(name: &str, body: impl FnOnce() -> Result<()>) {
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    // Other work on the machine skews every figure: say how busy it was.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "bench {name}: {cores} cores, load average {} at the start",
        load_average()
    );
    let result = body();
    println!("\nload average {} at the end", load_average());
    if let Err(e) = result {
        eprintln!("\nbench {name} failed: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

/// The 1, 5 and 15 minute load averages (proc(5)).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Fails once Ctrl-C was pressed; long loops call it between iterations.
pub fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted (Ctrl-C); cleaning up");
    }
    Ok(())
}

/// Benchmarks create namespaces, cgroups and mounts.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmarks start real containers and need root: run them with sudo");
    }
    Ok(())
}

/// A positive integer from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("{name}={v:?} is not a positive integer")),
        Err(_) => Ok(default),
    }
}

/// The release binary: `$GANTRY_BIN`, else `target/release/gantry` of this checkout.
pub fn gantry_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("GANTRY_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("release").join("gantry")
        }
    };
    if !path.is_file() {
        bail!(
            "{} is missing: build the release binary first with `cargo build --release` (or point GANTRY_BIN at one)",
            path.display()
        );
    }
    Ok(path)
}

/// A fresh folder under /tmp holding a bench's data dir, state dir and logs; removed on drop.
pub struct BenchDirs {
    root: tempfile::TempDir,
    pub data: PathBuf,
    pub state: PathBuf,
}

impl BenchDirs {
    pub fn new(bench: &str) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix(&format!("gantry-bench-{bench}-"))
            .tempdir_in("/tmp")
            .context("creating a temporary folder under /tmp")?;
        let data = root.path().join("data");
        let state = root.path().join("state");
        Ok(BenchDirs { root, data, state })
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }
}

/// `gantry rm -f --all` on a state dir: kills and removes every container left there.
///
/// Skipped when the state dir holds no container: `gantry rm --all` then fails with "no
/// container given" instead of doing nothing.
pub fn remove_all_containers(bin: &Path, dirs: &BenchDirs) -> Result<()> {
    let any = std::fs::read_dir(dirs.state.join("containers"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !any {
        return Ok(());
    }
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(&dirs.data)
        .arg("--state-dir")
        .arg(&dirs.state)
        .args(["rm", "-f", "--all"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} rm -f --all", bin.display()))?;
    if !out.status.success() {
        bail!(
            "gantry rm -f --all exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
