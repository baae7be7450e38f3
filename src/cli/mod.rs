//! The `gantry` command line. It mirrors `docker` where it can (`run`, `ps`, `images`,
//! `rm`), but is daemonless on the host: each command does its work itself, like
//! `podman` or `runc`.

mod attach;
mod containers;
mod inspect;
mod lab;
mod remote;
mod run;

use crate::config::{Paths, DEFAULT_DATA_DIR, DEFAULT_STATE_DIR};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gantry",
    version,
    about = "Teach container internals with real containers in the browser"
)]
pub struct Cli {
    /// Where images and the SQLite database live.
    #[arg(long, global = true, env = "GANTRY_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Where running containers keep their state (a tmpfs).
    #[arg(long, global = true, env = "GANTRY_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a new container.
    Run(Box<run::RunArgs>),
    /// List containers.
    Ps(containers::PsArgs),
    /// List images.
    Images,
    /// Remove containers.
    Rm(containers::RmArgs),
    /// Show a container's recent output.
    Logs(containers::LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show everything about a container as JSON: limits, pids, namespaces, cgroup.
    Inspect(NameArgs),
    /// Show a container's resource usage against its limits.
    Stats(NameArgs),
    /// Suspend every process of a container (cgroup freezer).
    Pause(NameArgs),
    /// Resume a paused container.
    Unpause(NameArgs),
    /// Manage user networks (inside a lab host).
    Network(NetworkArgs),
    /// Manage volumes (inside a lab host).
    Volume(VolumeArgs),
    /// Show what a container changed in its writable layer (A added, C changed, D deleted).
    Diff(NameArgs),
    /// Work on labs (`gantry lab check`).
    Lab(lab::LabArgs),
    /// Start the web dashboard.
    Serve(crate::web::ServeArgs),
    /// Internal: the per-container monitor (started by gantry itself).
    #[command(hide = true)]
    Monitor {
        #[arg(long)]
        id: String,
    },
    /// Internal: run a command in a running container (started by the server).
    #[command(hide = true)]
    ExecIn {
        #[arg(long)]
        id: String,
        /// Give the command a pty; relay monitor frames on stdin, raw output on stdout.
        #[arg(long)]
        tty: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

/// `gantry exec [-i] [-t] CONTAINER COMMAND...`
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Container (id, id prefix or name).
    pub container: String,
    /// Command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `gantry network ...`
#[derive(clap::Args, Debug)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network: a bridge (default), or macvlan.
    Create {
        name: String,
        /// bridge or macvlan.
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
    },
    /// List networks.
    Ls,
    /// Show a network: its bridge, subnet and containers.
    Inspect { name: String },
    /// Remove networks.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Plug a running container into a network.
    Connect { network: String, container: String },
    /// Unplug a container from a network.
    Disconnect { network: String, container: String },
}

/// `gantry volume ...`
#[derive(clap::Args, Debug)]
pub struct VolumeArgs {
    #[command(subcommand)]
    pub command: VolumeCommand,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a named volume.
    Create { name: String },
    /// List volumes.
    Ls,
    /// Show a volume: where it is, its size, who uses it.
    Inspect { name: String },
    /// Remove volumes.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// A command that takes one container.
#[derive(clap::Args, Debug)]
pub struct NameArgs {
    /// Container (id, id prefix or name).
    pub container: String,
}

/// Prints an error with its whole chain.
pub(crate) fn print_error(err: &anyhow::Error) {
    eprintln!("gantry: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Root is needed for namespaces, mounts and cgroups.
pub(crate) fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "gantry needs root to create namespaces, mounts and cgroups: run it with sudo"
        );
    }
    Ok(())
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    // Inside a lab host, the CLI is a client of the daemon (as `docker` with DOCKER_HOST).
    if let Ok(host) = std::env::var("GANTRY_HOST") {
        if !host.is_empty() {
            return remote::main(&host, cli.command).unwrap_or_else(|e| {
                print_error(&e);
                1
            });
        }
    }
    let paths = Paths::new(cli.data_dir, cli.state_dir);
    let result = match cli.command {
        Command::Monitor { id } => return crate::runtime::monitor::main(&paths, &id),
        Command::ExecIn { id, tty, command } => {
            let cd = crate::runtime::state::ContainerDir::new(&paths, &id);
            return match crate::runtime::exec::exec_in(&cd, &command, tty) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("gantry: {e}");
                    crate::runtime::launch::EXIT_SETUP_FAILED
                }
            };
        }
        Command::Run(args) => return run::run(&paths, *args),
        Command::Ps(args) => containers::ps(&paths, args),
        Command::Images => containers::images(&paths),
        Command::Rm(args) => containers::rm(&paths, args),
        Command::Logs(args) => containers::logs(&paths, args),
        Command::Exec(args) => inspect::exec(&paths, args),
        Command::Inspect(args) => inspect::inspect(&paths, args),
        Command::Stats(args) => inspect::stats(&paths, args),
        Command::Pause(args) => inspect::pause(&paths, args, true),
        Command::Unpause(args) => inspect::pause(&paths, args, false),
        Command::Network(_) | Command::Volume(_) | Command::Diff(_) => Err(anyhow::anyhow!(
            "networks, volumes and diff live inside lab hosts: run them there (open a session's terminal)"
        )),
        Command::Lab(args) => lab::lab(args),
        Command::Serve(args) => require_root().and_then(|_| crate::web::serve(paths, args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_image_like_docker() {
        let cli = Cli::try_parse_from([
            "gantry", "run", "--rm", "-it", "-e", "A=1", "busybox", "ls", "-l", "/",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.rm && args.interactive && args.tty);
        assert_eq!(args.image, "busybox");
        assert_eq!(args.command, ["ls", "-l", "/"]);
    }

    #[test]
    fn lab_check_reads_labs_unless_told_another_folder() {
        let cli = Cli::try_parse_from(["gantry", "lab", "check"]).unwrap();
        let Command::Lab(lab::LabArgs {
            command: lab::LabCommand::Check { dir },
        }) = cli.command
        else {
            panic!("not lab check")
        };
        assert_eq!(dir, PathBuf::from("labs"));
    }
}
