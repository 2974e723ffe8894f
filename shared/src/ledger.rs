//! The run ledger: what a run expects, what is done, what failed — per account and per run.
//!
//! Layout in the key-value port (one partition per run for its accounts, one per account
//! and run for its items, so no single item takes a whole run's writes):
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `runs` | `<run>` | the run's header (as-of time, accounts in dispatch order) |
//! | `run#<run>` | `acct#<customer>#<account>` | account progress; counters `done`, `failed`, `reused` |
//! | `run#<run>` | `err#<customer>#<account>#<step>` | a message that could not be processed |
//! | `items#<run>#<customer>#<account>` | `<first item, 6 digits>+<count>` | the outcomes of a batch of principals |
//! | `items#<run>#<customer>#<account>` | `<item, 6 digits>` | one principal's outcome (single-item steps, and batches before outcome records were per batch) |
//! | `acct#<customer>#<account>` | `current-run` | the run the account's queue is working on |
//! | `acct#<customer>#<account>` | `report#<run>` | a finished report (drives the diff and the size hint) |
//! | `tenants` | `<customer>#<account>` | the tenant registry: how to reach the account |
//! | `active` | `<customer>#<account>` | an account with work outstanding: the queues workers poll |
//! | `ops` | `replays#<customer>` | messages `coordinator dlq replay` sent back (counter `messages`) |

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::clock::Clock;
use crate::ports::{
    AccountLocator, Condition, KeyValueStore, PortError, PortResult, Record, StoreKey, WriteOp,
};

/// A run's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    pub run_id: String,
    /// RFC 3339 time the run reports as its analysis time.
    pub as_of: String,
    /// (customer, account) in dispatch order: largest expected work first.
    pub accounts: Vec<(String, String)>,
    /// RFC 3339 wall-clock time by which the run must be finished: accounts still
    /// unfinished then are marked failed (see [`Ledger::fail_unfinished`]), so a run whose
    /// workers are gone still ends, and says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// RFC 3339 wall-clock time the run was opened (its as-of time may be set to another):
    /// what the exporter measures progress, ETA and waiting from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// CollectAccount published, not yet collected.
    Published,
    /// Snapshot taken, items sent.
    Analyzing,
    /// Report written.
    Finalized,
    /// The account could not be collected at all (see `reason`).
    Failed,
}

impl AccountStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, AccountStatus::Finalized | AccountStatus::Failed)
    }
}

/// An account's progress within a run (the document; counters live beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountProgress {
    pub customer: String,
    pub account: String,
    pub status: AccountStatus,
    /// Items planned (known once collected).
    #[serde(default)]
    pub items: Option<u32>,
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Whether the snapshot was already stored by an earlier run.
    #[serde(default)]
    pub snapshot_reused: bool,
    #[serde(default)]
    pub partial: bool,
    /// Where the reports are (finalized).
    #[serde(default)]
    pub report_location: Option<String>,
    /// Why the account failed or is partial.
    #[serde(default)]
    pub reason: Option<String>,
}

/// An account's progress with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub progress: AccountProgress,
    pub done: u64,
    pub failed: u64,
    /// Items whose result came from the result cache.
    pub reused: u64,
    /// Items whose last-accessed data came from the cache.
    pub last_accessed_reused: u64,
    /// Wall milliseconds the workers spent on the items (summed over batches): what the
    /// next run sizes its batches from.
    pub item_ms: u64,
}

impl AccountState {
    /// Measured milliseconds per item, if any item was measured.
    pub fn ms_per_item(&self) -> Option<f64> {
        let items = self.done + self.failed;
        (items > 0 && self.item_ms > 0).then(|| self.item_ms as f64 / items as f64)
    }
}

/// The outcome of one item, written with its step's idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemOutcome {
    pub principal_arn: String,
    /// Blob key of the sealed result (success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_key: Option<String>,
    /// Why the item failed (failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A message that could not be processed, recorded against its account's current run.
/// Keyed by its step (`collect`, `items#000090+45`, `finalize`) when the message could be
/// decoded — so a successful replay of the step deletes it — else by the message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    /// The step, or `message <id>` for a message that could not be decoded.
    #[serde(default)]
    pub step: String,
    pub message_id: String,
    pub queue: String,
    pub reason: String,
}

/// An account with work outstanding: its queue is one the workers poll. Written when work
/// is published for it (a run is opened, a DLQ is replayed); retired by the worker that
/// finds its queue empty once the account is finished in `run_id` (see
/// [`Ledger::retire`]). So an idle deployment polls no queue at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveAccount {
    pub customer: String,
    pub account: String,
    /// The run whose work made it active.
    pub run_id: String,
    /// Its place in the run's dispatch order (largest expected work first).
    pub order: u32,
    /// The record's version: retiring it is conditional on nobody having marked it since.
    #[serde(skip)]
    pub version: u64,
}

/// A finished report, kept per account for the next run's diff and dispatch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRef {
    pub run_id: String,
    /// The run's as-of time (RFC 3339, UTC): what orders reports, not the run id.
    #[serde(default)]
    pub as_of: String,
    /// Blob key prefix of the report files.
    pub prefix: String,
    pub principals: u64,
    pub partial: bool,
    /// Digest of everything the report was built from (the worker's finalize): a later
    /// run with the same digest carries this report forward instead of building it again.
    /// `None` in references written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
}

/// An account in the tenant registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantAccount {
    pub locator: AccountLocator,
    /// Expected work when no earlier run measured it (e.g. the sample's size).
    #[serde(default)]
    pub size_hint: u64,
    /// When reconcile last created or changed the account's subscription (epoch millis):
    /// its filter policy may not apply yet, so `start` sends straight to the queue until
    /// the backend's propagation delay has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_at_ms: Option<i64>,
}

pub const COUNTER_DONE: &str = "done";
pub const COUNTER_FAILED: &str = "failed";
pub const COUNTER_REUSED: &str = "reused";
pub const COUNTER_LA_REUSED: &str = "last_accessed_reused";
pub const COUNTER_ITEM_MS: &str = "item_ms";

pub fn runs_key(run_id: &str) -> StoreKey {
    StoreKey::new("runs", run_id)
}
pub fn account_key(run_id: &str, customer: &str, account: &str) -> StoreKey {
    StoreKey::new(
        format!("run#{run_id}"),
        format!("acct#{customer}#{account}"),
    )
}
pub fn message_error_key(run_id: &str, customer: &str, account: &str, step: &str) -> StoreKey {
    StoreKey::new(
        format!("run#{run_id}"),
        format!("err#{customer}#{account}#{step}"),
    )
}
pub fn item_key(run_id: &str, customer: &str, account: &str, item: u32) -> StoreKey {
    StoreKey::new(
        format!("items#{run_id}#{customer}#{account}"),
        format!("{item:06}"),
    )
}
/// The record of the outcomes of the batch step `items#<first>+<count>`: one record per
/// batch rather than per principal, because DynamoDB bills every item written (twice in a
/// transaction), whatever its size.
pub fn batch_outcomes_key(
    run_id: &str,
    customer: &str,
    account: &str,
    first_item: u32,
    count: usize,
) -> StoreKey {
    StoreKey::new(
        format!("items#{run_id}#{customer}#{account}"),
        format!("{first_item:06}+{count}"),
    )
}

/// The value of a batch's outcome record: the outcome of each item of the batch that had
/// none before the batch ran, by item number. Stored compactly ([`StoredBatch`]), since
/// DynamoDB bills every KB written, twice in a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredBatch", from = "StoredBatch")]
pub struct BatchOutcomes {
    pub outcomes: BTreeMap<u32, ItemOutcome>,
}

/// How a batch's outcomes are stored: the prefix the batch's principal ARNs share and the
/// one its result keys share (e.g. `arn:aws:iam::111122223333:` and
/// `acme/results/111122223333/`) once, then one short entry per item. About 100 bytes a
/// principal instead of 230.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredBatch {
    arn_prefix: String,
    key_prefix: String,
    items: Vec<StoredOutcome>,
}

/// One item of a [`StoredBatch`]: its number (`i`), the rest of its principal's ARN (`a`),
/// and the rest of its result key (`k`) or why it failed (`e`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredOutcome {
    i: u32,
    a: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

/// The longest prefix all of `texts` share, cut on a character boundary.
fn common_prefix<'a>(mut texts: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = texts.next() else {
        return String::new();
    };
    let mut len = first.len();
    for text in texts {
        len = first
            .bytes()
            .zip(text.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    first[..len].to_string()
}

impl From<BatchOutcomes> for StoredBatch {
    fn from(batch: BatchOutcomes) -> StoredBatch {
        let arn_prefix = common_prefix(batch.outcomes.values().map(|o| o.principal_arn.as_str()));
        let key_prefix = common_prefix(
            batch
                .outcomes
                .values()
                .filter_map(|o| o.result_key.as_deref()),
        );
        let items = batch
            .outcomes
            .into_iter()
            .map(|(item, outcome)| StoredOutcome {
                i: item,
                a: outcome.principal_arn[arn_prefix.len()..].to_string(),
                k: outcome
                    .result_key
                    .map(|key| key[key_prefix.len()..].to_string()),
                e: outcome.error,
            })
            .collect();
        StoredBatch {
            arn_prefix,
            key_prefix,
            items,
        }
    }
}

impl From<StoredBatch> for BatchOutcomes {
    fn from(stored: StoredBatch) -> BatchOutcomes {
        let outcomes = stored
            .items
            .into_iter()
            .map(|item| {
                let outcome = ItemOutcome {
                    principal_arn: format!("{}{}", stored.arn_prefix, item.a),
                    result_key: item.k.map(|rest| format!("{}{rest}", stored.key_prefix)),
                    error: item.e,
                };
                (item.i, outcome)
            })
            .collect();
        BatchOutcomes { outcomes }
    }
}

/// The longest failure reason a batch's outcome record keeps per item: a batch of the
/// largest ARNs and long reasons still fits a DynamoDB item (400 KB).
pub const MAX_STORED_REASON_BYTES: usize = 1024;

pub fn current_run_key(customer: &str, account: &str) -> StoreKey {
    StoreKey::new(format!("acct#{customer}#{account}"), "current-run")
}
pub fn report_ref_key(customer: &str, account: &str, run_id: &str) -> StoreKey {
    StoreKey::new(
        format!("acct#{customer}#{account}"),
        format!("report#{run_id}"),
    )
}
pub fn tenant_key(customer: &str, account: &str) -> StoreKey {
    StoreKey::new("tenants", format!("{customer}#{account}"))
}

pub fn active_key(customer: &str, account: &str) -> StoreKey {
    StoreKey::new("active", format!("{customer}#{account}"))
}

pub fn replays_key(customer: &str) -> StoreKey {
    StoreKey::new("ops", format!("replays#{customer}"))
}

pub(crate) fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

pub(crate) fn from_record<T: DeserializeOwned>(record: &Record) -> PortResult<T> {
    serde_json::from_value(record.value.clone()).map_err(|e| PortError::Permanent {
        op: "ledger",
        message: format!("ledger item {} is unreadable: {e}", record.key),
    })
}

fn counter(record: &Record, name: &str) -> u64 {
    record.counters.get(name).copied().unwrap_or(0).max(0) as u64
}

/// How long a run's records (header, accounts, items, errors, report references) live
/// before the store expires them: the backstop behind `coordinator gc --keep-days`, which
/// deletes old runs (and their reports and blobs) on purpose.
pub const RUN_RECORD_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// Typed access to the ledger over any key-value backend.
#[derive(Clone)]
pub struct Ledger {
    store: std::sync::Arc<dyn KeyValueStore>,
    /// What record expiry times are counted from.
    clock: Clock,
}

impl Ledger {
    /// The ledger on `store`, its records' expiry counted on the system clock.
    pub fn new(store: std::sync::Arc<dyn KeyValueStore>) -> Ledger {
        Ledger::with_clock(store, Clock::system())
    }

    /// The ledger on `store`, its records' expiry counted on `clock`.
    pub fn with_clock(store: std::sync::Arc<dyn KeyValueStore>, clock: Clock) -> Ledger {
        Ledger { store, clock }
    }

    /// The expiry (epoch seconds) of a run record written now.
    pub fn expiry(&self) -> Option<i64> {
        Some(self.clock.now_secs() + RUN_RECORD_TTL.as_secs() as i64)
    }

    pub fn store(&self) -> &dyn KeyValueStore {
        self.store.as_ref()
    }

    // ---- tenant registry -------------------------------------------------------------

    pub async fn put_tenant(&self, tenant: &TenantAccount) -> PortResult<()> {
        let key = tenant_key(&tenant.locator.customer, &tenant.locator.account);
        self.store
            .put(&key, to_value(tenant), None, Condition::None)
            .await
            .map(|_| ())
    }

    pub async fn delete_tenant(&self, customer: &str, account: &str) -> PortResult<()> {
        self.store
            .delete(&tenant_key(customer, account), Condition::None)
            .await
    }

    pub async fn tenant(&self, customer: &str, account: &str) -> PortResult<Option<TenantAccount>> {
        match self.store.get(&tenant_key(customer, account)).await? {
            Some(record) => from_record(&record).map(Some),
            None => Ok(None),
        }
    }

    pub async fn tenants(&self) -> PortResult<Vec<TenantAccount>> {
        self.store
            .query("tenants", "")
            .await?
            .iter()
            .map(from_record)
            .collect()
    }

    // ---- runs ------------------------------------------------------------------------

    /// Opens a run: its header and one `Published` progress item per account, and points
    /// each account at the run. Fails with a condition error if the run id exists.
    pub async fn open_run(&self, header: &RunHeader) -> PortResult<()> {
        self.store
            .put(
                &runs_key(&header.run_id),
                to_value(header),
                self.expiry(),
                Condition::NotExists,
            )
            .await?;
        self.open_missing_accounts(header).await
    }

    /// Writes the `Published` progress item of every account of the run that has none yet
    /// (all of them for a new run; what a coordinator that died while opening the run did
    /// not get to, when it is resumed), and points each such account at the run.
    pub async fn open_missing_accounts(&self, header: &RunHeader) -> PortResult<()> {
        for (order, (customer, account)) in header.accounts.iter().enumerate() {
            let progress = AccountProgress {
                customer: customer.clone(),
                account: account.clone(),
                status: AccountStatus::Published,
                items: None,
                snapshot: None,
                snapshot_reused: false,
                partial: false,
                report_location: None,
                reason: None,
            };
            let ops = vec![
                WriteOp::Put {
                    key: account_key(&header.run_id, customer, account),
                    value: to_value(&progress),
                    expires_at: self.expiry(),
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    key: current_run_key(customer, account),
                    value: serde_json::json!({ "run_id": header.run_id }),
                    expires_at: None,
                    condition: Condition::None,
                },
                self.active_op(customer, account, &header.run_id, order as u32),
            ];
            match self.store.transact(ops).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failed() => {} // opened before
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Marks every unfinished account of a run failed with `reason` (the run's deadline
    /// passed). An account that moved on meanwhile is left alone; returns how many were
    /// marked.
    pub async fn fail_unfinished(&self, run_id: &str, reason: &str) -> PortResult<usize> {
        let mut marked = 0;
        for (customer, account) in self
            .run(run_id)
            .await?
            .map(|h| h.accounts)
            .unwrap_or_default()
        {
            let Some((state, version)) = self.account_state(run_id, &customer, &account).await?
            else {
                continue;
            };
            if state.progress.status.is_finished() {
                continue;
            }
            let mut progress = state.progress;
            progress.reason = Some(format!(
                "{reason} (it was {})",
                format!("{:?}", progress.status).to_lowercase()
            ));
            progress.status = AccountStatus::Failed;
            match self
                .store
                .transact(vec![self.progress_op(run_id, &progress, version)])
                .await
            {
                Ok(()) => marked += 1,
                Err(e) if e.is_condition_failed() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(marked)
    }

    /// Every record of a run: its header, accounts, errors, items, idempotency records and
    /// report references (`coordinator gc`; the report files are the caller's).
    pub async fn delete_run(&self, header: &RunHeader) -> PortResult<()> {
        let run = &header.run_id;
        let mut partitions = vec![format!("run#{run}")];
        for (customer, account) in &header.accounts {
            partitions.push(format!("items#{run}#{customer}#{account}"));
            partitions.push(format!("idem#{run}#{customer}#{account}"));
        }
        for pk in partitions {
            for record in self.store.query(&pk, "").await? {
                self.store.delete(&record.key, Condition::None).await?;
            }
        }
        for (customer, account) in &header.accounts {
            self.store
                .delete(&report_ref_key(customer, account, run), Condition::None)
                .await?;
        }
        self.store.delete(&runs_key(run), Condition::None).await
    }

    /// Every run header, oldest first by as-of time (then id).
    pub async fn runs(&self) -> PortResult<Vec<RunHeader>> {
        let mut runs: Vec<RunHeader> = self
            .store
            .query("runs", "")
            .await?
            .iter()
            .map(from_record)
            .collect::<PortResult<_>>()?;
        runs.sort_by(|a, b| (&a.as_of, &a.run_id).cmp(&(&b.as_of, &b.run_id)));
        Ok(runs)
    }

    pub async fn run(&self, run_id: &str) -> PortResult<Option<RunHeader>> {
        match self.store.get(&runs_key(run_id)).await? {
            Some(record) => from_record(&record).map(Some),
            None => Ok(None),
        }
    }

    /// All run ids, oldest first by their as-of time (then id).
    pub async fn run_ids(&self) -> PortResult<Vec<String>> {
        Ok(self.runs().await?.into_iter().map(|r| r.run_id).collect())
    }

    pub async fn current_run(&self, customer: &str, account: &str) -> PortResult<Option<String>> {
        Ok(self
            .store
            .get(&current_run_key(customer, account))
            .await?
            .and_then(|r| {
                r.value
                    .get("run_id")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            }))
    }

    pub async fn account_state(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
    ) -> PortResult<Option<(AccountState, u64)>> {
        match self
            .store
            .get(&account_key(run_id, customer, account))
            .await?
        {
            Some(record) => Ok(Some((state_of(&record)?, record.version))),
            None => Ok(None),
        }
    }

    /// Every account of a run with its counters, sorted by (customer, account).
    pub async fn account_states(&self, run_id: &str) -> PortResult<Vec<AccountState>> {
        self.store
            .query(&format!("run#{run_id}"), "acct#")
            .await?
            .iter()
            .map(state_of)
            .collect()
    }

    /// The write that clears a step's recorded error (its replay succeeded).
    pub fn clear_error_op(run_id: &str, customer: &str, account: &str, step: &str) -> WriteOp {
        WriteOp::Delete {
            key: message_error_key(run_id, customer, account, step),
            condition: Condition::None,
        }
    }

    /// The write that replaces an account's progress document if it is still at `version`.
    pub fn progress_op(&self, run_id: &str, progress: &AccountProgress, version: u64) -> WriteOp {
        WriteOp::Put {
            key: account_key(run_id, &progress.customer, &progress.account),
            value: to_value(progress),
            expires_at: self.expiry(),
            condition: Condition::VersionIs(version),
        }
    }

    /// Records a message that could not be processed against its account's run.
    pub async fn record_message_error(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
        error: &MessageError,
    ) -> PortResult<()> {
        let key = message_error_key(run_id, customer, account, &error.step);
        self.store
            .put(&key, to_value(error), self.expiry(), Condition::None)
            .await
            .map(|_| ())
    }

    pub async fn message_errors(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
    ) -> PortResult<Vec<MessageError>> {
        self.store
            .query(
                &format!("run#{run_id}"),
                &format!("err#{customer}#{account}#"),
            )
            .await?
            .iter()
            .map(from_record)
            .collect()
    }

    /// The outcomes of `items`, in their order, from all of the account's outcome records
    /// (one query: an item may be in any batch's record).
    pub async fn item_outcomes_of(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
        items: &[u32],
    ) -> PortResult<Vec<Option<ItemOutcome>>> {
        let mut all = self.item_outcomes(run_id, customer, account).await?;
        Ok(items.iter().map(|item| all.remove(item)).collect())
    }

    /// The write of a batch's outcome record (in the batch's commit transaction): created,
    /// never overwritten.
    pub fn batch_outcomes_op(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
        (first_item, count): (u32, usize),
        outcomes: &BatchOutcomes,
    ) -> WriteOp {
        WriteOp::Put {
            key: batch_outcomes_key(run_id, customer, account, first_item, count),
            value: to_value(outcomes),
            expires_at: self.expiry(),
            condition: Condition::NotExists,
        }
    }

    /// The account's state in the latest run before `run_id` that finished it (by as-of
    /// time), for what that run measured.
    pub async fn previous_state(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
    ) -> PortResult<Option<AccountState>> {
        let refs = self.report_refs(customer, account).await?;
        for previous in refs.iter().rev().filter(|r| r.run_id != run_id) {
            if let Some((state, _)) = self
                .account_state(&previous.run_id, customer, account)
                .await?
            {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// Item outcomes of an account in a run, by item number: from the batches' records
    /// and from single items' records alike. Should two records hold the same item (a
    /// single-item message of an earlier version replayed while a stale worker committed
    /// the batch holding it), the first record's, in key order, counts.
    pub async fn item_outcomes(
        &self,
        run_id: &str,
        customer: &str,
        account: &str,
    ) -> PortResult<BTreeMap<u32, ItemOutcome>> {
        let records = self
            .store
            .query(&format!("items#{run_id}#{customer}#{account}"), "")
            .await?;
        let mut out = BTreeMap::new();
        for record in &records {
            if record.key.sk.contains('+') {
                let batch: BatchOutcomes = from_record(record)?;
                for (item, outcome) in batch.outcomes {
                    out.entry(item).or_insert(outcome);
                }
                continue;
            }
            let item: u32 = record.key.sk.parse().map_err(|_| PortError::Permanent {
                op: "ledger",
                message: format!("ledger item {} has a bad item number", record.key),
            })?;
            out.entry(item).or_insert(from_record(record)?);
        }
        Ok(out)
    }

    // ---- accounts with work outstanding -------------------------------------------------

    fn active_op(&self, customer: &str, account: &str, run_id: &str, order: u32) -> WriteOp {
        let active = ActiveAccount {
            customer: customer.to_string(),
            account: account.to_string(),
            run_id: run_id.to_string(),
            order,
            version: 0,
        };
        WriteOp::Put {
            key: active_key(customer, account),
            value: to_value(&active),
            expires_at: None,
            condition: Condition::None,
        }
    }

    /// Marks an account as having work outstanding in `run_id` (before the work is sent,
    /// so no worker retires it in between).
    pub async fn mark_active(&self, customer: &str, account: &str, run_id: &str) -> PortResult<()> {
        self.store
            .transact(vec![self.active_op(customer, account, run_id, 0)])
            .await
    }

    /// The accounts with work outstanding, in dispatch order.
    pub async fn active_accounts(&self) -> PortResult<Vec<ActiveAccount>> {
        let mut active: Vec<ActiveAccount> = self
            .store
            .query("active", "")
            .await?
            .iter()
            .map(|r| {
                from_record::<ActiveAccount>(r).map(|mut a| {
                    a.version = r.version;
                    a
                })
            })
            .collect::<PortResult<_>>()?;
        active.sort_by(|a, b| {
            (a.order, &a.customer, &a.account).cmp(&(b.order, &b.customer, &b.account))
        });
        Ok(active)
    }

    /// Whether `active`'s account is finished in its run (or the run is gone).
    pub async fn is_finished(&self, active: &ActiveAccount) -> PortResult<bool> {
        Ok(
            match self
                .account_state(&active.run_id, &active.customer, &active.account)
                .await?
            {
                Some((state, _)) => state.progress.status.is_finished(),
                None => true,
            },
        )
    }

    /// Retires `active` unless somebody marked it again since it was read; returns whether
    /// it was retired. Called by a worker that found the account finished
    /// ([`Ledger::is_finished`]) and its queue empty (nothing visible, in flight or
    /// delayed: a replay's messages may follow a finished account's).
    pub async fn retire(&self, active: &ActiveAccount) -> PortResult<bool> {
        match self
            .store
            .delete(
                &active_key(&active.customer, &active.account),
                Condition::VersionIs(active.version),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Counts `n` messages sent back from a DLQ of `customer` (never expires: the
    /// exporter's `accessflow_dlq_replayed_messages_total` follows it).
    pub async fn count_replays(&self, customer: &str, n: u64) -> PortResult<()> {
        let deltas = BTreeMap::from([("messages".to_string(), n as i64)]);
        self.store
            .add(&replays_key(customer), &deltas)
            .await
            .map(|_| ())
    }

    /// Messages replayed so far, per customer.
    pub async fn replay_counts(&self) -> PortResult<BTreeMap<String, u64>> {
        Ok(self
            .store
            .query("ops", "replays#")
            .await?
            .iter()
            .filter_map(|r| {
                let customer = r.key.sk.strip_prefix("replays#")?;
                Some((customer.to_string(), counter(r, "messages")))
            })
            .collect())
    }

    /// Finished reports of an account, oldest first by their run's as-of time (then id).
    pub async fn report_refs(&self, customer: &str, account: &str) -> PortResult<Vec<ReportRef>> {
        let mut refs: Vec<ReportRef> = self
            .store
            .query(&format!("acct#{customer}#{account}"), "report#")
            .await?
            .iter()
            .map(from_record)
            .collect::<PortResult<_>>()?;
        refs.sort_by(|a, b| (&a.as_of, &a.run_id).cmp(&(&b.as_of, &b.run_id)));
        Ok(refs)
    }
}

fn state_of(record: &Record) -> PortResult<AccountState> {
    Ok(AccountState {
        progress: from_record(record)?,
        done: counter(record, COUNTER_DONE),
        failed: counter(record, COUNTER_FAILED),
        reused: counter(record, COUNTER_REUSED),
        last_accessed_reused: counter(record, COUNTER_LA_REUSED),
        item_ms: counter(record, COUNTER_ITEM_MS),
    })
}

/// Totals over a run's accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub accounts: usize,
    pub accounts_finished: usize,
    pub accounts_failed: usize,
    pub accounts_partial: usize,
    pub items_expected: u64,
    pub items_done: u64,
    pub items_failed: u64,
    pub items_reused: u64,
    pub last_accessed_reused: u64,
    pub snapshots_reused: usize,
}

impl RunTotals {
    pub fn of(states: &[AccountState]) -> RunTotals {
        let mut t = RunTotals {
            accounts: states.len(),
            ..RunTotals::default()
        };
        for s in states {
            let p = &s.progress;
            t.accounts_finished += p.status.is_finished() as usize;
            t.accounts_failed += (p.status == AccountStatus::Failed) as usize;
            t.accounts_partial += (p.status == AccountStatus::Finalized && p.partial) as usize;
            t.items_expected += p.items.unwrap_or(0) as u64;
            t.items_done += s.done;
            t.items_failed += s.failed;
            t.items_reused += s.reused;
            t.last_accessed_reused += s.last_accessed_reused;
            t.snapshots_reused += p.snapshot_reused as usize;
        }
        t
    }

    pub fn is_complete(&self) -> bool {
        self.accounts > 0 && self.accounts_finished == self.accounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBackend;

    fn outcome(arn: &str, result: Option<&str>, error: Option<&str>) -> ItemOutcome {
        ItemOutcome {
            principal_arn: arn.to_string(),
            result_key: result.map(str::to_string),
            error: error.map(str::to_string),
        }
    }

    /// A batch's outcomes are one record; they read back per item together with the
    /// records of single-item steps, and a batch's record is never written twice.
    #[tokio::test]
    async fn batch_outcome_records_read_back_per_item_with_single_item_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedBackend::open(dir.path())
            .expect("open embedded backend")
            .ports()
            .store;
        let ledger = Ledger::new(store.clone());
        let (run, customer, account) = ("night", "acme", "111122223333");
        let batch = BatchOutcomes {
            outcomes: BTreeMap::from([
                (0, outcome("arn:a", Some("acme/results/x/a"), None)),
                (2, outcome("arn:c", None, Some("malformed"))),
            ]),
        };
        let op = ledger.batch_outcomes_op(run, customer, account, (0, 3), &batch);
        store.transact(vec![op.clone()]).await.expect("first write");
        assert!(
            store.transact(vec![op]).await.is_err(),
            "a batch's record is created once"
        );
        // Item 1 done by a single-item step (an earlier version's message); item 2 again,
        // which must not replace the batch's outcome.
        for (item, arn) in [(1, "arn:b"), (2, "arn:c-again")] {
            store
                .transact(vec![WriteOp::Put {
                    key: item_key(run, customer, account, item),
                    value: to_value(&outcome(arn, Some("acme/results/x/b"), None)),
                    expires_at: None,
                    condition: Condition::NotExists,
                }])
                .await
                .expect("single-item record");
        }
        let all = ledger.item_outcomes(run, customer, account).await.unwrap();
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(all[&0], batch.outcomes[&0]);
        assert_eq!(all[&1].principal_arn, "arn:b");
        assert_eq!(all[&2], batch.outcomes[&2], "the batch's record is first");
        let some = ledger
            .item_outcomes_of(run, customer, account, &[2, 5, 1])
            .await
            .unwrap();
        assert_eq!(
            some[0].as_ref().map(|o| o.principal_arn.as_str()),
            Some("arn:c")
        );
        assert_eq!(some[1], None);
        assert_eq!(
            some[2].as_ref().map(|o| o.principal_arn.as_str()),
            Some("arn:b")
        );
    }

    /// The stored form names each shared prefix once and reads back to the same outcomes,
    /// whatever the ARNs and keys have in common (nothing, everything, a multi-byte
    /// character at the split).
    #[test]
    fn batch_outcomes_are_stored_with_shared_prefixes_once() {
        let batch = BatchOutcomes {
            outcomes: BTreeMap::from([
                (
                    7,
                    outcome(
                        "arn:aws:iam::111122223333:role/a",
                        Some("acme/results/111122223333/0123"),
                        None,
                    ),
                ),
                (
                    8,
                    outcome(
                        "arn:aws:iam::111122223333:user/b",
                        Some("acme/results/111122223333/4567"),
                        None,
                    ),
                ),
                (
                    9,
                    outcome("arn:aws:iam::111122223333:role/c", None, Some("bad")),
                ),
            ]),
        };
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(json["arn_prefix"], "arn:aws:iam::111122223333:");
        assert_eq!(json["key_prefix"], "acme/results/111122223333/");
        assert_eq!(json["items"][0]["a"], "role/a");
        assert_eq!(json["items"][0]["k"], "0123");
        let back: BatchOutcomes = serde_json::from_value(json).unwrap();
        assert_eq!(back, batch);

        for arns in [["é1", "é2"], ["éa", "èa"], ["x", "y"], ["same", "same"]] {
            let batch = BatchOutcomes {
                outcomes: BTreeMap::from([
                    (0, outcome(arns[0], Some("k"), None)),
                    (1, outcome(arns[1], None, Some("e"))),
                ]),
            };
            let back: BatchOutcomes =
                serde_json::from_value(serde_json::to_value(&batch).unwrap()).unwrap();
            assert_eq!(back, batch);
        }
        let empty: BatchOutcomes =
            serde_json::from_value(serde_json::to_value(BatchOutcomes::default()).unwrap())
                .unwrap();
        assert!(empty.outcomes.is_empty());
    }
}
