//! The one-command nightly run on one machine: the coordinator starts N `worker serve`
//! processes beside itself, shows the run's progress from the ledger, restarts a worker that
//! dies, and stops them all with SIGTERM once every account is finished.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use accessflow_shared::config::{BackendKind, Settings};
use accessflow_shared::ledger::{Ledger, RunTotals};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::metrics::AccountsWithWorkMetric;

/// How many times one worker slot is restarted before the run is given up.
const MAX_RESTARTS_PER_SLOT: u32 = 3;

/// The `worker` binary: next to this executable (both are built into the same target dir).
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("ACCESSFLOW_WORKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().context("cannot locate the coordinator executable")?;
    let dir = me
        .parent()
        .context("the coordinator executable has no directory")?;
    let worker = dir.join(format!("worker{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        worker.exists(),
        "the worker binary is not at {} — build both binaries with `cargo build --release` (or set ACCESSFLOW_WORKER_BIN)",
        worker.display()
    );
    Ok(worker)
}

/// The arguments that give a worker the same settings as this coordinator.
pub fn worker_args(settings: &Settings, concurrency: usize) -> Vec<String> {
    let backend = match settings.backend {
        BackendKind::Embedded => "embedded",
        BackendKind::Aws => "aws",
    };
    vec![
        "--backend".into(),
        backend.into(),
        "--data-dir".into(),
        settings.data_dir.display().to_string(),
        "--name-prefix".into(),
        settings.name_prefix.clone(),
        "--visibility-timeout-secs".into(),
        settings.visibility_timeout_secs.to_string(),
        "--max-receive-count".into(),
        settings.max_receive_count.to_string(),
        "--last-accessed-ttl-hours".into(),
        settings.last_accessed_ttl_hours.to_string(),
        "serve".into(),
        "--concurrency".into(),
        concurrency.to_string(),
    ]
}

struct Slot {
    child: Child,
    restarts: u32,
}

/// A pool of local worker processes, logging to files under `log_dir`.
pub struct WorkerPool {
    binary: PathBuf,
    args: Vec<String>,
    log_dir: PathBuf,
    slots: Vec<Slot>,
}

impl WorkerPool {
    pub fn start(
        binary: PathBuf,
        args: Vec<String>,
        count: usize,
        log_dir: &Path,
    ) -> anyhow::Result<WorkerPool> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("cannot create the log directory {}", log_dir.display()))?;
        let mut pool = WorkerPool {
            binary,
            args,
            log_dir: log_dir.to_path_buf(),
            slots: Vec::new(),
        };
        for index in 0..count {
            let child = pool.spawn(index)?;
            pool.slots.push(Slot { child, restarts: 0 });
        }
        Ok(pool)
    }

    fn spawn(&self, index: usize) -> anyhow::Result<Child> {
        let log_path = self.log_dir.join(format!("worker-{index}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("HOSTNAME", format!("local-worker-{index}"))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        Ok(child)
    }

    /// Restarts workers that exited; fails when one keeps dying.
    pub fn supervise(&mut self) -> anyhow::Result<()> {
        for index in 0..self.slots.len() {
            if let Some(status) = self.slots[index].child.try_wait()? {
                let slot = &mut self.slots[index];
                anyhow::ensure!(
                    slot.restarts < MAX_RESTARTS_PER_SLOT,
                    "worker {index} exited ({status}) {} times; see {}",
                    slot.restarts + 1,
                    self.log_dir.join(format!("worker-{index}.log")).display()
                );
                warn!(worker = index, %status, "worker exited during the run; starting a replacement");
                let restarts = slot.restarts + 1;
                let child = self.spawn(index)?;
                self.slots[index] = Slot { child, restarts };
            }
        }
        Ok(())
    }

    /// SIGTERM to every worker, then wait for them to exit (SIGKILL after `timeout`).
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        for slot in &self.slots {
            if let Some(pid) = slot.child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            match tokio::time::timeout(timeout, slot.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => {
                    warn!(worker = index, %status, "worker exited with an error on shutdown")
                }
                Ok(Err(e)) => warn!(worker = index, error = %e, "cannot wait for a worker"),
                Err(_) => {
                    warn!(worker = index, "worker did not stop in time; killing it");
                    let _ = slot.child.kill().await;
                }
            }
        }
        Ok(())
    }
}

/// How often [`watch`] reads the run from the ledger: a SQLite read is nearly free and a
/// small run is over in seconds, while a DynamoDB query is billed.
pub fn watch_interval(backend: BackendKind) -> Duration {
    match backend {
        BackendKind::Embedded => Duration::from_millis(50),
        BackendKind::Aws => Duration::from_millis(250),
    }
}

/// Watches the run in the ledger until every account is finished (or `deadline` passes),
/// reading it every `every`, with a progress bar; returns the run's totals then. With
/// `metric`, every poll's totals go to it (it prints the autoscaling metric when due).
pub async fn watch(
    ledger: &Ledger,
    run_id: &str,
    mut pool: Option<&mut WorkerPool>,
    show_bar: bool,
    deadline: Option<Instant>,
    every: Duration,
    mut metric: Option<&mut AccountsWithWorkMetric>,
) -> anyhow::Result<RunTotals> {
    let bar = if show_bar {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} principals  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    // Read once: a run's deadline does not change.
    let deadline_at = run_deadline(ledger, run_id).await?;
    loop {
        if let Some(at) = deadline_at {
            enforce_deadline_at(ledger, run_id, at).await?;
        }
        let states = ledger.account_states(run_id).await?;
        let totals = RunTotals::of(&states);
        if let Some(metric) = metric.as_deref_mut() {
            metric.observe(&totals);
        }
        bar.set_length(totals.items_expected.max(1));
        bar.set_position(totals.items_done + totals.items_failed);
        bar.set_message(format!(
            "accounts {}/{}",
            totals.accounts_finished, totals.accounts
        ));
        if totals.is_complete() {
            bar.finish_and_clear();
            info!(
                run = run_id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "run complete"
            );
            return Ok(totals);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bar.finish_and_clear();
            warn!(
                run = run_id,
                finished = totals.accounts_finished,
                accounts = totals.accounts,
                "gave up waiting: the run is not finished"
            );
            return Ok(totals);
        }
        if let Some(pool) = pool.as_deref_mut() {
            pool.supervise()?;
        }
        tokio::time::sleep(every).await;
    }
}

/// The run's deadline, if it has one.
async fn run_deadline(
    ledger: &Ledger,
    run_id: &str,
) -> anyhow::Result<Option<time::OffsetDateTime>> {
    let Some(deadline) = ledger.run(run_id).await?.and_then(|h| h.deadline) else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(&deadline, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("run {run_id} has an unreadable deadline {deadline:?}"))?;
    Ok(Some(at))
}

/// Once the run's deadline has passed, marks its unfinished accounts failed, so the run
/// ends (and says why) even when no worker will ever finish them.
pub async fn enforce_deadline(ledger: &Ledger, run_id: &str) -> anyhow::Result<()> {
    match run_deadline(ledger, run_id).await? {
        Some(at) => enforce_deadline_at(ledger, run_id, at).await,
        None => Ok(()),
    }
}

async fn enforce_deadline_at(
    ledger: &Ledger,
    run_id: &str,
    at: time::OffsetDateTime,
) -> anyhow::Result<()> {
    if time::OffsetDateTime::now_utc() < at {
        return Ok(());
    }
    let deadline = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let marked = ledger
        .fail_unfinished(
            run_id,
            &format!("the run's deadline {deadline} passed before this account finished"),
        )
        .await?;
    if marked > 0 {
        warn!(run = run_id, accounts = marked, %deadline, "deadline passed: unfinished accounts marked failed");
    }
    Ok(())
}
