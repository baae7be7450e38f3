//! `gantry lab check [DIR]`: validates every lab the way the server loads them, and
//! prints every problem at once (CI runs it on `labs/`).

use crate::lab::Catalog;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabCommand {
    /// Validate every lab in a folder: metadata, step files, checks.
    Check {
        /// The labs folder.
        #[arg(default_value = "labs")]
        dir: PathBuf,
    },
}

pub fn lab(args: LabArgs) -> anyhow::Result<i32> {
    match args.command {
        LabCommand::Check { dir } => check(&dir),
    }
}

fn check(dir: &std::path::Path) -> anyhow::Result<i32> {
    match Catalog::load_dir(dir) {
        Ok(catalog) => {
            println!(
                "{}, {}, {}: ok",
                plural(catalog.labs().len(), "lab"),
                plural(catalog.step_count(), "step"),
                plural(catalog.check_count(), "check")
            );
            Ok(0)
        }
        Err(invalid) => {
            for problem in &invalid.0 {
                eprintln!("{problem}");
            }
            eprintln!(
                "gantry: {} in {}: fix them and run `gantry lab check {}` again",
                plural(invalid.0.len(), "problem"),
                dir.display(),
                dir.display()
            );
            Ok(1)
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
