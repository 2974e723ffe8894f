//! Key-value store: the DynamoDB subset the ledger, idempotency records, cache index and
//! tenant registry are built on.
//!
//! An item is addressed by a partition key and a sort key and holds a JSON document, named
//! integer counters that can be added to atomically, a version that every write bumps, and
//! an optional expiry time (TTL, epoch seconds). An item whose expiry has passed is treated
//! as absent everywhere: reads skip it and conditions see it as missing (DynamoDB deletes
//! such items lazily; the AWS backend filters them to keep the semantics identical).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::PortResult;

/// Partition key + sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreKey {
    pub pk: String,
    pub sk: String,
}

impl StoreKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        StoreKey {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl std::fmt::Display for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pk, self.sk)
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: StoreKey,
    /// The document; `Value::Null` for an item that only holds counters.
    pub value: serde_json::Value,
    /// Atomic counters, by name.
    pub counters: BTreeMap<String, i64>,
    /// Starts at 1 on creation, +1 on every write (put or add).
    pub version: u64,
    /// Epoch seconds after which the item is treated as absent.
    pub expires_at: Option<i64>,
}

/// A precondition on the current state of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No condition.
    None,
    /// The item must not exist (or be expired).
    NotExists,
    /// The item must exist.
    Exists,
    /// The item must exist with exactly this version.
    VersionIs(u64),
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Replace the document (counters are kept), subject to `condition`.
    Put {
        key: StoreKey,
        value: serde_json::Value,
        expires_at: Option<i64>,
        condition: Condition,
    },
    /// Add `delta` to each named counter, creating the item and counters at 0 when missing.
    Add {
        key: StoreKey,
        deltas: BTreeMap<String, i64>,
        condition: Condition,
    },
    /// Delete the item, subject to `condition`.
    Delete { key: StoreKey, condition: Condition },
    /// Write nothing, but require `condition` for the transaction to go through.
    Check { key: StoreKey, condition: Condition },
}

/// How fresh a [`KeyValueStore::get_many`] must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every write that finished before the read is seen.
    Strong,
    /// A write of the last second or so may not be seen yet (DynamoDB bills half as much).
    /// For caches, where a stale miss only costs recomputing the entry.
    Eventual,
}

#[async_trait]
pub trait KeyValueStore: Send + Sync {
    /// The largest value worth keeping in a record rather than in a blob the record points
    /// at (the caches use it for results). DynamoDB: set by price; embedded: large, since
    /// SQLite keeps a value in its pages and a blob file costs a create, a sync and a rename.
    fn inline_value_max_bytes(&self) -> usize;

    /// Reads one item (strongly consistent).
    async fn get(&self, key: &StoreKey) -> PortResult<Option<Record>>;

    /// Reads several items at once, in the order of `keys`: `None` for an absent or
    /// expired one. DynamoDB: `BatchGetItem`, up to 100 keys per request. The embedded
    /// store is always strongly consistent.
    async fn get_many(
        &self,
        keys: &[StoreKey],
        consistency: Consistency,
    ) -> PortResult<Vec<Option<Record>>>;

    /// Writes several documents at once, each replacing its whole item (no counters kept,
    /// version 1), with no condition and no atomicity across them (each item is written
    /// whole or not at all): for entries nobody versions or counts, such as cache entries.
    /// A key given twice keeps its last document. DynamoDB: `BatchWriteItem`, 25 per request.
    async fn put_many(
        &self,
        items: Vec<(StoreKey, serde_json::Value, Option<i64>)>,
    ) -> PortResult<()>;

    /// Writes the document if `condition` holds; returns the new version.
    /// A failed condition is `PortError::ConditionFailed`.
    async fn put(
        &self,
        key: &StoreKey,
        value: serde_json::Value,
        expires_at: Option<i64>,
        condition: Condition,
    ) -> PortResult<u64>;

    /// Atomically adds to counters (creating them at 0); returns the record after the add.
    async fn add(&self, key: &StoreKey, deltas: &BTreeMap<String, i64>) -> PortResult<Record>;

    /// Deletes if `condition` holds. Deleting a missing item with `Condition::None` is fine.
    async fn delete(&self, key: &StoreKey, condition: Condition) -> PortResult<()>;

    /// All live items of a partition whose sort key starts with `sk_prefix`, sorted by sort key.
    async fn query(&self, pk: &str, sk_prefix: &str) -> PortResult<Vec<Record>>;

    /// All operations or none (at most 100, on distinct keys). If any condition fails the
    /// result is `PortError::TransactionCancelled` with one reason per operation.
    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()>;
}
