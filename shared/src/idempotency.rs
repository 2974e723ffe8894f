//! Idempotency records: one per work item, so that at-least-once delivery gives an
//! exactly-once effect.
//!
//! Before doing an item, a worker *claims* its record: it creates it `in_progress` with a
//! lease, or takes over one whose lease has expired (its previous holder died). When done,
//! the worker writes the item's effects and the record's final state in **one transaction**
//! conditioned on the version it claimed, so a stalled worker that lost its claim can never
//! write a second effect. A record already `done` or `failed` means: delete the message,
//! nothing to do.
//!
//! Leases and record TTLs are read from the [`Clock`] given to [`claim`]; the claim token
//! carries it on to [`extend`] and [`finish_op`], so one claim lives on one clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::ports::{Condition, KeyValueStore, PortError, PortResult, StoreKey, WriteOp};

/// How long finished records are kept (they guard against very late duplicates).
pub const RECORD_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    InProgress,
    Done,
    Failed,
}

/// The stored idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub status: ItemStatus,
    /// Epoch millis until which the holder's claim is valid (in progress only).
    pub lease_until_ms: i64,
    /// Who holds or finished it (process and task), for operators.
    pub owner: String,
    /// Digest of the result (done) — what was produced, for audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_digest: Option<String>,
    /// Why it failed (failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The key of an item's record.
pub fn record_key(run_id: &str, customer: &str, account: &str, step: &str) -> StoreKey {
    StoreKey::new(
        format!("idem#{run_id}#{customer}#{account}"),
        step.to_string(),
    )
}

/// A claim on an item; its version moves as the lease is extended.
#[derive(Debug, Clone)]
pub struct ClaimToken {
    pub key: StoreKey,
    pub owner: String,
    version: Arc<AtomicU64>,
    /// The clock the claim was made on: its lease extensions and TTLs read it too.
    clock: Clock,
}

impl ClaimToken {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}

/// The outcome of a claim.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The caller holds the item now.
    Acquired(ClaimToken),
    /// The item was finished before; nothing to do.
    Finished(IdempotencyRecord),
    /// Another live holder has it until `lease_until_ms`.
    Held { lease_until_ms: i64, owner: String },
}

/// The expiry (epoch seconds) of a record written now.
fn ttl(clock: &Clock) -> Option<i64> {
    Some(clock.now_secs() + RECORD_TTL.as_secs() as i64)
}

/// The end (epoch millis) of a lease of `lease` taken now.
fn lease_end(clock: &Clock, lease: Duration) -> i64 {
    clock.now_ms() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

fn encode(record: &IdempotencyRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}

fn decode(key: &StoreKey, value: serde_json::Value) -> PortResult<IdempotencyRecord> {
    serde_json::from_value(value).map_err(|e| PortError::Permanent {
        op: "idempotency",
        message: format!("record {key} is unreadable: {e}"),
    })
}

/// Claims the item `key` for `owner` with a lease of `lease`, on `clock` (pass the ports'
/// clock). With `retry_failed` (a replayed message), a step that finished as failed is
/// claimed again.
pub async fn claim(
    store: &dyn KeyValueStore,
    clock: &Clock,
    key: &StoreKey,
    owner: &str,
    lease: Duration,
    retry_failed: bool,
) -> PortResult<Claim> {
    // A failed condition means somebody else wrote in between, and what they wrote decides
    // the next round; three rounds bound a pathological race.
    for _ in 0..3 {
        let fresh = IdempotencyRecord {
            status: ItemStatus::InProgress,
            lease_until_ms: lease_end(clock, lease),
            owner: owner.to_string(),
            result_digest: None,
            reason: None,
        };
        let condition = match store.get(key).await? {
            None => Condition::NotExists,
            Some(existing) => {
                let record = decode(key, existing.value)?;
                match record.status {
                    ItemStatus::Failed if retry_failed => Condition::VersionIs(existing.version),
                    ItemStatus::Done | ItemStatus::Failed => return Ok(Claim::Finished(record)),
                    ItemStatus::InProgress
                        if record.owner != owner && record.lease_until_ms > clock.now_ms() =>
                    {
                        return Ok(Claim::Held {
                            lease_until_ms: record.lease_until_ms,
                            owner: record.owner,
                        });
                    }
                    ItemStatus::InProgress => Condition::VersionIs(existing.version),
                }
            }
        };
        match store.put(key, encode(&fresh), ttl(clock), condition).await {
            Ok(version) => {
                return Ok(Claim::Acquired(ClaimToken {
                    key: key.clone(),
                    owner: owner.to_string(),
                    version: Arc::new(AtomicU64::new(version)),
                    clock: clock.clone(),
                }))
            }
            Err(e) if e.is_condition_failed() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::Transient {
        op: "idempotency",
        message: format!("record {key} kept changing while claiming it"),
    })
}

/// The current record of a step, if any.
pub async fn record(
    store: &dyn KeyValueStore,
    key: &StoreKey,
) -> PortResult<Option<IdempotencyRecord>> {
    match store.get(key).await? {
        Some(existing) => decode(key, existing.value).map(Some),
        None => Ok(None),
    }
}

/// Extends the lease of a held claim (the heartbeat). Fails with a condition error when the
/// claim was lost.
pub async fn extend(
    store: &dyn KeyValueStore,
    token: &ClaimToken,
    lease: Duration,
) -> PortResult<()> {
    let record = IdempotencyRecord {
        status: ItemStatus::InProgress,
        lease_until_ms: lease_end(&token.clock, lease),
        owner: token.owner.clone(),
        result_digest: None,
        reason: None,
    };
    let version = store
        .put(
            &token.key,
            encode(&record),
            ttl(&token.clock),
            Condition::VersionIs(token.version()),
        )
        .await?;
    token.version.store(version, Ordering::SeqCst);
    Ok(())
}

/// The write that finishes a claimed item; put it in the same transaction as the effects.
pub fn finish_op(
    token: &ClaimToken,
    status: ItemStatus,
    result_digest: Option<String>,
    reason: Option<String>,
) -> WriteOp {
    let record = IdempotencyRecord {
        status,
        lease_until_ms: 0,
        owner: token.owner.clone(),
        result_digest,
        reason,
    };
    WriteOp::Put {
        key: token.key.clone(),
        value: encode(&record),
        expires_at: ttl(&token.clock),
        condition: Condition::VersionIs(token.version()),
    }
}

/// Gives a claim back without finishing it (shutdown, a failed commit): the next receiver
/// takes it at once. The record is not deleted but marked released (in progress, with a
/// lease that has already ended), so its version keeps counting up: a deleted record would
/// start again at version 1 on the next claim, where a stalled holder's old token could
/// match it.
pub async fn release(store: &dyn KeyValueStore, token: &ClaimToken) -> PortResult<()> {
    let released = IdempotencyRecord {
        status: ItemStatus::InProgress,
        lease_until_ms: 0,
        owner: format!("released by {}", token.owner),
        result_digest: None,
        reason: None,
    };
    match store
        .put(
            &token.key,
            encode(&released),
            ttl(&token.clock),
            Condition::VersionIs(token.version()),
        )
        .await
    {
        Ok(version) => {
            token.version.store(version, Ordering::SeqCst);
            Ok(())
        }
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e),
    }
}
