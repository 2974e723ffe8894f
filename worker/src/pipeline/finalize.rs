//! `FinalizeAccount`: the account's items aggregated into its reports.
//!
//! It runs after every item of its FIFO group has finished or been dead-lettered (the
//! items were sent ahead of it in the same group), so it sees every outcome there will be.
//! Items without an outcome and undecodable messages become failures in the report, which
//! is then marked partial. The report is diffed against the latest earlier run's, written
//! to the blob store, and the account is marked finalized (with a reference to the
//! report) in the transaction that finishes the step. A later generation, sent by
//! `coordinator dlq replay` after replayed items, rebuilds the reports the same way.

use std::collections::BTreeMap;

use accessflow_analysis::review;
use accessflow_analysis::{AccountReport, PrincipalAnalysis, PrincipalFailure, ReportError};
use accessflow_shared::idempotency::{self, ItemStatus};
use accessflow_shared::ledger::{
    self, AccountStatus, ItemOutcome, Ledger, MessageError, ReportRef,
};
use accessflow_shared::message::AccountWork;
use accessflow_shared::ports::{Condition, WriteOp};
use accessflow_shared::step::Step;
use tracing::{info, warn};

use super::claim::StepError;
use super::{report_prefix, Attempt, Pipeline};

impl Pipeline {
    pub(super) async fn finalize(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
        generation: u32,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        let step = Step::Finalize { generation };
        if !self.claim(work, step, attempt).await? {
            return Ok(());
        }
        let result = if attempt.exhausted {
            Err(attempt.exhausted_error())
        } else {
            self.finalize_claimed(work, snapshot, items, step, attempt)
                .await
        };
        self.fail_account_if_final(work, attempt, "building the reports", result)
            .await
    }

    async fn finalize_claimed(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
        step: Step,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        let started = std::time::Instant::now();
        let loaded = self.load_snapshot(work, snapshot).await?;
        let principals = loaded.model.principals();
        let outcomes = self
            .ledger
            .item_outcomes(&work.run_id, &work.customer, &work.account)
            .await?;

        let mut attributed = std::collections::BTreeSet::new();
        let mut errors: BTreeMap<String, MessageError> = self
            .ledger
            .message_errors(&work.run_id, &work.customer, &work.account)
            .await?
            .into_iter()
            .map(|e| (e.step.clone(), e))
            .collect();
        let mut results: Vec<PrincipalAnalysis> = Vec::with_capacity(items as usize);
        let mut failures: Vec<PrincipalFailure> = Vec::new();
        let with_results: Vec<(u32, String)> = (0..items)
            .filter_map(|item| match outcomes.get(&item) {
                Some(ItemOutcome {
                    result_key: Some(key),
                    ..
                }) => Some((item, key.clone())),
                _ => None,
            })
            .collect();
        let header = self.ledger.run(&work.run_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("run {} has no header in the ledger", work.run_id))
        })?;
        // The previous report (parsed on a blocking thread) and the stored results at once:
        // they are independent, and both are on the account's critical path.
        let (previous, stored) = tokio::join!(
            self.previous_report(work, &header.as_of),
            self.stored_results(work, &with_results)
        );
        let (previous, mut stored) = (previous?, stored?);
        for item in 0..items {
            let planned = principals
                .get(item as usize)
                .map(|p| p.arn.clone())
                .unwrap_or_default();
            match outcomes.get(&item) {
                Some(ItemOutcome { result_key: Some(key), .. }) => match stored.remove(&item) {
                    Some(result) => results.push(result),
                    None => return Err(StepError::Permanent(format!("stored result {key} was not read"))),
                },
                Some(ItemOutcome { principal_arn, error, .. }) => failures.push(PrincipalFailure {
                    principal_arn: principal_arn.clone(),
                    reason: error.clone().unwrap_or_else(|| "failed without a recorded reason".into()),
                }),
                None => failures.push(PrincipalFailure {
                    principal_arn: planned,
                    reason: match errors
                        .iter()
                        .find(|(step, _)| Step::parse(step).is_some_and(|s| s.covers_item(item)))
                    {
                        Some((step, error)) => {
                            attributed.insert(step.clone());
                            format!("dead-lettered: {}", error.reason)
                        }
                        None => format!(
                            "no result: item {item} was dead-lettered after too many attempts (it is in the account's DLQ)"
                        ),
                    },
                }),
            }
        }
        // An item step's error is told once per item it covers; any other (a collect that
        // failed after sending, an undecodable message) once on its own.
        errors.retain(|step, _| !attributed.contains(step));
        for error in errors.into_values() {
            failures.push(PrincipalFailure {
                principal_arn: format!("message {}", error.message_id),
                reason: format!(
                    "message on {} could not be processed: {}",
                    error.queue, error.reason
                ),
            });
        }

        // The snapshot, the results and the previous report read (logged as `read_ms`).
        let loaded_ms = started.elapsed().as_millis() as u64;
        // The customer's partner accounts, from the tenant registry. An account removed
        // from the tenants file mid-run still gets its report, without partners marked.
        let trusted_accounts = match self.locator(work).await {
            Ok(locator) => locator.trusted_accounts,
            Err(e) => {
                tracing::warn!(error = %e, "no tenant entry: no account is marked trusted in the report");
                Vec::new()
            }
        };
        // Building and rendering is CPU work (and any panic in it must not take the
        // consumer down): off the async threads.
        let engine = self.engine.clone();
        let (customer, account, run_id) = (
            work.customer.clone(),
            work.account.clone(),
            work.run_id.clone(),
        );
        let as_of = header.as_of.clone();
        let report_failures = failures.clone();
        let prefix = report_prefix(&work.customer, &work.run_id, &work.account);
        // Built and rendered off the async threads (CPU work, and a panic in it must not
        // take the consumer down), one file at a time: each is stored while the next is
        // rendered, so at most a few files are in memory, never all of them.
        let (files, mut rendered) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(1);
        let render = tokio::task::spawn_blocking(move || {
            let ctx = accessflow_analysis::ReportContext {
                customer: &customer,
                account: &account,
                run_id: &run_id,
                analysis_time: &as_of,
                credential_report: Some(&loaded.credential_report),
                resources: loaded.resources.as_ref(),
                trusted_accounts: &trusted_accounts,
            };
            let report = accessflow_analysis::build_report(
                &engine,
                &loaded.model,
                &results,
                &report_failures,
                &ctx,
                previous.as_ref(),
            );
            drop(previous);
            let store = |name: &str, bytes: Vec<u8>| {
                files
                    .blocking_send((name.to_string(), bytes))
                    .map_err(|_| ReportError::store(name, "storing the report stopped"))
            };
            report.write_files(store)?;
            // The small summary the customer's index and trends read (issue 13).
            store(
                review::SUMMARY_FILE,
                review::AccountSummary::of(&report).to_json(),
            )
        });
        let mut stored = Ok(());
        while let Some((name, bytes)) = rendered.recv().await {
            stored = self
                .ports
                .blobs
                .put(&format!("{prefix}/{name}"), bytes)
                .await;
            if stored.is_err() {
                // Dropping the receiver stops the renderer at its next file.
                break;
            }
        }
        drop(rendered);
        let rendering = render
            .await
            .map_err(|e| StepError::Permanent(format!("building the report panicked: {e}")))?;
        stored?;
        rendering
            .map_err(|e| StepError::Permanent(format!("the report cannot be rendered: {e}")))?;

        let reported_ms = started.elapsed().as_millis() as u64 - loaded_ms;
        let partial = !failures.is_empty();
        let (mut progress, version) = self.progress(work).await?;
        progress.status = AccountStatus::Finalized;
        progress.partial = partial;
        progress.report_location = Some(self.ports.blobs.locate(&prefix));
        progress.reason =
            partial.then(|| format!("{} item(s) failed or were dead-lettered", failures.len()));
        let reference = ReportRef {
            run_id: work.run_id.clone(),
            as_of: header.as_of.clone(),
            prefix,
            principals: items as u64,
            partial,
        };
        self.claims
            .commit(attempt.lease, |token| {
                vec![
                    idempotency::finish_op(token, ItemStatus::Done, None, None),
                    self.ledger.progress_op(&work.run_id, &progress, version),
                    Ledger::clear_error_op(
                        &work.run_id,
                        &work.customer,
                        &work.account,
                        &step.to_string(),
                    ),
                    WriteOp::Put {
                        key: ledger::report_ref_key(&work.customer, &work.account, &work.run_id),
                        value: serde_json::to_value(&reference).unwrap_or_default(),
                        expires_at: self.ledger.expiry(),
                        condition: Condition::None,
                    },
                ]
            })
            .await?;
        info!(
            items,
            failures = failures.len(),
            partial,
            read_ms = loaded_ms,
            report_ms = reported_ms,
            "account finalized"
        );
        Ok(())
    }

    /// The latest report of an earlier run (by as-of time), for the diff.
    async fn previous_report(
        &self,
        work: &AccountWork,
        as_of: &str,
    ) -> Result<Option<AccountReport>, StepError> {
        let refs = self
            .ledger
            .report_refs(&work.customer, &work.account)
            .await?;
        let Some(previous) = refs.iter().rev().find(|r| {
            r.run_id != work.run_id
                && (r.as_of.as_str(), r.run_id.as_str()) < (as_of, work.run_id.as_str())
        }) else {
            return Ok(None);
        };
        let key = format!("{}/report.json", previous.prefix);
        let Some(bytes) = self.ports.blobs.get(&key).await? else {
            return Ok(None);
        };
        // Tens of megabytes of JSON for a large account: parsed off the async threads.
        let parsed = tokio::task::spawn_blocking(move || AccountReport::from_json(&bytes))
            .await
            .map_err(|e| StepError::Permanent(format!("reading {key} panicked: {e}")))?;
        match parsed {
            Ok(report) => Ok(Some(report)),
            Err(e) => {
                warn!(previous = %key, error = %e, "previous report unreadable; diffing against nothing");
                Ok(None)
            }
        }
    }

    /// The stored results of `items` (item, result key), read a hundred at a time (one
    /// store request each).
    async fn stored_results(
        &self,
        work: &AccountWork,
        items: &[(u32, String)],
    ) -> Result<BTreeMap<u32, PrincipalAnalysis>, StepError> {
        let mut stored = BTreeMap::new();
        for chunk in items.chunks(100) {
            let names: Vec<String> = chunk.iter().map(|(_, key)| key.clone()).collect();
            let read = self
                .caches
                .get_results(&work.customer, &work.account, &names)
                .await?;
            for ((item, key), json) in chunk.iter().zip(read) {
                let result: PrincipalAnalysis = serde_json::from_slice(&json).map_err(|e| {
                    StepError::Permanent(format!("stored result {key} is unreadable: {e}"))
                })?;
                stored.insert(*item, result);
            }
        }
        Ok(stored)
    }
}
