//! `coordinator index`: each customer's morning review of a run (issue 13), written beside
//! the account report directories as `index.json`, `index.html`, the morning digest
//! (`digest.txt`, `digest.html`, what `coordinator notify` sends) and `trend-point.json`
//! (this run's totals, for the trends of later runs).
//!
//! Built from the ledger (every account's status and reason) and each account's small
//! `summary.json` (totals and notable changes, written by the worker's finalize), never
//! from the accounts' `report.json` files. The trends read the customer's earlier
//! `trend-point.json` files (one per run, at most 29: that run's totals per account), or,
//! for a run that has none, that run's summaries. `coordinator run` builds the index when
//! its run ends, and so does `coordinator start --wait`; `coordinator index --run ID`
//! (re)builds it for any run.

use std::collections::BTreeSet;

use accessflow_analysis::review::{
    self, digest, AccountInput, AccountReviewStatus, AccountSummary, CustomerIndex, TrendPoint,
};
use accessflow_shared::ledger::{AccountStatus, Ledger, RunHeader};
use accessflow_shared::ports::Ports;
use anyhow::Context;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// The files of a customer's review, in its run directory (`coordinator gc` deletes them
/// with the run).
pub const REVIEW_FILES: [&str; 5] = [
    "index.json",
    "index.html",
    "digest.txt",
    "digest.html",
    review::TREND_POINT_FILE,
];

/// Blob reads in flight at once while building an index.
const READS_IN_FLIGHT: usize = 16;

/// One customer's review of a run, as written.
#[derive(Debug)]
pub struct Written {
    pub customer: String,
    /// Where `index.html` is (a path or a URL, as the blob store says).
    pub location: String,
    pub index: CustomerIndex,
}

/// The key of a customer's run directory (beside the account directories).
pub fn run_prefix(customer: &str, run_id: &str) -> String {
    format!("{customer}/reports/{run_id}")
}

/// Reads many blobs, [`READS_IN_FLIGHT`] at a time; a missing blob is `None`.
async fn get_all(ports: &Ports, keys: Vec<String>) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
    for (chunk_no, chunk) in keys.chunks(READS_IN_FLIGHT).enumerate() {
        let mut set = JoinSet::new();
        for (i, key) in chunk.iter().enumerate() {
            let blobs = ports.blobs.clone();
            let key = key.clone();
            set.spawn(async move {
                let got = blobs.get(&key).await;
                (chunk_no * READS_IN_FLIGHT + i, key, got)
            });
        }
        while let Some(joined) = set.join_next().await {
            let (i, key, got) = joined.context("a blob read panicked")?;
            out[i] = got.with_context(|| format!("cannot read {key}"))?;
        }
    }
    Ok(out)
}

/// Builds and writes the review of every customer of `run_id`.
pub async fn build(ports: &Ports, run_id: &str) -> anyhow::Result<Vec<Written>> {
    let ledger = Ledger::new(ports.store.clone());
    let header = ledger
        .run(run_id)
        .await?
        .with_context(|| format!("run {run_id} is not in the ledger"))?;
    let states = ledger.account_states(run_id).await?;
    let runs = ledger.runs().await?;
    let customers: BTreeSet<&str> = header.accounts.iter().map(|(c, _)| c.as_str()).collect();
    let mut written = Vec::new();
    for customer in customers {
        let states: Vec<_> = states
            .iter()
            .filter(|s| s.progress.customer == customer)
            .collect();
        let keys = states
            .iter()
            .map(|s| summary_key(customer, run_id, &s.progress.account))
            .collect();
        let summaries = get_all(ports, keys).await?;
        let mut inputs = Vec::with_capacity(states.len());
        for (state, bytes) in states.iter().zip(summaries) {
            let p = &state.progress;
            let status = match p.status {
                AccountStatus::Finalized if p.partial => AccountReviewStatus::Partial,
                AccountStatus::Finalized => AccountReviewStatus::Complete,
                AccountStatus::Failed => AccountReviewStatus::Failed,
                AccountStatus::Published | AccountStatus::Analyzing => {
                    AccountReviewStatus::Unfinished
                }
            };
            let summary = match bytes {
                Some(bytes) if p.status == AccountStatus::Finalized => {
                    let key = summary_key(customer, run_id, &p.account);
                    Some(AccountSummary::from_json(&bytes, &key)?)
                }
                None if p.status == AccountStatus::Finalized => {
                    warn!(
                        customer,
                        account = %p.account,
                        "finalized account has no summary.json (report written by an older version?): its totals are left out of the index"
                    );
                    None
                }
                _ => None,
            };
            inputs.push(AccountInput {
                account: p.account.clone(),
                status,
                reason: p.reason.clone(),
                summary,
            });
        }
        let earlier = earlier_points(ports, &runs, &header, customer).await?;
        let index = CustomerIndex::build(customer, run_id, &header.as_of, inputs, earlier);
        let prefix = run_prefix(customer, run_id);
        let location = ports.blobs.locate(&format!("{prefix}/index.html"));
        let digest = digest::digest(&index, Some(&location));
        let point = index.point().map(TrendPoint::to_json).unwrap_or_default();
        let files = [
            index.to_json(),
            index.to_html().into_bytes(),
            digest.text.into_bytes(),
            digest.html.into_bytes(),
            point,
        ];
        for (name, bytes) in REVIEW_FILES.into_iter().zip(files) {
            let key = format!("{prefix}/{name}");
            ports
                .blobs
                .put(&key, bytes)
                .await
                .with_context(|| format!("cannot write {key}"))?;
        }
        info!(
            customer,
            run = run_id,
            accounts = index.accounts.len(),
            changes = index.changes.len(),
            trend_runs = index.trend.len(),
            "morning review written"
        );
        written.push(Written {
            customer: customer.to_string(),
            location,
            index,
        });
    }
    Ok(written)
}

fn point_key(customer: &str, run_id: &str) -> String {
    format!(
        "{}/{}",
        run_prefix(customer, run_id),
        review::TREND_POINT_FILE
    )
}

fn summary_key(customer: &str, run_id: &str, account: &str) -> String {
    format!(
        "{}/{account}/{}",
        run_prefix(customer, run_id),
        review::SUMMARY_FILE
    )
}

/// The trend points of the customer's runs before `current` (at most
/// [`review::TREND_RUNS`] - 1): each run's `trend-point.json`, or else its accounts'
/// summaries (a run whose index was never built).
async fn earlier_points(
    ports: &Ports,
    runs: &[RunHeader],
    current: &RunHeader,
    customer: &str,
) -> anyhow::Result<Vec<TrendPoint>> {
    let mut earlier: Vec<&RunHeader> = runs
        .iter()
        .filter(|r| {
            (r.as_of.as_str(), r.run_id.as_str())
                < (current.as_of.as_str(), current.run_id.as_str())
                && r.accounts.iter().any(|(c, _)| c == customer)
        })
        .collect();
    let skip = earlier.len().saturating_sub(review::TREND_RUNS - 1);
    earlier.drain(..skip);
    let keys = earlier
        .iter()
        .map(|r| point_key(customer, &r.run_id))
        .collect();
    let stored = get_all(ports, keys).await?;
    let mut points = Vec::with_capacity(earlier.len());
    for (run, bytes) in earlier.into_iter().zip(stored) {
        if let Some(bytes) = bytes {
            match TrendPoint::from_json(&bytes, &point_key(customer, &run.run_id)) {
                Ok(point) if point.run_id == run.run_id => {
                    points.push(point);
                    continue;
                }
                Ok(point) => warn!(
                    run = %run.run_id,
                    found = %point.run_id,
                    "earlier trend point is another run's; reading that run's summaries"
                ),
                Err(e) => warn!(
                    error = %e,
                    "earlier trend point unreadable; reading that run's summaries"
                ),
            }
        }
        let accounts: Vec<&str> = run
            .accounts
            .iter()
            .filter(|(c, _)| c == customer)
            .map(|(_, a)| a.as_str())
            .collect();
        let keys = accounts
            .iter()
            .map(|a| summary_key(customer, &run.run_id, a))
            .collect();
        let mut summaries = Vec::new();
        for (account, bytes) in accounts.iter().zip(get_all(ports, keys).await?) {
            if let Some(bytes) = bytes {
                let key = summary_key(customer, &run.run_id, account);
                match AccountSummary::from_json(&bytes, &key) {
                    Ok(s) => summaries.push(s),
                    Err(e) => warn!(error = %e, "summary unreadable; left out of the trends"),
                }
            }
        }
        if !summaries.is_empty() {
            points.push(review::trend_point(&run.run_id, &run.as_of, &summaries));
        }
    }
    Ok(points)
}

/// The customer's review of a run: its `index.json`, built first if it is missing.
pub async fn load_or_build(
    ports: &Ports,
    run_id: &str,
) -> anyhow::Result<Vec<(String, String, CustomerIndex)>> {
    let ledger = Ledger::new(ports.store.clone());
    let header = ledger
        .run(run_id)
        .await?
        .with_context(|| format!("run {run_id} is not in the ledger"))?;
    let customers: BTreeSet<&str> = header.accounts.iter().map(|(c, _)| c.as_str()).collect();
    let mut out = Vec::new();
    for customer in &customers {
        let key = format!("{}/index.json", run_prefix(customer, run_id));
        match ports
            .blobs
            .get(&key)
            .await
            .with_context(|| format!("cannot read {key}"))?
        {
            Some(bytes) => {
                let index = CustomerIndex::from_json(&bytes, &key)?;
                let location = ports
                    .blobs
                    .locate(&format!("{}/index.html", run_prefix(customer, run_id)));
                out.push((customer.to_string(), location, index));
            }
            None => {
                info!(run = run_id, "no index yet: building it");
                return Ok(build(ports, run_id)
                    .await?
                    .into_iter()
                    .map(|w| (w.customer, w.location, w.index))
                    .collect());
            }
        }
    }
    Ok(out)
}
