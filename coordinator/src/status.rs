//! `coordinator status`: a run's progress from the ledger, for people (a table) and for
//! scripts (`--json`).

use std::collections::BTreeMap;

use accessflow_shared::ledger::{AccountState, Ledger, RunTotals};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::Ports;
use serde_json::json;

/// Messages in each account's DLQ, by (customer, account): what the run's counters cannot
/// show (a message the queue dead-lettered itself). An account whose DLQ cannot be read
/// (removed, or the backend refused) is left out, with a warning.
pub type DlqDepths = BTreeMap<(String, String), u64>;

pub async fn dlq_depths(ports: &Ports, names: &Names, states: &[AccountState]) -> DlqDepths {
    let mut depths = DlqDepths::new();
    for s in states {
        let (customer, account) = (&s.progress.customer, &s.progress.account);
        match ports
            .queues
            .depth(&names.account_dlq(customer, account))
            .await
        {
            Ok(depth) => {
                depths.insert((customer.clone(), account.clone()), depth.total());
            }
            Err(e) => {
                tracing::warn!(customer, account, error = %e, "cannot read the account's DLQ")
            }
        }
    }
    depths
}

/// The run to show: the given one, or the latest.
pub async fn resolve_run(ledger: &Ledger, run: Option<&str>) -> anyhow::Result<String> {
    match run {
        Some(run) => {
            anyhow::ensure!(
                ledger.run(run).await?.is_some(),
                "run {run} is not in the ledger (see `coordinator status` for the latest)"
            );
            Ok(run.to_string())
        }
        None => ledger.run_ids().await?.pop().ok_or_else(|| {
            anyhow::anyhow!("no run in the ledger yet: start one with `coordinator run`")
        }),
    }
}

pub fn to_json(run_id: &str, states: &[AccountState], dlq: &DlqDepths) -> serde_json::Value {
    let totals = RunTotals::of(states);
    let dlq_of = |s: &AccountState| {
        dlq.get(&(s.progress.customer.clone(), s.progress.account.clone()))
            .copied()
    };
    json!({
        "run_id": run_id,
        "complete": totals.is_complete(),
        "totals": {
            "accounts": totals.accounts,
            "accounts_finished": totals.accounts_finished,
            "accounts_failed": totals.accounts_failed,
            "accounts_partial": totals.accounts_partial,
            "items_expected": totals.items_expected,
            "items_done": totals.items_done,
            "items_failed": totals.items_failed,
            "items_reused": totals.items_reused,
            "last_accessed_reused": totals.last_accessed_reused,
            "snapshots_reused": totals.snapshots_reused,
            "dead_lettered": dlq.values().sum::<u64>(),
        },
        "accounts": states.iter().map(|s| json!({
            "customer": s.progress.customer,
            "account": s.progress.account,
            "status": s.progress.status,
            "items": s.progress.items,
            "done": s.done,
            "failed": s.failed,
            "reused": s.reused,
            // Wall milliseconds the workers spent on its batches (what the next run sizes
            // its batches by).
            "item_ms": s.item_ms,
            "partial": s.progress.partial,
            "reason": s.progress.reason,
            "report_location": s.progress.report_location,
            "dead_lettered": dlq_of(s),
        })).collect::<Vec<_>>(),
    })
}

pub fn to_table(run_id: &str, states: &[AccountState], dlq: &DlqDepths) -> String {
    let totals = RunTotals::of(states);
    let mut out = format!(
        "run {run_id}: {}/{} accounts finished, {} items done, {} failed of {} planned, {} dead-lettered message(s)\n",
        totals.accounts_finished,
        totals.accounts,
        totals.items_done,
        totals.items_failed,
        totals.items_expected,
        dlq.values().sum::<u64>()
    );
    out.push_str(&format!(
        "{:<12} {:<12} {:<10} {:>7} {:>7} {:>7} {:>5}  {}\n",
        "customer", "account", "status", "items", "done", "failed", "dlq", "note"
    ));
    for s in states {
        let p = &s.progress;
        let note = match (&p.reason, &p.report_location) {
            (Some(reason), _) => reason.clone(),
            (None, Some(location)) => location.clone(),
            _ => String::new(),
        };
        let dead = dlq
            .get(&(p.customer.clone(), p.account.clone()))
            .map_or_else(|| "?".to_string(), u64::to_string);
        out.push_str(&format!(
            "{:<12} {:<12} {:<10} {:>7} {:>7} {:>7} {:>5}  {}\n",
            p.customer,
            p.account,
            format!("{:?}", p.status).to_lowercase(),
            p.items.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            s.done,
            s.failed,
            dead,
            note
        ));
    }
    out
}
