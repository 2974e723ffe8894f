//! `coordinator gc --keep-days N`: retention. Without it, every night adds its reports,
//! changed snapshots and changed results (the 2,400-principal sample account's
//! `report.json` alone is 85 MB a night), and the data directory or bucket only grows.
//!
//! A run is old when its as-of time is more than N days before the newest run's (counted
//! from the newest run, not the clock, so a deployment that stopped running nights does not
//! lose its last reports). Old runs lose their report files and every ledger record
//! (header, accounts, items, errors, idempotency records, report references). Then every
//! snapshot and result (inline in its cache record, or a blob) that no kept run references
//! is deleted, with its cache record:
//! the next night that needs one computes it again. The newest run is always kept, so every
//! account keeps a diff base.
//!
//! gc refuses to run while a kept run is unfinished: its workers may be writing snapshots
//! and results that no ledger record points at yet.

use std::collections::{BTreeMap, BTreeSet};

use accessflow_shared::cache::Caches;
use accessflow_shared::ledger::{Ledger, RunHeader, RunTotals};
use accessflow_shared::ports::{Condition, Ports};
use anyhow::Context;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Options of `coordinator gc`.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// Keep the runs of the last N days (counted back from the newest run's as-of time).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: u32,
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What gc deleted (or would delete).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub runs: usize,
    pub report_files: usize,
    pub snapshots: usize,
    pub results: usize,
}

fn as_of(header: &RunHeader) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(&header.as_of, &Rfc3339).with_context(|| {
        format!(
            "run {} has an unreadable as-of time {:?}",
            header.run_id, header.as_of
        )
    })
}

pub async fn gc(ports: &Ports, args: &GcArgs) -> anyhow::Result<GcReport> {
    let ledger = Ledger::new(ports.store.clone());
    let runs = ledger.runs().await?;
    let mut report = GcReport::default();
    let Some(newest) = runs.last() else {
        return Ok(report);
    };
    let cutoff = as_of(newest)? - time::Duration::days(i64::from(args.keep_days));
    let mut old = Vec::new();
    let mut kept = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if i + 1 < runs.len() && as_of(run)? < cutoff {
            old.push(run);
        } else {
            kept.push(run);
        }
    }
    for run in &kept {
        let states = ledger.account_states(&run.run_id).await?;
        anyhow::ensure!(
            RunTotals::of(&states).is_complete(),
            "run {} is not finished: run gc after it is (its workers may be writing snapshots and results nothing points at yet)",
            run.run_id
        );
    }

    // Old runs: their reports, then their records.
    for run in &old {
        for (customer, account) in &run.accounts {
            let prefix = format!("{customer}/reports/{}/{account}/", run.run_id);
            for key in ports.blobs.list(&prefix).await? {
                if !args.dry_run {
                    ports.blobs.delete(&key).await?;
                }
                report.report_files += 1;
            }
        }
        // The customers' morning review of the run (index, digest), the files beside the
        // account directories: listed, not probed (a listing needs no s3:GetObject).
        let customers: BTreeSet<&str> = run.accounts.iter().map(|(c, _)| c.as_str()).collect();
        for customer in customers {
            let prefix = format!("{}/", crate::review::run_prefix(customer, &run.run_id));
            for key in ports.blobs.list(&prefix).await? {
                if key[prefix.len()..].contains('/') {
                    continue; // an account's file, counted above
                }
                if !args.dry_run {
                    ports.blobs.delete(&key).await?;
                }
                report.report_files += 1;
            }
        }
        if !args.dry_run {
            ledger.delete_run(run).await?;
        }
        report.runs += 1;
    }

    // Snapshots and results no kept run references.
    let mut snapshots: BTreeSet<String> = BTreeSet::new();
    let mut results: BTreeSet<String> = BTreeSet::new();
    let mut accounts: BTreeMap<(String, String), ()> = BTreeMap::new();
    for run in &runs {
        for key in &run.accounts {
            accounts.insert(key.clone(), ());
        }
    }
    for run in &kept {
        for state in ledger.account_states(&run.run_id).await? {
            let p = &state.progress;
            if let Some(digest) = &p.snapshot {
                snapshots.insert(format!("{}/snapshots/{}/{digest}", p.customer, p.account));
            }
            for outcome in ledger
                .item_outcomes(&run.run_id, &p.customer, &p.account)
                .await?
                .into_values()
            {
                if let Some(blob) = outcome.result_key {
                    results.insert(blob);
                }
            }
        }
    }
    for (customer, account) in accounts.keys() {
        for key in ports
            .blobs
            .list(&format!("{customer}/snapshots/{account}/"))
            .await?
        {
            if !snapshots.contains(&key) {
                if !args.dry_run {
                    ports.blobs.delete(&key).await?;
                }
                report.snapshots += 1;
            }
        }
        // Results: small ones live inline in their index records, large ones in blobs
        // the records point at; a blob whose record expired is found by listing.
        let mut indexed = BTreeSet::new();
        for (name, blob) in Caches::stored_results(ports.store.as_ref(), customer, account).await? {
            if let Some(blob) = &blob {
                indexed.insert(blob.clone());
            }
            if !results.contains(&name) {
                if !args.dry_run {
                    if let Some(index) = Caches::result_index_key(&name) {
                        ports.store.delete(&index, Condition::None).await?;
                    }
                    if let Some(blob) = &blob {
                        ports.blobs.delete(blob).await?;
                    }
                }
                report.results += 1;
            }
        }
        for key in ports
            .blobs
            .list(&format!("{customer}/results/{account}/"))
            .await?
        {
            if !results.contains(&key) && !indexed.contains(&key) {
                if !args.dry_run {
                    ports.blobs.delete(&key).await?;
                }
                report.results += 1;
            }
        }
    }
    Ok(report)
}
