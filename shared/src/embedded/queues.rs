//! Work queues on SQLite with SQS FIFO semantics (see `crate::ports::WorkQueues`).
//!
//! Model: one `messages` row per message (in queue order by `seq`), with the time it next
//! becomes visible (`visible_at_ms`: after its delay, or when its visibility timeout ends),
//! its receive count and the receipt handle of its latest receive. A message is *in flight*
//! when it has been received and its visibility has not ended yet.
//!
//! One `message_groups` row per non-empty group says when the group may deliver next: the
//! later of its head's `visible_at_ms` and the end of the visibility of any received message
//! of the group. A receive therefore only looks at groups that are ready, oldest head first,
//! and takes messages of a group in order, from its head, while they are visible. Every
//! change to a group's messages ends with [`refresh_group`], inside the same transaction.
//!
//! All of it happens in one `BEGIN IMMEDIATE` transaction per call, so concurrent receivers
//! in any number of processes never both take the same message.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{duration_ms, random_hex, random_id, Db, SqlResultExt};
use crate::ports::{
    OutgoingMessage, PortError, PortResult, QueueDepth, QueueSpec, ReceivedMessage, SendOutcome,
    WorkQueues, DEDUP_WINDOW, MAX_BATCH,
};

/// SQS: visibility timeouts up to 12 hours.
pub(crate) const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS: long polling waits at most 20 seconds.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS: delivery delay at most 15 minutes.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS: retention between 1 minute and 14 days.
pub(crate) const MIN_RETENTION: Duration = Duration::from_secs(60);
pub(crate) const MAX_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// SQS: maxReceiveCount between 1 and 1000.
pub(crate) const MAX_RECEIVE_COUNT: u32 = 1000;
/// SQS: a message (body plus attributes) is at most 256 KiB.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS: at most 10 message attributes.
pub(crate) const MAX_ATTRIBUTES: usize = 10;
/// SQS: group and deduplication ids are at most 128 characters.
pub(crate) const MAX_ID_LEN: usize = 128;
/// How often a long poll looks at the database again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The SQLite-backed [`WorkQueues`].
pub struct SqliteQueues {
    db: Arc<Db>,
}

impl SqliteQueues {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        SqliteQueues { db }
    }
}

/// A queue's configuration row.
#[derive(Debug, Clone)]
pub(crate) struct QueueRow {
    pub name: String,
    pub dlq_name: Option<String>,
    pub visibility_ms: i64,
    pub max_receive_count: u32,
    pub retention_ms: i64,
}

pub(crate) fn load_queue(
    conn: &Connection,
    op: &'static str,
    name: &str,
) -> PortResult<Option<QueueRow>> {
    conn.prepare_cached(
        "SELECT name, dlq_name, visibility_ms, max_receive_count, retention_ms
         FROM queues WHERE name = ?1",
    )
    .op(op)?
    .query_row([name], |r| {
        Ok(QueueRow {
            name: r.get(0)?,
            dlq_name: r.get(1)?,
            visibility_ms: r.get(2)?,
            max_receive_count: r.get(3)?,
            retention_ms: r.get(4)?,
        })
    })
    .optional()
    .op(op)
}

pub(crate) fn require_queue(
    conn: &Connection,
    op: &'static str,
    name: &str,
) -> PortResult<QueueRow> {
    load_queue(conn, op, name)?.ok_or_else(|| PortError::NotFound {
        what: "queue",
        name: name.to_string(),
    })
}

pub(crate) fn validate_queue_name(op: &'static str, name: &str) -> PortResult<()> {
    validate_name(op, "queue", name, 75)
}

/// SQS and SNS names: letters, digits, `-` and `_` (the `.fifo` suffix is the AWS
/// backend's business).
pub(crate) fn validate_name(
    op: &'static str,
    what: &str,
    name: &str,
    max: usize,
) -> PortResult<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PortError::Invalid {
            op,
            message: format!("{what} name {name:?} must be 1 to {max} letters, digits, '-' or '_'"),
        })
    }
}

pub(crate) fn validate_batch_len(op: &'static str, len: usize) -> PortResult<()> {
    if len == 0 {
        return Err(PortError::invalid(op, "empty batch"));
    }
    if len > MAX_BATCH {
        return Err(PortError::invalid(
            op,
            format!("{len} entries in one batch (at most {MAX_BATCH})"),
        ));
    }
    Ok(())
}

/// Checks one outgoing message against the SQS FIFO limits.
pub(crate) fn validate_message(op: &'static str, m: &OutgoingMessage) -> PortResult<()> {
    for (what, id) in [("group id", &m.group_id), ("deduplication id", &m.dedup_id)] {
        if id.is_empty() || id.chars().count() > MAX_ID_LEN {
            return Err(PortError::invalid(
                op,
                format!("{what} {id:?} must be 1 to {MAX_ID_LEN} characters"),
            ));
        }
        if !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(PortError::invalid(
                op,
                format!("{what} {id:?} may only hold printable ASCII characters"),
            ));
        }
    }
    if m.attributes.len() > MAX_ATTRIBUTES {
        return Err(PortError::invalid(
            op,
            format!(
                "{} attributes (at most {MAX_ATTRIBUTES})",
                m.attributes.len()
            ),
        ));
    }
    if m.attributes.keys().any(|k| k.is_empty()) {
        return Err(PortError::invalid(op, "empty attribute name"));
    }
    if m.attributes.values().any(|v| v.is_empty()) {
        return Err(PortError::invalid(op, "empty attribute value"));
    }
    let size = m.body.len()
        + m.attributes
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > MAX_MESSAGE_BYTES {
        return Err(PortError::invalid(
            op,
            format!("message of {size} bytes (at most {MAX_MESSAGE_BYTES})"),
        ));
    }
    if m.body.is_empty() {
        return Err(PortError::invalid(op, "empty message body"));
    }
    if m.delay > MAX_DELAY {
        return Err(PortError::invalid(
            op,
            format!("delay of {:?} (at most {MAX_DELAY:?})", m.delay),
        ));
    }
    Ok(())
}

/// Looks up a live deduplication record.
pub(crate) fn dedup_lookup(
    conn: &Connection,
    op: &'static str,
    scope: &str,
    dedup_id: &str,
    now: i64,
) -> PortResult<Option<String>> {
    conn.prepare_cached(
        "SELECT message_id FROM dedup WHERE scope = ?1 AND dedup_id = ?2 AND expires_at_ms > ?3",
    )
    .op(op)?
    .query_row(params![scope, dedup_id, now], |r| r.get(0))
    .optional()
    .op(op)
}

pub(crate) fn dedup_record(
    conn: &Connection,
    op: &'static str,
    scope: &str,
    dedup_id: &str,
    message_id: &str,
    now: i64,
) -> PortResult<()> {
    conn.prepare_cached(
        "INSERT INTO dedup (scope, dedup_id, message_id, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (scope, dedup_id) DO UPDATE
         SET message_id = excluded.message_id, expires_at_ms = excluded.expires_at_ms",
    )
    .op(op)?
    .execute(params![
        scope,
        dedup_id,
        message_id,
        now + duration_ms(DEDUP_WINDOW)
    ])
    .op(op)?;
    Ok(())
}

pub(crate) fn queue_scope(queue: &str) -> String {
    format!("q:{queue}")
}

/// Enqueues one (validated) message, applying the queue's deduplication window.
pub(crate) fn enqueue(
    conn: &Connection,
    op: &'static str,
    queue: &QueueRow,
    m: &OutgoingMessage,
    now: i64,
) -> PortResult<SendOutcome> {
    let scope = queue_scope(&queue.name);
    if let Some(existing) = dedup_lookup(conn, op, &scope, &m.dedup_id, now)? {
        return Ok(SendOutcome::Duplicate {
            message_id: existing,
        });
    }
    let message_id = random_id();
    dedup_record(conn, op, &scope, &m.dedup_id, &message_id, now)?;
    let attributes = serde_json::to_string(&m.attributes).map_err(|e| PortError::Invalid {
        op,
        message: format!("attributes: {e}"),
    })?;
    let visible_at = now + duration_ms(m.delay);
    conn.prepare_cached(
        "INSERT INTO messages (queue, message_id, group_id, dedup_id, body, attributes,
                               sent_at_ms, visible_at_ms, expires_at_ms, receive_count, receipt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, NULL)",
    )
    .op(op)?
    .execute(params![
        queue.name,
        message_id,
        m.group_id,
        m.dedup_id,
        m.body,
        attributes,
        now,
        visible_at,
        now + queue.retention_ms,
    ])
    .op(op)?;
    let seq = conn.last_insert_rowid();
    // A new message is never the head of an existing group, so an existing group row stays
    // as it is; a new group starts with this message as its head.
    conn.prepare_cached(
        "INSERT OR IGNORE INTO message_groups (queue, group_id, head_seq, available_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .op(op)?
    .execute(params![queue.name, m.group_id, seq, visible_at])
    .op(op)?;
    Ok(SendOutcome::Sent { message_id })
}

/// Recomputes a group's row from its messages (or removes it when the group is empty).
pub(crate) fn refresh_group(
    conn: &Connection,
    op: &'static str,
    queue: &str,
    group: &str,
) -> PortResult<()> {
    let head: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT seq, visible_at_ms FROM messages
             WHERE queue = ?1 AND group_id = ?2 ORDER BY seq LIMIT 1",
        )
        .op(op)?
        .query_row(params![queue, group], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .op(op)?;
    let Some((head_seq, head_visible_at)) = head else {
        conn.prepare_cached("DELETE FROM message_groups WHERE queue = ?1 AND group_id = ?2")
            .op(op)?
            .execute(params![queue, group])
            .op(op)?;
        return Ok(());
    };
    let received_until: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(visible_at_ms) FROM messages
             WHERE queue = ?1 AND group_id = ?2 AND receipt IS NOT NULL",
        )
        .op(op)?
        .query_row(params![queue, group], |r| r.get(0))
        .op(op)?;
    let available_at = head_visible_at.max(received_until.unwrap_or(i64::MIN));
    conn.prepare_cached(
        "INSERT INTO message_groups (queue, group_id, head_seq, available_at_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (queue, group_id) DO UPDATE
         SET head_seq = excluded.head_seq, available_at_ms = excluded.available_at_ms",
    )
    .op(op)?
    .execute(params![queue, group, head_seq, available_at])
    .op(op)?;
    Ok(())
}

/// Drops the messages of a queue whose retention period has passed.
fn purge_expired(conn: &Connection, op: &'static str, queue: &str, now: i64) -> PortResult<()> {
    let groups: BTreeSet<String> = conn
        .prepare_cached(
            "DELETE FROM messages WHERE queue = ?1 AND expires_at_ms <= ?2 RETURNING group_id",
        )
        .op(op)?
        .query_map(params![queue, now], |r| r.get(0))
        .op(op)?
        .collect::<Result<_, _>>()
        .op(op)?;
    for group in groups {
        refresh_group(conn, op, queue, &group)?;
    }
    Ok(())
}

/// Whether a receive may find something to do: a ready group, or messages past retention.
fn anything_to_do(conn: &Connection, op: &'static str, queue: &str, now: i64) -> PortResult<bool> {
    let ready: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM message_groups WHERE queue = ?1 AND available_at_ms <= ?2)
                 OR EXISTS (SELECT 1 FROM messages WHERE queue = ?1 AND expires_at_ms <= ?2)",
        )
        .op(op)?
        .query_row(params![queue, now], |r| r.get(0))
        .op(op)?;
    Ok(ready)
}

struct Candidate {
    seq: i64,
    message_id: String,
    dedup_id: String,
    body: String,
    attributes: String,
    visible_at: i64,
    receive_count: u32,
}

/// Moves a message to the queue's DLQ, keeping its receive count (as SQS does), its body,
/// attributes, group and deduplication ids. Its retention starts again (SQS FIFO resets the
/// enqueue timestamp on redrive).
fn move_to_dlq(
    conn: &Connection,
    op: &'static str,
    dlq: &QueueRow,
    seq: i64,
    group: &str,
    now: i64,
) -> PortResult<()> {
    conn.prepare_cached(
        "INSERT INTO messages (queue, message_id, group_id, dedup_id, body, attributes,
                               sent_at_ms, visible_at_ms, expires_at_ms, receive_count, receipt)
         SELECT ?1, message_id, group_id, dedup_id, body, attributes, ?2, ?2, ?3,
                receive_count, NULL
         FROM messages WHERE seq = ?4",
    )
    .op(op)?
    .execute(params![dlq.name, now, now + dlq.retention_ms, seq])
    .op(op)?;
    let new_seq = conn.last_insert_rowid();
    conn.prepare_cached("DELETE FROM messages WHERE seq = ?1")
        .op(op)?
        .execute([seq])
        .op(op)?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO message_groups (queue, group_id, head_seq, available_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .op(op)?
    .execute(params![dlq.name, group, new_seq, now])
    .op(op)?;
    tracing::debug!(dlq = %dlq.name, group, "message moved to the dead-letter queue");
    Ok(())
}

/// One receive attempt at `now` (epoch millis): takes up to `max` messages, in one
/// transaction.
fn receive_once(
    conn: &Connection,
    op: &'static str,
    queue: &str,
    max: usize,
    visibility: Option<Duration>,
    now: i64,
) -> PortResult<Vec<ReceivedMessage>> {
    let q = require_queue(conn, op, queue)?;
    purge_expired(conn, op, queue, now)?;
    let visibility_ms = visibility.map(duration_ms).unwrap_or(q.visibility_ms);
    let dlq = match (&q.dlq_name, q.max_receive_count) {
        (Some(name), n) if n > 0 => {
            let dlq = load_queue(conn, op, name)?;
            if dlq.is_none() {
                tracing::warn!(queue, dlq = %name, "dead-letter queue is missing; not redriving");
            }
            dlq
        }
        _ => None,
    };

    let mut out: Vec<ReceivedMessage> = Vec::new();
    let mut done_groups: HashSet<String> = HashSet::new();
    'groups: while out.len() < max {
        let ready: Vec<String> = conn
            .prepare_cached(
                "SELECT group_id FROM message_groups
                 WHERE queue = ?1 AND available_at_ms <= ?2
                 ORDER BY head_seq LIMIT ?3",
            )
            .op(op)?
            .query_map(params![queue, now, (max + done_groups.len()) as i64], |r| {
                r.get(0)
            })
            .op(op)?
            .collect::<Result<_, _>>()
            .op(op)?;
        let fresh: Vec<String> = ready
            .into_iter()
            .filter(|g| !done_groups.contains(g))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for group in fresh {
            if out.len() >= max {
                break 'groups;
            }
            take_from_group(
                conn,
                op,
                &q,
                dlq.as_ref(),
                &group,
                max,
                visibility_ms,
                now,
                &mut out,
            )?;
            refresh_group(conn, op, queue, &group)?;
            done_groups.insert(group);
        }
    }
    Ok(out)
}

/// Takes messages of one ready group, in order from its head, while they are visible.
#[allow(clippy::too_many_arguments)]
fn take_from_group(
    conn: &Connection,
    op: &'static str,
    q: &QueueRow,
    dlq: Option<&QueueRow>,
    group: &str,
    max: usize,
    visibility_ms: i64,
    now: i64,
    out: &mut Vec<ReceivedMessage>,
) -> PortResult<()> {
    let mut after_seq = i64::MIN;
    loop {
        let remaining = max - out.len();
        if remaining == 0 {
            return Ok(());
        }
        let rows: Vec<Candidate> = conn
            .prepare_cached(
                "SELECT seq, message_id, dedup_id, body, attributes, visible_at_ms, receive_count
                 FROM messages WHERE queue = ?1 AND group_id = ?2 AND seq > ?3
                 ORDER BY seq LIMIT ?4",
            )
            .op(op)?
            .query_map(params![q.name, group, after_seq, remaining as i64], |r| {
                Ok(Candidate {
                    seq: r.get(0)?,
                    message_id: r.get(1)?,
                    dedup_id: r.get(2)?,
                    body: r.get(3)?,
                    attributes: r.get(4)?,
                    visible_at: r.get(5)?,
                    receive_count: r.get(6)?,
                })
            })
            .op(op)?
            .collect::<Result<_, _>>()
            .op(op)?;
        if rows.is_empty() {
            return Ok(());
        }
        for c in rows {
            if c.visible_at > now {
                // A later message still delayed: the group stops here, in order.
                return Ok(());
            }
            after_seq = c.seq;
            if let Some(dlq) = dlq {
                if c.receive_count >= q.max_receive_count {
                    move_to_dlq(conn, op, dlq, c.seq, group, now)?;
                    continue;
                }
            }
            let receipt = format!("{}.{}", c.seq, random_hex(20));
            conn.prepare_cached(
                "UPDATE messages SET receive_count = receive_count + 1, receipt = ?1,
                        visible_at_ms = ?2
                 WHERE seq = ?3",
            )
            .op(op)?
            .execute(params![receipt, now.saturating_add(visibility_ms), c.seq])
            .op(op)?;
            let attributes: BTreeMap<String, String> = serde_json::from_str(&c.attributes)
                .map_err(|e| PortError::Permanent {
                    op,
                    message: format!("stored attributes of message {}: {e}", c.message_id),
                })?;
            out.push(ReceivedMessage {
                message_id: c.message_id,
                receipt_handle: receipt,
                group_id: group.to_string(),
                dedup_id: c.dedup_id,
                body: c.body,
                attributes,
                receive_count: c.receive_count + 1,
            });
            if out.len() >= max {
                return Ok(());
            }
        }
    }
}

/// The message a receipt handle points at: (seq, queue, group, current receipt, visible_at).
type HandleTarget = (i64, String, String, Option<String>, i64);

fn lookup_handle(
    conn: &Connection,
    op: &'static str,
    handle: &str,
) -> PortResult<Option<HandleTarget>> {
    let seq: i64 = handle
        .split_once('.')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| PortError::invalid(op, format!("malformed receipt handle {handle:?}")))?;
    conn.prepare_cached(
        "SELECT seq, queue, group_id, receipt, visible_at_ms FROM messages WHERE seq = ?1",
    )
    .op(op)?
    .query_row([seq], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .optional()
    .op(op)
}

#[async_trait]
impl WorkQueues for SqliteQueues {
    async fn ensure_queue(&self, spec: &QueueSpec) -> PortResult<()> {
        const OP: &str = "ensure_queue";
        validate_queue_name(OP, &spec.name)?;
        validate_queue_name(OP, &spec.dlq_name)?;
        if spec.name == spec.dlq_name {
            return Err(PortError::invalid(
                OP,
                "a queue cannot be its own dead-letter queue",
            ));
        }
        if spec.visibility_timeout > MAX_VISIBILITY {
            return Err(PortError::invalid(
                OP,
                format!(
                    "visibility timeout {:?} (at most 12 h)",
                    spec.visibility_timeout
                ),
            ));
        }
        if spec.max_receive_count == 0 || spec.max_receive_count > MAX_RECEIVE_COUNT {
            return Err(PortError::invalid(
                OP,
                format!(
                    "max_receive_count {} (1 to {MAX_RECEIVE_COUNT})",
                    spec.max_receive_count
                ),
            ));
        }
        if spec.retention < MIN_RETENTION || spec.retention > MAX_RETENTION {
            return Err(PortError::invalid(
                OP,
                format!("retention {:?} (1 minute to 14 days)", spec.retention),
            ));
        }
        let spec = spec.clone();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                let now = clock.now_ms();
                let tags = serde_json::to_string(&spec.tags).unwrap_or_else(|_| "{}".into());
                let upsert = "INSERT INTO queues (name, dlq_name, visibility_ms, max_receive_count,
                                                  retention_ms, tags, created_at_ms)
                              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                              ON CONFLICT (name) DO UPDATE
                              SET dlq_name = excluded.dlq_name,
                                  visibility_ms = excluded.visibility_ms,
                                  max_receive_count = excluded.max_receive_count,
                                  retention_ms = excluded.retention_ms,
                                  tags = excluded.tags";
                // The DLQ keeps what it holds for the longest retention SQS allows, so dead
                // letters wait for an operator.
                tx.execute(
                    upsert,
                    params![
                        spec.dlq_name,
                        Option::<String>::None,
                        duration_ms(spec.visibility_timeout),
                        0,
                        duration_ms(MAX_RETENTION),
                        tags,
                        now
                    ],
                )
                .op(OP)?;
                tx.execute(
                    upsert,
                    params![
                        spec.name,
                        spec.dlq_name,
                        duration_ms(spec.visibility_timeout),
                        spec.max_receive_count,
                        duration_ms(spec.retention),
                        tags,
                        now
                    ],
                )
                .op(OP)?;
                Ok(())
            })
            .await
    }

    async fn delete_queue(&self, name: &str) -> PortResult<()> {
        const OP: &str = "delete_queue";
        let name = name.to_string();
        self.db
            .write(OP, move |tx| {
                tx.execute("DELETE FROM messages WHERE queue = ?1", [&name])
                    .op(OP)?;
                tx.execute("DELETE FROM message_groups WHERE queue = ?1", [&name])
                    .op(OP)?;
                tx.execute("DELETE FROM dedup WHERE scope = ?1", [queue_scope(&name)])
                    .op(OP)?;
                tx.execute("DELETE FROM queues WHERE name = ?1", [&name])
                    .op(OP)?;
                Ok(())
            })
            .await
    }

    async fn list_queues(&self, prefix: &str) -> PortResult<Vec<String>> {
        const OP: &str = "list_queues";
        let prefix = prefix.to_string();
        self.db
            .read(OP, move |tx| {
                super::db::names_with_prefix(tx, OP, "queues", &prefix)
            })
            .await
    }

    async fn send_batch(
        &self,
        queue: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<SendOutcome>> {
        const OP: &str = "send_batch";
        validate_batch_len(OP, messages.len())?;
        for m in messages {
            validate_message(OP, m)?;
        }
        self.db.purge_if_due().await?;
        let queue = queue.to_string();
        let messages = messages.to_vec();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                let q = require_queue(tx, OP, &queue)?;
                let now = clock.now_ms();
                messages
                    .iter()
                    .map(|m| enqueue(tx, OP, &q, m, now))
                    .collect()
            })
            .await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        const OP: &str = "receive";
        if max == 0 || max > MAX_BATCH {
            return Err(PortError::invalid(
                OP,
                format!("max {max} (1 to {MAX_BATCH})"),
            ));
        }
        if wait > MAX_WAIT {
            return Err(PortError::invalid(
                OP,
                format!("wait {wait:?} (at most 20 s)"),
            ));
        }
        if visibility.is_some_and(|v| v > MAX_VISIBILITY) {
            return Err(PortError::invalid(OP, "visibility timeout above 12 h"));
        }
        // The wait itself is real time (tokio); what is receivable is decided by the clock.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Look first without the write lock: idle pollers must not queue up behind
            // (and slow down) the writers.
            let q = queue.to_string();
            let clock = self.db.clock().clone();
            let worth_it = self
                .db
                .read(OP, move |tx| {
                    require_queue(tx, OP, &q)?;
                    anything_to_do(tx, OP, &q, clock.now_ms())
                })
                .await?;
            if worth_it {
                let q = queue.to_string();
                let clock = self.db.clock().clone();
                let got = self
                    .db
                    .write(OP, move |tx| {
                        receive_once(tx, OP, &q, max, visibility, clock.now_ms())
                    })
                    .await?;
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    async fn delete_batch(&self, queue: &str, receipt_handles: &[String]) -> PortResult<()> {
        const OP: &str = "delete_batch";
        validate_batch_len(OP, receipt_handles.len())?;
        let queue = queue.to_string();
        let handles = receipt_handles.to_vec();
        let problems = self
            .db
            .write(OP, move |tx| {
                require_queue(tx, OP, &queue)?;
                let mut problems = Vec::new();
                let mut groups = BTreeSet::new();
                for handle in &handles {
                    let target = match lookup_handle(tx, OP, handle) {
                        Ok(t) => t,
                        Err(e) => {
                            problems.push(e.to_string());
                            continue;
                        }
                    };
                    match target {
                        // Already deleted (or retention ran out): deleting again is fine.
                        None => {}
                        Some((seq, q, group, receipt, _)) => {
                            if q != queue || receipt.as_deref() != Some(handle.as_str()) {
                                problems.push(format!(
                                    "receipt handle {handle} is stale (the message was received again since)"
                                ));
                                continue;
                            }
                            tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")
                                .op(OP)?
                                .execute([seq])
                                .op(OP)?;
                            groups.insert(group);
                        }
                    }
                }
                for group in groups {
                    refresh_group(tx, OP, &queue, &group)?;
                }
                Ok(problems)
            })
            .await?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PortError::invalid(OP, problems.join("; ")))
        }
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        const OP: &str = "change_visibility";
        if timeout > MAX_VISIBILITY {
            return Err(PortError::invalid(OP, "visibility timeout above 12 h"));
        }
        let queue = queue.to_string();
        let handle = receipt_handle.to_string();
        let clock = self.db.clock().clone();
        self.db
            .write(OP, move |tx| {
                require_queue(tx, OP, &queue)?;
                let now = clock.now_ms();
                let Some((seq, q, group, receipt, visible_at)) = lookup_handle(tx, OP, &handle)?
                else {
                    return Err(PortError::invalid(
                        OP,
                        format!("receipt handle {handle}: the message no longer exists"),
                    ));
                };
                if q != queue || receipt.as_deref() != Some(handle.as_str()) {
                    return Err(PortError::invalid(
                        OP,
                        format!("receipt handle {handle} is stale (the message was received again since)"),
                    ));
                }
                if visible_at <= now {
                    return Err(PortError::invalid(
                        OP,
                        format!("receipt handle {handle}: the message is not in flight"),
                    ));
                }
                tx.prepare_cached("UPDATE messages SET visible_at_ms = ?1 WHERE seq = ?2")
                    .op(OP)?
                    .execute(params![now.saturating_add(duration_ms(timeout)), seq])
                    .op(OP)?;
                refresh_group(tx, OP, &queue, &group)
            })
            .await
    }

    async fn depth(&self, queue: &str) -> PortResult<QueueDepth> {
        const OP: &str = "depth";
        let queue = queue.to_string();
        let clock = self.db.clock().clone();
        self.db
            .read(OP, move |tx| {
                require_queue(tx, OP, &queue)?;
                let now = clock.now_ms();
                let (visible, in_flight, delayed): (i64, i64, i64) = tx
                    .prepare_cached(
                        "SELECT
                           COALESCE(SUM(visible_at_ms <= ?2), 0),
                           COALESCE(SUM(visible_at_ms > ?2 AND receipt IS NOT NULL), 0),
                           COALESCE(SUM(visible_at_ms > ?2 AND receipt IS NULL), 0)
                         FROM messages WHERE queue = ?1 AND expires_at_ms > ?2",
                    )
                    .op(OP)?
                    .query_row(params![queue, now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .op(OP)?;
                Ok(QueueDepth {
                    visible: visible as u64,
                    in_flight: in_flight as u64,
                    delayed: delayed as u64,
                })
            })
            .await
    }

    async fn dlq_of(&self, queue: &str) -> PortResult<String> {
        const OP: &str = "dlq_of";
        let queue = queue.to_string();
        self.db
            .read(OP, move |tx| {
                let q = require_queue(tx, OP, &queue)?;
                q.dlq_name.ok_or(PortError::NotFound {
                    what: "redrive policy of queue",
                    name: queue,
                })
            })
            .await
    }
}
