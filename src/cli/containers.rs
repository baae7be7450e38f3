//! `gantry ps`, `gantry images`, `gantry rm`, `gantry logs`.

use crate::config::Paths;
use crate::image::ImageStore;
use crate::runtime::client::{self, Attachment};
use crate::runtime::monitor_proto::Frame;
use crate::runtime::state::{self, Status};
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Kill running containers before removing them.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove every container in the state dir.
    #[arg(long)]
    pub all: bool,
    /// Containers (id, id prefix or name).
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Container (id, id prefix or name).
    pub container: String,
}

fn ago(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} seconds"),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 86400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

pub fn ps(paths: &Paths, args: PsArgs) -> anyhow::Result<i32> {
    let now = state::now();
    let mut rows = vec![];
    for cd in state::list(paths) {
        let (Ok(spec), Ok(mut st)) = (cd.spec(), cd.state()) else {
            continue;
        };
        // A container whose owner died (a crash) is cleaned up as we find it.
        state::reap_if_orphaned(&cd, &mut st);
        if st.status != Status::Running && !args.all {
            continue;
        }
        let status = match st.status {
            Status::Running => format!("Up {}", ago(now - st.created_at)),
            Status::Created => "Created".to_string(),
            Status::Exited => format!(
                "Exited ({}){} {} ago",
                st.exit_code.unwrap_or(-1),
                if st.oom_killed { " OOMKilled" } else { "" },
                ago(now - st.finished_at.unwrap_or(now))
            ),
        };
        rows.push((st.created_at, spec, status));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for (_, spec, _) in rows {
            let _ = writeln!(out, "{}", spec.id);
        }
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "{:<14}{:<12}{:<22}{:<16}{:<28}NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS"
    );
    for (created, spec, status) in rows {
        let mut cmd = format!("\"{}\"", spec.command.join(" "));
        if cmd.len() > 20 {
            cmd = format!(
                "{}…\"",
                &cmd[..cmd.char_indices().nth(17).map(|c| c.0).unwrap_or(17)]
            );
        }
        let name = spec
            .name
            .as_ref()
            .map(|n| n.to_string())
            .or(spec
                .session
                .as_ref()
                .map(|s| format!("session-{}", &s[..8.min(s.len())])))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<14}{:<12}{:<22}{:<16}{:<28}{}",
            spec.id,
            spec.image,
            cmd,
            format!("{} ago", ago(now - created)),
            status,
            name
        );
    }
    Ok(0)
}

pub fn images(paths: &Paths) -> anyhow::Result<i32> {
    let store = ImageStore::new(paths);
    if nix::unistd::geteuid().is_root() {
        // The default image is built on first use; make `gantry images` show it.
        if let Err(e) = store.ensure_default() {
            eprintln!("gantry: {e}");
        }
    }
    println!("{:<16}{:<16}{:<10}SOURCE", "IMAGE", "CREATED", "SIZE");
    let now = state::now();
    for img in store.list() {
        println!(
            "{:<16}{:<16}{:<10}{}",
            img.name,
            format!("{} ago", ago(now - img.created_at)),
            format!("{:.1}MB", img.size_bytes as f64 / 1e6),
            img.source
        );
    }
    Ok(0)
}

pub fn rm(paths: &Paths, args: RmArgs) -> anyhow::Result<i32> {
    super::require_root()?;
    let targets: Vec<String> = if args.all {
        state::list(paths).into_iter().map(|c| c.id).collect()
    } else {
        args.containers.clone()
    };
    if targets.is_empty() && !args.all {
        anyhow::bail!("no container given: use `gantry rm [-f] CONTAINER...` (see `gantry ps -a`)");
    }
    let mut code = 0;
    for key in targets {
        let result = (|| -> anyhow::Result<String> {
            let cd = state::find(paths, &key)?;
            let mut st = cd.state()?;
            state::reap_if_orphaned(&cd, &mut st);
            if st.status == Status::Running {
                if !args.force {
                    return Err(state::StateError::Running(key.clone()).into());
                }
                client::kill(&cd)?;
            }
            cd.remove()?;
            Ok(cd.id)
        })();
        match result {
            Ok(id) => println!("{id}"),
            Err(e) => {
                super::print_error(&e);
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn logs(paths: &Paths, args: LogsArgs) -> anyhow::Result<i32> {
    let cd = state::find(paths, &args.container)?;
    let mut att = Attachment::connect(&cd)?;
    // The first frame is the scrollback; that is the log this version keeps.
    if let Some(Frame::Replay(d)) = att.recv()? {
        std::io::stdout().write_all(&d)?;
    }
    Ok(0)
}
