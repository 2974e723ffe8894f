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

use accessflow_analysis::{AccountReport, PrincipalAnalysis, PrincipalFailure};
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
        let loaded = self.load_snapshot(work, snapshot).await?;
        let principals = loaded.model.principals();
        let outcomes = self
            .ledger
            .item_outcomes(&work.run_id, &work.customer, &work.account)
            .await?;

        let mut errors: BTreeMap<String, MessageError> = self
            .ledger
            .message_errors(&work.run_id, &work.customer, &work.account)
            .await?
            .into_iter()
            .map(|e| (e.step.clone(), e))
            .collect();
        let mut results: Vec<PrincipalAnalysis> = Vec::with_capacity(items as usize);
        let mut failures: Vec<PrincipalFailure> = Vec::new();
        for item in 0..items {
            let planned = principals
                .get(item as usize)
                .map(|p| p.arn.clone())
                .unwrap_or_default();
            match outcomes.get(&item) {
                Some(ItemOutcome { result_key: Some(blob), .. }) => {
                    let json = self.caches.get_result(&work.customer, &work.account, blob).await?;
                    let result: PrincipalAnalysis = serde_json::from_slice(&json)
                        .map_err(|e| StepError::Permanent(format!("stored result {blob} is unreadable: {e}")))?;
                    results.push(result);
                }
                Some(ItemOutcome { principal_arn, error, .. }) => failures.push(PrincipalFailure {
                    principal_arn: principal_arn.clone(),
                    reason: error.clone().unwrap_or_else(|| "failed without a recorded reason".into()),
                }),
                None => failures.push(PrincipalFailure {
                    principal_arn: planned,
                    reason: match errors.remove(&Step::Item(item).to_string()) {
                        Some(error) => format!("dead-lettered: {}", error.reason),
                        None => format!(
                            "no result: item {item} was dead-lettered after too many attempts (it is in the account's DLQ)"
                        ),
                    },
                }),
            }
        }
        for error in errors.into_values() {
            failures.push(PrincipalFailure {
                principal_arn: format!("message {}", error.message_id),
                reason: format!(
                    "message on {} could not be processed: {}",
                    error.queue, error.reason
                ),
            });
        }

        let header = self.ledger.run(&work.run_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("run {} has no header in the ledger", work.run_id))
        })?;
        let previous = self.previous_report(work, &header.as_of).await?;
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
        let files = tokio::task::spawn_blocking(move || {
            let ctx = accessflow_analysis::ReportContext {
                customer: &customer,
                account: &account,
                run_id: &run_id,
                analysis_time: &as_of,
                credential_report: Some(&loaded.credential_report),
            };
            let report = accessflow_analysis::build_report(
                &engine,
                &loaded.model,
                &results,
                &report_failures,
                &ctx,
                previous.as_ref(),
            );
            report
                .render_files()
                .map_err(|e| format!("the report cannot be rendered: {e}"))
        })
        .await
        .map_err(|e| StepError::Permanent(format!("building the report panicked: {e}")))?
        .map_err(StepError::Permanent)?;
        let prefix = report_prefix(&work.customer, &work.run_id, &work.account);
        for (name, bytes) in files {
            self.ports
                .blobs
                .put(&format!("{prefix}/{name}"), bytes)
                .await?;
        }

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
        match self.ports.blobs.get(&key).await? {
            Some(bytes) => match AccountReport::from_json(&bytes) {
                Ok(report) => Ok(Some(report)),
                Err(e) => {
                    warn!(previous = %key, error = %e, "previous report unreadable; diffing against nothing");
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }
}
