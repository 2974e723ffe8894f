//! Fan-out topics on SQLite with SNS FIFO semantics (see `crate::ports::Topics`).
//!
//! A publish runs in one transaction: the topic's deduplication window is checked, then the
//! message is enqueued, unchanged (raw delivery: body, attributes, group id, dedup id), into
//! every subscribed queue whose filter policy matches. Either all of a batch is delivered
//! everywhere or nothing is.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{random_hex, random_id, Db, SqlResultExt};
use super::queues::{
    dedup_lookup, dedup_record, enqueue, load_queue, validate_batch_len, validate_message,
    validate_name, validate_queue_name,
};
use crate::ports::{
    FilterPolicy, OutgoingMessage, PortError, PortResult, SendOutcome, Subscription, Topics,
};

/// SNS FIFO: at most 100 subscriptions per topic.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 100;

/// The SQLite-backed [`Topics`].
pub struct SqliteTopics {
    db: Arc<Db>,
    /// How long a new or changed filter policy takes to apply (SNS: up to 15 minutes);
    /// until then a publish does not reach that subscription's queue.
    filter_propagation_ms: i64,
}

impl SqliteTopics {
    pub(crate) fn new(db: Arc<Db>, filter_propagation: std::time::Duration) -> Self {
        SqliteTopics {
            db,
            filter_propagation_ms: i64::try_from(filter_propagation.as_millis())
                .unwrap_or(i64::MAX),
        }
    }
}

fn validate_topic_name(op: &'static str, name: &str) -> PortResult<()> {
    validate_name(op, "topic", name, 251)
}

fn topic_exists(conn: &Connection, op: &'static str, topic: &str) -> PortResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM topics WHERE name = ?1")
        .op(op)?
        .query_row([topic], |_| Ok(()))
        .optional()
        .op(op)?
        .is_some())
}

fn require_topic(conn: &Connection, op: &'static str, topic: &str) -> PortResult<()> {
    if topic_exists(conn, op, topic)? {
        Ok(())
    } else {
        Err(PortError::NotFound {
            what: "topic",
            name: topic.to_string(),
        })
    }
}

fn parse_filter(op: &'static str, json: &str) -> PortResult<FilterPolicy> {
    serde_json::from_str::<BTreeMap<String, Vec<String>>>(json)
        .map(FilterPolicy)
        .map_err(|e| PortError::Permanent {
            op,
            message: format!("stored filter policy {json:?}: {e}"),
        })
}

fn subscriptions_of(
    conn: &Connection,
    op: &'static str,
    topic: &str,
) -> PortResult<Vec<Subscription>> {
    let rows: Vec<(String, String, String)> = conn
        .prepare_cached(
            "SELECT id, queue, filter FROM subscriptions WHERE topic = ?1 ORDER BY queue",
        )
        .op(op)?
        .query_map([topic], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .op(op)?
        .collect::<Result<_, _>>()
        .op(op)?;
    rows.into_iter()
        .map(|(id, queue, filter)| {
            Ok(Subscription {
                id,
                topic: topic.to_string(),
                queue,
                filter: parse_filter(op, &filter)?,
            })
        })
        .collect()
}

#[async_trait]
impl Topics for SqliteTopics {
    async fn ensure_topic(&self, topic: &str) -> PortResult<()> {
        const OP: &str = "ensure_topic";
        validate_topic_name(OP, topic)?;
        let topic = topic.to_string();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                tx.execute(
                    "INSERT OR IGNORE INTO topics (name, created_at_ms) VALUES (?1, ?2)",
                    params![topic, clock.now_ms()],
                )
                .op(OP)?;
                Ok(())
            })
            .await
    }

    async fn delete_topic(&self, topic: &str) -> PortResult<()> {
        const OP: &str = "delete_topic";
        let topic = topic.to_string();
        self.db
            .write(OP, move |tx| {
                tx.execute("DELETE FROM subscriptions WHERE topic = ?1", [&topic])
                    .op(OP)?;
                tx.execute("DELETE FROM dedup WHERE scope = ?1", [topic_scope(&topic)])
                    .op(OP)?;
                tx.execute("DELETE FROM topics WHERE name = ?1", [&topic])
                    .op(OP)?;
                Ok(())
            })
            .await
    }

    async fn list_topics(&self, prefix: &str) -> PortResult<Vec<String>> {
        const OP: &str = "list_topics";
        let prefix = prefix.to_string();
        self.db
            .read(OP, move |tx| {
                super::db::names_with_prefix(tx, OP, "topics", &prefix)
            })
            .await
    }

    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: &FilterPolicy,
    ) -> PortResult<Subscription> {
        const OP: &str = "subscribe";
        validate_queue_name(OP, queue)?;
        let topic = topic.to_string();
        let queue = queue.to_string();
        let filter = filter.clone();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                require_topic(tx, OP, &topic)?;
                if load_queue(tx, OP, &queue)?.is_none() {
                    return Err(PortError::NotFound {
                        what: "queue",
                        name: queue,
                    });
                }
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT id FROM subscriptions WHERE topic = ?1 AND queue = ?2",
                        params![topic, queue],
                        |r| r.get(0),
                    )
                    .optional()
                    .op(OP)?;
                let now = clock.now_ms();
                let id = match existing {
                    Some(id) => {
                        // A changed filter policy takes time to apply again; an unchanged
                        // one keeps its age.
                        tx.execute(
                            "UPDATE subscriptions SET filter_since_ms = CASE WHEN filter = ?1
                                 THEN filter_since_ms ELSE ?2 END, filter = ?1 WHERE id = ?3",
                            params![filter.to_json(), now, id],
                        )
                        .op(OP)?;
                        id
                    }
                    None => {
                        let count: i64 = tx
                            .query_row(
                                "SELECT COUNT(*) FROM subscriptions WHERE topic = ?1",
                                [&topic],
                                |r| r.get(0),
                            )
                            .op(OP)?;
                        if count as usize >= MAX_SUBSCRIPTIONS {
                            return Err(PortError::Invalid {
                                op: OP,
                                message: format!(
                                    "topic {topic} already has {MAX_SUBSCRIPTIONS} subscriptions"
                                ),
                            });
                        }
                        let id = format!("{topic}:{}", random_hex(16));
                        tx.execute(
                            "INSERT INTO subscriptions (id, topic, queue, filter, filter_since_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![id, topic, queue, filter.to_json(), now],
                        )
                        .op(OP)?;
                        id
                    }
                };
                Ok(Subscription {
                    id,
                    topic,
                    queue,
                    filter,
                })
            })
            .await
    }

    async fn unsubscribe(&self, subscription_id: &str) -> PortResult<()> {
        const OP: &str = "unsubscribe";
        let id = subscription_id.to_string();
        self.db
            .write(OP, move |tx| {
                tx.execute("DELETE FROM subscriptions WHERE id = ?1", [&id])
                    .op(OP)?;
                Ok(())
            })
            .await
    }

    async fn list_subscriptions(&self, topic: &str) -> PortResult<Vec<Subscription>> {
        const OP: &str = "list_subscriptions";
        let topic = topic.to_string();
        self.db
            .read(OP, move |tx| {
                require_topic(tx, OP, &topic)?;
                subscriptions_of(tx, OP, &topic)
            })
            .await
    }

    async fn publish_batch(
        &self,
        topic: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<SendOutcome>> {
        const OP: &str = "publish_batch";
        validate_batch_len(OP, messages.len())?;
        for m in messages {
            validate_message(OP, m)?;
        }
        let topic = topic.to_string();
        let messages = messages.to_vec();
        let clock = self.db.clock().clone();
        let propagation = self.filter_propagation_ms;
        self.db
            .write(OP, move |tx| {
                require_topic(tx, OP, &topic)?;
                let now = clock.now_ms();
                let scope = topic_scope(&topic);
                let subscriptions = subscriptions_of(tx, OP, &topic)?;
                let since: BTreeMap<String, i64> = tx
                    .prepare_cached(
                        "SELECT queue, filter_since_ms FROM subscriptions WHERE topic = ?1",
                    )
                    .op(OP)?
                    .query_map([&topic], |r| Ok((r.get(0)?, r.get(1)?)))
                    .op(OP)?
                    .collect::<Result<_, _>>()
                    .op(OP)?;
                // Subscriptions whose filter policy has not applied yet receive nothing.
                let subscriptions: Vec<Subscription> = subscriptions
                    .into_iter()
                    .filter(|s| {
                        let set_at = since.get(&s.queue).copied().unwrap_or(0);
                        now.saturating_sub(set_at) >= propagation
                    })
                    .collect();
                // Queues looked up once per batch; a subscription whose queue is gone is
                // skipped, as SNS would fail that delivery.
                let mut queues = Vec::new();
                for s in &subscriptions {
                    match load_queue(tx, OP, &s.queue)? {
                        Some(q) => queues.push((s, q)),
                        None => tracing::warn!(
                            topic = %topic, queue = %s.queue,
                            "subscribed queue does not exist; delivery skipped"
                        ),
                    }
                }
                let mut outcomes = Vec::with_capacity(messages.len());
                for m in &messages {
                    if let Some(existing) = dedup_lookup(tx, OP, &scope, &m.dedup_id, now)? {
                        outcomes.push(SendOutcome::Duplicate {
                            message_id: existing,
                        });
                        continue;
                    }
                    let message_id = random_id();
                    dedup_record(tx, OP, &scope, &m.dedup_id, &message_id, now)?;
                    for (s, q) in &queues {
                        if s.filter.matches(&m.attributes) {
                            enqueue(tx, OP, q, m, now)?;
                        }
                    }
                    outcomes.push(SendOutcome::Sent { message_id });
                }
                Ok(outcomes)
            })
            .await
    }
}

fn topic_scope(topic: &str) -> String {
    format!("t:{topic}")
}
