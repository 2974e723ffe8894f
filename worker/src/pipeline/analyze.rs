//! `AnalyzePrincipal`: one principal of the account's snapshot, evaluated.
//!
//! The principal's last-accessed data comes from the cache when it is fresh enough, else
//! from the account; the evaluation is cached by the digest of everything it reads, so an
//! unchanged principal is not evaluated again the next night. A principal whose own data
//! makes it unanalysable fails as an item (recorded, counted) and the run goes on. The
//! item's outcome, the account's counters and the step's final state land in one
//! transaction.

use std::sync::Arc;

use accessflow_analysis::LastAccessed;
use accessflow_shared::idempotency::{self, ItemStatus};
use accessflow_shared::ledger::{
    self, ItemOutcome, Ledger, COUNTER_DONE, COUNTER_FAILED, COUNTER_LA_REUSED, COUNTER_REUSED,
};
use accessflow_shared::message::AccountWork;
use accessflow_shared::metrics::work::work as work_metrics;
use accessflow_shared::ports::{Condition, WriteOp};
use accessflow_shared::step::Step;
use tracing::warn;

use super::claim::StepError;
use super::{Attempt, LoadedSnapshot, Pipeline};

impl Pipeline {
    pub(super) async fn analyze(
        &self,
        work: &AccountWork,
        snapshot: &str,
        item: u32,
        principal_arn: &str,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        let step = Step::Item(item);
        if !self.claim(work, step, attempt).await? {
            return Ok(());
        }
        let loaded = self.load_snapshot(work, snapshot).await?;

        let (last_accessed, la_reused) = self.last_accessed(work, principal_arn).await?;
        let evaluation = self
            .evaluate(work, &loaded, principal_arn, last_accessed.as_deref())
            .await?;

        let mut deltas = std::collections::BTreeMap::new();
        let counted_as = match &evaluation {
            Ok((_, true)) => "reused",
            Ok((_, false)) => "analyzed",
            Err(_) => "failed",
        };
        let (outcome, status, digest, reason) = match evaluation {
            Ok((blob, reused)) => {
                deltas.insert(COUNTER_DONE.to_string(), 1);
                if reused {
                    deltas.insert(COUNTER_REUSED.to_string(), 1);
                }
                let digest = blob.rsplit('/').next().map(str::to_string);
                (
                    ItemOutcome {
                        principal_arn: principal_arn.to_string(),
                        result_key: Some(blob),
                        error: None,
                    },
                    ItemStatus::Done,
                    digest,
                    None,
                )
            }
            Err(reason) => {
                warn!(principal = principal_arn, %reason, "principal could not be analysed; marked failed");
                deltas.insert(COUNTER_FAILED.to_string(), 1);
                (
                    ItemOutcome {
                        principal_arn: principal_arn.to_string(),
                        result_key: None,
                        error: Some(reason.clone()),
                    },
                    ItemStatus::Failed,
                    None,
                    Some(reason),
                )
            }
        };
        if la_reused {
            deltas.insert(COUNTER_LA_REUSED.to_string(), 1);
        }
        let committed = self
            .claims
            .commit(attempt.lease, |token| {
                vec![
                    idempotency::finish_op(token, status, digest, reason),
                    WriteOp::Add {
                        key: ledger::account_key(&work.run_id, &work.customer, &work.account),
                        deltas,
                        condition: Condition::Exists,
                    },
                    WriteOp::Put {
                        key: ledger::item_key(&work.run_id, &work.customer, &work.account, item),
                        value: serde_json::to_value(&outcome).unwrap_or_default(),
                        expires_at: self.ledger.expiry(),
                        condition: Condition::NotExists,
                    },
                    Ledger::clear_error_op(
                        &work.run_id,
                        &work.customer,
                        &work.account,
                        &step.to_string(),
                    ),
                ]
            })
            .await;
        if committed.is_ok() {
            work_metrics()
                .items
                .with_label_values(&[work.customer.as_str(), counted_as])
                .inc();
        }
        committed
    }

    /// Last-accessed data of a principal: (data, whether it came from the cache).
    async fn last_accessed(
        &self,
        work: &AccountWork,
        principal_arn: &str,
    ) -> Result<(Option<Vec<u8>>, bool), StepError> {
        if let Some(hit) = self
            .caches
            .get_last_accessed(&work.customer, &work.account, principal_arn)
            .await?
        {
            return Ok((hit, true));
        }
        let locator = self.locator(work).await?;
        let fresh = self
            .ports
            .iam
            .last_accessed(&locator, principal_arn)
            .await?;
        self.caches
            .put_last_accessed(
                &work.customer,
                &work.account,
                principal_arn,
                fresh.as_deref(),
            )
            .await?;
        Ok((fresh, false))
    }

    /// Evaluates a principal, or reuses the cached result for the same inputs.
    /// `Ok(Ok((blob, reused)))` on success, `Ok(Err(reason))` when the principal's own data
    /// makes it unanalysable (the item fails, the run goes on).
    async fn evaluate(
        &self,
        work: &AccountWork,
        loaded: &Arc<LoadedSnapshot>,
        principal_arn: &str,
        last_accessed: Option<&[u8]>,
    ) -> Result<Result<(String, bool), String>, StepError> {
        let Some(principal_digest) = loaded.model.principal_digest(principal_arn) else {
            return Ok(Err(format!(
                "principal {principal_arn} is not in the account's snapshot"
            )));
        };
        let parsed_last_accessed = match last_accessed.map(LastAccessed::parse).transpose() {
            Ok(parsed) => parsed,
            Err(e) => {
                return Ok(Err(format!(
                    "last-accessed data of {principal_arn} is malformed: {e}"
                )))
            }
        };
        let digest = self
            .engine
            .result_key(&principal_digest, parsed_last_accessed.as_ref());
        if let Some(blob) = self
            .caches
            .get_result_blob(&work.customer, &work.account, &digest)
            .await?
        {
            return Ok(Ok((blob, true)));
        }
        let engine = self.engine.clone();
        let loaded = loaded.clone();
        let arn = principal_arn.to_string();
        let analysed = tokio::task::spawn_blocking(move || {
            let timer = work_metrics().analysis_duration.start_timer();
            let result = engine
                .analyze_principal(&loaded.model, &arn, parsed_last_accessed.as_ref())
                .map_err(|e| e.to_string());
            timer.observe_duration();
            result.and_then(|result| serde_json::to_vec(&result).map_err(|e| e.to_string()))
        })
        .await
        .map_err(|e| StepError::Transient(format!("analysis task failed: {e}")))?;
        match analysed {
            Ok(json) => {
                let blob = self
                    .caches
                    .put_result(&work.customer, &work.account, &digest, &json)
                    .await?;
                Ok(Ok((blob, false)))
            }
            Err(reason) => Ok(Err(reason)),
        }
    }
}
