//! Work queues on SQS FIFO.
//!
//! A logical queue `q` is the SQS queue `<name prefix>q.fifo`; its DLQ `d` is
//! `<name prefix>d.fifo`, referenced by the queue's `RedrivePolicy`
//! (`maxReceiveCount` = [`QueueSpec::max_receive_count`]). Content-based deduplication is
//! off: every message carries its own deduplication id.
//!
//! Differences from the port's ideal that SQS imposes, all documented on the trait or here:
//! - **Per-message delay**: SQS FIFO queues only have a per-queue delay, so a non-zero
//!   [`OutgoingMessage::delay`] is rejected with `PortError::Invalid` before anything is sent.
//! - **Whole seconds**: waits, visibility timeouts and retention are whole seconds in SQS;
//!   sub-second durations are rounded up (a zero visibility stays zero), long polling waits
//!   at most 20 s per call.
//! - **Duplicates**: SQS accepts a duplicate silently and does not say it dropped it. This
//!   backend remembers the deduplication ids it sent in the last 5 minutes (per process) and
//!   reports a repeat as [`SendOutcome::Duplicate`] carrying the first message id, without
//!   sending it again (SQS would drop it); a duplicate of a message another process sent is
//!   still dropped by SQS, but reported as `Sent`.
//! - **Stale receipt handles**: SQS FIFO refuses a handle superseded by a later receive
//!   ("the receipt handle has expired", mapped to `Invalid`). This process also remembers
//!   the handles it received and refuses a superseded one itself, before calling SQS: the
//!   same answer, and it keeps moto (which accepts old handles) faithful in-process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use super::error::{classify, has_code};
use crate::ports::{
    OutgoingMessage, PortError, PortResult, QueueDepth, QueueSpec, ReceivedMessage, SendOutcome,
    WorkQueues, DEDUP_WINDOW, MAX_BATCH,
};

const NOT_FOUND: &[&str] = &[
    "QueueDoesNotExist",
    "NonExistentQueue",
    "AWS.SimpleQueueService.NonExistentQueue",
];
const QUEUE_EXISTS: &[&str] = &["QueueNameExists", "QueueAlreadyExists"];
/// SQS's longest retention: DLQs keep their messages as long as SQS allows.
const DLQ_RETENTION_SECS: u64 = 1_209_600;
const MAX_VISIBILITY_SECS: u64 = 43_200;
const MAX_WAIT_SECS: u64 = 20;

/// The deduplication ids this process sent recently, to report duplicates (see module docs).
#[derive(Default)]
pub(crate) struct DedupMemory {
    seen: HashMap<(String, String), (String, Instant)>,
}

impl DedupMemory {
    /// The message id of an earlier send of `dedup_id` to `scope` within the window.
    pub(crate) fn lookup(&mut self, scope: &str, dedup_id: &str) -> Option<String> {
        let now = Instant::now();
        if self.seen.len() > 100_000 {
            self.seen
                .retain(|_, (_, at)| now.duration_since(*at) < DEDUP_WINDOW);
        }
        match self.seen.get(&(scope.to_string(), dedup_id.to_string())) {
            Some((id, at)) if now.duration_since(*at) < DEDUP_WINDOW => Some(id.clone()),
            _ => None,
        }
    }

    /// Records a send that started at `at` (before the request: our window then closes no
    /// later than the service's, which starts when it accepted the message).
    pub(crate) fn remember(&mut self, scope: &str, dedup_id: &str, message_id: &str, at: Instant) {
        self.seen.insert(
            (scope.to_string(), dedup_id.to_string()),
            (message_id.to_string(), at),
        );
    }
}

/// What to do with each message of a batch, given the dedup memory.
enum Plan {
    /// Send it.
    Send,
    /// A duplicate of a message sent earlier (its id): not sent again.
    DuplicateOf(String),
    /// A duplicate of entry `i` of the same batch: not sent.
    DuplicateOfEntry(usize),
}

/// Splits a batch into messages to send and known duplicates (which the service would drop
/// anyway, so they are not sent: this also keeps emulators that forget deduplication ids
/// of consumed messages, like moto, faithful).
fn plan_batch(memory: &mut DedupMemory, scope: &str, messages: &[OutgoingMessage]) -> Vec<Plan> {
    let mut in_batch: HashMap<&str, usize> = HashMap::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if let Some(first) = memory.lookup(scope, &m.dedup_id) {
                Plan::DuplicateOf(first)
            } else if let Some(j) = in_batch.get(m.dedup_id.as_str()) {
                Plan::DuplicateOfEntry(*j)
            } else {
                in_batch.insert(&m.dedup_id, i);
                Plan::Send
            }
        })
        .collect()
}

/// Turns the plan and the ids of the sent entries (by batch index) into outcomes, and
/// remembers the sent dedup ids.
fn outcomes(
    op: &'static str,
    memory: &mut DedupMemory,
    scope: &str,
    messages: &[OutgoingMessage],
    plan: Vec<Plan>,
    sent: &HashMap<String, String>,
    started: Instant,
) -> PortResult<Vec<SendOutcome>> {
    let id_of = |i: usize| {
        sent.get(&i.to_string())
            .cloned()
            .ok_or_else(|| PortError::Transient {
                op,
                message: format!("no result for entry {i}"),
            })
    };
    let mut out = Vec::with_capacity(messages.len());
    for (i, p) in plan.into_iter().enumerate() {
        out.push(match p {
            Plan::Send => {
                let message_id = id_of(i)?;
                memory.remember(scope, &messages[i].dedup_id, &message_id, started);
                SendOutcome::Sent { message_id }
            }
            Plan::DuplicateOf(first) => SendOutcome::Duplicate { message_id: first },
            Plan::DuplicateOfEntry(j) => SendOutcome::Duplicate {
                message_id: id_of(j)?,
            },
        });
    }
    Ok(out)
}

/// One batch on its way out to SQS (`SendMessageBatch`) or SNS (`PublishBatch`): which
/// entries to send, which are known duplicates, and the bookkeeping that turns the
/// service's answer into one outcome per message. The two services differ only in the
/// request they build from [`OutgoingBatch::to_send`].
pub(crate) struct OutgoingBatch<'m> {
    op: &'static str,
    scope: String,
    messages: &'m [OutgoingMessage],
    plan: Vec<Plan>,
    started: Instant,
}

impl<'m> OutgoingBatch<'m> {
    /// Plans a (checked) batch for `scope` (`queue:<name>` or `topic:<name>`).
    pub(crate) fn plan(
        op: &'static str,
        memory: &Mutex<DedupMemory>,
        scope: String,
        messages: &'m [OutgoingMessage],
    ) -> Self {
        let plan = plan_batch(
            &mut memory.lock().unwrap_or_else(|e| e.into_inner()),
            &scope,
            messages,
        );
        OutgoingBatch {
            op,
            scope,
            messages,
            plan,
            started: Instant::now(),
        }
    }

    /// The messages to send, each with its batch entry id; empty when all are duplicates.
    pub(crate) fn to_send(&self) -> Vec<(String, &'m OutgoingMessage)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(self.plan[*i], Plan::Send))
            .map(|(i, m)| (i.to_string(), m))
            .collect()
    }

    /// The outcomes, given the message ids the service returned by entry id; remembers the
    /// sent deduplication ids.
    pub(crate) fn finish(
        self,
        memory: &Mutex<DedupMemory>,
        sent: &HashMap<String, String>,
    ) -> PortResult<Vec<SendOutcome>> {
        outcomes(
            self.op,
            &mut memory.lock().unwrap_or_else(|e| e.into_inner()),
            &self.scope,
            self.messages,
            self.plan,
            sent,
            self.started,
        )
    }
}

/// The first entry an SQS batch call (send, delete) reported as failed, as an error.
fn first_failure(op: &'static str, failed: &[BatchResultErrorEntry]) -> PortResult<()> {
    match failed.first() {
        Some(f) => Err(failed_entry(
            op,
            f.id(),
            f.code(),
            f.message(),
            f.sender_fault(),
        )),
        None => Ok(()),
    }
}

/// The error for an entry a batch call (SQS send or delete, SNS publish) reported as
/// failed: the sender's fault is `Invalid`, the service's is worth retrying.
pub(crate) fn failed_entry(
    op: &'static str,
    id: &str,
    code: &str,
    message: Option<&str>,
    sender_fault: bool,
) -> PortError {
    let message = format!("entry {id}: {code}: {}", message.unwrap_or_default());
    if sender_fault {
        PortError::invalid(op, message)
    } else {
        PortError::Transient { op, message }
    }
}

/// Receipt handles this process received, to refuse a handle that a later receive of the
/// same message superseded (SQS FIFO answers such a delete with "the receipt handle has
/// expired"; moto would accept it and delete the message someone else now holds).
#[derive(Default)]
struct Receipts {
    /// (queue, message id) -> latest handle
    latest: HashMap<(String, String), String>,
    /// (queue, handle) -> message id
    owner: HashMap<(String, String), String>,
}

impl Receipts {
    fn received(&mut self, queue: &str, message_id: &str, handle: &str) {
        if self.owner.len() > 200_000 {
            self.owner.clear();
            self.latest.clear();
        }
        self.latest.insert(
            (queue.to_string(), message_id.to_string()),
            handle.to_string(),
        );
        self.owner.insert(
            (queue.to_string(), handle.to_string()),
            message_id.to_string(),
        );
    }

    fn is_stale(&self, queue: &str, handle: &str) -> bool {
        let Some(mid) = self.owner.get(&(queue.to_string(), handle.to_string())) else {
            return false;
        };
        matches!(self.latest.get(&(queue.to_string(), mid.clone())), Some(h) if h != handle)
    }

    fn deleted(&mut self, queue: &str, handle: &str) {
        if let Some(mid) = self.owner.remove(&(queue.to_string(), handle.to_string())) {
            let key = (queue.to_string(), mid);
            if self.latest.get(&key).map(String::as_str) == Some(handle) {
                self.latest.remove(&key);
            }
        }
    }
}

/// The SQS client plus what both the queues and the topics need: queue URL cache, names.
pub(crate) struct SqsShared {
    pub(crate) client: Client,
    pub(crate) prefix: String,
    urls: Mutex<HashMap<String, String>>,
    pub(crate) dedup: Mutex<DedupMemory>,
    receipts: Mutex<Receipts>,
}

pub(crate) fn secs_ceil(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}

impl SqsShared {
    pub(crate) fn new(client: Client, prefix: String) -> Self {
        SqsShared {
            client,
            prefix,
            urls: Mutex::new(HashMap::new()),
            dedup: Mutex::new(DedupMemory::default()),
            receipts: Mutex::new(Receipts::default()),
        }
    }

    /// `<prefix><name>.fifo`
    pub(crate) fn physical(&self, name: &str) -> String {
        format!("{}{}.fifo", self.prefix, name)
    }

    /// The logical name of a physical queue name or URL/ARN ending in it, if it is ours.
    pub(crate) fn logical(&self, physical_or_url: &str) -> Option<String> {
        let last = physical_or_url.rsplit(['/', ':']).next()?;
        let stem = last.strip_suffix(".fifo")?;
        stem.strip_prefix(self.prefix.as_str()).map(str::to_string)
    }

    fn forget(&self, name: &str) {
        self.urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub(crate) async fn url(&self, name: &str) -> PortResult<String> {
        if let Some(url) = self
            .urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(url.clone());
        }
        let out = self
            .client
            .get_queue_url()
            .queue_name(self.physical(name))
            .send()
            .await
            .map_err(|e| {
                if has_code(&e, NOT_FOUND) {
                    not_found(name)
                } else {
                    classify("sqs:GetQueueUrl", e)
                }
            })?;
        let url = out.queue_url().unwrap_or_default().to_string();
        self.urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), url.clone());
        Ok(url)
    }

    /// Maps an error of an operation on queue `name`; forgets the cached URL when the queue
    /// turned out not to exist.
    pub(crate) fn fail<E>(
        &self,
        op: &'static str,
        name: &str,
        err: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
    ) -> PortError
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if has_code(&err, NOT_FOUND) {
            self.forget(name);
            not_found(name)
        } else {
            classify(op, err)
        }
    }

    pub(crate) async fn attributes(
        &self,
        name: &str,
        names: &[QueueAttributeName],
    ) -> PortResult<HashMap<QueueAttributeName, String>> {
        let url = self.url(name).await?;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| self.fail("sqs:GetQueueAttributes", name, e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    pub(crate) async fn arn(&self, name: &str) -> PortResult<String> {
        self.attributes(name, &[QueueAttributeName::QueueArn])
            .await?
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| PortError::Transient {
                op: "sqs:GetQueueAttributes",
                message: format!("no QueueArn returned for {name}"),
            })
    }

    /// Creates a FIFO queue with `attributes`, or updates an existing one; returns its URL.
    async fn create_or_update(
        &self,
        name: &str,
        attributes: Vec<(QueueAttributeName, String)>,
        tags: &BTreeMap<String, String>,
    ) -> PortResult<String> {
        let mut create = self
            .client
            .create_queue()
            .queue_name(self.physical(name))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
        // Server-side encryption with SQS-managed keys: no KMS permissions for senders and
        // receivers, and set on existing queues below as well, so reconcile converges.
        let mut attributes = attributes;
        attributes.push((QueueAttributeName::SqsManagedSseEnabled, "true".to_string()));
        for (k, v) in &attributes {
            create = create.attributes(k.clone(), v.clone());
        }
        for (k, v) in tags {
            create = create.tags(k, v);
        }
        match create.send().await {
            Ok(out) => {
                let url = out.queue_url().unwrap_or_default().to_string();
                self.urls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), url.clone());
                Ok(url)
            }
            Err(e) if has_code(&e, QUEUE_EXISTS) => {
                self.forget(name);
                let url = self.url(name).await?;
                let mut set = self.client.set_queue_attributes().queue_url(&url);
                for (k, v) in attributes {
                    set = set.attributes(k, v);
                }
                set.send()
                    .await
                    .map_err(|e| self.fail("sqs:SetQueueAttributes", name, e))?;
                if !tags.is_empty() {
                    let mut tag = self.client.tag_queue().queue_url(&url);
                    for (k, v) in tags {
                        tag = tag.tags(k, v);
                    }
                    tag.send()
                        .await
                        .map_err(|e| self.fail("sqs:TagQueue", name, e))?;
                }
                Ok(url)
            }
            Err(e) => Err(classify("sqs:CreateQueue", e)),
        }
    }
}

fn not_found(name: &str) -> PortError {
    PortError::NotFound {
        what: "queue",
        name: name.to_string(),
    }
}

/// Checks a batch for what SQS FIFO cannot do, before anything is sent.
pub(crate) fn check_batch(op: &'static str, messages: &[OutgoingMessage]) -> PortResult<()> {
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(PortError::invalid(
            op,
            format!(
                "a batch holds 1 to {MAX_BATCH} messages, not {}",
                messages.len()
            ),
        ));
    }
    if let Some(m) = messages.iter().find(|m| !m.delay.is_zero()) {
        return Err(PortError::invalid(
            op,
            format!(
                "message {} asks for a {:?} delay; SQS FIFO supports no per-message delay",
                m.dedup_id, m.delay
            ),
        ));
    }
    Ok(())
}

/// The SQS work queues.
pub struct AwsQueues {
    pub(crate) sqs: std::sync::Arc<SqsShared>,
}

impl AwsQueues {
    pub(crate) fn new(sqs: std::sync::Arc<SqsShared>) -> Self {
        AwsQueues { sqs }
    }
}

#[async_trait]
impl WorkQueues for AwsQueues {
    async fn ensure_queue(&self, spec: &QueueSpec) -> PortResult<()> {
        let op = "sqs:CreateQueue";
        let visibility = secs_ceil(spec.visibility_timeout);
        if visibility > MAX_VISIBILITY_SECS {
            return Err(PortError::invalid(
                op,
                format!("visibility timeout {visibility}s > 12 h"),
            ));
        }
        let retention = secs_ceil(spec.retention);
        if !(60..=DLQ_RETENTION_SECS).contains(&retention) {
            return Err(PortError::invalid(
                op,
                format!("retention {retention}s is outside SQS's 60 s to 14 days"),
            ));
        }
        if !(1..=1000).contains(&spec.max_receive_count) {
            return Err(PortError::invalid(op, "max_receive_count must be 1..=1000"));
        }
        for name in [&spec.name, &spec.dlq_name] {
            let physical = self.sqs.physical(name);
            let ok = physical.len() <= 80
                && physical
                    .trim_end_matches(".fifo")
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(PortError::invalid(
                    op,
                    format!("`{physical}` is not a valid SQS queue name"),
                ));
            }
        }
        self.sqs
            .create_or_update(
                &spec.dlq_name,
                vec![(
                    QueueAttributeName::MessageRetentionPeriod,
                    DLQ_RETENTION_SECS.to_string(),
                )],
                &spec.tags,
            )
            .await?;
        let dlq_arn = self.sqs.arn(&spec.dlq_name).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": spec.max_receive_count,
        })
        .to_string();
        self.sqs
            .create_or_update(
                &spec.name,
                vec![
                    (
                        QueueAttributeName::VisibilityTimeout,
                        visibility.to_string(),
                    ),
                    (
                        QueueAttributeName::MessageRetentionPeriod,
                        retention.to_string(),
                    ),
                    (QueueAttributeName::RedrivePolicy, redrive),
                ],
                &spec.tags,
            )
            .await?;
        Ok(())
    }

    async fn delete_queue(&self, name: &str) -> PortResult<()> {
        let url = match self.sqs.url(name).await {
            Ok(url) => url,
            Err(PortError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let result = self.sqs.client.delete_queue().queue_url(url).send().await;
        self.sqs.forget(name);
        match result {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, NOT_FOUND) => Ok(()),
            Err(e) => Err(classify("sqs:DeleteQueue", e)),
        }
    }

    async fn list_queues(&self, prefix: &str) -> PortResult<Vec<String>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .sqs
                .client
                .list_queues()
                .queue_name_prefix(format!("{}{}", self.sqs.prefix, prefix))
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("sqs:ListQueues", e))?;
            for url in out.queue_urls() {
                if let Some(name) = self.sqs.logical(url) {
                    if name.starts_with(prefix) {
                        names.push(name);
                    }
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn send_batch(
        &self,
        queue: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<SendOutcome>> {
        let op = "sqs:SendMessageBatch";
        check_batch(op, messages)?;
        let url = self.sqs.url(queue).await?;
        let batch = OutgoingBatch::plan(op, &self.sqs.dedup, format!("queue:{queue}"), messages);
        let mut sent: HashMap<String, String> = HashMap::new();
        let entries = batch.to_send();
        if !entries.is_empty() {
            let mut request = self.sqs.client.send_message_batch().queue_url(url);
            for (id, m) in entries {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(&m.body)
                    .message_group_id(&m.group_id)
                    .message_deduplication_id(&m.dedup_id);
                for (k, v) in &m.attributes {
                    let value = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(v)
                        .build()
                        .map_err(|e| PortError::invalid(op, e.to_string()))?;
                    entry = entry.message_attributes(k, value);
                }
                request = request.entries(
                    entry
                        .build()
                        .map_err(|e| PortError::invalid(op, e.to_string()))?,
                );
            }
            let out = request
                .send()
                .await
                .map_err(|e| self.sqs.fail(op, queue, e))?;
            first_failure(op, out.failed())?;
            sent = out
                .successful()
                .iter()
                .map(|s| (s.id().to_string(), s.message_id().to_string()))
                .collect();
        }
        batch.finish(&self.sqs.dedup, &sent)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        let op = "sqs:ReceiveMessage";
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(PortError::invalid(
                op,
                format!("max must be 1..={MAX_BATCH}, not {max}"),
            ));
        }
        let url = self.sqs.url(queue).await?;
        let mut request = self
            .sqs
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(secs_ceil(wait).min(MAX_WAIT_SECS) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All");
        if let Some(v) = visibility {
            let secs = secs_ceil(v);
            if secs > MAX_VISIBILITY_SECS {
                return Err(PortError::invalid(op, format!("visibility {secs}s > 12 h")));
            }
            request = request.visibility_timeout(secs as i32);
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.sqs.fail(op, queue, e))?;
        let mut received = Vec::new();
        for m in out.messages() {
            let system = m.attributes().cloned().unwrap_or_default();
            let get = |k: MessageSystemAttributeName| system.get(&k).cloned().unwrap_or_default();
            let attributes = m
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_string())))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default();
            self.sqs
                .receipts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .received(
                    queue,
                    m.message_id().unwrap_or_default(),
                    m.receipt_handle().unwrap_or_default(),
                );
            received.push(ReceivedMessage {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                group_id: get(MessageSystemAttributeName::MessageGroupId),
                dedup_id: get(MessageSystemAttributeName::MessageDeduplicationId),
                body: m.body().unwrap_or_default().to_string(),
                attributes,
                receive_count: get(MessageSystemAttributeName::ApproximateReceiveCount)
                    .parse()
                    .unwrap_or(1),
            });
        }
        Ok(received)
    }

    async fn delete_batch(&self, queue: &str, receipt_handles: &[String]) -> PortResult<()> {
        let op = "sqs:DeleteMessageBatch";
        if receipt_handles.is_empty() {
            return Ok(());
        }
        let (stale, valid): (Vec<&String>, Vec<&String>) = {
            let receipts = self.sqs.receipts.lock().unwrap_or_else(|e| e.into_inner());
            receipt_handles
                .iter()
                .partition(|h| receipts.is_stale(queue, h))
        };
        let url = self.sqs.url(queue).await?;
        for chunk in valid.chunks(MAX_BATCH) {
            let mut request = self.sqs.client.delete_message_batch().queue_url(&url);
            for (i, handle) in chunk.iter().enumerate() {
                request = request.entries(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle.as_str())
                        .build()
                        .map_err(|e| PortError::invalid(op, e.to_string()))?,
                );
            }
            let out = request
                .send()
                .await
                .map_err(|e| self.sqs.fail(op, queue, e))?;
            first_failure(op, out.failed())?;
            let mut receipts = self.sqs.receipts.lock().unwrap_or_else(|e| e.into_inner());
            for handle in chunk {
                receipts.deleted(queue, handle);
            }
        }
        if !stale.is_empty() {
            return Err(PortError::invalid(
                op,
                format!(
                    "{} receipt handle(s) expired: the message was received again since",
                    stale.len()
                ),
            ));
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        let op = "sqs:ChangeMessageVisibility";
        let secs = secs_ceil(timeout);
        if secs > MAX_VISIBILITY_SECS {
            return Err(PortError::invalid(op, format!("visibility {secs}s > 12 h")));
        }
        if self
            .sqs
            .receipts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_stale(queue, receipt_handle)
        {
            return Err(PortError::invalid(
                op,
                "the receipt handle has expired: the message was received again since",
            ));
        }
        let url = self.sqs.url(queue).await?;
        self.sqs
            .client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs as i32)
            .send()
            .await
            .map_err(|e| {
                if has_code(&e, &["MessageNotInflight", "ReceiptHandleIsInvalid"]) {
                    PortError::invalid(op, super::error::code(&e).unwrap_or_default())
                } else {
                    self.sqs.fail(op, queue, e)
                }
            })?;
        Ok(())
    }

    async fn change_visibility_batch(
        &self,
        queue: &str,
        receipt_handles: &[String],
        timeout: Duration,
    ) -> PortResult<()> {
        let op = "sqs:ChangeMessageVisibilityBatch";
        if receipt_handles.is_empty() {
            return Ok(());
        }
        let secs = secs_ceil(timeout);
        if secs > MAX_VISIBILITY_SECS {
            return Err(PortError::invalid(op, format!("visibility {secs}s > 12 h")));
        }
        let (stale, valid): (Vec<&String>, Vec<&String>) = {
            let receipts = self.sqs.receipts.lock().unwrap_or_else(|e| e.into_inner());
            receipt_handles
                .iter()
                .partition(|h| receipts.is_stale(queue, h))
        };
        let url = self.sqs.url(queue).await?;
        let mut failed = 0usize;
        let mut first_failure_code = None;
        for chunk in valid.chunks(MAX_BATCH) {
            let mut request = self
                .sqs
                .client
                .change_message_visibility_batch()
                .queue_url(&url);
            for (i, handle) in chunk.iter().enumerate() {
                request = request.entries(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle.as_str())
                        .visibility_timeout(secs as i32)
                        .build()
                        .map_err(|e| PortError::invalid(op, e.to_string()))?,
                );
            }
            let out = request
                .send()
                .await
                .map_err(|e| self.sqs.fail(op, queue, e))?;
            failed += out.failed().len();
            if first_failure_code.is_none() {
                first_failure_code = out.failed().first().map(|f| f.code().to_string());
            }
        }
        if failed > 0 || !stale.is_empty() {
            return Err(PortError::invalid(
                op,
                format!(
                    "{} of {} message(s) not changed: {} receipt handle(s) expired (received again since), {failed} refused{}",
                    failed + stale.len(),
                    receipt_handles.len(),
                    stale.len(),
                    first_failure_code.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    async fn depth(&self, queue: &str) -> PortResult<QueueDepth> {
        let attrs = self
            .sqs
            .attributes(
                queue,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                ],
            )
            .await?;
        let n = |k: QueueAttributeName| {
            attrs
                .get(&k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: n(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    async fn dlq_of(&self, queue: &str) -> PortResult<String> {
        let attrs = self
            .sqs
            .attributes(queue, &[QueueAttributeName::RedrivePolicy])
            .await?;
        let policy = attrs
            .get(&QueueAttributeName::RedrivePolicy)
            .ok_or_else(|| PortError::NotFound {
                what: "redrive policy of queue",
                name: queue.to_string(),
            })?;
        let value: serde_json::Value =
            serde_json::from_str(policy).map_err(|e| PortError::Permanent {
                op: "sqs:GetQueueAttributes",
                message: format!("unreadable RedrivePolicy of {queue}: {e}"),
            })?;
        let arn = value["deadLetterTargetArn"].as_str().unwrap_or_default();
        self.sqs.logical(arn).ok_or_else(|| PortError::Permanent {
            op: "sqs:GetQueueAttributes",
            message: format!("the DLQ of {queue} ({arn}) is not one of this backend's queues"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_batch_checks() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_millis(1)), 1);
        assert_eq!(secs_ceil(Duration::from_secs(2)), 2);
        let mut m = OutgoingMessage::new("g", "d", "b");
        assert!(check_batch("op", std::slice::from_ref(&m)).is_ok());
        m.delay = Duration::from_secs(1);
        assert!(matches!(
            check_batch("op", &[m]),
            Err(PortError::Invalid { .. })
        ));
        assert!(check_batch("op", &[]).is_err());
    }
}
