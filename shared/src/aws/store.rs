//! The key-value store on one DynamoDB table.
//!
//! Table: partition key `pk` (S), sort key `sk` (S), on-demand capacity, TTL on
//! `expires_at`. An item holds:
//! - `value`: the JSON document as a string (absent for counter-only items: `Value::Null`);
//! - `c_<name>`: each counter as a number, changed with `ADD` (atomic, no read first);
//! - `version`: a number, `ADD`-ed or `SET` to +1 on every write;
//! - `expires_at`: epoch seconds, DynamoDB's TTL attribute.
//!
//! Expiry: DynamoDB deletes expired items lazily (hours later; moto never does), so reads
//! drop items whose `expires_at < now`, and every write's condition treats them as absent.
//! A write that meets an expired item first deletes it (conditioned on its version, so a
//! concurrent write is never lost) and then tries again, so the new item starts afresh at
//! version 1 without the expired item's counters, exactly as on the embedded backend.
//!
//! Keys are the callers' (`crate::naming`): partition keys carry the customer/account/run,
//! so no partition is hot for a whole run.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, KeysAndAttributes, PutRequest, ReturnValue, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use super::error::{classify, has_code};
use crate::clock::Clock;
use crate::ports::{
    Condition, Consistency, KeyValueStore, PortError, PortResult, Record, StoreKey, WriteOp,
};

const PK: &str = "pk";
const SK: &str = "sk";
const VALUE: &str = "value";
const VERSION: &str = "version";
const EXPIRES: &str = "expires_at";
/// Prefix of counter attribute names.
pub const COUNTER_PREFIX: &str = "c_";
const MAX_TRANSACT: usize = 100;
/// Keys per `BatchGetItem` request.
const MAX_BATCH_GET: usize = 100;
/// Puts per `BatchWriteItem` request.
const MAX_BATCH_WRITE: usize = 25;
const COND_FAILED: &[&str] = &["ConditionalCheckFailedException"];

/// Placeholders for attribute names and values, so only the used ones are sent.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == attr) {
            return k.clone();
        }
        let k = format!("#n{}", self.names.len());
        self.names.insert(k.clone(), attr.to_string());
        k
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let k = format!(":v{}", self.values.len());
        self.values.insert(k.clone(), v);
        k
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_map(key: &StoreKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.pk.clone())),
        (SK.to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

/// `live`: the item has no expiry or has not expired yet.
fn live(e: &mut Expr, now: i64) -> String {
    let exp = e.name(EXPIRES);
    let now = e.value(n(now));
    format!("(attribute_not_exists({exp}) OR {exp} >= {now})")
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Write,
    Delete,
    Check,
}

/// The condition expression for `condition` on a live-or-absent item.
fn condition_expr(e: &mut Expr, condition: &Condition, role: Role, now: i64) -> Option<String> {
    // `pk` is not a DynamoDB reserved word, so it needs no placeholder.
    let pk = PK;
    match condition {
        Condition::None => match role {
            // Absent or live: an expired item must be cleaned up first.
            Role::Write => Some(format!("attribute_not_exists({pk}) OR {}", live(e, now))),
            Role::Delete => None,
            Role::Check => Some(format!(
                "attribute_not_exists({pk}) OR attribute_exists({pk})"
            )),
        },
        Condition::NotExists => Some(format!("attribute_not_exists({pk})")),
        Condition::Exists => Some(format!("attribute_exists({pk}) AND {}", live(e, now))),
        Condition::VersionIs(v) => {
            let ver = e.name(VERSION);
            let val = e.value(n(v));
            Some(format!("{ver} = {val} AND {}", live(e, now)))
        }
    }
}

/// Whether the condition can hold once an expired item in the way is gone.
fn passes_when_absent(condition: &Condition) -> bool {
    matches!(condition, Condition::None | Condition::NotExists)
}

enum Kind {
    Update(String),
    Delete,
    Check,
}

/// One write, ready for UpdateItem/DeleteItem or a transaction entry.
struct Spec {
    key: StoreKey,
    kind: Kind,
    condition: Option<String>,
    expr: Expr,
    retry_if_expired: bool,
}

fn counter_attr(name: &str) -> String {
    format!("{COUNTER_PREFIX}{name}")
}

fn spec(op: &WriteOp, now: i64) -> PortResult<Spec> {
    let mut e = Expr::default();
    let (key, kind, condition, cond) = match op {
        WriteOp::Put {
            key,
            value,
            expires_at,
            condition,
        } => {
            let json = serde_json::to_string(value)
                .map_err(|err| PortError::invalid("dynamodb:UpdateItem", err.to_string()))?;
            let val = e.name(VALUE);
            let v = e.value(AttributeValue::S(json));
            let ver = e.name(VERSION);
            let zero = e.value(n(0));
            let one = e.value(n(1));
            let exp = e.name(EXPIRES);
            let mut update =
                format!("SET {val} = {v}, {ver} = if_not_exists({ver}, {zero}) + {one}");
            match expires_at {
                Some(t) => {
                    let t = e.value(n(t));
                    update.push_str(&format!(", {exp} = {t}"));
                }
                None => update.push_str(&format!(" REMOVE {exp}")),
            }
            let c = condition_expr(&mut e, condition, Role::Write, now);
            (key, Kind::Update(update), condition, c)
        }
        WriteOp::Add {
            key,
            deltas,
            condition,
        } => {
            let ver = e.name(VERSION);
            let one = e.value(n(1));
            let mut parts = vec![format!("{ver} {one}")];
            for (name, delta) in deltas {
                let attr = e.name(&counter_attr(name));
                let d = e.value(n(delta));
                parts.push(format!("{attr} {d}"));
            }
            let c = condition_expr(&mut e, condition, Role::Write, now);
            (
                key,
                Kind::Update(format!("ADD {}", parts.join(", "))),
                condition,
                c,
            )
        }
        WriteOp::Delete { key, condition } => {
            let c = condition_expr(&mut e, condition, Role::Delete, now);
            (key, Kind::Delete, condition, c)
        }
        WriteOp::Check { key, condition } => {
            let c = condition_expr(&mut e, condition, Role::Check, now);
            (key, Kind::Check, condition, c)
        }
    };
    Ok(Spec {
        key: key.clone(),
        kind,
        condition: cond,
        expr: e,
        retry_if_expired: passes_when_absent(condition),
    })
}

fn op_key(op: &WriteOp) -> &StoreKey {
    match op {
        WriteOp::Put { key, .. }
        | WriteOp::Add { key, .. }
        | WriteOp::Delete { key, .. }
        | WriteOp::Check { key, .. } => key,
    }
}

fn number(item: &HashMap<String, AttributeValue>, attr: &str) -> Option<i64> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn record_of(item: &HashMap<String, AttributeValue>) -> PortResult<Record> {
    let s = |attr: &str| match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    let value = match s(VALUE) {
        Some(json) => serde_json::from_str(&json).map_err(|e| PortError::Permanent {
            op: "dynamodb:read",
            message: format!("stored value is not JSON: {e}"),
        })?,
        None => serde_json::Value::Null,
    };
    let counters = item
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(COUNTER_PREFIX)?;
            match v {
                AttributeValue::N(x) => x.parse::<i64>().ok().map(|x| (name.to_string(), x)),
                _ => None,
            }
        })
        .collect::<BTreeMap<_, _>>();
    Ok(Record {
        key: StoreKey::new(s(PK).unwrap_or_default(), s(SK).unwrap_or_default()),
        value,
        counters,
        version: number(item, VERSION).unwrap_or(0).max(0) as u64,
        expires_at: number(item, EXPIRES),
    })
}

fn expired(item: &HashMap<String, AttributeValue>, now: i64) -> bool {
    number(item, EXPIRES).is_some_and(|t| t < now)
}

/// Waits before sending a batch's unprocessed part again (DynamoDB hands back what it
/// throttled), doubling from 50 ms; gives up as a transient error after 8 tries.
async fn unprocessed_backoff(op: &'static str, attempt: u32) -> PortResult<()> {
    if attempt >= 8 {
        return Err(PortError::Transient {
            op,
            message: "part of the batch was still unprocessed (throttled) after 8 attempts".into(),
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
    Ok(())
}

/// The DynamoDB key-value store.
pub struct AwsStore {
    client: Client,
    table: String,
    /// Decides which items count as expired (DynamoDB's own TTL sweep is not relied on).
    clock: Clock,
}

impl AwsStore {
    pub(crate) fn new(client: Client, table: String, clock: Clock) -> Self {
        AwsStore {
            client,
            table,
            clock,
        }
    }

    /// Creates the table (on-demand, TTL on `expires_at`) if missing and waits until it is
    /// active. Production tables come from Terraform; this is for emulators and first runs.
    pub async fn ensure_table(&self) -> PortResult<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| PortError::invalid("dynamodb:CreateTable", e.to_string()))
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(|e| PortError::invalid("dynamodb:CreateTable", e.to_string()))
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr(PK)?)
            .attribute_definitions(attr(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if has_code(&e, &["ResourceInUseException"]) => {}
            Err(e) => return Err(classify("dynamodb:CreateTable", e)),
        }
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| classify("dynamodb:DescribeTable", e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| classify("dynamodb:DescribeTimeToLive", e))?;
        let status = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status());
        if !matches!(
            status,
            Some(TimeToLiveStatus::Enabled) | Some(TimeToLiveStatus::Enabling)
        ) {
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(EXPIRES)
                        .build()
                        .map_err(|e| {
                            PortError::invalid("dynamodb:UpdateTimeToLive", e.to_string())
                        })?,
                )
                .send()
                .await
                .map_err(|e| classify("dynamodb:UpdateTimeToLive", e))?;
        }
        Ok(())
    }

    async fn get_raw(&self, key: &StoreKey) -> PortResult<Option<HashMap<String, AttributeValue>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.fail("dynamodb:GetItem", e))?;
        Ok(out.item().cloned())
    }

    fn fail<E>(
        &self,
        op: &'static str,
        err: aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> PortError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        if has_code(&err, &["ResourceNotFoundException"]) {
            PortError::NotFound {
                what: "DynamoDB table",
                name: self.table.clone(),
            }
        } else {
            classify(op, err)
        }
    }

    /// After a failed condition: if the item in the way has expired, delete it (only if it
    /// is still that very version) and say so.
    async fn remove_if_expired(&self, key: &StoreKey) -> PortResult<bool> {
        let now = self.clock.now_secs();
        let Some(item) = self.get_raw(key).await? else {
            return Ok(false);
        };
        if !expired(&item, now) {
            return Ok(false);
        }
        let mut e = Expr::default();
        let cond = match number(&item, VERSION) {
            Some(v) => {
                let ver = e.name(VERSION);
                let val = e.value(n(v));
                format!("{ver} = {val}")
            }
            None => {
                let ver = e.name(VERSION);
                format!("attribute_not_exists({ver})")
            }
        };
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Someone else replaced or removed it meanwhile: just try again.
            Err(err) if has_code(&err, COND_FAILED) => Ok(true),
            Err(err) => Err(self.fail("dynamodb:DeleteItem", err)),
        }
    }

    /// Runs one write; returns the item's attributes after an update.
    async fn write_one(
        &self,
        op: &WriteOp,
        returns: ReturnValue,
    ) -> PortResult<Option<HashMap<String, AttributeValue>>> {
        for _ in 0..4 {
            let spec = spec(op, self.clock.now_secs())?;
            let failed = match &spec.kind {
                Kind::Update(update) => {
                    let result = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key_map(&spec.key)))
                        .update_expression(update)
                        .set_condition_expression(spec.condition.clone())
                        .set_expression_attribute_names(spec.expr.names())
                        .set_expression_attribute_values(spec.expr.values())
                        .return_values(returns.clone())
                        .send()
                        .await;
                    match result {
                        Ok(out) => return Ok(out.attributes().cloned()),
                        Err(e) if has_code(&e, COND_FAILED) => true,
                        Err(e) => return Err(self.fail("dynamodb:UpdateItem", e)),
                    }
                }
                Kind::Delete => {
                    let result = self
                        .client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(key_map(&spec.key)))
                        .set_condition_expression(spec.condition.clone())
                        .set_expression_attribute_names(spec.expr.names())
                        .set_expression_attribute_values(spec.expr.values())
                        .send()
                        .await;
                    match result {
                        Ok(_) => return Ok(None),
                        Err(e) if has_code(&e, COND_FAILED) => true,
                        Err(e) => return Err(self.fail("dynamodb:DeleteItem", e)),
                    }
                }
                Kind::Check => {
                    return Err(PortError::invalid(
                        "dynamodb",
                        "a check alone writes nothing",
                    ))
                }
            };
            debug_assert!(failed);
            let cleaned = self.remove_if_expired(&spec.key).await?;
            if !(cleaned && spec.retry_if_expired) {
                return Err(PortError::ConditionFailed {
                    key: spec.key.to_string(),
                });
            }
        }
        Err(PortError::Transient {
            op: "dynamodb:UpdateItem",
            message: format!("{} kept changing while expired", op_key(op)),
        })
    }
}

fn transact_item(spec: Spec, table: &str) -> PortResult<TransactWriteItem> {
    let err = |e: aws_sdk_dynamodb::error::BuildError| {
        PortError::invalid("dynamodb:TransactWriteItems", e.to_string())
    };
    let item = match spec.kind {
        Kind::Update(update) => TransactWriteItem::builder().update(
            Update::builder()
                .table_name(table)
                .set_key(Some(key_map(&spec.key)))
                .update_expression(update)
                .set_condition_expression(spec.condition)
                .set_expression_attribute_names(spec.expr.names())
                .set_expression_attribute_values(spec.expr.values())
                .build()
                .map_err(err)?,
        ),
        Kind::Delete => TransactWriteItem::builder().delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key_map(&spec.key)))
                .set_condition_expression(spec.condition)
                .set_expression_attribute_names(spec.expr.names())
                .set_expression_attribute_values(spec.expr.values())
                .build()
                .map_err(err)?,
        ),
        Kind::Check => TransactWriteItem::builder().condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key_map(&spec.key)))
                .condition_expression(spec.condition.unwrap_or_default())
                .set_expression_attribute_names(spec.expr.names())
                .set_expression_attribute_values(spec.expr.values())
                .build()
                .map_err(err)?,
        ),
    };
    Ok(item.build())
}

/// Largest value kept in a record rather than in a blob on DynamoDB. Set by price, not by
/// DynamoDB's 400 KB item limit: a DynamoDB write costs a unit per KB ($0.625 per million)
/// and an S3 PUT $5 per million, so a record pays up to about 8 KB written, which base64
/// (4 characters per 3 sealed bytes) reaches at 6 KB.
pub const INLINE_VALUE_MAX_BYTES: usize = 6 * 1024;

#[async_trait]
impl KeyValueStore for AwsStore {
    fn inline_value_max_bytes(&self) -> usize {
        INLINE_VALUE_MAX_BYTES
    }

    async fn get(&self, key: &StoreKey) -> PortResult<Option<Record>> {
        match self.get_raw(key).await? {
            Some(item) if !expired(&item, self.clock.now_secs()) => Ok(Some(record_of(&item)?)),
            _ => Ok(None),
        }
    }

    async fn get_many(
        &self,
        keys: &[StoreKey],
        consistency: Consistency,
    ) -> PortResult<Vec<Option<Record>>> {
        let op = "dynamodb:BatchGetItem";
        let mut unique: Vec<&StoreKey> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let now = self.clock.now_secs();
        let mut found: HashMap<StoreKey, Record> = HashMap::new();
        for chunk in unique.chunks(MAX_BATCH_GET) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.iter().map(|k| key_map(k)).collect()))
                .consistent_read(consistency == Consistency::Strong)
                .build()
                .map_err(|e| PortError::invalid(op, e.to_string()))?;
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.fail(op, e))?;
                let items = out.responses().and_then(|r| r.get(&self.table));
                for item in items.into_iter().flatten() {
                    if !expired(item, now) {
                        let record = record_of(item)?;
                        found.insert(record.key.clone(), record);
                    }
                }
                match out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    Some(left) if !left.keys().is_empty() => {
                        request = left.clone();
                        unprocessed_backoff(op, attempt).await?;
                    }
                    _ => break,
                }
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn put_many(
        &self,
        items: Vec<(StoreKey, serde_json::Value, Option<i64>)>,
    ) -> PortResult<()> {
        let op = "dynamodb:BatchWriteItem";
        // One request may not name a key twice: the last document of a key wins.
        let mut last: BTreeMap<StoreKey, (serde_json::Value, Option<i64>)> = BTreeMap::new();
        for (key, value, expires_at) in items {
            last.insert(key, (value, expires_at));
        }
        let mut requests = Vec::with_capacity(last.len());
        for (key, (value, expires_at)) in last {
            let json =
                serde_json::to_string(&value).map_err(|e| PortError::invalid(op, e.to_string()))?;
            let mut item = key_map(&key);
            item.insert(VALUE.to_string(), AttributeValue::S(json));
            item.insert(VERSION.to_string(), n(1));
            if let Some(t) = expires_at {
                item.insert(EXPIRES.to_string(), n(t));
            }
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| PortError::invalid(op, e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(MAX_BATCH_WRITE) {
            let mut pending = chunk.to_vec();
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| self.fail(op, e))?;
                match out.unprocessed_items().and_then(|u| u.get(&self.table)) {
                    Some(left) if !left.is_empty() => {
                        pending = left.clone();
                        unprocessed_backoff(op, attempt).await?;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    async fn put(
        &self,
        key: &StoreKey,
        value: serde_json::Value,
        expires_at: Option<i64>,
        condition: Condition,
    ) -> PortResult<u64> {
        let op = WriteOp::Put {
            key: key.clone(),
            value,
            expires_at,
            condition,
        };
        let attrs = self.write_one(&op, ReturnValue::UpdatedNew).await?;
        Ok(attrs
            .as_ref()
            .and_then(|a| number(a, VERSION))
            .unwrap_or(1)
            .max(1) as u64)
    }

    async fn add(&self, key: &StoreKey, deltas: &BTreeMap<String, i64>) -> PortResult<Record> {
        let op = WriteOp::Add {
            key: key.clone(),
            deltas: deltas.clone(),
            condition: Condition::None,
        };
        let attrs = self
            .write_one(&op, ReturnValue::AllNew)
            .await?
            .unwrap_or_default();
        let mut record = record_of(&attrs)?;
        record.key = key.clone();
        Ok(record)
    }

    async fn delete(&self, key: &StoreKey, condition: Condition) -> PortResult<()> {
        let op = WriteOp::Delete {
            key: key.clone(),
            condition,
        };
        self.write_one(&op, ReturnValue::None).await.map(|_| ())
    }

    async fn query(&self, pk: &str, sk_prefix: &str) -> PortResult<Vec<Record>> {
        let now = self.clock.now_secs();
        let mut e = Expr::default();
        let pk_name = e.name(PK);
        let pk_value = e.value(AttributeValue::S(pk.to_string()));
        let mut key_cond = format!("{pk_name} = {pk_value}");
        if !sk_prefix.is_empty() {
            let sk_name = e.name(SK);
            let p = e.value(AttributeValue::S(sk_prefix.to_string()));
            key_cond.push_str(&format!(" AND begins_with({sk_name}, {p})"));
        }
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&key_cond)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| self.fail("dynamodb:Query", err))?;
            for item in out.items() {
                if !expired(item, now) {
                    records.push(record_of(item)?);
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        records.sort_by(|a, b| a.key.sk.cmp(&b.key.sk));
        Ok(records)
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        let op_name = "dynamodb:TransactWriteItems";
        if ops.is_empty() {
            return Ok(());
        }
        if ops.len() > MAX_TRANSACT {
            return Err(PortError::invalid(
                op_name,
                format!(
                    "{} operations; a transaction holds at most {MAX_TRANSACT}",
                    ops.len()
                ),
            ));
        }
        let mut keys: Vec<&StoreKey> = ops.iter().map(op_key).collect();
        keys.sort();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(PortError::invalid(
                op_name,
                "two operations on the same key",
            ));
        }
        for _ in 0..4 {
            let now = self.clock.now_secs();
            let mut items = Vec::with_capacity(ops.len());
            for op in &ops {
                items.push(transact_item(spec(op, now)?, &self.table)?);
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Vec<Option<String>> = match err.as_service_error() {
                Some(
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                        c,
                    ),
                ) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| match r.code() {
                        None | Some("None") | Some("") => None,
                        Some(code) => Some(code.to_string()),
                    })
                    .collect(),
                _ => return Err(self.fail(op_name, err)),
            };
            let condition_failures: Vec<usize> = reasons
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect();
            if condition_failures.is_empty() {
                // Conflicts with another transaction, throttling: worth another try later.
                let any = reasons
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(PortError::Transient {
                    op: op_name,
                    message: format!("transaction cancelled: {any}"),
                });
            }
            let mut cleaned_all = true;
            for &i in &condition_failures {
                let op = &ops[i];
                let cleaned = self.remove_if_expired(op_key(op)).await?;
                let retryable = match op {
                    WriteOp::Put { condition, .. }
                    | WriteOp::Add { condition, .. }
                    | WriteOp::Delete { condition, .. }
                    | WriteOp::Check { condition, .. } => passes_when_absent(condition),
                };
                cleaned_all &= cleaned && retryable;
            }
            if !cleaned_all {
                let mut reasons = reasons;
                reasons.resize(ops.len(), None);
                return Err(PortError::TransactionCancelled { reasons });
            }
        }
        Err(PortError::Transient {
            op: op_name,
            message: "expired items kept getting in the way".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_use_only_their_placeholders() {
        let op = WriteOp::Put {
            key: StoreKey::new("a", "b"),
            value: serde_json::json!({"x": 1}),
            expires_at: None,
            condition: Condition::VersionIs(3),
        };
        let s = spec(&op, 100).unwrap();
        let all = format!(
            "{} {}",
            match &s.kind {
                Kind::Update(u) => u.clone(),
                _ => String::new(),
            },
            s.condition.clone().unwrap_or_default()
        );
        for k in s.expr.names.keys().chain(s.expr.values.keys()) {
            assert!(all.contains(k.as_str()), "{k} unused in {all}");
        }
        assert!(s.expr.values.keys().all(|k| all.contains(k.as_str())));
        assert!(!s.retry_if_expired);
    }

    #[test]
    fn record_round_trip() {
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("p".into())),
            ("sk".to_string(), AttributeValue::S("s".into())),
            ("value".to_string(), AttributeValue::S("{\"a\":2}".into())),
            ("c_done".to_string(), n(4)),
            ("version".to_string(), n(2)),
            ("expires_at".to_string(), n(50)),
        ]);
        let r = record_of(&item).unwrap();
        assert_eq!(r.value["a"], 2);
        assert_eq!(r.counters["done"], 4);
        assert_eq!(r.version, 2);
        assert!(expired(&item, 51));
        assert!(!expired(&item, 50));
    }
}
