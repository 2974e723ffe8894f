//! `CollectAccount`: snapshot the account's IAM data, plan its work, send it.
//!
//! The snapshot is content-addressed and cached, so an unchanged account is not stored
//! twice. The plan is `AnalyzePrincipals` batches of consecutive principals, each sized
//! from the account's cost per principal measured by its previous run so that one message
//! is a few hundred milliseconds of work, and one `FinalizeAccount`, sent
//! to the account's own queue: behind the collect message in the same FIFO group, so the
//! finalize runs only after every item has finished or been dead-lettered (the fan-in).
//! The account's progress moves to `analyzing` in the same transaction that finishes the
//! step.

use accessflow_shared::idempotency::{self, ItemStatus};
use accessflow_shared::ledger::{AccountStatus, Ledger};
use accessflow_shared::message::{
    AccountWork, WorkMessage, MAX_ARN_BYTES_PER_MESSAGE, MAX_ITEMS_PER_ACCOUNT,
    MAX_PRINCIPALS_PER_MESSAGE,
};
use accessflow_shared::ports::{OutgoingMessage, MAX_BATCH};
use accessflow_shared::step::Step;
use tracing::info;

use super::claim::StepError;
use super::{Attempt, Pipeline};

/// How much work one `AnalyzePrincipals` message should be: long enough that the
/// per-message costs (receive, claim, commit, delete) are small beside it, short enough
/// that a redelivered batch redoes little.
const BATCH_TARGET_MS: f64 = 300.0;

/// Cost per principal assumed for an account no earlier run has measured. The bundled
/// sample's 2,400-principal account measured 2.1 ms per principal on its first embedded
/// run (2-core machine); on AWS a first night also fetches last-accessed data per
/// principal, so the guess is on the high side: 60 principals per batch.
const DEFAULT_MS_PER_PRINCIPAL: f64 = 5.0;

/// The fewest principals a batch holds (unless the account has fewer). The measured cost
/// is wall time, and on AWS most of it can be waiting on the customer's last-accessed jobs
/// (a job is polled ~200 ms after it starts): sized by time alone such an account would
/// go back to one message, one claim and one commit per principal, the per-item request
/// cost batching exists to remove. A redelivered batch redoes at most this many, and
/// whatever of it was already stored comes from the caches.
const MIN_PRINCIPALS_PER_MESSAGE: usize = 10;

/// Principals per batch for an account that costs `ms_per_principal` each.
pub(super) fn batch_size(ms_per_principal: Option<f64>) -> usize {
    let cost = ms_per_principal
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .unwrap_or(DEFAULT_MS_PER_PRINCIPAL);
    ((BATCH_TARGET_MS / cost).round() as usize)
        .clamp(MIN_PRINCIPALS_PER_MESSAGE, MAX_PRINCIPALS_PER_MESSAGE)
}

/// Splits `arns` into consecutive batches of at most `size` principals and
/// [`MAX_ARN_BYTES_PER_MESSAGE`] bytes; returns (first item, principals) per batch.
pub(super) fn plan_batches(arns: &[String], size: usize) -> Vec<(u32, Vec<String>)> {
    let mut batches: Vec<(u32, Vec<String>)> = Vec::new();
    let mut bytes = 0;
    for (item, arn) in arns.iter().enumerate() {
        let full = batches.last().is_none_or(|(_, batch)| {
            batch.len() >= size || bytes + arn.len() > MAX_ARN_BYTES_PER_MESSAGE
        });
        if full {
            batches.push((item as u32, Vec::new()));
            bytes = 0;
        }
        bytes += arn.len();
        if let Some((_, batch)) = batches.last_mut() {
            batch.push(arn.clone());
        }
    }
    batches
}

impl Pipeline {
    pub(super) async fn collect(
        &self,
        work: &AccountWork,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        if !self.claim(work, Step::Collect, attempt).await? {
            return Ok(());
        }
        let result = if attempt.exhausted {
            Err(attempt.exhausted_error())
        } else {
            self.collect_claimed(work, attempt).await
        };
        self.fail_account_if_final(work, attempt, "collecting the account", result)
            .await
    }

    async fn collect_claimed(
        &self,
        work: &AccountWork,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        let locator = self.locator(work).await?;
        let (mut progress, version) = self.progress(work).await?;
        let raw = self.ports.iam.fetch_account(&locator).await?;
        let (digest, snapshot_reused) = self
            .caches
            .put_snapshot(&work.customer, &work.account, &raw)
            .await?;
        // Parsed from what was just fetched, not read back from the store.
        let loaded = match self.cached_snapshot(&digest).await {
            Some(loaded) => loaded,
            None => self.parse_snapshot(&digest, raw).await?,
        };
        let principals = loaded.model.principals();
        let items = u32::try_from(principals.len())
            .ok()
            .filter(|n| *n <= MAX_ITEMS_PER_ACCOUNT)
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "{} principals is more than one run can plan ({MAX_ITEMS_PER_ACCOUNT})",
                    principals.len()
                ))
            })?;
        let measured = self
            .ledger
            .previous_state(&work.run_id, &work.customer, &work.account)
            .await?
            .and_then(|state| state.ms_per_item());
        let size = batch_size(measured);
        let arns: Vec<String> = principals.iter().map(|p| p.arn.clone()).collect();
        let batches = plan_batches(&arns, size);
        info!(
            principals = items,
            batches = batches.len(),
            batch_size = size,
            measured_ms_per_principal = measured,
            snapshot = %digest,
            snapshot_reused,
            "collected; sending items"
        );

        let mut messages: Vec<OutgoingMessage> = batches
            .into_iter()
            .map(|(first_item, principals)| {
                WorkMessage::AnalyzePrincipals {
                    work: work.clone(),
                    snapshot: digest.clone(),
                    first_item,
                    principals,
                }
                .to_outgoing()
            })
            .collect();
        messages.push(
            WorkMessage::FinalizeAccount {
                work: work.clone(),
                snapshot: digest.clone(),
                items,
                generation: 0,
            }
            .to_outgoing(),
        );
        let queue = self.names.account_queue(&work.customer, &work.account);
        // Fenced: a holder that lost its claim (it stalled past its lease) sends nothing.
        self.claims.fence(attempt.lease).await?;
        for batch in messages.chunks(MAX_BATCH) {
            self.ports.queues.send_batch(&queue, batch).await?;
        }

        progress.status = AccountStatus::Analyzing;
        progress.items = Some(items);
        progress.snapshot = Some(digest.clone());
        progress.snapshot_reused = snapshot_reused;
        progress.reason = None; // a replayed collect clears the failure it had recorded
        self.claims
            .commit(attempt.lease, |token| {
                vec![
                    idempotency::finish_op(token, ItemStatus::Done, Some(digest), None),
                    self.ledger.progress_op(&work.run_id, &progress, version),
                    Ledger::clear_error_op(
                        &work.run_id,
                        &work.customer,
                        &work.account,
                        &Step::Collect.to_string(),
                    ),
                ]
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sized_from_the_measured_cost() {
        assert_eq!(batch_size(Some(3.0)), 90.min(MAX_PRINCIPALS_PER_MESSAGE));
        assert_eq!(batch_size(Some(20.0)), 15);
        // Slow principals (waiting on IAM) still share a message.
        assert_eq!(batch_size(Some(250.0)), MIN_PRINCIPALS_PER_MESSAGE);
        assert_eq!(batch_size(Some(10_000.0)), MIN_PRINCIPALS_PER_MESSAGE);
        assert_eq!(batch_size(Some(0.001)), MAX_PRINCIPALS_PER_MESSAGE);
        assert_eq!(batch_size(None), batch_size(Some(DEFAULT_MS_PER_PRINCIPAL)));
        assert_eq!(batch_size(Some(f64::NAN)), batch_size(None));
    }

    #[test]
    fn batches_cover_every_principal_once_in_order() {
        let arns: Vec<String> = (0..205)
            .map(|i| format!("arn:aws:iam::111122223333:role/r{i}"))
            .collect();
        let batches = plan_batches(&arns, 50);
        assert_eq!(
            batches
                .iter()
                .map(|(first, b)| (*first, b.len()))
                .collect::<Vec<_>>(),
            vec![(0, 50), (50, 50), (100, 50), (150, 50), (200, 5)]
        );
        let flat: Vec<String> = batches.into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(flat, arns);
        assert!(plan_batches(&[], 50).is_empty());
    }

    #[test]
    fn long_arns_split_batches_by_bytes() {
        let long = format!("arn:aws:iam::111122223333:role/{}", "p".repeat(2000));
        let arns = vec![long; 300];
        // A size cap far above the message limit: only the byte budget splits the batches.
        let batches = plan_batches(&arns, 1000);
        assert!(batches.len() > 1, "300 long ARNs must not fit one message");
        for (_, batch) in &batches {
            let bytes: usize = batch.iter().map(String::len).sum();
            assert!(bytes <= MAX_ARN_BYTES_PER_MESSAGE);
        }
        assert_eq!(batches.iter().map(|(_, b)| b.len()).sum::<usize>(), 300);
    }
}
