//! The terminal: keystroke echo latency, idle and under a flood, and bulk throughput.
//!
//! - **echo round trip**: one printable key as an op-0 frame, until busybox's echo of it
//!   comes back on the WebSocket (browser → server → monitor → pty → shell and back).
//!   `GANTRY_BENCH_ECHO_N` samples (default 2000) after 200 warm-up keys; every 32 keys a
//!   Ctrl-U (untimed) keeps the line short.
//! - the same **under flood**: ten other sessions each run `yes`, their clients read and
//!   acknowledge everything (in 32 KiB batches, as the front end does); the flood's
//!   throughput, the CPU it costs and the memory of the server and of the ten monitors are
//!   measured before, during and after. The host-pty reference and the probe session's
//!   monitor socket (no server) are measured under the same flood, to tell the machine's
//!   share from gantry's.
//! - **bulk**: `head -c 200000000 /dev/zero | tr '\000' a` on one session, with and without
//!   acks, in MB/s; and newline-dense output (`yes | head -c 10000000`). Both are also run
//!   on a host pty as the reference: newline-dense output is slow there too.
//! - two **references**, in the same run: a WebSocket echo on loopback (a tokio-tungstenite
//!   server in this process, same 2-byte frames) and busybox `sh` on a host pty (no
//!   container, no network).
//!
//! Every latency probe runs on a thread of its own with its own runtime, so the flood
//! clients (on the main runtime) do not delay its reads more than the OS scheduler does.
//!
//! Run: `cargo build --release && cargo bench --bench terminal` (as root). Sizes:
//! `GANTRY_BENCH_ECHO_N`, `GANTRY_BENCH_BULK_BYTES`, `GANTRY_BENCH_LINES_BYTES`.

#[path = "terminal/bulk.rs"]
mod bulk;
mod common;
#[path = "terminal/echo.rs"]
mod echo;
#[path = "terminal/flood.rs"]
mod flood;

use anyhow::Result;
use bulk::Bulk;
use common::{mib, ms, Server, Stats, Table};
use echo::on_own_thread;

/// Keys typed by the probes: none of them is in the prompt (`root@<hex id>:~# `).
const KEYS: &[u8] = b"zxwvqkjy";
/// Ctrl-U: busybox's "kill the line before the cursor".
const KILL_LINE: &[u8] = b"\x15";
const LINE_KEYS: usize = 32;
const WARMUP: usize = 200;
const FLOODS: usize = 10;

fn main() {
    common::run_async("terminal", run);
}

async fn run() -> Result<()> {
    let n = common::env_usize("GANTRY_BENCH_ECHO_N", 2000)?;
    let bulk_bytes = common::env_usize("GANTRY_BENCH_BULK_BYTES", 200_000_000)?;
    let lines_bytes = common::env_usize("GANTRY_BENCH_LINES_BYTES", 10_000_000)?;
    let server = Server::start("terminal", &["--max-sessions", "1000"])?;
    println!(
        "gantry serve at http://{} (pid {})",
        server.addr, server.pid
    );
    println!("echo round trip: {n} samples after {WARMUP} warm-up keys");

    // References first, on a quiet machine.
    let pty = on_own_thread(move || echo::pty_probe(n)).await?;
    let ws_echo = echo::ws_loopback(n).await?;

    let probe = server.create_session().await?;
    let idle = echo::gantry_probe(server.addr, probe.clone(), n).await?;
    let probe_socket = server.container_of(&probe)?.socket;
    let idle_monitor = on_own_thread({
        let socket = probe_socket.clone();
        move || echo::monitor_probe(socket, n)
    })
    .await?;
    let flood = flood::flood_phase(&server, &probe, &probe_socket, n).await?;

    eprintln!("bulk output ...");
    let (letters, lines) = (bulk::letters(bulk_bytes), bulk::lines(lines_bytes));
    let pty_letters = on_own_thread({
        let cmd = letters.clone();
        move || bulk::through_host_pty(&cmd)
    })
    .await?;
    let bulk_ack = bulk::through_session(&server, &probe, &letters, bulk_bytes, true).await?;
    let bulk_noack = bulk::through_session(&server, &probe, &letters, bulk_bytes, false).await?;
    let pty_lines = on_own_thread({
        let cmd = lines.clone();
        move || bulk::through_host_pty(&cmd)
    })
    .await?;
    let lines_ack = bulk::through_session(&server, &probe, &lines, lines_bytes, true).await?;
    server.delete_all(4).await?;

    println!();
    let mut t = Table::new(&[
        "echo round trip, ms",
        "p50",
        "p90",
        "p99",
        "max",
        "n",
        "reference (issue)",
    ]);
    let mut row = |name: &str, s: &Stats, reference: &str| {
        t.row(vec![
            name.into(),
            ms(s.median()),
            ms(s.pct(90.0)),
            ms(s.pct(99.0)),
            ms(s.max()),
            s.len().to_string(),
            reference.into(),
        ])
    };
    row("raw pty (host busybox sh)", &pty, "0.07");
    row("WebSocket loopback echo", &ws_echo, "0.09");
    row("gantry, idle", &idle, "shellinabox 0.35, wetty 2.7");
    row(
        "  its monitor socket, no server",
        &idle_monitor,
        "(diagnostic)",
    );
    row(
        &format!("gantry, {FLOODS} sessions flooding"),
        &flood.echo,
        "target p50 <= 0.35, p99 <= 2",
    );
    row(
        "  its monitor socket, no server",
        &flood.monitor_echo,
        "(diagnostic)",
    );
    row(
        &format!("raw pty, same {FLOODS} floods running"),
        &flood.pty_echo,
        "(control: the machine under load)",
    );
    t.print();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets with {FLOODS} floods: p50 <= 0.35 ms {}, p99 <= 2 ms {}",
        verdict(flood.echo.median() <= 0.35),
        verdict(flood.echo.pct(99.0) <= 2.0)
    );

    println!();
    let mut t = Table::new(&[
        "throughput (terminal output received)",
        "MB/s",
        "bytes",
        "seconds",
    ]);
    t.row(
        Bulk {
            bytes: flood.bytes,
            secs: flood.secs,
        }
        .row(&format!(
            "flood: {FLOODS} x `yes`, all clients (while the gantry probe ran)"
        )),
    );
    t.row(pty_letters.row(&format!("host pty: `{letters}`")));
    t.row(bulk_ack.row("  gantry, client acks (32 KiB batches, like the front end)"));
    t.row(bulk_noack.row("  gantry, no acks (TCP back-pressure)"));
    t.row(pty_lines.row(&format!("host pty: `{lines}`")));
    t.row(lines_ack.row("  gantry, client acks"));
    t.print();
    println!("(`yes` writes \"y\\n\": the pty turns each line into \"y\\r\\n\", one line at a time, on the host too)");

    println!(
        "flood frames: {} data frames, {:.0} bytes per frame on average",
        flood.frames,
        flood.bytes as f64 / flood.frames.max(1) as f64
    );

    println!();
    let mut t = Table::new(&["CPU while the flooded gantry probe ran", "% of one core"]);
    let names = [
        "gantry serve".to_string(),
        format!("{FLOODS} flooding monitors"),
        format!("{FLOODS} flooding containers (yes, sh)"),
        "this bench (flood clients + probe)".to_string(),
    ];
    for (name, share) in names.into_iter().zip(flood.cpu_share) {
        t.row(vec![name, format!("{share:.0}")]);
    }
    t.print();
    println!(
        "(the machine has {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    println!();
    let mut t = Table::new(&["memory, MiB", "before", "during (max)", "after"]);
    let mut row = |name: String, kib: [u64; 3]| {
        t.row(vec![
            name,
            mib(kib[0] as f64),
            mib(kib[1] as f64),
            mib(kib[2] as f64),
        ])
    };
    row("server VmRSS".into(), flood.server_rss);
    row(
        format!("{FLOODS} flooding monitors, sum of VmRSS"),
        flood.monitor_rss,
    );
    t.print();
    Ok(())
}
