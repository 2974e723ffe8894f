//! `worker`: the Accessflow worker binary.
//!
//! - `worker serve`: consume the account queues until SIGTERM (what ECS runs);
//! - `worker analyze FILE --out DIR`: analyse one authorization-details file offline;
//! - `worker check FILE --principal ARN --action ACTION --resource ARN`: one decision.

use accessflow_shared::config::Settings;
use accessflow_worker::offline::{AnalyzeArgs, CheckArgs};
use accessflow_worker::startup::{self, ServeArgs};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "worker",
    version,
    about = "Accessflow worker: analyses AWS accounts' IAM access from the work queues"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    log: accessflow_shared::telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the account queues until SIGTERM or Ctrl-C. On ECS (ECS_AGENT_URI set) the
    /// task is protected from scale-in while it holds a message.
    Serve(ServeArgs),
    /// Analyse one get-account-authorization-details file and write its reports.
    Analyze(AnalyzeArgs),
    /// Decide one request: can PRINCIPAL do ACTION on RESOURCE?
    Check(CheckArgs),
}

fn main() -> anyhow::Result<()> {
    accessflow_worker::memory::cap_malloc_arenas();
    let cli = Cli::parse();
    accessflow_shared::telemetry::init("info", &cli.log);
    match &cli.command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(startup::serve(&cli.settings, args))
        }
        Command::Analyze(args) => accessflow_worker::offline::run_analyze(args),
        Command::Check(args) => accessflow_worker::offline::run_check(args),
    }
}
