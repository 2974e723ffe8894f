//! The three steps of an account's analysis, one handler each:
//!
//! - [`collect`]: `CollectAccount` snapshots the account's IAM data and plans its items;
//! - [`analyze`]: `AnalyzePrincipals` evaluates a batch of principals of the snapshot;
//! - [`finalize`]: `FinalizeAccount` aggregates the items into the account's reports.
//!
//! Every step follows the [`claim`] protocol (claim the step's idempotency record, then
//! commit the effects with the record's final state in one transaction), so redelivery
//! never doubles an effect. This module decodes a message, checks it arrived where it
//! belongs, dispatches it by kind and turns the handler's result into an [`Outcome`]; what
//! that means for the message is the consumer's job.

mod analyze;
pub mod claim;
mod collect;
mod finalize;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use accessflow_shared::cache::Caches;
use accessflow_shared::config::Settings;
use accessflow_shared::idempotency::{self, ItemStatus};
use accessflow_shared::ledger::{AccountProgress, AccountStatus, Ledger, MessageError};
use accessflow_shared::message::{AccountWork, WorkMessage, REPLAY_ATTRIBUTE};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::{AccountLocator, AccountSnapshotRaw, Ports, ReceivedMessage};
use accessflow_shared::step::Step;
use tokio::sync::Mutex;
use tracing::{info, warn, Instrument};

use accessflow_analysis::{AccountModel, Engine};

use crate::lease::Lease;
use claim::{Claimed, Claims, StepError};

/// What the consumer should do with a message after its handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done before): delete it.
    Delete,
    /// A transient failure: make it visible again after `after`.
    Retry { after: Duration, reason: String },
    /// A permanent failure: move it to the DLQ now, with the reason.
    DeadLetter { reason: String },
}

/// A parsed snapshot, shared by the items of a run that land on this process.
struct LoadedSnapshot {
    digest: String,
    model: AccountModel,
    credential_report: String,
    /// The resource inventory, when the source collected one.
    resources: Option<accessflow_analysis::resources::ResourceInventory>,
}

/// How many parsed snapshots a worker keeps (one per account it is working on, roughly).
const SNAPSHOT_CACHE_SIZE: usize = 4;

/// How long a cached tenant registry entry is trusted.
const LOCATOR_TTL: Duration = Duration::from_secs(60);

/// One receive of one message, as its handler sees it.
struct Attempt<'a> {
    /// Holds (and extends) the step's claim while the handler works.
    lease: &'a Lease,
    /// The message was replayed from a DLQ: a failed step may be retried.
    replayed: bool,
    /// The last receive on which the worker still tries the step: a failure now is final
    /// (the account is marked failed, the message dead-lettered with its reason). It is the
    /// receive *before* the queue's last, so that a worker killed mid-step here still
    /// leaves one receive for the next worker to record the failure (the poison guard).
    last_attempt: bool,
    /// The queue's last receive: whoever dies now loses the message to the DLQ unrecorded,
    /// so the step is not tried again; its failure is recorded at once.
    exhausted: bool,
    receive_count: u32,
}

impl Attempt<'_> {
    /// The failure of a step whose every earlier receive died without finishing.
    fn exhausted_error(&self) -> StepError {
        StepError::Permanent(format!(
            "the message was received {} times without finishing (a worker died or hung on every \
             attempt); given up before the queue dead-letters it unrecorded",
            self.receive_count
        ))
    }
}

/// Everything the handlers need; one per worker process, shared by its tasks.
pub struct Pipeline {
    ports: Ports,
    ledger: Ledger,
    caches: Caches,
    claims: Claims,
    engine: Arc<Engine>,
    names: Names,
    /// Receives before the queue dead-letters a message (the last one is final).
    max_receive_count: u32,
    snapshots: Mutex<VecDeque<Arc<LoadedSnapshot>>>,
    /// Tenant registry entries, briefly cached: one read per account, not per item.
    locators: Mutex<HashMap<(String, String), (std::time::Instant, AccountLocator)>>,
}

impl Pipeline {
    pub fn new(ports: Ports, settings: Settings, names: Names, engine: Arc<Engine>) -> Pipeline {
        let ledger = Ledger::with_clock(ports.store.clone(), ports.clock.clone());
        let sealer = accessflow_shared::crypto::Sealer::new(ports.keys.clone());
        let caches = Caches::new(
            ports.blobs.clone(),
            ports.store.clone(),
            sealer,
            settings.last_accessed_ttl(),
            ports.clock.clone(),
        );
        // Host and pid, plus a random nonce: containers often all run as pid 1.
        let owner = format!(
            "{}:{}:{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        let claims = Claims::new(
            ports.store.clone(),
            owner,
            settings.visibility_timeout(),
            ports.clock.clone(),
        );
        Pipeline {
            ledger,
            caches,
            claims,
            engine,
            names,
            max_receive_count: settings.max_receive_count,
            snapshots: Mutex::new(VecDeque::new()),
            locators: Mutex::new(HashMap::new()),
            ports,
        }
    }

    /// Handles one received message from `queue`; `lease` holds the step's claim meanwhile.
    pub async fn handle(&self, queue: &str, message: &ReceivedMessage, lease: &Lease) -> Outcome {
        let decoded = match WorkMessage::decode(&message.body) {
            Ok(decoded) => decoded,
            Err(e) => return self.reject(queue, message, None, e.to_string()).await,
        };
        let work = decoded.work().clone();
        let expected = self.names.account_queue(&work.customer, &work.account);
        if queue != expected {
            let reason = format!(
                "message for customer {} account {} arrived on queue {queue} (expected {expected})",
                work.customer, work.account
            );
            return self
                .reject(queue, message, Some(&work.run_id), reason)
                .await;
        }
        if let WorkMessage::FinalizeAccount {
            snapshot, items, ..
        } = &decoded
        {
            match self.finalize_mismatch(&work, snapshot, *items).await {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    return self
                        .reject(queue, message, Some(&work.run_id), reason)
                        .await
                }
                Err(e) => {
                    let after = retry_delay(message.receive_count);
                    return Outcome::Retry {
                        after,
                        reason: format!("cannot read the account's plan: {e}"),
                    };
                }
            }
        }
        let span = tracing::info_span!(
            "message",
            run = %work.run_id,
            customer = %work.customer,
            account = %work.account,
            step = %Step::of(&decoded),
            kind = decoded.kind(),
            receive_count = message.receive_count,
        );
        let attempt = Attempt {
            lease,
            replayed: message.attributes.contains_key(REPLAY_ATTRIBUTE),
            last_attempt: message.receive_count + 1 >= self.max_receive_count,
            exhausted: message.receive_count >= self.max_receive_count,
            receive_count: message.receive_count,
        };
        let result = async {
            match &decoded {
                WorkMessage::CollectAccount { work } => self.collect(work, &attempt).await,
                WorkMessage::AnalyzePrincipal {
                    work,
                    snapshot,
                    item,
                    principal_arn,
                } => {
                    let principals = std::slice::from_ref(principal_arn);
                    self.analyze(
                        work,
                        snapshot,
                        Step::Item(*item),
                        *item,
                        principals,
                        &attempt,
                    )
                    .await
                }
                WorkMessage::AnalyzePrincipals {
                    work,
                    snapshot,
                    first_item,
                    principals,
                } => {
                    let step = Step::of(&decoded);
                    self.analyze(work, snapshot, step, *first_item, principals, &attempt)
                        .await
                }
                WorkMessage::FinalizeAccount {
                    work,
                    snapshot,
                    items,
                    generation,
                } => {
                    self.finalize(work, snapshot, *items, *generation, &attempt)
                        .await
                }
            }
        }
        .instrument(span.clone())
        .await;
        // Whatever happened, a claim still held is given back so the next receiver can take
        // it at once instead of waiting for the lease.
        if let Err(e) = self.claims.release(lease).await {
            warn!(parent: &span, error = %e, "could not release an idempotency claim; it expires with its lease");
        }
        match result {
            Ok(()) => Outcome::Delete,
            Err(StepError::Busy(after, reason)) => {
                info!(parent: &span, %reason, "step held elsewhere; retrying after its lease");
                Outcome::Retry { after, reason }
            }
            Err(StepError::Transient(reason)) => {
                let after = retry_delay(message.receive_count);
                warn!(parent: &span, %reason, after_secs = after.as_secs(), "transient failure; the message will be retried");
                Outcome::Retry { after, reason }
            }
            Err(StepError::Permanent(reason)) => {
                warn!(parent: &span, %reason, "permanent failure; the message goes to the DLQ");
                self.record_message_error(
                    &work.run_id,
                    &work.customer,
                    &work.account,
                    &Step::of(&decoded).to_string(),
                    queue,
                    message,
                    &reason,
                )
                .await;
                Outcome::DeadLetter { reason }
            }
        }
    }

    /// A message whose handling took longer than `max_hold` (the consumer gave up on it):
    /// its claim is given back, why is recorded against its step (a later success of the
    /// step clears it), and the message is released for another worker at once.
    pub async fn held_too_long(
        &self,
        queue: &str,
        message: &ReceivedMessage,
        lease: &Lease,
        max_hold: Duration,
    ) -> Outcome {
        let reason = format!(
            "held for more than {} s without finishing (a hung call?); released for another worker",
            max_hold.as_secs()
        );
        warn!(queue, message_id = %message.message_id, %reason, "giving up on a message");
        if let Err(e) = self.claims.release(lease).await {
            warn!(queue, error = %e, "could not release the step's claim; it expires with its lease");
        }
        if let Ok(decoded) = WorkMessage::decode(&message.body) {
            let work = decoded.work();
            let step = Step::of(&decoded).to_string();
            // A step whose commit landed just before the timeout is finished: no error to
            // record (a later duplicate would not clear it).
            let key = idempotency::record_key(&work.run_id, &work.customer, &work.account, &step);
            let finished = matches!(
                idempotency::record(self.ports.store.as_ref(), &key).await,
                Ok(Some(record)) if record.status != ItemStatus::InProgress
            );
            if finished {
                return Outcome::Retry {
                    after: Duration::ZERO,
                    reason,
                };
            }
            self.record_message_error(
                &work.run_id,
                &work.customer,
                &work.account,
                &step,
                queue,
                message,
                &reason,
            )
            .await;
        }
        Outcome::Retry {
            after: Duration::ZERO,
            reason,
        }
    }

    /// A message that cannot be handled at all: record why against its account's run, and
    /// dead-letter it.
    async fn reject(
        &self,
        queue: &str,
        message: &ReceivedMessage,
        run_id: Option<&str>,
        reason: String,
    ) -> Outcome {
        warn!(queue, message_id = %message.message_id, %reason, "rejecting malformed message");
        if let Some((customer, account)) = self.names.parse_account_queue(queue) {
            let run = match run_id {
                Some(run) => Some(run.to_string()),
                None => match self.ledger.current_run(&customer, &account).await {
                    Ok(run) => run,
                    Err(e) => {
                        warn!(queue, error = %e, "cannot read the account's current run to record the rejection");
                        None
                    }
                },
            };
            // Not a step: the error is keyed by the message, which no replay can clear.
            let key = format!("message {}", message.message_id);
            match run {
                Some(run) => {
                    self.record_message_error(&run, &customer, &account, &key, queue, message, &reason)
                        .await
                }
                None => warn!(queue, "no current run for this queue's account: the rejected message is only in the DLQ"),
            }
        }
        Outcome::DeadLetter { reason }
    }

    /// Why a FinalizeAccount does not match what collect planned (and recorded in the
    /// ledger) for its run and account, if it does not. Checked before the step is claimed,
    /// so a forged or stale finalize can neither allocate what it claims nor take the
    /// real finalize's idempotency record.
    async fn finalize_mismatch(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
    ) -> Result<Option<String>, accessflow_shared::ports::PortError> {
        let state = self
            .ledger
            .account_state(&work.run_id, &work.customer, &work.account)
            .await?;
        let Some((state, _)) = state else {
            return Ok(Some(format!(
                "run {} has no account {} of customer {}",
                work.run_id, work.account, work.customer
            )));
        };
        let planned = (state.progress.items, state.progress.snapshot.as_deref());
        if planned != (Some(items), Some(snapshot)) {
            return Ok(Some(format!(
                "FinalizeAccount names {items} items of snapshot {snapshot}, but collect planned {} of {}",
                planned.0.map_or("no".to_string(), |n| n.to_string()),
                planned.1.unwrap_or("no snapshot"),
            )));
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_message_error(
        &self,
        run: &str,
        customer: &str,
        account: &str,
        step: &str,
        queue: &str,
        message: &ReceivedMessage,
        reason: &str,
    ) {
        let error = MessageError {
            step: step.to_string(),
            message_id: message.message_id.clone(),
            queue: queue.to_string(),
            reason: reason.to_string(),
        };
        if let Err(e) = self
            .ledger
            .record_message_error(run, customer, account, &error)
            .await
        {
            warn!(error = %e, "could not record the message error in the ledger; the DLQ still holds the message");
        }
    }

    /// Claims `step`; `Ok(false)` means it was already finished (nothing to do).
    async fn claim(
        &self,
        work: &AccountWork,
        step: Step,
        attempt: &Attempt<'_>,
    ) -> Result<bool, StepError> {
        let claimed = self
            .claims
            .claim(work, step, attempt.lease, attempt.replayed)
            .await?;
        Ok(claimed == Claimed::Acquired)
    }

    async fn locator(&self, work: &AccountWork) -> Result<AccountLocator, StepError> {
        let key = (work.customer.clone(), work.account.clone());
        if let Some((at, locator)) = self.locators.lock().await.get(&key) {
            if at.elapsed() < LOCATOR_TTL {
                return Ok(locator.clone());
            }
        }
        match self.ledger.tenant(&work.customer, &work.account).await? {
            Some(tenant) => {
                self.locators
                    .lock()
                    .await
                    .insert(key, (std::time::Instant::now(), tenant.locator.clone()));
                Ok(tenant.locator)
            }
            None => Err(StepError::Permanent(format!(
                "account {} of customer {} is not in the tenant registry (was it removed from the tenants file?)",
                work.account, work.customer
            ))),
        }
    }

    async fn progress(&self, work: &AccountWork) -> Result<(AccountProgress, u64), StepError> {
        match self.ledger.account_state(&work.run_id, &work.customer, &work.account).await? {
            Some((state, version)) => Ok((state.progress, version)),
            None => Err(StepError::Permanent(format!(
                "run {} has no ledger entry for customer {} account {}: the run was not opened by a coordinator",
                work.run_id, work.customer, work.account
            ))),
        }
    }

    /// A collect or finalize that fails for good (permanently, or transiently on its last
    /// allowed receive) marks the account failed with the reason, so the run still
    /// completes and says why; the message then goes to the DLQ.
    async fn fail_account_if_final(
        &self,
        work: &AccountWork,
        attempt: &Attempt<'_>,
        what: &str,
        result: Result<(), StepError>,
    ) -> Result<(), StepError> {
        let reason = match result {
            Err(StepError::Permanent(reason)) => format!("{what} failed: {reason}"),
            Err(StepError::Transient(reason)) if attempt.last_attempt => {
                format!("{what} failed on its last allowed attempt: {reason}")
            }
            other => return other,
        };
        self.fail_account(work, attempt, &reason).await?;
        Err(StepError::Permanent(reason))
    }

    async fn fail_account(
        &self,
        work: &AccountWork,
        attempt: &Attempt<'_>,
        reason: &str,
    ) -> Result<(), StepError> {
        let (mut progress, version) = self.progress(work).await?;
        progress.status = AccountStatus::Failed;
        progress.reason = Some(reason.to_string());
        self.claims
            .commit(attempt.lease, |token| {
                vec![
                    idempotency::finish_op(
                        token,
                        ItemStatus::Failed,
                        None,
                        Some(reason.to_string()),
                    ),
                    self.ledger.progress_op(&work.run_id, &progress, version),
                ]
            })
            .await
    }

    /// The parsed snapshot `digest`, from this process's small cache or from the blob store.
    async fn load_snapshot(
        &self,
        work: &AccountWork,
        digest: &str,
    ) -> Result<Arc<LoadedSnapshot>, StepError> {
        if let Some(hit) = self.cached_snapshot(digest).await {
            return Ok(hit);
        }
        let raw = self
            .caches
            .get_snapshot(&work.customer, &work.account, digest)
            .await?;
        self.parse_snapshot(digest, raw).await
    }

    /// The parsed snapshot `digest` if this process holds it.
    async fn cached_snapshot(&self, digest: &str) -> Option<Arc<LoadedSnapshot>> {
        self.snapshots
            .lock()
            .await
            .iter()
            .find(|s| s.digest == digest)
            .cloned()
    }

    /// Parses `raw` (the snapshot `digest`) and keeps it in this process's small cache.
    async fn parse_snapshot(
        &self,
        digest: &str,
        raw: AccountSnapshotRaw,
    ) -> Result<Arc<LoadedSnapshot>, StepError> {
        let parsed = tokio::task::spawn_blocking(move || {
            let model = AccountModel::parse(&raw.authorization_details).map_err(|e| {
                format!("the account's authorization details cannot be parsed: {e}")
            })?;
            let resources = match &raw.resources {
                Some(bytes) => Some(
                    accessflow_analysis::resources::ResourceInventory::parse(bytes).map_err(
                        |e| format!("the account's resource inventory (resources.json) cannot be parsed: {e}"),
                    )?,
                ),
                None => None,
            };
            Ok::<_, String>((model, resources, raw))
        })
        .await
        .map_err(|e| StepError::Transient(format!("parsing task failed: {e}")))?
        .map_err(StepError::Permanent)?;
        let (model, resources, raw) = parsed;
        let loaded = Arc::new(LoadedSnapshot {
            digest: digest.to_string(),
            model,
            credential_report: String::from_utf8_lossy(&raw.credential_report).into_owned(),
            resources,
        });
        let mut cache = self.snapshots.lock().await;
        if !cache.iter().any(|s| s.digest == digest) {
            cache.push_front(loaded.clone());
            cache.truncate(SNAPSHOT_CACHE_SIZE);
        }
        Ok(loaded)
    }
}

/// Where a run's reports of one account go.
pub fn report_prefix(customer: &str, run_id: &str, account: &str) -> String {
    format!("{customer}/reports/{run_id}/{account}")
}

/// The cores this process may use (its CPU quota in a container): the threads a batch's
/// evaluations and an account's results read back are spread over.
fn process_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Backoff for transient failures: doubling with the receive count, with jitter, capped.
fn retry_delay(receive_count: u32) -> Duration {
    let base = 1u64 << receive_count.min(8);
    let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0..base);
    Duration::from_secs((base + jitter).min(300))
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string())
}
