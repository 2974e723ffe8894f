//! `CollectAccount`: snapshot the account's IAM data, plan its work, send it.
//!
//! The snapshot is content-addressed and cached, so an unchanged account is not stored
//! twice. The plan is one `AnalyzePrincipal` per principal and one `FinalizeAccount`, sent
//! to the account's own queue: behind the collect message in the same FIFO group, so the
//! finalize runs only after every item has finished or been dead-lettered (the fan-in).
//! The account's progress moves to `analyzing` in the same transaction that finishes the
//! step.

use accessflow_shared::idempotency::{self, ItemStatus};
use accessflow_shared::ledger::{AccountStatus, Ledger};
use accessflow_shared::message::{AccountWork, WorkMessage, MAX_ITEMS_PER_ACCOUNT};
use accessflow_shared::ports::{OutgoingMessage, MAX_BATCH};
use accessflow_shared::step::Step;
use tracing::info;

use super::claim::StepError;
use super::{Attempt, Pipeline};

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
        let loaded = self.load_snapshot(work, &digest).await?;
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
        info!(principals = items, snapshot = %digest, snapshot_reused, "collected; sending items");

        let mut messages: Vec<OutgoingMessage> = principals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                WorkMessage::AnalyzePrincipal {
                    work: work.clone(),
                    snapshot: digest.clone(),
                    item: i as u32,
                    principal_arn: p.arn.clone(),
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
