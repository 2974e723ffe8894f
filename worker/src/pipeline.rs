//! The three steps of an account's analysis (DESIGN.md §2), one handler each:
//!
//! - `CollectAccount`: snapshot the account's IAM data (content-addressed, cached), plan one
//!   `AnalyzePrincipal` per principal and a `FinalizeAccount`, and send them to the
//!   account's own queue — behind the collect message in the same FIFO group;
//! - `AnalyzePrincipal`: last-accessed data (cached) + evaluation (cached by digest) → the
//!   item's outcome;
//! - `FinalizeAccount`: runs after every item of its group has finished or been
//!   dead-lettered (FIFO order gives the fan-in), aggregates the outcomes into the reports
//!   and marks the account done.
//!
//! Every step claims an idempotency record first and writes its effects together with the
//! record's final state in one transaction, so redelivery never doubles an effect.
//! Handlers return an [`Outcome`]; what that means for the message is the consumer's job.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use accessflow_shared::cache::{CacheError, Caches};
use accessflow_shared::config::Settings;
use accessflow_shared::idempotency::{self, Claim, ClaimToken, ItemStatus};
use accessflow_shared::ledger::{
    self, AccountProgress, AccountStatus, ItemOutcome, Ledger, MessageError, ReportRef,
    COUNTER_DONE, COUNTER_FAILED, COUNTER_LA_REUSED, COUNTER_REUSED,
};
use accessflow_shared::message::{AccountWork, WorkMessage, REPLAY_ATTRIBUTE};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::{
    AccountLocator, Condition, OutgoingMessage, PortError, Ports, ReceivedMessage, WriteOp,
    MAX_BATCH,
};
use tokio::sync::Mutex;
use tracing::{info, warn, Instrument};

use accessflow_analysis::{
    AccountModel, AccountReport, Engine, LastAccessed, PrincipalAnalysis, PrincipalFailure,
};

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

/// A failure inside a handler, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("{0}")]
    Transient(String),
    /// Another live holder has the step: retry once its lease has run out.
    #[error("{1}")]
    Busy(Duration, String),
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

/// A parsed snapshot, shared by the items of a run that land on this process.
struct LoadedSnapshot {
    digest: String,
    model: AccountModel,
    credential_report: String,
}

/// How many parsed snapshots a worker keeps (one per account it is working on, roughly).
const SNAPSHOT_CACHE_SIZE: usize = 4;

/// Everything the handlers need; one per worker process, shared by its tasks.
pub struct Pipeline {
    ports: Ports,
    ledger: Ledger,
    caches: Caches,
    engine: Arc<Engine>,
    names: Names,
    settings: Settings,
    /// Identifies this process in idempotency records.
    owner: String,
    snapshots: Mutex<VecDeque<Arc<LoadedSnapshot>>>,
    /// Tenant registry entries, briefly cached: one read per account, not per item.
    locators: Mutex<HashMap<(String, String), (std::time::Instant, AccountLocator)>>,
}

/// How long a cached tenant registry entry is trusted.
const LOCATOR_TTL: Duration = Duration::from_secs(60);

impl Pipeline {
    pub fn new(ports: Ports, settings: Settings, names: Names, engine: Arc<Engine>) -> Pipeline {
        let ledger = Ledger::new(ports.store.clone());
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
        Pipeline {
            ports,
            ledger,
            caches,
            engine,
            names,
            settings,
            owner,
            snapshots: Mutex::new(VecDeque::new()),
            locators: Mutex::new(HashMap::new()),
        }
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Handles one received message from `queue`.
    pub async fn handle(
        &self,
        queue: &str,
        message: &ReceivedMessage,
        held: &HeldClaim,
    ) -> Outcome {
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
        let span = tracing::info_span!(
            "message",
            run = %work.run_id,
            customer = %work.customer,
            account = %work.account,
            kind = decoded.kind(),
            receive_count = message.receive_count,
        );
        let result = async {
            match &decoded {
                WorkMessage::CollectAccount { work } => self.collect(work, held).await,
                WorkMessage::AnalyzePrincipal {
                    work,
                    snapshot,
                    item,
                    principal_arn,
                } => {
                    self.analyze(work, snapshot, *item, principal_arn, held)
                        .await
                }
                WorkMessage::FinalizeAccount {
                    work,
                    snapshot,
                    items,
                    generation,
                } => {
                    self.finalize(work, snapshot, *items, *generation, held)
                        .await
                }
            }
        }
        .instrument(span.clone())
        .await;
        // Whatever happened, a claim still held is given back so the next receiver can take
        // it at once instead of waiting for the lease.
        if let Some(token) = held.take().await {
            if let Err(e) = idempotency::release(self.ledger.store(), &token).await {
                warn!(parent: &span, error = %e, "could not release an idempotency claim; it expires with its lease");
            }
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
                    &step_of(&decoded),
                    queue,
                    message,
                    &reason,
                )
                .await;
                Outcome::DeadLetter { reason }
            }
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
            let step = format!("message {}", message.message_id);
            match run {
                Some(run) => {
                    self.record_message_error(&run, &customer, &account, &step, queue, message, &reason)
                        .await
                }
                None => warn!(queue, "no current run for this queue's account: the rejected message is only in the DLQ"),
            }
        }
        Outcome::DeadLetter { reason }
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

    /// Claims an idempotency record; `Ok(None)` means the step was already finished.
    async fn claim(
        &self,
        work: &AccountWork,
        step: &str,
        held: &HeldClaim,
    ) -> Result<Option<ClaimToken>, StepError> {
        let key = idempotency::record_key(&work.run_id, &work.customer, &work.account, step);
        match idempotency::claim(
            self.ledger.store(),
            &self.ports.clock,
            &key,
            &self.owner,
            self.settings.visibility_timeout(),
            held.replayed,
        )
        .await?
        {
            Claim::Acquired(token) => {
                held.set(token.clone()).await;
                Ok(Some(token))
            }
            Claim::Finished(record) => {
                info!(step, status = ?record.status, "already finished; dropping the duplicate");
                Ok(None)
            }
            Claim::Held {
                lease_until_ms,
                owner,
            } => {
                let remaining = (lease_until_ms - accessflow_shared::clock::now_ms()).max(0) as u64;
                Err(StepError::Busy(
                    Duration::from_millis(remaining + 100),
                    format!("{step} is held by {owner} for another {remaining} ms"),
                ))
            }
        }
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

    // ---- CollectAccount -------------------------------------------------------------

    async fn collect(&self, work: &AccountWork, held: &HeldClaim) -> Result<(), StepError> {
        if self.claim(work, "collect", held).await?.is_none() {
            return Ok(());
        }
        let result = self.collect_claimed(work, held).await;
        self.fail_account_if_final(work, held, "collecting the account", result)
            .await
    }

    /// A collect or finalize that fails for good (permanently, or transiently on its last
    /// allowed receive) marks the account failed with the reason, so the run still
    /// completes and says why; the message then goes to the DLQ.
    async fn fail_account_if_final(
        &self,
        work: &AccountWork,
        held: &HeldClaim,
        what: &str,
        result: Result<(), StepError>,
    ) -> Result<(), StepError> {
        let reason = match result {
            Err(StepError::Permanent(reason)) => format!("{what} failed: {reason}"),
            Err(StepError::Transient(reason)) if held.last_attempt => {
                format!("{what} failed on its last allowed attempt: {reason}")
            }
            other => return other,
        };
        self.fail_account(work, held, &reason).await?;
        Err(StepError::Permanent(reason))
    }

    async fn collect_claimed(&self, work: &AccountWork, held: &HeldClaim) -> Result<(), StepError> {
        let locator = self.locator(work).await?;
        let (mut progress, version) = self.progress(work).await?;
        let raw = self.ports.iam.fetch_account(&locator).await?;
        let (digest, snapshot_reused) = self
            .caches
            .put_snapshot(&work.customer, &work.account, &raw)
            .await?;
        let loaded = self.load_snapshot(work, &digest).await?;
        let principals = loaded.model.principals();
        let items = u32::try_from(principals.len()).map_err(|_| {
            StepError::Permanent(format!(
                "{} principals is more than one run can plan",
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
        for batch in messages.chunks(MAX_BATCH) {
            self.ports.queues.send_batch(&queue, batch).await?;
        }

        progress.status = AccountStatus::Analyzing;
        progress.items = Some(items);
        progress.snapshot = Some(digest.clone());
        progress.snapshot_reused = snapshot_reused;
        progress.reason = None; // a replayed collect clears the failure it had recorded
        self.commit(held, |token| {
            vec![
                idempotency::finish_op(token, ItemStatus::Done, Some(digest), None),
                Ledger::progress_op(&work.run_id, &progress, version),
                Ledger::clear_error_op(&work.run_id, &work.customer, &work.account, "collect"),
            ]
        })
        .await
    }

    async fn fail_account(
        &self,
        work: &AccountWork,
        held: &HeldClaim,
        reason: &str,
    ) -> Result<(), StepError> {
        let (mut progress, version) = self.progress(work).await?;
        progress.status = AccountStatus::Failed;
        progress.reason = Some(reason.to_string());
        self.commit(held, |token| {
            vec![
                idempotency::finish_op(token, ItemStatus::Failed, None, Some(reason.to_string())),
                Ledger::progress_op(&work.run_id, &progress, version),
            ]
        })
        .await
    }

    /// Writes a step's effects together with its idempotency record's final state, in one
    /// transaction. The claim is taken away from the heartbeat first, so no lease extension
    /// can move its version between building the writes and committing them. If the
    /// commit's condition fails, the record decides: finished by another holder means our
    /// effect must not land and nothing is lost; otherwise the step is retried.
    async fn commit(
        &self,
        held: &HeldClaim,
        build: impl FnOnce(&ClaimToken) -> Vec<WriteOp>,
    ) -> Result<(), StepError> {
        let Some(token) = held.take().await else {
            return Err(StepError::Transient(
                "the step's claim is no longer held; it will be retried".into(),
            ));
        };
        let store = self.ledger.store();
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

    /// The parsed snapshot `digest`, from this process's small cache or from the blob store.
    async fn load_snapshot(
        &self,
        work: &AccountWork,
        digest: &str,
    ) -> Result<Arc<LoadedSnapshot>, StepError> {
        if let Some(hit) = self
            .snapshots
            .lock()
            .await
            .iter()
            .find(|s| s.digest == digest)
        {
            return Ok(hit.clone());
        }
        let raw = self
            .caches
            .get_snapshot(&work.customer, &work.account, digest)
            .await?;
        let model = tokio::task::spawn_blocking(move || {
            AccountModel::parse(&raw.authorization_details).map(|m| (m, raw))
        })
        .await
        .map_err(|e| StepError::Transient(format!("parsing task failed: {e}")))?
        .map_err(|e| {
            StepError::Permanent(format!(
                "the account's authorization details cannot be parsed: {e}"
            ))
        })?;
        let (model, raw) = model;
        let loaded = Arc::new(LoadedSnapshot {
            digest: digest.to_string(),
            model,
            credential_report: String::from_utf8_lossy(&raw.credential_report).into_owned(),
        });
        let mut cache = self.snapshots.lock().await;
        if !cache.iter().any(|s| s.digest == digest) {
            cache.push_front(loaded.clone());
            cache.truncate(SNAPSHOT_CACHE_SIZE);
        }
        Ok(loaded)
    }

    // ---- AnalyzePrincipal -----------------------------------------------------------

    async fn analyze(
        &self,
        work: &AccountWork,
        snapshot: &str,
        item: u32,
        principal_arn: &str,
        held: &HeldClaim,
    ) -> Result<(), StepError> {
        let step = format!("item#{item:06}");
        if self.claim(work, &step, held).await?.is_none() {
            return Ok(());
        }
        let loaded = self.load_snapshot(work, snapshot).await?;

        let (last_accessed, la_reused) = self.last_accessed(work, principal_arn).await?;
        let evaluation = self
            .evaluate(work, &loaded, principal_arn, last_accessed.as_deref())
            .await?;

        let mut deltas = std::collections::BTreeMap::new();
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
        self.commit(held, |token| {
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
                    expires_at: None,
                    condition: Condition::NotExists,
                },
                Ledger::clear_error_op(&work.run_id, &work.customer, &work.account, &step),
            ]
        })
        .await
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
            engine
                .analyze_principal(&loaded.model, &arn, parsed_last_accessed.as_ref())
                .map_err(|e| e.to_string())
                .and_then(|result| serde_json::to_vec(&result).map_err(|e| e.to_string()))
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

    // ---- FinalizeAccount ------------------------------------------------------------

    async fn finalize(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
        generation: u32,
        held: &HeldClaim,
    ) -> Result<(), StepError> {
        let step = match generation {
            0 => "finalize".to_string(),
            g => format!("finalize#{g}"),
        };
        if self.claim(work, &step, held).await?.is_none() {
            return Ok(());
        }
        let result = self
            .finalize_claimed(work, snapshot, items, &step, held)
            .await;
        self.fail_account_if_final(work, held, "building the reports", result)
            .await
    }

    async fn finalize_claimed(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
        step: &str,
        held: &HeldClaim,
    ) -> Result<(), StepError> {
        let loaded = self.load_snapshot(work, snapshot).await?;
        let principals = loaded.model.principals();
        let outcomes = self
            .ledger
            .item_outcomes(&work.run_id, &work.customer, &work.account)
            .await?;

        let mut errors: std::collections::BTreeMap<String, MessageError> = self
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
                    reason: match errors.remove(&format!("item#{item:06}")) {
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
        self.commit(held, |token| {
            vec![
                idempotency::finish_op(token, ItemStatus::Done, None, None),
                Ledger::progress_op(&work.run_id, &progress, version),
                Ledger::clear_error_op(&work.run_id, &work.customer, &work.account, step),
                WriteOp::Put {
                    key: ledger::report_ref_key(&work.customer, &work.account, &work.run_id),
                    value: serde_json::to_value(&reference).unwrap_or_default(),
                    expires_at: None,
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

/// The idempotency step of a message (also the key of its recorded error).
fn step_of(message: &WorkMessage) -> String {
    match message {
        WorkMessage::CollectAccount { .. } => "collect".to_string(),
        WorkMessage::AnalyzePrincipal { item, .. } => format!("item#{item:06}"),
        WorkMessage::FinalizeAccount { generation: 0, .. } => "finalize".to_string(),
        WorkMessage::FinalizeAccount { generation, .. } => format!("finalize#{generation}"),
    }
}

/// Where a run's reports of one account go.
pub fn report_prefix(customer: &str, run_id: &str, account: &str) -> String {
    format!("{customer}/reports/{run_id}/{account}")
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

/// The idempotency claim a message's handler holds, visible to the heartbeat so it can
/// extend the lease together with the message's visibility.
#[derive(Default, Clone)]
pub struct HeldClaim {
    token: Arc<Mutex<Option<ClaimToken>>>,
    /// The message being handled was replayed from a DLQ: a failed step may be retried.
    replayed: bool,
    /// This is the message's last receive before the queue dead-letters it.
    last_attempt: bool,
}

impl HeldClaim {
    /// The claim slot for one message.
    pub fn for_message(message: &ReceivedMessage, max_receive_count: u32) -> HeldClaim {
        HeldClaim {
            token: Arc::default(),
            replayed: message.attributes.contains_key(REPLAY_ATTRIBUTE),
            last_attempt: message.receive_count >= max_receive_count,
        }
    }

    async fn set(&self, token: ClaimToken) {
        *self.token.lock().await = Some(token);
    }

    async fn take(&self) -> Option<ClaimToken> {
        self.token.lock().await.take()
    }

    /// Extends the held claim's lease, if one is held.
    pub async fn extend(
        &self,
        store: &dyn accessflow_shared::ports::KeyValueStore,
        lease: Duration,
    ) -> Result<(), PortError> {
        let guard = self.token.lock().await;
        match guard.as_ref() {
            Some(token) => idempotency::extend(store, token, lease).await,
            None => Ok(()),
        }
    }
}
