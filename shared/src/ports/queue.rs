//! Work queues: SQS FIFO semantics, per account, each with its own dead-letter queue.
//!
//! The guarantees callers rely on (and the conformance suite checks):
//! - FIFO order within a message group; at most one message of a group in flight at a time:
//!   the group's next message is not delivered until the previous one is deleted or
//!   dead-lettered. A single receive may return several messages of one group, in order.
//! - A received message is invisible for the visibility timeout; `change_visibility` extends
//!   (heartbeat) or releases it (0). Undeleted, it comes back with `receive_count` + 1.
//! - When a message is received more than `max_receive_count` times, it is moved to the DLQ
//!   instead of being delivered (SQS redrive policy semantics).
//! - A message whose `dedup_id` was already accepted by the same queue within
//!   [`DEDUP_WINDOW`] is accepted and dropped (reported as a duplicate).
//! - `delay` postpones first delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::PortResult;

/// SQS's limit on the number of entries in one batch call.
pub const MAX_BATCH: usize = 10;

/// SQS FIFO's deduplication interval.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// What a queue and its DLQ look like. `ensure_queue` creates both, or checks and updates
/// the attributes of an existing pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Logical queue name without the `.fifo` suffix (the AWS backend adds it).
    pub name: String,
    /// Name of the dead-letter queue, also without `.fifo`.
    pub dlq_name: String,
    /// Default visibility timeout of received messages.
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the DLQ (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// How long a message is kept before it is dropped (SQS `MessageRetentionPeriod`).
    pub retention: Duration,
    /// Tags recorded on the queue (customer and account ids).
    pub tags: BTreeMap<String, String>,
}

/// A message to send to a queue or publish to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
    /// String message attributes (SNS filter policies match on these).
    pub attributes: BTreeMap<String, String>,
    /// Delivery delay. SQS FIFO only supports a per-queue delay; backends that cannot delay a
    /// single message return `PortError::Invalid` for a non-zero delay.
    pub delay: Duration,
}

impl OutgoingMessage {
    pub fn new(
        group_id: impl Into<String>,
        dedup_id: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        OutgoingMessage {
            group_id: group_id.into(),
            dedup_id: dedup_id.into(),
            body: body.into(),
            attributes: BTreeMap::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// The result of sending one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted and enqueued, with the backend's message id.
    Sent { message_id: String },
    /// Accepted but dropped: the deduplication id was seen within the window.
    Duplicate { message_id: String },
}

/// A message as received from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Handle for delete / change_visibility; valid for this receive only.
    pub receipt_handle: String,
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    /// How many times this message has been received, this receive included (starts at 1).
    pub receive_count: u32,
}

/// Approximate numbers of messages in a queue (SQS `ApproximateNumberOfMessages*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

#[async_trait]
pub trait WorkQueues: Send + Sync {
    /// Creates the queue and its DLQ (with the redrive policy) if missing; idempotent.
    async fn ensure_queue(&self, spec: &QueueSpec) -> PortResult<()>;

    /// Deletes a queue (not its DLQ). Deleting a missing queue is not an error.
    async fn delete_queue(&self, name: &str) -> PortResult<()>;

    /// Names of the queues whose name starts with `prefix`, sorted; DLQs included.
    async fn list_queues(&self, prefix: &str) -> PortResult<Vec<String>>;

    /// Sends up to [`MAX_BATCH`] messages; outcomes are in the same order.
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<SendOutcome>>;

    /// Receives up to `max` (1..=10) messages, waiting up to `wait` for the first one (long
    /// polling). `visibility` overrides the queue's default visibility timeout when given.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>>;

    /// Deletes received messages by receipt handle. A stale handle (the message was received
    /// again by someone else since) is an error for that entry: `PortError::Invalid`.
    async fn delete_batch(&self, queue: &str, receipt_handles: &[String]) -> PortResult<()>;

    /// Sets the remaining visibility of a received message: extend it (heartbeat) or
    /// release it now (`Duration::ZERO`).
    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> PortResult<()>;

    /// Sets the remaining visibility of several received messages of `queue` at once: the
    /// heartbeat's extension of everything a worker holds, or giving back what it received
    /// but did not start. Every valid handle is applied; a stale one (received again since)
    /// is an error naming how many were, after the others were applied. SQS does up to 10
    /// per request (`ChangeMessageVisibilityBatch`); this default goes one by one.
    async fn change_visibility_batch(
        &self,
        queue: &str,
        receipt_handles: &[String],
        timeout: Duration,
    ) -> PortResult<()> {
        let mut first_error = None;
        for handle in receipt_handles {
            if let Err(e) = self.change_visibility(queue, handle, timeout).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Approximate depth of a queue.
    async fn depth(&self, queue: &str) -> PortResult<QueueDepth>;

    /// The DLQ name configured for a queue by its redrive policy.
    async fn dlq_of(&self, queue: &str) -> PortResult<String>;
}
