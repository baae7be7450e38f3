//! Ten sessions flood their terminals with `yes` while the echo probes run.

use super::common::{self, Server, SessionContainer, SessionRef, Stats, Terminal, PROMPT_END};
use super::echo::{gantry_probe, monitor_probe, on_own_thread, pty_probe};
use super::FLOODS;
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct FloodResult {
    pub echo: Stats,
    /// The raw pty reference, measured while the same floods run.
    pub pty_echo: Stats,
    /// The probe session's monitor socket (no server), while the same floods run.
    pub monitor_echo: Stats,
    /// Output bytes and frames the flood clients received while the gantry probe ran, and
    /// for how long it ran.
    pub bytes: u64,
    pub frames: u64,
    pub secs: f64,
    /// CPU used meanwhile, in % of one core: server, flood monitors, flood containers,
    /// this bench.
    pub cpu_share: [f64; 4],
    /// KiB before, max during, after.
    pub server_rss: [u64; 3],
    pub monitor_rss: [u64; 3],
}

/// Ten sessions flood (`yes`), their clients read everything and acknowledge it in 32 KiB
/// batches; meanwhile the probes measure echo (gantry, then a host pty, then the probe
/// session's monitor socket) and a sampler watches memory.
pub async fn flood_phase(
    server: &Server,
    probe: &SessionRef,
    probe_socket: &std::path::Path,
    n: usize,
) -> Result<FloodResult> {
    let mut floods = vec![];
    for _ in 0..FLOODS {
        floods.push(server.create_session().await?);
    }
    let containers = floods
        .iter()
        .map(|s| server.container_of(s))
        .collect::<Result<Vec<_>>>()?;
    let monitors: Vec<i32> = containers.iter().map(|c| c.monitor_pid).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mon_rss = |pids: &[i32]| {
        pids.iter()
            .filter_map(|p| common::vm_rss_kib(*p))
            .sum::<u64>()
    };
    let rss_before = (server.rss_kib()?, mon_rss(&monitors));

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let frames = Arc::new(AtomicU64::new(0));
    // Each client reports once: under way, or failed before it got there.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<()>>();
    let mut tasks = vec![];
    for s in floods.clone() {
        let counters = (total.clone(), frames.clone());
        let (addr, stop, ready) = (server.addr, stop.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            let r = flood_client(addr, &s, &stop, &counters, &ready).await;
            if let Err(e) = &r {
                let _ = ready.send(Err(anyhow!("flood client of session {}: {e:#}", s.id)));
            }
            r
        }));
    }
    for _ in 0..FLOODS {
        let report = tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await
            .map_err(|_| anyhow!("the floods did not all start within 30 s"))?
            .ok_or_else(|| anyhow!("a flood client vanished"))?;
        if let Err(e) = report {
            stop.store(true, Ordering::SeqCst);
            return Err(e);
        }
    }

    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pid, monitors, stop) = (server.pid, monitors.clone(), sampler_stop.clone());
        tokio::spawn(async move {
            let (mut server_max, mut mon_max) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                server_max = server_max.max(common::vm_rss_kib(pid).unwrap_or(0));
                mon_max = mon_max.max(mon_rss(&monitors));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (server_max, mon_max)
        })
    };
    let (bytes0, frames0) = (total.load(Ordering::SeqCst), frames.load(Ordering::SeqCst));
    let cpu0 = cpu_snapshot(server, &containers);
    let t0 = Instant::now();
    let echo = gantry_probe(server.addr, probe.clone(), n).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_snapshot(server, &containers);
    let bytes = total.load(Ordering::SeqCst) - bytes0;
    let frame_count = frames.load(Ordering::SeqCst) - frames0;
    let cpu_share = std::array::from_fn(|i| (cpu1[i] - cpu0[i]).as_secs_f64() / secs * 100.0);
    let pty_echo = on_own_thread(move || pty_probe(n)).await;
    let monitor_echo = on_own_thread({
        let socket = probe_socket.to_path_buf();
        move || monitor_probe(socket, n)
    })
    .await;
    sampler_stop.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let (server_max, mon_max) = sampler.await?;
    for t in tasks {
        t.await??;
    }
    let (echo, pty_echo, monitor_echo) = (echo?, pty_echo?, monitor_echo?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = (server.rss_kib()?, mon_rss(&monitors));
    for s in &floods {
        server.delete_session(s).await?;
    }
    Ok(FloodResult {
        echo,
        pty_echo,
        monitor_echo,
        bytes,
        frames: frame_count,
        secs,
        cpu_share,
        server_rss: [rss_before.0, server_max, rss_after.0],
        monitor_rss: [rss_before.1, mon_max, rss_after.1],
    })
}

/// CPU time used so far by: the server, the flood monitors, the flood containers, this
/// bench process.
fn cpu_snapshot(server: &Server, floods: &[SessionContainer]) -> [Duration; 4] {
    let sum = |it: &mut dyn Iterator<Item = Option<Duration>>| it.flatten().sum::<Duration>();
    [
        common::cpu_time(server.pid).unwrap_or_default(),
        sum(&mut floods.iter().map(|c| common::cpu_time(c.monitor_pid))),
        sum(&mut floods
            .iter()
            .map(|c| common::container_cpu_time(&server.dirs.state, &c.id))),
        common::cpu_time(std::process::id() as i32).unwrap_or_default(),
    ]
}

/// One flooding session's client: starts `yes`, reads and acks until told to stop, then
/// stops `yes` with Ctrl-C and waits for the prompt.
async fn flood_client(
    addr: SocketAddr,
    s: &SessionRef,
    stop: &AtomicBool,
    (total, frames): &(Arc<AtomicU64>, Arc<AtomicU64>),
    ready: &tokio::sync::mpsc::UnboundedSender<Result<()>>,
) -> Result<()> {
    let mut term = Terminal::connect(addr, s).await?;
    term.auto_ack = true;
    term.read_until(PROMPT_END, Duration::from_secs(10)).await?;
    term.drain(Duration::from_millis(50)).await?;
    term.input(b"yes\r").await?;
    // Under way once a good 64 KiB came back.
    let mut seen = 0u64;
    while seen < 64 * 1024 {
        let d = term
            .output()
            .await?
            .ok_or_else(|| anyhow!("session {} closed while flooding", s.id))?;
        seen += d.len() as u64;
    }
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::Relaxed) {
        let d = tokio::time::timeout(Duration::from_secs(5), term.output())
            .await
            .map_err(|_| anyhow!("the flood of session {} stalled for 5 s", s.id))??
            .ok_or_else(|| anyhow!("session {} closed while flooding", s.id))?;
        total.fetch_add(d.len() as u64, Ordering::Relaxed);
        frames.fetch_add(1, Ordering::Relaxed);
    }
    term.input(b"\x03").await?;
    term.read_until(PROMPT_END, Duration::from_secs(20)).await?;
    term.close().await
}
