//! Sessions, as a class of students would use them.
//!
//! (a) **create → prompt**: `POST /api/v1/sessions`, open the terminal WebSocket, wait for
//!     the shell's prompt (`# `). One session at a time, `GANTRY_BENCH_SESSIONS_N` of them
//!     (default 100), each deleted before the next.
//! (b) **memory per idle session**: `GANTRY_BENCH_IDLE_N` sessions (default 500) at once,
//!     each with its terminal opened once, the prompt seen and the terminal closed. The
//!     cost per session is measured two ways: the drop of `MemAvailable` (everything: user
//!     memory, page tables, the per-container tmpfs, mounts, cgroups, ptys, sockets) and the
//!     sum of `Pss` of every monitor and shell (user memory only, shared pages split).
//! (c) **open lab pages**: `GANTRY_BENCH_PAGES_N` sessions (default 100), each with a lab
//!     host and one container, and each with its page's live picture stream open for 10 s:
//!     the server's CPU time, per second and per sample.
//!
//! Run: `cargo build --release && cargo bench --bench sessions` (as root).

mod common;

use anyhow::{bail, Context, Result};
use common::{mib, ms, Server, Stats, Table, PROMPT_END};
use std::time::{Duration, Instant};

fn main() {
    common::run_async("sessions", run);
}

async fn run() -> Result<()> {
    let n = common::env_usize("GANTRY_BENCH_SESSIONS_N", 100)?;
    let idle = common::env_usize("GANTRY_BENCH_IDLE_N", 500)?;
    if idle > 1000 {
        bail!("GANTRY_BENCH_IDLE_N={idle} is more than the server's --max-sessions 1000");
    }
    let server = Server::start(
        "sessions",
        &[
            "--max-sessions",
            "1000",
            "--session-memory",
            "256m",
            "--session-pids",
            "256",
            "--session-cpus",
            "1",
        ],
    )?;
    println!(
        "gantry serve at http://{} (pid {})",
        server.addr, server.pid
    );

    let pages = common::env_usize("GANTRY_BENCH_PAGES_N", 100)?;
    create_to_prompt(&server, n).await?;
    open_lab_pages(&server, pages).await?;
    idle_memory(&server, idle).await?;
    Ok(())
}

/// (c): `pages` lab pages open at once, each with its live picture stream (server-sent
/// events, one sample a second) and a container in its session: the server's CPU use.
async fn open_lab_pages(server: &Server, pages: usize) -> Result<()> {
    use futures_util::StreamExt;
    println!("\n(c) {pages} open lab pages: each session has a lab host and one container; each page streams its picture");
    let mut sessions = vec![];
    for _ in 0..pages {
        common::check_interrupt()?;
        let s = server.create_session().await?;
        let mut term = server.terminal(&s).await?;
        term.read_until(PROMPT_END, Duration::from_secs(10)).await?;
        term.input(b"gantry run -d --name web busybox sleep 3600; echo started\"\"-ok\r")
            .await?;
        term.read_until(b"started-ok", Duration::from_secs(10))
            .await?;
        term.close().await?;
        sessions.push(s);
    }
    let secs = 10u64;
    let http = reqwest::Client::new();
    let mut streams = vec![];
    for s in &sessions {
        let resp = http
            .get(server.url(&format!("/api/v1/sessions/{}/picture/stream", s.id)))
            .bearer_auth(&s.token)
            .send()
            .await
            .context("opening a picture stream")?;
        if !resp.status().is_success() {
            bail!("picture stream answered {}", resp.status());
        }
        streams.push(resp.bytes_stream());
    }
    let cpu0 = common::procfs::cpu_time(server.pid).context("reading the server's CPU time")?;
    let t0 = Instant::now();
    let events = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for mut st in streams {
        let (events, bytes) = (events.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
            while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, st.next()).await {
                bytes.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
                let n = chunk.windows(13).filter(|w| w == b"event: pictur").count();
                events.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = t0.elapsed();
    let cpu = common::procfs::cpu_time(server.pid).context("reading the server's CPU time")? - cpu0;
    let events = events.load(std::sync::atomic::Ordering::Relaxed);
    let mut t = Table::new(&["measure", "value"]);
    t.row(vec!["pages (streams) open".into(), pages.to_string()]);
    t.row(vec![
        "samples sent".into(),
        format!("{events} in {:.1} s", wall.as_secs_f64()),
    ]);
    t.row(vec![
        "server CPU".into(),
        format!(
            "{:.1} % of one core ({:.2} ms per sample)",
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / events.max(1) as f64
        ),
    ]);
    t.row(vec![
        "bytes per sample".into(),
        format!(
            "{}",
            bytes.load(std::sync::atomic::Ordering::Relaxed) / events.max(1)
        ),
    ]);
    t.print();
    server.delete_all(8).await?;
    Ok(())
}

/// (a): POST → prompt on the WebSocket, one session at a time.
async fn create_to_prompt(server: &Server, n: usize) -> Result<()> {
    let warmup = 3;
    println!(
        "\n(a) session create -> first prompt: {n} sessions one after another (+{warmup} warm-up)"
    );
    let (mut post, mut prompt, mut total, mut delete) = (vec![], vec![], vec![], vec![]);
    for i in 0..warmup + n {
        common::check_interrupt()?;
        let t0 = Instant::now();
        let s = server.create_session().await?;
        let t_post = t0.elapsed();
        let mut term = server.terminal(&s).await?;
        term.read_until(PROMPT_END, Duration::from_secs(10)).await?;
        let t_prompt = t0.elapsed();
        term.close().await?;
        let t1 = Instant::now();
        server.delete_session(&s).await?;
        if i >= warmup {
            post.push(t_post);
            prompt.push(t_prompt - t_post);
            total.push(t_prompt);
            delete.push(t1.elapsed());
        }
    }
    let mut t = Table::new(&["ms", "median", "p90", "p99", "mean", "max"]);
    for (name, samples) in [
        ("POST /api/v1/sessions (201)", &post),
        ("  then WebSocket open -> prompt", &prompt),
        ("create -> prompt (total)", &total),
        ("DELETE /api/v1/sessions/{id}", &delete),
    ] {
        let s = Stats::new(samples);
        t.row(vec![
            name.into(),
            ms(s.median()),
            ms(s.pct(90.0)),
            ms(s.pct(99.0)),
            ms(s.mean()),
            ms(s.max()),
        ]);
    }
    t.print();
    Ok(())
}

/// (b): memory of `count` idle sessions.
async fn idle_memory(server: &Server, count: usize) -> Result<()> {
    println!("\n(b) memory of {count} idle sessions (each: terminal opened, prompt seen, closed)");
    let settle = Duration::from_secs(3);
    tokio::time::sleep(settle).await;
    let avail_before = settled_mem_available().await?;
    let info_before = common::meminfo()?;
    let slab_before = common::slab_bytes();
    let server_before = server.rss_kib()?;
    let t0 = Instant::now();
    for i in 0..count {
        common::check_interrupt()?;
        let s = server.create_session().await?;
        let mut term = server.terminal(&s).await?;
        term.read_until(PROMPT_END, Duration::from_secs(10)).await?;
        term.close().await?;
        if (i + 1) % 100 == 0 {
            eprintln!(
                "  {} / {count} sessions ({:.0} s)",
                i + 1,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let created_in = t0.elapsed();
    tokio::time::sleep(settle).await;
    let avail_after = settled_mem_available().await?;
    let info_after = common::meminfo()?;
    let slab_after = common::slab_bytes();
    let server_after = server.rss_kib()?;

    let pids = common::container_pids(&server.dirs.state)?;
    if pids.len() != count {
        bail!(
            "{} running containers in the state dir, expected {count}",
            pids.len()
        );
    }
    let (mut pss_mon, mut pss_shell, mut rss_mon, mut rss_shell) = (0u64, 0u64, 0u64, 0u64);
    for (pid, monitor) in &pids {
        let Some((p, r)) = common::pss_rss_kib(*monitor) else {
            bail!("monitor {monitor} is gone")
        };
        pss_mon += p;
        rss_mon += r;
        let Some((p, r)) = common::pss_rss_kib(*pid) else {
            bail!("shell {pid} is gone")
        };
        pss_shell += p;
        rss_shell += r;
    }
    let per = |kib: u64| kib as f64 / count as f64;
    let avail_drop = avail_before.saturating_sub(avail_after);
    let server_growth = server_after.saturating_sub(server_before);

    let mut t = Table::new(&["per idle session", "MiB"]);
    t.row(vec![
        "MemAvailable drop / N (everything)".into(),
        mib(per(avail_drop)),
    ]);
    t.row(vec![
        "sum of Pss / N (monitor + shell)".into(),
        mib(per(pss_mon + pss_shell)),
    ]);
    t.row(vec!["  monitor Pss".into(), mib(per(pss_mon))]);
    t.row(vec!["  shell Pss".into(), mib(per(pss_shell))]);
    t.row(vec![
        "  kernel & rest (MemAvailable - Pss)".into(),
        mib(per(avail_drop).max(0.0) - per(pss_mon + pss_shell)),
    ]);
    t.row(vec![
        "(Rss, shared pages counted each time)".into(),
        mib(per(rss_mon + rss_shell)),
    ]);
    t.row(vec![
        "server VmRSS growth / N".into(),
        mib(per(server_growth)),
    ]);
    t.print();
    println!();
    // Where the kernel's share goes (meminfo fields that grew, per session).
    let mut t = Table::new(&["/proc/meminfo growth per session", "KiB"]);
    for field in [
        "Slab",
        "SUnreclaim",
        "Percpu",
        "PageTables",
        "KernelStack",
        "Shmem",
        "AnonPages",
    ] {
        let delta = info_after.get(field).copied().unwrap_or(0) as f64
            - info_before.get(field).copied().unwrap_or(0) as f64;
        t.row(vec![field.into(), format!("{:.1}", delta / count as f64)]);
    }
    t.print();
    let mut growth: Vec<(String, f64)> = slab_after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (*v as f64 - slab_before.get(k).copied().unwrap_or(0) as f64) / count as f64,
            )
        })
        .collect();
    growth.sort_by(|a, b| b.1.partial_cmp(&a.1).expect("no NaN"));
    if !growth.is_empty() {
        println!();
        let mut t = Table::new(&["largest slab caches' growth per session", "KiB"]);
        for (name, bytes) in growth.into_iter().take(8) {
            t.row(vec![name, format!("{:.1}", bytes / 1024.0)]);
        }
        t.print();
    }
    println!(
        "{count} sessions created in {:.1} s ({} ms each); server VmRSS {} -> {} MiB",
        created_in.as_secs_f64(),
        ms(created_in.as_secs_f64() * 1e3 / count as f64),
        mib(server_before as f64),
        mib(server_after as f64)
    );
    println!("references (from the issue, not measured here): crun ≈ 0.6 MiB, podman ≈ 1.1 MiB, docker ≈ 4.8 MiB");

    let t1 = Instant::now();
    server.delete_all(4).await?;
    println!(
        "deleted {count} sessions in {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    let left = common::container_pids(&server.dirs.state)?;
    if !left.is_empty() {
        bail!(
            "{} containers still running after deleting every session",
            left.len()
        );
    }
    Ok(())
}

/// MemAvailable, as the median of five readings 200 ms apart.
async fn settled_mem_available() -> Result<u64> {
    let mut v = vec![];
    for _ in 0..5 {
        v.push(common::mem_available_kib()?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    v.sort();
    Ok(v[2])
}
