//! `coordinator`: opens nightly runs and watches them.
//!
//! - `coordinator run`: the whole nightly job on one machine — reconcile, open a run,
//!   publish, start N local worker processes, show progress, print a summary;
//! - `coordinator start`: reconcile, open a run and publish, then return (workers run
//!   elsewhere: ECS, or `worker serve` by hand); with `--wait`, watch the run to its end,
//!   printing the workers' autoscaling metric (what the nightly ECS task runs);
//! - `coordinator status [--run ID] [--wait] [--json]`: a run's progress from the ledger;
//! - `coordinator provision`: create the table and the bucket (emulators, first-time setups);
//! - `coordinator reconcile`: make queues and topics match the tenants file;
//! - `coordinator dlq list|show|replay|purge`: inspect, replay or purge dead-lettered
//!   messages;
//! - `coordinator gc --keep-days N`: retention of runs, reports, snapshots and results;
//! - `coordinator exporter`: serve the night's state as Prometheus metrics (long-running);
//! - `coordinator samples --out DIR`: write the bundled sample's fixture accounts;
//! - `coordinator index [--run ID]`: each customer's morning review of a run (`index.html`,
//!   `index.json`, the digest); `run` and `start --wait` build it when their run ends;
//! - `coordinator notify [--run ID]`: send each customer's morning digest over SMTP.

/// Prints a line to standard output, like `println!`, except that a closed pipe
/// (`coordinator run | head -1`) drops the rest of the output instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod dlq;
mod exit_code;
mod exporter;
mod gc;
mod local_pool;
mod metrics;
mod notify;
mod reconcile;
mod review;
mod start;
mod status;
mod tenants_source;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use accessflow_shared::backend::Backend;
use accessflow_shared::config::Settings;
use accessflow_shared::ledger::{Ledger, RunTotals};
use accessflow_shared::ports::Ports;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::exit_code::RunOutcome;
use crate::start::RunIdentity;

#[derive(Parser)]
#[command(
    name = "coordinator",
    version,
    about = "Accessflow coordinator: nightly runs of the IAM access analysis",
    after_help = "Exit codes of `run`, `start --wait` and `status --wait`: 0 every account complete; \
1 the coordinator failed (see the error); 2 wrong command line; 3 finished, some reports \
partial; 4 finished, some accounts failed; 5 --timeout passed before the run finished."
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    log: accessflow_shared::telemetry::LogArgs,
    /// On exit, write the AWS requests this command made (per operation) to this JSON file.
    #[arg(long, global = true, value_name = "FILE")]
    request_report: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Tenants file (TOML). Without it, the embedded backend runs the bundled sample.
    #[arg(long, env = "ACCESSFLOW_TENANTS")]
    tenants: Option<PathBuf>,
    /// Run id (default: the run's time, e.g. 20261126T020000Z; when a run started within
    /// the same second already has it, the next second). An existing run id resumes that run.
    #[arg(long)]
    run_id: Option<String>,
    /// The time the run's reports carry, RFC 3339 (default: now).
    #[arg(long)]
    as_of: Option<String>,
    /// Seconds from the start by which the run must be finished: accounts unfinished then
    /// are marked failed by `run`, `status` or `status --wait` (default 12 hours).
    #[arg(long, env = "ACCESSFLOW_RUN_DEADLINE_SECS", default_value_t = 12 * 3600)]
    deadline_secs: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole nightly job here: reconcile, publish, local workers, progress, summary.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Worker processes to start.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Account queues each worker works on at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// No progress bar (logs only).
        #[arg(long)]
        no_progress: bool,
    },
    /// Reconcile, open a run and publish its work; workers run elsewhere.
    Start {
        #[command(flatten)]
        run: RunArgs,
        /// Then watch the run until every account is finished, printing the metric the
        /// workers scale on (AccountsWithWork, CloudWatch embedded metric format) on stdout
        /// every 30 s; the exit code then says how the run went, as with `status --wait`.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit code 5; the run goes on).
        #[arg(long, requires = "wait")]
        timeout: Option<u64>,
    },
    /// Show a run's progress.
    Status {
        /// Run id (default: the latest run).
        #[arg(long)]
        run: Option<String>,
        /// Wait until every account of the run is finished; the exit code then says how
        /// the run went (see below).
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit code 5; the run goes on).
        #[arg(long, requires = "wait")]
        timeout: Option<u64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create the DynamoDB table and the S3 bucket if missing (for emulators and first-time
    /// setups; on AWS, Terraform creates them with keys, logging and lifecycle rules).
    Provision,
    /// Make queues, topics, subscriptions and keys match the tenants file.
    Reconcile {
        #[arg(long, env = "ACCESSFLOW_TENANTS")]
        tenants: Option<PathBuf>,
    },
    /// Inspect or replay dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Delete runs older than N days (reports, ledger records) and the snapshots and
    /// results no kept run uses.
    Gc(gc::GcArgs),
    /// Serve the night's state (progress, ETA, queues, DLQs) as Prometheus metrics until
    /// SIGTERM: the long-running companion of the workers' own metrics.
    Exporter(exporter::ExporterArgs),
    /// Write the bundled sample's fixture accounts and a tenants file to a directory.
    Samples {
        #[arg(long)]
        out: PathBuf,
    },
    /// Build each customer's morning review of a run: index.html, index.json (totals,
    /// status, what changed, trends) and the digest, beside the account reports.
    Index {
        /// Run id (default: the latest run).
        #[arg(long)]
        run: Option<String>,
    },
    /// Send each customer's morning digest of a run over SMTP to its digest_recipients.
    Notify(notify::NotifyArgs),
}

#[derive(Subcommand)]
enum DlqCommand {
    /// How many messages each account's DLQ holds.
    List {
        #[command(flatten)]
        filter: dlq::DlqFilter,
    },
    /// The dead-lettered messages with their reasons.
    Show {
        #[command(flatten)]
        filter: dlq::DlqFilter,
    },
    /// Send dead-lettered messages back to their queues (then rebuild the reports).
    Replay(dlq::ReplayArgs),
    /// Delete every message of one account's DLQ, on purpose (e.g. a removed account's).
    Purge(dlq::PurgeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    accessflow_shared::telemetry::init("info", &cli.log);
    let request_report = cli.request_report.clone();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(dispatch(cli)))
        .and_then(|code| {
            match (request_report, CONNECTED.get()) {
                (Some(path), Some(backend)) => backend.write_request_report(&path)?,
                (Some(path), None) => std::fs::write(&path, b"{}")
                    .with_context(|| format!("cannot write {}", path.display()))?,
                _ => {}
            }
            Ok(code)
        });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::from(exit_code::ERROR)
        }
    }
}

/// The backend this process connected to, kept for its request counters
/// (`--request-report`). A command connects once.
static CONNECTED: std::sync::OnceLock<Backend> = std::sync::OnceLock::new();

/// Connects the backend the settings name, once per process (see [`CONNECTED`]).
async fn connect_backend(settings: &Settings) -> anyhow::Result<&'static Backend> {
    let backend = accessflow_shared::backend::connect(settings)
        .await
        .context("cannot connect to the backend")?;
    Ok(CONNECTED.get_or_init(|| backend))
}

async fn connect(settings: &Settings) -> anyhow::Result<(Ports, accessflow_shared::naming::Names)> {
    let names = settings.validate()?;
    let backend = connect_backend(settings).await?;
    Ok((backend.ports.clone(), names))
}

/// What `run` and `start` share: connect, load the tenants, reconcile, open (or resume) the
/// run and publish its work.
async fn open_night(
    settings: &Settings,
    run: RunArgs,
) -> anyhow::Result<(Ports, accessflow_shared::tenants::TenantsFile, RunIdentity)> {
    let (ports, names) = connect(settings).await?;
    let tenants = tenants_source::load(settings, run.tenants.as_deref())?;
    reconcile::reconcile(&ports, settings, &names, &tenants).await?;
    let mut identity = RunIdentity::new(run.run_id, run.as_of, run.deadline_secs)?;
    start::start_run(
        &ports,
        &names,
        &tenants,
        &mut identity,
        settings.filter_propagation(),
    )
    .await?;
    Ok((ports, tenants, identity))
}

/// Runs the command; the exit code says how the run went (`exit_code`), errors are code 1.
async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command {
        Command::Run {
            run,
            workers,
            concurrency,
            no_progress,
        } => {
            anyhow::ensure!(workers >= 1, "--workers must be at least 1");
            let started = Instant::now();
            let binary = local_pool::worker_binary()?;
            let (ports, tenants, identity) = open_night(&settings, run).await?;
            let log_dir = settings.data_dir.join("logs");
            let mut pool = local_pool::WorkerPool::start(
                binary,
                local_pool::worker_args(&settings, concurrency),
                workers,
                &log_dir,
            )?;
            let ledger = Ledger::new(ports.store.clone());
            let watched = local_pool::watch(
                &ledger,
                &identity.run_id,
                Some(&mut pool),
                !no_progress,
                None,
                local_pool::watch_interval(settings.backend),
                None,
            )
            .await;
            pool.stop(Duration::from_secs(30)).await?;
            let totals = watched?;
            let reviews = build_review(&ports, &identity.run_id).await;
            print_summary(
                &ports,
                &identity.run_id,
                &totals,
                &tenants,
                started.elapsed(),
                &log_dir,
            );
            for w in &reviews {
                say!("  morning review of {}: {}", w.customer, w.location);
            }
            Ok(RunOutcome::of(&totals).exit_code())
        }
        Command::Exporter(args) => {
            let (ports, names) = connect(&settings).await?;
            exporter::run(&ports, &names, &settings.name_prefix, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Start { run, wait, timeout } => {
            let (ports, _, identity) = open_night(&settings, run).await?;
            say!("{}", identity.run_id);
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let ledger = Ledger::new(ports.store.clone());
            let deadline = timeout.map(|secs| Instant::now() + Duration::from_secs(secs));
            let mut metric = metrics::AccountsWithWorkMetric::new(
                &settings.name_prefix,
                &identity.run_id,
                metrics::EVERY,
            );
            local_pool::watch(
                &ledger,
                &identity.run_id,
                None,
                false,
                deadline,
                local_pool::watch_interval(settings.backend),
                Some(&mut metric),
            )
            .await?;
            local_pool::enforce_deadline(&ledger, &identity.run_id).await?;
            let totals = RunTotals::of(&ledger.account_states(&identity.run_id).await?);
            // The deadline may just have finished the run: say so at once.
            metric.observe(&totals);
            if totals.is_complete() {
                build_review(&ports, &identity.run_id).await;
            }
            Ok(RunOutcome::of(&totals).exit_code())
        }
        Command::Status {
            run,
            wait,
            timeout,
            json,
        } => {
            let (ports, names) = connect(&settings).await?;
            let ledger = Ledger::new(ports.store.clone());
            let run_id = status::resolve_run(&ledger, run.as_deref()).await?;
            if wait {
                let deadline = timeout.map(|secs| Instant::now() + Duration::from_secs(secs));
                local_pool::watch(
                    &ledger,
                    &run_id,
                    None,
                    false,
                    deadline,
                    local_pool::watch_interval(settings.backend),
                    None,
                )
                .await?;
            }
            local_pool::enforce_deadline(&ledger, &run_id).await?;
            let states = ledger.account_states(&run_id).await?;
            let dlq = status::dlq_depths(&ports, &names, &states).await;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&status::to_json(&run_id, &states, &dlq))?
                );
            } else {
                print!("{}", status::to_table(&run_id, &states, &dlq));
            }
            if wait {
                Ok(RunOutcome::of(&accessflow_shared::ledger::RunTotals::of(&states)).exit_code())
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Provision => {
            settings.validate()?;
            connect_backend(&settings).await?.provision().await?;
            say!("provisioned: the backend's table and bucket exist");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile { tenants } => {
            let (ports, names) = connect(&settings).await?;
            let tenants = tenants_source::load(&settings, tenants.as_deref())?;
            let report = reconcile::reconcile(&ports, &settings, &names, &tenants).await?;
            say!(
                "queues ensured: {}, removed: {}, draining: {}, DLQs kept: {}",
                report.queues_ensured,
                report.queues_removed.len(),
                report.queues_draining.len(),
                report.dlqs_kept.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq { command } => {
            let (ports, names) = connect(&settings).await?;
            match command {
                DlqCommand::List { filter } => dlq::list(&ports, &names, &filter, false).await?,
                DlqCommand::Show { filter } => dlq::list(&ports, &names, &filter, true).await?,
                DlqCommand::Replay(args) => dlq::replay(&ports, &names, &args).await?,
                DlqCommand::Purge(args) => dlq::purge(&ports, &names, &args).await?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc(args) => {
            let (ports, _) = connect(&settings).await?;
            let report = gc::gc(&ports, &args).await?;
            say!(
                "{} {} run(s), {} report file(s), {} snapshot(s), {} result(s)",
                if args.dry_run {
                    "would delete"
                } else {
                    "deleted"
                },
                report.runs,
                report.report_files,
                report.snapshots,
                report.results
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Index { run } => {
            let (ports, _) = connect(&settings).await?;
            let ledger = Ledger::new(ports.store.clone());
            let run_id = status::resolve_run(&ledger, run.as_deref()).await?;
            for w in review::build(&ports, &run_id).await? {
                say!(
                    "{}: {} account(s), {} notable change(s), {} run(s) of trends: {}",
                    w.customer,
                    w.index.accounts.len(),
                    w.index.changes.len(),
                    w.index.trend.len(),
                    w.location
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify(args) => {
            notify::notify(&settings, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Samples { out } => {
            let mut tenants = tenants_source::bundled(&out)?;
            tenants_source::relative_to(&mut tenants, &out);
            let path = out.join("tenants.toml");
            let text = toml::to_string_pretty(&tenants).context("serializing the tenants file")?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            say!(
                "wrote the bundled sample to {} (tenants file: {})",
                out.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The morning review of a finished run (`review::build`). The night's reports are
/// written whatever happens here, so a failure is reported, not fatal: `coordinator index`
/// builds it again.
async fn build_review(ports: &Ports, run_id: &str) -> Vec<review::Written> {
    match review::build(ports, run_id).await {
        Ok(written) => written,
        Err(e) => {
            tracing::warn!(
                run = run_id,
                error = format!("{e:#}"),
                "the morning review was not built; `coordinator index --run {run_id}` builds it"
            );
            eprintln!("warning: the morning review of run {run_id} was not built: {e:#}");
            Vec::new()
        }
    }
}

fn print_summary(
    ports: &Ports,
    run_id: &str,
    totals: &RunTotals,
    tenants: &accessflow_shared::tenants::TenantsFile,
    elapsed: Duration,
    log_dir: &std::path::Path,
) {
    say!("Run {run_id} finished in {:.1} s", elapsed.as_secs_f64());
    say!(
        "  customers: {}, accounts: {} ({} complete, {} partial, {} failed)",
        tenants.customers.len(),
        totals.accounts,
        totals.accounts_finished - totals.accounts_failed - totals.accounts_partial,
        totals.accounts_partial,
        totals.accounts_failed
    );
    say!(
        "  principals analysed: {} ({} failed)",
        totals.items_done,
        totals.items_failed
    );
    say!(
        "  reused from caches: {}/{} snapshots unchanged, {}/{} principal results, {}/{} last-accessed lookups",
        totals.snapshots_reused,
        totals.accounts,
        totals.items_reused,
        totals.items_done,
        totals.last_accessed_reused,
        totals.items_done + totals.items_failed
    );
    for customer in &tenants.customers {
        say!(
            "  reports of {}: {}",
            customer.id,
            ports
                .blobs
                .locate(&format!("{}/reports/{run_id}", customer.id))
        );
    }
    say!("  worker logs: {}", log_dir.display());
}
