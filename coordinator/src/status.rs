//! `coordinator status`: a run's progress from the ledger, for people (a table) and for
//! scripts (`--json`).

use accessflow_shared::ledger::{AccountState, Ledger, RunTotals};
use serde_json::json;

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

pub fn to_json(run_id: &str, states: &[AccountState]) -> serde_json::Value {
    let totals = RunTotals::of(states);
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
        },
        "accounts": states.iter().map(|s| json!({
            "customer": s.progress.customer,
            "account": s.progress.account,
            "status": s.progress.status,
            "items": s.progress.items,
            "done": s.done,
            "failed": s.failed,
            "reused": s.reused,
            "partial": s.progress.partial,
            "reason": s.progress.reason,
            "report_location": s.progress.report_location,
        })).collect::<Vec<_>>(),
    })
}

pub fn to_table(run_id: &str, states: &[AccountState]) -> String {
    let totals = RunTotals::of(states);
    let mut out = format!(
        "run {run_id}: {}/{} accounts finished, {} items done, {} failed of {} planned\n",
        totals.accounts_finished,
        totals.accounts,
        totals.items_done,
        totals.items_failed,
        totals.items_expected
    );
    out.push_str(&format!(
        "{:<12} {:<12} {:<10} {:>7} {:>7} {:>7}  {}\n",
        "customer", "account", "status", "items", "done", "failed", "note"
    ));
    for s in states {
        let p = &s.progress;
        let note = match (&p.reason, &p.report_location) {
            (Some(reason), _) => reason.clone(),
            (None, Some(location)) => location.clone(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<12} {:<12} {:<10} {:>7} {:>7} {:>7}  {}\n",
            p.customer,
            p.account,
            format!("{:?}", p.status).to_lowercase(),
            p.items.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            s.done,
            s.failed,
            note
        ));
    }
    out
}
