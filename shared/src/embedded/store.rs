//! The key-value store on SQLite with the DynamoDB subset of `crate::ports::KeyValueStore`.
//!
//! One `items` row per item: the JSON document, the counters (a JSON object), the version
//! and the optional expiry (epoch seconds). An item is expired once the wall clock reaches
//! `expires_at`; expired items are treated as absent by every read and condition, replaced
//! like absent ones by writes, and deleted lazily (at most once a minute per process).
//! Every write is a `BEGIN IMMEDIATE` transaction, so conditions and counters are exact
//! across processes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::db::{Db, SqlResultExt};
use crate::ports::{
    Condition, Consistency, KeyValueStore, PortError, PortResult, Record, StoreKey, WriteOp,
};

/// DynamoDB: an item is at most 400 KB.
pub(crate) const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB: at most 100 actions per transaction.
pub(crate) const MAX_TRANSACTION_OPS: usize = 100;
/// The cancellation reason of an operation whose condition failed (DynamoDB's code).
pub const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";

/// The SQLite-backed [`KeyValueStore`].
pub struct SqliteStore {
    db: Arc<Db>,
}

impl SqliteStore {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        SqliteStore { db }
    }
}

fn is_expired(expires_at: Option<i64>, now_s: i64) -> bool {
    expires_at.is_some_and(|t| t <= now_s)
}

fn validate_key(op: &'static str, key: &StoreKey) -> PortResult<()> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(PortError::Invalid {
            op,
            message: format!("key {key}: partition and sort keys must not be empty"),
        });
    }
    if key.pk.len() > 2048 || key.sk.len() > 1024 {
        return Err(PortError::Invalid {
            op,
            message: format!("key {key}: partition key at most 2048 bytes, sort key at most 1024"),
        });
    }
    Ok(())
}

fn row_to_record(op: &'static str, r: &Row<'_>) -> rusqlite::Result<Result<Record, PortError>> {
    let pk: String = r.get(0)?;
    let sk: String = r.get(1)?;
    let value: String = r.get(2)?;
    let counters: String = r.get(3)?;
    let version: i64 = r.get(4)?;
    let expires_at: Option<i64> = r.get(5)?;
    let parsed = (|| {
        Ok(Record {
            value: serde_json::from_str(&value)?,
            counters: serde_json::from_str(&counters)?,
            key: StoreKey { pk, sk },
            version: version as u64,
            expires_at,
        })
    })()
    .map_err(|e: serde_json::Error| PortError::Permanent {
        op,
        message: format!("stored item is not valid JSON: {e}"),
    });
    Ok(parsed)
}

/// The live item at `key`, if any.
fn load(
    conn: &Connection,
    op: &'static str,
    key: &StoreKey,
    now_s: i64,
) -> PortResult<Option<Record>> {
    let record = conn
        .prepare_cached(
            "SELECT pk, sk, value, counters, version, expires_at FROM items
             WHERE pk = ?1 AND sk = ?2",
        )
        .op(op)?
        .query_row(params![key.pk, key.sk], |r| row_to_record(op, r))
        .optional()
        .op(op)?
        .transpose()?;
    Ok(record.filter(|r| !is_expired(r.expires_at, now_s)))
}

fn save(conn: &Connection, op: &'static str, record: &Record) -> PortResult<()> {
    let value = serde_json::to_string(&record.value).map_err(|e| PortError::Invalid {
        op,
        message: format!("value of {}: {e}", record.key),
    })?;
    let counters = serde_json::to_string(&record.counters).map_err(|e| PortError::Invalid {
        op,
        message: format!("counters of {}: {e}", record.key),
    })?;
    let size = record.key.pk.len() + record.key.sk.len() + value.len() + counters.len();
    if size > MAX_ITEM_BYTES {
        return Err(PortError::Invalid {
            op,
            message: format!(
                "item {} is {size} bytes (at most {MAX_ITEM_BYTES}); store large data as a blob",
                record.key
            ),
        });
    }
    conn.prepare_cached(
        "INSERT INTO items (pk, sk, value, counters, version, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (pk, sk) DO UPDATE
         SET value = excluded.value, counters = excluded.counters,
             version = excluded.version, expires_at = excluded.expires_at",
    )
    .op(op)?
    .execute(params![
        record.key.pk,
        record.key.sk,
        value,
        counters,
        record.version as i64,
        record.expires_at
    ])
    .op(op)?;
    Ok(())
}

fn remove(conn: &Connection, op: &'static str, key: &StoreKey) -> PortResult<()> {
    conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
        .op(op)?
        .execute(params![key.pk, key.sk])
        .op(op)?;
    Ok(())
}

fn holds(condition: &Condition, current: Option<&Record>) -> bool {
    match condition {
        Condition::None => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::VersionIs(v) => current.is_some_and(|r| r.version == *v),
    }
}

fn put_record(
    key: &StoreKey,
    value: serde_json::Value,
    expires_at: Option<i64>,
    current: Option<Record>,
) -> Record {
    match current {
        Some(cur) => Record {
            key: key.clone(),
            value,
            counters: cur.counters,
            version: cur.version + 1,
            expires_at,
        },
        None => Record {
            key: key.clone(),
            value,
            counters: BTreeMap::new(),
            version: 1,
            expires_at,
        },
    }
}

fn add_record(
    op: &'static str,
    key: &StoreKey,
    deltas: &BTreeMap<String, i64>,
    current: Option<Record>,
) -> PortResult<Record> {
    let mut record = match current {
        Some(mut cur) => {
            cur.version += 1;
            cur
        }
        None => Record {
            key: key.clone(),
            value: serde_json::Value::Null,
            counters: BTreeMap::new(),
            version: 1,
            expires_at: None,
        },
    };
    for (name, delta) in deltas {
        let counter = record.counters.entry(name.clone()).or_insert(0);
        *counter = counter
            .checked_add(*delta)
            .ok_or_else(|| PortError::Invalid {
                op,
                message: format!("counter {name} of {key} would overflow"),
            })?;
    }
    Ok(record)
}

/// Largest value kept in a record rather than in a blob on the embedded backend: SQLite
/// stores a value of this size in its pages as quickly as a small one, where a blob file
/// costs a create, a sync and a rename (the largest sample account's 259 results over 6 KB
/// were about a third of its batches' CPU time spent outside the analysis).
pub const INLINE_VALUE_MAX_BYTES: usize = 1024 * 1024;

#[async_trait]
impl KeyValueStore for SqliteStore {
    fn inline_value_max_bytes(&self) -> usize {
        INLINE_VALUE_MAX_BYTES
    }

    async fn get(&self, key: &StoreKey) -> PortResult<Option<Record>> {
        const OP: &str = "get";
        validate_key(OP, key)?;
        let key = key.clone();
        let clock = self.db.clock().clone();
        self.db
            .read(OP, move |tx| load(tx, OP, &key, clock.now_secs()))
            .await
    }

    async fn get_many(
        &self,
        keys: &[StoreKey],
        _consistency: Consistency,
    ) -> PortResult<Vec<Option<Record>>> {
        const OP: &str = "get_many";
        for key in keys {
            validate_key(OP, key)?;
        }
        let keys = keys.to_vec();
        let clock = self.db.clock().clone();
        self.db
            .read(OP, move |tx| {
                let now = clock.now_secs();
                keys.iter().map(|key| load(tx, OP, key, now)).collect()
            })
            .await
    }

    async fn put_many(
        &self,
        items: Vec<(StoreKey, serde_json::Value, Option<i64>)>,
    ) -> PortResult<()> {
        const OP: &str = "put_many";
        if items.is_empty() {
            return Ok(());
        }
        for (key, _, _) in &items {
            validate_key(OP, key)?;
        }
        self.db.purge_if_due().await?;
        self.db
            .write(OP, move |tx| {
                for (key, value, expires_at) in items {
                    save(tx, OP, &put_record(&key, value, expires_at, None))?;
                }
                Ok(())
            })
            .await
    }

    async fn put(
        &self,
        key: &StoreKey,
        value: serde_json::Value,
        expires_at: Option<i64>,
        condition: Condition,
    ) -> PortResult<u64> {
        const OP: &str = "put";
        validate_key(OP, key)?;
        self.db.purge_if_due().await?;
        let key = key.clone();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                let current = load(tx, OP, &key, clock.now_secs())?;
                if !holds(&condition, current.as_ref()) {
                    return Err(PortError::ConditionFailed {
                        key: key.to_string(),
                    });
                }
                let record = put_record(&key, value, expires_at, current);
                save(tx, OP, &record)?;
                Ok(record.version)
            })
            .await
    }

    async fn add(&self, key: &StoreKey, deltas: &BTreeMap<String, i64>) -> PortResult<Record> {
        const OP: &str = "add";
        validate_key(OP, key)?;
        self.db.purge_if_due().await?;
        let key = key.clone();
        let deltas = deltas.clone();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                let current = load(tx, OP, &key, clock.now_secs())?;
                let record = add_record(OP, &key, &deltas, current)?;
                save(tx, OP, &record)?;
                Ok(record)
            })
            .await
    }

    async fn delete(&self, key: &StoreKey, condition: Condition) -> PortResult<()> {
        const OP: &str = "delete";
        validate_key(OP, key)?;
        let key = key.clone();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                let current = load(tx, OP, &key, clock.now_secs())?;
                if !holds(&condition, current.as_ref()) {
                    return Err(PortError::ConditionFailed {
                        key: key.to_string(),
                    });
                }
                remove(tx, OP, &key)
            })
            .await
    }

    async fn query(&self, pk: &str, sk_prefix: &str) -> PortResult<Vec<Record>> {
        const OP: &str = "query";
        if pk.is_empty() {
            return Err(PortError::Invalid {
                op: OP,
                message: "empty partition key".into(),
            });
        }
        let pk = pk.to_string();
        let prefix = sk_prefix.to_string();
        let clock = self.db.clock().clone();
        self.db
            .read(OP, move |tx| {
                let now_s = clock.now_secs();
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT pk, sk, value, counters, version, expires_at FROM items
                         WHERE pk = ?1 AND sk >= ?2 ORDER BY sk",
                    )
                    .op(OP)?;
                let mut rows = stmt.query(params![pk, prefix]).op(OP)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().op(OP)? {
                    let record = row_to_record(OP, row).op(OP)??;
                    if !record.key.sk.starts_with(&prefix) {
                        break;
                    }
                    if !is_expired(record.expires_at, now_s) {
                        out.push(record);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        const OP: &str = "transact";
        if ops.is_empty() || ops.len() > MAX_TRANSACTION_OPS {
            return Err(PortError::Invalid {
                op: OP,
                message: format!("{} operations (1 to {MAX_TRANSACTION_OPS})", ops.len()),
            });
        }
        let mut seen = HashSet::new();
        for op in &ops {
            let key = op_key(op);
            validate_key(OP, key)?;
            if !seen.insert(key.clone()) {
                return Err(PortError::Invalid {
                    op: OP,
                    message: format!("two operations on {key} in one transaction"),
                });
            }
        }
        self.db.purge_if_due().await?;
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                let now_s = clock.now_secs();
                let mut current = Vec::with_capacity(ops.len());
                let mut reasons = Vec::with_capacity(ops.len());
                for op in &ops {
                    let cur = load(tx, OP, op_key(op), now_s)?;
                    let ok = holds(op_condition(op), cur.as_ref());
                    reasons.push((!ok).then(|| CONDITIONAL_CHECK_FAILED.to_string()));
                    current.push(cur);
                }
                if reasons.iter().any(Option::is_some) {
                    return Err(PortError::TransactionCancelled { reasons });
                }
                for (op, cur) in ops.into_iter().zip(current) {
                    match op {
                        WriteOp::Put {
                            key,
                            value,
                            expires_at,
                            ..
                        } => save(tx, OP, &put_record(&key, value, expires_at, cur))?,
                        WriteOp::Add { key, deltas, .. } => {
                            save(tx, OP, &add_record(OP, &key, &deltas, cur)?)?
                        }
                        WriteOp::Delete { key, .. } => remove(tx, OP, &key)?,
                        WriteOp::Check { .. } => {}
                    }
                }
                Ok(())
            })
            .await
    }
}

fn op_key(op: &WriteOp) -> &StoreKey {
    match op {
        WriteOp::Put { key, .. }
        | WriteOp::Add { key, .. }
        | WriteOp::Delete { key, .. }
        | WriteOp::Check { key, .. } => key,
    }
}

fn op_condition(op: &WriteOp) -> &Condition {
    match op {
        WriteOp::Put { condition, .. }
        | WriteOp::Add { condition, .. }
        | WriteOp::Delete { condition, .. }
        | WriteOp::Check { condition, .. } => condition,
    }
}
