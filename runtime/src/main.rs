//! `dvtr`: the DVT runtime binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "dvtr", version, about = "DVT runtime: execute DVT plans against real databases.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a plan and print what it would run.
    Inspect {
        /// Plan written by `dvtc compile -o`.
        plan: PathBuf,
    },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Inspect { plan } => match dvt_runtime::plan_file::read(&plan) {
            Ok(p) => {
                println!("plan {} for project `{}`: {} nodes", p.plan_version, p.project_name, p.nodes.len());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        },
    };
    std::process::exit(code);
}
