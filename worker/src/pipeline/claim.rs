//! The claim/commit protocol every step follows, so at-least-once delivery gives an
//! exactly-once effect.
//!
//! A handler first *claims* the step's idempotency record: it takes it (new, or abandoned
//! by a holder whose lease ran out), finds it finished (the message is a duplicate: nothing
//! to do), or finds another live holder (busy: retry once that lease has run out). The
//! claim is handed to the batch's [`Lease`], whose heartbeat extends it. The handler then
//! *commits*: its effects and the record's final state in one transaction conditioned on
//! the claim's version, so a holder that lost its claim can never land a second effect.
//! Whatever happens, a claim still held at the end is *released*, so the next receiver
//! takes the step at once instead of waiting for the lease.

use std::sync::Arc;
use std::time::Duration;

use accessflow_shared::cache::CacheError;
use accessflow_shared::clock::Clock;
use accessflow_shared::idempotency::{self, Claim, ClaimToken, ItemStatus};
use accessflow_shared::message::AccountWork;
use accessflow_shared::ports::{KeyValueStore, PortError, WriteOp};
use accessflow_shared::step::Step;
use tracing::{info, warn};

use crate::lease::Lease;

/// A failure inside a handler, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Worth retrying later (a backend hiccup, a lost race).
    #[error("{0}")]
    Transient(String),
    /// Another live holder has the step: retry once its lease has run out.
    #[error("{1}")]
    Busy(Duration, String),
    /// Retrying cannot help: the message goes to the DLQ.
    #[error("{0}")]
    Permanent(String),
}

impl From<PortError> for StepError {
    fn from(e: PortError) -> Self {
        if e.is_transient() {
            StepError::Transient(e.to_string())
        } else {
            StepError::Permanent(e.to_string())
        }
    }
}

impl From<CacheError> for StepError {
    fn from(e: CacheError) -> Self {
        if e.is_transient() {
            StepError::Transient(e.to_string())
        } else {
            StepError::Permanent(e.to_string())
        }
    }
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The step is ours now; the lease holds (and extends) the claim.
    Acquired,
    /// The step was finished before: the message is a duplicate.
    Finished,
}

/// Claims and commits steps in the idempotency records of one store, as one owner.
pub struct Claims {
    store: Arc<dyn KeyValueStore>,
    owner: String,
    lease: Duration,
    clock: Clock,
}

impl Claims {
    /// Claims made as `owner` (identifies the process in the records) last `lease` unless
    /// extended; `clock` measures what is left of another holder's lease.
    pub fn new(
        store: Arc<dyn KeyValueStore>,
        owner: impl Into<String>,
        lease: Duration,
        clock: Clock,
    ) -> Claims {
        Claims {
            store,
            owner: owner.into(),
            lease,
            clock,
        }
    }

    /// The owner written into the records.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims `step` of `work`; an acquired claim is handed to `lease`. With `replayed` (the
    /// message came back from a DLQ), a step that finished as failed is claimed again.
    pub async fn claim(
        &self,
        work: &AccountWork,
        step: Step,
        lease: &Lease,
        replayed: bool,
    ) -> Result<Claimed, StepError> {
        let key = idempotency::record_key(
            &work.run_id,
            &work.customer,
            &work.account,
            &step.to_string(),
        );
        match idempotency::claim(
            self.store.as_ref(),
            &self.clock,
            &key,
            &self.owner,
            self.lease,
            replayed,
        )
        .await?
        {
            Claim::Acquired(token) => {
                lease.hold_claim(token).await;
                Ok(Claimed::Acquired)
            }
            Claim::Finished(record) => {
                info!(%step, status = ?record.status, "already finished; dropping the duplicate");
                Ok(Claimed::Finished)
            }
            Claim::Held {
                lease_until_ms,
                owner,
            } => {
                let remaining = (lease_until_ms - self.clock.now_ms()).max(0) as u64;
                Err(StepError::Busy(
                    Duration::from_millis(remaining + 100),
                    format!("{step} is held by {owner} for another {remaining} ms"),
                ))
            }
        }
    }

    /// Writes a step's effects (built from the claim) together with its idempotency
    /// record's final state, in one transaction. The claim is taken away from the heartbeat
    /// first, so no lease extension can move its version between building the writes and
    /// committing them. If the commit's condition fails, the record decides: finished by
    /// another holder means our effect must not land and nothing is lost; otherwise the
    /// step is retried.
    pub async fn commit(
        &self,
        lease: &Lease,
        build: impl FnOnce(&ClaimToken) -> Vec<WriteOp>,
    ) -> Result<(), StepError> {
        let Some(token) = lease.take_claim().await else {
            return Err(StepError::Transient(
                "the step's claim is no longer held; it will be retried".into(),
            ));
        };
        let store = self.store.as_ref();
        let error = match store.transact(build(&token)).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if error.is_condition_failed() {
            if let Ok(Some(record)) = idempotency::record(store, &token.key).await {
                if record.status != ItemStatus::InProgress {
                    warn!(step = %token.key, "finished by another holder; our effect is dropped");
                    return Ok(());
                }
            }
        }
        if let Err(e) = idempotency::release(store, &token).await {
            warn!(step = %token.key, error = %e, "could not release the claim; it expires with its lease");
        }
        Err(if error.is_condition_failed() {
            StepError::Transient(format!("committing {} failed: {error}", token.key))
        } else {
            error.into()
        })
    }

    /// Fails unless the step's claim is still ours, extending it: called right before
    /// effects that cannot be part of the commit's transaction (collect's sends), so a
    /// holder that stalled and lost its claim sends nothing. Queues have no conditional
    /// send, so a stall between this check and the send can still duplicate messages;
    /// their deduplication ids and the items' own claims make such duplicates harmless.
    pub async fn fence(&self, lease: &Lease) -> Result<(), StepError> {
        if lease.confirm_claim().await? {
            Ok(())
        } else {
            Err(StepError::Transient(
                "the step's claim moved to another holder; nothing is sent".into(),
            ))
        }
    }

    /// Gives back a claim the lease still holds (the step did not commit), so the next
    /// receiver can take the step at once.
    pub async fn release(&self, lease: &Lease) -> Result<(), PortError> {
        match lease.take_claim().await {
            Some(token) => idempotency::release(self.store.as_ref(), &token).await,
            None => Ok(()),
        }
    }
}
