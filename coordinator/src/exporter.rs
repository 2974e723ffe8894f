//! `coordinator exporter`: the long-running process that exports the night's state as
//! Prometheus metrics (`accessflow_run_*`, `accessflow_queue_*`, `accessflow_dlq_*`).
//!
//! A worker knows only its own process and `coordinator start` exits when the run is
//! published (or finished), so the run's progress, its ETA against the delivery deadline,
//! the queues' backlog and the DLQs come from here: one small process (one ECS service
//! task on AWS) that reads the ledger and the queue depths every `--refresh-secs` and serves
//! the result on `/metrics`. It only reads.
//!
//! Each refresh also prints one line in CloudWatch's embedded metric format on stdout
//! (`DlqMessages`, `FailedAccounts`, `NightPastDeadline`, `ExporterHeartbeat`): on AWS the
//! log driver turns it into CloudWatch metrics, and the critical alarms sit on those, so a
//! person is woken even when the Prometheus path is down.
//!
//! Request cost on AWS: per refresh, one read of the run's accounts, the tenant registry
//! and, per registered account, two `GetQueueAttributes` (queue and DLQ).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accessflow_shared::ledger::{AccountStatus, Ledger};
use accessflow_shared::metrics::run::{run_metrics, AccountTrouble, RunView, ACCOUNT_STATUSES};
use accessflow_shared::metrics::server::{self as metrics_server, Health};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::Ports;
use anyhow::Context;

use crate::metrics::{DIMENSION, NAMESPACE};

/// Options of `coordinator exporter`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExporterArgs {
    /// Where to serve `/metrics` and `/healthz`.
    #[arg(long, env = "ACCESSFLOW_METRICS_ADDR", default_value = "0.0.0.0:9465")]
    pub metrics_addr: SocketAddr,
    /// Time of day (UTC, HH:MM) the reports must be delivered by: a run's deadline is the
    /// first such time after it started.
    #[arg(long, env = "ACCESSFLOW_DELIVER_BY", default_value = "06:00", value_parser = parse_time_of_day)]
    pub deliver_by: u32,
    /// Seconds between refreshes of the ledger and queue state.
    #[arg(long, env = "ACCESSFLOW_EXPORTER_REFRESH_SECS", default_value_t = 30)]
    pub refresh_secs: u64,
}

/// `HH:MM` as seconds after midnight.
fn parse_time_of_day(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time of day; write HH:MM in UTC, e.g. 06:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

/// Serves the metrics and refreshes them until SIGTERM or Ctrl-C.
pub async fn run(
    ports: &Ports,
    names: &Names,
    deployment: &str,
    args: &ExporterArgs,
) -> anyhow::Result<()> {
    let refresh = Duration::from_secs(args.refresh_secs.max(1));
    accessflow_shared::metrics::set_build_info("coordinator");
    // Unhealthy after three refreshes in a row could not complete.
    let health = Health::new(refresh * 3 + Duration::from_secs(30));
    let bound = metrics_server::serve(args.metrics_addr, health.clone()).await?;
    tracing::info!(metrics_addr = %bound, refresh_secs = refresh.as_secs(), "exporter serving /metrics and /healthz");
    let mut state = ExporterState::default();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    loop {
        let now = unix_now();
        match view(ports, names, args.deliver_by, now, &mut state).await {
            Ok(view) => {
                run_metrics().publish(&view, now);
                health.beat();
                say!("{}", emf_line(deployment, &view, now));
            }
            Err(e) => {
                run_metrics().refresh_errors.inc();
                tracing::warn!(error = %format!("{e:#}"), "exporter refresh failed; serving the previous values");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("exporter stopped");
    Ok(())
}

/// What the exporter remembers between refreshes.
#[derive(Debug, Default)]
struct ExporterState {
    /// When each run was first seen complete (its ETA from then on).
    completed_at: BTreeMap<String, f64>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The first `deliver_by` (seconds after midnight UTC) at or after `start` (unix seconds).
fn deadline_after(start: f64, deliver_by: u32) -> f64 {
    let day = (start / 86_400.0).floor() * 86_400.0;
    let same_day = day + deliver_by as f64;
    if same_day >= start {
        same_day
    } else {
        same_day + 86_400.0
    }
}

/// Reads the ledger and the queues into what the metrics show.
async fn view(
    ports: &Ports,
    names: &Names,
    deliver_by: u32,
    now: f64,
    state: &mut ExporterState,
) -> anyhow::Result<RunView> {
    let ledger = Ledger::new(ports.store.clone());
    let tenants = ledger
        .tenants()
        .await
        .context("cannot read the tenant registry")?;
    let mut view = RunView::default();
    for tenant in &tenants {
        view.customers
            .entry(tenant.locator.customer.clone())
            .or_default();
    }
    for (customer, replayed) in ledger.replay_counts().await? {
        view.customers.entry(customer).or_default().replayed = replayed;
    }

    let latest = ledger.run_ids().await?.pop();
    let Some(run_id) = latest else {
        // No run yet: nothing is late, nothing is pending.
        view.run_id = "none".into();
        view.complete = true;
        view.eta_seconds = f64::NAN;
        add_dlqs(ports, names, &ledger, &tenants, None, &mut view).await?;
        return Ok(view);
    };
    let header = ledger
        .run(&run_id)
        .await?
        .with_context(|| format!("run {run_id} vanished from the ledger"))?;
    let states = ledger.account_states(&run_id).await?;
    // When the run was opened; a run recorded before that was kept falls back to its
    // as-of time (the time it was started at, unless given).
    let opened = header.started_at.as_deref().unwrap_or(&header.as_of);
    let start = time::OffsetDateTime::parse(opened, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp() as f64)
        .with_context(|| format!("run {run_id} has an unreadable start time `{opened}`"))?;
    let size_hint: BTreeMap<(String, String), u64> = tenants
        .iter()
        .map(|t| {
            (
                (t.locator.customer.clone(), t.locator.account.clone()),
                t.size_hint,
            )
        })
        .collect();

    let (mut expected_work, mut settled_work) = (0u64, 0u64);
    let mut unfinished = 0usize;
    for s in &states {
        let p = &s.progress;
        let cv = view.customers.entry(p.customer.clone()).or_default();
        let status = match p.status {
            AccountStatus::Published => "published",
            AccountStatus::Analyzing => "analyzing",
            AccountStatus::Finalized if p.partial => "partial",
            AccountStatus::Finalized => "finalized",
            AccountStatus::Failed => "failed",
        };
        *cv.accounts.entry(status).or_default() += 1;
        let items = p.items.map(u64::from);
        *cv.items.entry("expected").or_default() += items.unwrap_or(0);
        *cv.items.entry("done").or_default() += s.done;
        *cv.items.entry("failed").or_default() += s.failed;
        *cv.items.entry("reused").or_default() += s.reused;
        // An account not yet collected weighs what it weighed last time (at least 1).
        let weight = items
            .or_else(|| {
                size_hint
                    .get(&(p.customer.clone(), p.account.clone()))
                    .copied()
            })
            .unwrap_or(1)
            .max(1);
        expected_work += weight;
        settled_work += if p.status.is_finished() {
            weight
        } else {
            (s.done + s.failed).min(weight)
        };
        if !p.status.is_finished() {
            unfinished += 1;
        }
        if p.status == AccountStatus::Failed {
            view.failed_accounts.push(AccountTrouble {
                customer: p.customer.clone(),
                account: p.account.clone(),
                reason: p
                    .reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".into()),
                dlq_messages: 0,
            });
        }
    }
    view.run_id = run_id.clone();
    view.complete = unfinished == 0;
    view.start_seconds = start;
    view.deadline_seconds = deadline_after(start, deliver_by);
    view.progress_ratio = if expected_work == 0 {
        1.0
    } else {
        settled_work as f64 / expected_work as f64
    };
    let elapsed = (now - start).max(0.0);
    view.eta_seconds = if view.complete {
        *state.completed_at.entry(run_id.clone()).or_insert(now)
    } else if view.progress_ratio > 0.0 {
        start + elapsed / view.progress_ratio
    } else {
        // No estimate before the first work is settled.
        f64::NAN
    };
    view.oldest_pending_age_seconds = if unfinished > 0 { elapsed } else { 0.0 };

    // The accounts' queues: backlog, and how long the longest-queued account has waited.
    for s in &states {
        let p = &s.progress;
        let depth = ports
            .queues
            .depth(&names.account_queue(&p.customer, &p.account))
            .await
            .map(|d| d.total())
            .unwrap_or(0);
        let cv = view.customers.entry(p.customer.clone()).or_default();
        cv.queue_messages += depth;
        if depth > 0 {
            cv.queue_oldest_age_seconds = cv.queue_oldest_age_seconds.max(elapsed);
        }
    }
    for cv in view.customers.values_mut() {
        for status in ACCOUNT_STATUSES {
            cv.accounts.entry(status).or_default();
        }
    }
    add_dlqs(ports, names, &ledger, &tenants, Some(&run_id), &mut view).await?;
    Ok(view)
}

/// The registered accounts whose DLQ is not empty, each with the latest error recorded
/// against its run (the reason a person reads in the alert).
async fn add_dlqs(
    ports: &Ports,
    names: &Names,
    ledger: &Ledger,
    tenants: &[accessflow_shared::ledger::TenantAccount],
    latest_run: Option<&str>,
    view: &mut RunView,
) -> anyhow::Result<()> {
    for tenant in tenants {
        let (customer, account) = (&tenant.locator.customer, &tenant.locator.account);
        let depth = match ports
            .queues
            .depth(&names.account_dlq(customer, account))
            .await
        {
            Ok(depth) => depth.total(),
            Err(e) => {
                tracing::warn!(customer, account, error = %e, "cannot read the account's DLQ");
                continue;
            }
        };
        if depth == 0 {
            continue;
        }
        let run = match ledger.current_run(customer, account).await? {
            Some(run) => Some(run),
            None => latest_run.map(str::to_string),
        };
        let mut reason = None;
        if let Some(run) = run {
            reason = ledger
                .message_errors(&run, customer, account)
                .await?
                .pop()
                .map(|e| format!("{}: {}", e.step, e.reason));
        }
        view.dlqs.push(AccountTrouble {
            customer: customer.clone(),
            account: account.clone(),
            reason: reason.unwrap_or_else(|| {
                "dead-lettered by the queue after repeated receives (no reason recorded)".into()
            }),
            dlq_messages: depth,
        });
    }
    Ok(())
}

/// The refresh's CloudWatch metrics, in embedded metric format (one log line).
fn emf_line(deployment: &str, view: &RunView, now: f64) -> String {
    let dlq: u64 = view.dlqs.iter().map(|t| t.dlq_messages).sum();
    let past_deadline =
        (!view.complete && view.deadline_seconds > 0.0 && now > view.deadline_seconds) as u64;
    serde_json::json!({
        "_aws": {
            "Timestamp": (now * 1000.0) as u64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": [
                    {"Name": "DlqMessages", "Unit": "Count"},
                    {"Name": "FailedAccounts", "Unit": "Count"},
                    {"Name": "NightPastDeadline", "Unit": "Count"},
                    {"Name": "ExporterHeartbeat", "Unit": "Count"},
                ],
            }],
        },
        DIMENSION: deployment,
        "DlqMessages": dlq,
        "FailedAccounts": view.failed_accounts.len(),
        "NightPastDeadline": past_deadline,
        "ExporterHeartbeat": 1,
        "RunId": view.run_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_is_checked() {
        assert_eq!(parse_time_of_day("06:30"), Ok(6 * 3600 + 30 * 60));
        assert!(parse_time_of_day("24:00").unwrap_err().contains("HH:MM"));
        assert!(parse_time_of_day("6").is_err());
    }

    #[test]
    fn the_deadline_is_the_first_delivery_time_after_the_start() {
        // 2026-12-02T02:00:00Z, delivery at 06:00 the same morning.
        let start = 1_796_176_800.0;
        assert_eq!(deadline_after(start, 6 * 3600), start + 4.0 * 3600.0);
        // Started at 07:00: the next morning's 06:00.
        let late = start + 5.0 * 3600.0;
        assert_eq!(deadline_after(late, 6 * 3600), late + 23.0 * 3600.0);
    }

    #[test]
    fn the_emf_line_says_past_deadline_only_for_an_unfinished_run() {
        let mut view = RunView {
            run_id: "r".into(),
            deadline_seconds: 100.0,
            ..RunView::default()
        };
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("prod", &view, 200.0)).expect("json");
        assert_eq!(line["NightPastDeadline"], 1);
        assert_eq!(line["Deployment"], "prod");
        view.complete = true;
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("prod", &view, 200.0)).expect("json");
        assert_eq!(line["NightPastDeadline"], 0);
    }
}
