//! The consumer: long-polls the account queues with bounded concurrency and hands each
//! message to the pipeline, one at a time per queue.
//!
//! - Only the queues of accounts with work outstanding are polled (the ledger's active
//!   accounts), largest account first, so the biggest work starts first
//!   (docs/ARCHITECTURE.md §9). A worker that finds such a queue empty once its account is
//!   finished retires the account: an idle deployment makes no queue request at all.
//! - A receive may return several messages of one group: they are processed in order, by
//!   one task; a queue is never worked on by two tasks of this process, and SQS FIFO (or the
//!   embedded backend) never hands the group to another process meanwhile.
//! - A task that frees its queue wakes the polling loop, so the group's next batch is
//!   received at once rather than after an idle pause.
//! - While a task works, its batch's [`Lease`] extends the visibility of everything it
//!   holds and the lease of its idempotency claim.
//! - On shutdown, polling stops; each task finishes the message in hand and releases the
//!   rest (visibility 0), so nothing waits for a timeout and nothing is lost.
//! - On ECS, the task is protected from scale-in while it holds a batch
//!   ([`crate::scale_in_protection`]).
//! - Every message handled is counted by step and outcome, with its duration
//!   (`accessflow_messages_processed_total`, `accessflow_step_duration_seconds`); the loop
//!   beats the process's [`Health`] on every turn (`/healthz`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accessflow_shared::ledger::{ActiveAccount, Ledger};
use accessflow_shared::message::{
    truncate_reason, WorkMessage, ERROR_ATTRIBUTE, SOURCE_QUEUE_ATTRIBUTE,
};
use accessflow_shared::metrics::server::Health;
use accessflow_shared::metrics::work::work as work_metrics;
use accessflow_shared::naming::Names;
use accessflow_shared::ports::{
    OutgoingMessage, PortError, Ports, ReceivedMessage, WorkQueues, MAX_BATCH,
};
use tokio::sync::{Mutex, Notify, Semaphore};
use tracing::{debug, error, info, warn, Instrument};

use crate::lease::Lease;
use crate::pipeline::{Outcome, Pipeline};
use crate::scale_in_protection::{ProtectionSettings, Protector};
use crate::shutdown::Shutdown;

/// How the consumer polls.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Queues worked on at the same time by this process.
    pub concurrency: usize,
    /// Pause after a sweep over all queues found nothing.
    pub idle_pause: Duration,
    /// How often the queue list is refreshed from the tenant registry.
    pub refresh_every: Duration,
    /// How long to wait for tasks to finish after shutdown is triggered.
    pub stop_timeout: Duration,
    /// Longest a message is worked on: past it, the step is abandoned, its claim and the
    /// message are released for another worker, and why is recorded, instead of a hung
    /// call extending the message's visibility forever.
    pub max_hold: Duration,
    /// ECS task scale-in protection while batches are held (disabled without an agent).
    pub scale_in_protection: ProtectionSettings,
    /// Beaten on every turn of the polling loop (served as `/healthz`).
    pub health: Health,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            concurrency: 2,
            idle_pause: Duration::from_millis(200),
            refresh_every: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(25),
            max_hold: Duration::from_secs(1800),
            scale_in_protection: ProtectionSettings::default(),
            health: Health::new(Duration::from_secs(60)),
        }
    }
}

/// What the consumer works with, besides the pipeline it hands messages to.
#[derive(Clone)]
pub struct Consumer {
    pipeline: Arc<Pipeline>,
    /// The queues it receives from and settles on, and the store its leases extend claims in.
    ports: Ports,
    names: Names,
    /// The messages' visibility timeout, which the heartbeat keeps extending.
    visibility: Duration,
}

impl Consumer {
    /// A consumer over `ports`' queues handing messages to `pipeline`; `visibility` is the
    /// queues' visibility timeout (the settings').
    pub fn new(
        pipeline: Arc<Pipeline>,
        ports: Ports,
        names: Names,
        visibility: Duration,
    ) -> Consumer {
        Consumer {
            pipeline,
            ports,
            names,
            visibility,
        }
    }
}

/// Runs until `shutdown` is triggered and the in-flight work is finished or released.
pub async fn run(
    consumer: Consumer,
    options: ConsumerOptions,
    shutdown: Shutdown,
) -> Result<(), PortError> {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Told when a task frees its queue: that queue's next batch (or another queue, now
    // that a slot is free) is then received at once, not after the rest of a pause.
    let freed = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let mut queues: Vec<(String, ActiveAccount)> = Vec::new();
    let mut refreshed: Option<Instant> = None;
    let mut idle_sweeps: u32 = 0;
    let ledger = Ledger::new(consumer.ports.store.clone());
    let protector = Protector::start(options.scale_in_protection.clone());

    info!(concurrency = options.concurrency, "worker consuming");
    let metrics = work_metrics();
    metrics.concurrency.set(options.concurrency.max(1) as i64);
    while !shutdown.is_triggered() {
        options.health.beat();
        if refreshed.is_none_or(|at| at.elapsed() >= options.refresh_every) {
            match queue_order(&ledger, &consumer.names).await {
                Ok(list) => {
                    if list.len() != queues.len() {
                        debug!(queues = list.len(), "queue list refreshed");
                    }
                    queues = list;
                    refreshed = Some(Instant::now());
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the tenant registry; keeping the previous queue list")
                }
            }
        }
        // Reap finished tasks so their errors are seen.
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                metrics.panics.inc();
                error!(error = %e, "a consumer task panicked");
            }
        }

        let mut found = false;
        // Queues found empty with their account finished: polled no more by this process.
        let mut finished: HashSet<String> = HashSet::new();
        for (queue, active) in &queues {
            if shutdown.is_triggered() {
                break;
            }
            if busy.lock().await.contains(queue.as_str()) {
                continue;
            }
            // Waiting for a free slot (every slot may be busy for minutes) still beats.
            let permit = loop {
                tokio::select! {
                    permit = permits.clone().acquire_owned() => break permit.ok(),
                    _ = shutdown.triggered() => break None,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => options.health.beat(),
                }
            };
            let Some(permit) = permit else { break };
            let messages = match consumer
                .ports
                .queues
                .receive(queue, MAX_BATCH, None, Duration::ZERO)
                .await
            {
                Ok(messages) => messages,
                Err(PortError::NotFound { .. }) => continue,
                Err(e) => {
                    warn!(queue, error = %e, "receive failed");
                    continue;
                }
            };
            if messages.is_empty() {
                drop(permit);
                if retire_if_idle(&consumer.ports, &ledger, queue, active).await {
                    finished.insert(queue.clone());
                }
                continue;
            }
            found = true;
            // Counted from the receive until the queue is free again.
            let hold = protector.hold();
            {
                let mut busy = busy.lock().await;
                busy.insert(queue.clone());
                metrics.busy_queues.set(busy.len() as i64);
            }
            let (consumer, busy, freed, queue, shutdown) = (
                consumer.clone(),
                busy.clone(),
                freed.clone(),
                queue.clone(),
                shutdown.clone(),
            );
            let max_hold = options.max_hold;
            // The account's span: every line logged while its batch is worked on names it.
            let (customer, account) = consumer
                .names
                .parse_account_queue(&queue)
                .unwrap_or_default();
            let span = tracing::info_span!("queue", %customer, %account);
            tasks.spawn(
                async move {
                    // In its own task, so that even a panic frees the queue and the permit.
                    let batch = {
                        let queue = queue.clone();
                        tokio::spawn(
                            async move {
                                work_batch(&consumer, &queue, messages, &shutdown, max_hold).await
                            }
                            .in_current_span(),
                        )
                    };
                    if let Err(e) = batch.await {
                        work_metrics().panics.inc();
                        error!(queue, error = %e, "a batch panicked; its messages return after their visibility timeout");
                    }
                    {
                        let mut busy = busy.lock().await;
                        busy.remove(&queue);
                        work_metrics().busy_queues.set(busy.len() as i64);
                    }
                    drop(hold);
                    drop(permit);
                    freed.notify_one();
                }
                .instrument(span),
            );
        }
        // Poll the finished queues no more, from the next sweep on, whichever worker retired
        // them (the list is otherwise refreshed every few seconds: until then, every worker
        // polled every account finished since, after each batch it did).
        if !finished.is_empty() {
            queues.retain(|(queue, _)| !finished.contains(queue));
        }
        // Idle sweeps back off (1, 2, 4, then 8 pauses): on AWS every empty receive is a
        // billed request, and an idle night should not poll hundreds of queues at full
        // speed. A sweep is not idle while this process is still working on a queue: that
        // queue's next batch must be picked up as soon as the current one is done.
        if found || !busy.lock().await.is_empty() {
            idle_sweeps = 0;
        }
        if !found {
            idle_sweeps = (idle_sweeps + 1).min(4);
            let pause = options.idle_pause * (1 << (idle_sweeps - 1));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = freed.notified() => {}
                _ = shutdown.triggered() => {}
            }
        }
    }

    info!(
        in_flight = tasks.len(),
        "stopping: waiting for in-flight messages"
    );
    let drained = tokio::time::timeout(options.stop_timeout, async {
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                work_metrics().panics.inc();
                error!(error = %e, "a consumer task panicked");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("stop timeout reached; unfinished messages come back after their visibility timeout");
    }
    protector.stop().await;
    Ok(())
}

/// The queues of the accounts with work outstanding, largest expected work first (the
/// run's dispatch order, from each account's last measured size).
async fn queue_order(
    ledger: &Ledger,
    names: &Names,
) -> Result<Vec<(String, ActiveAccount)>, PortError> {
    Ok(ledger
        .active_accounts()
        .await?
        .into_iter()
        .map(|a| (names.account_queue(&a.customer, &a.account), a))
        .collect())
}

/// After an empty receive: retires the account from the polled set if it is finished in its
/// run and its queue is empty through and through (nothing in flight or delayed either).
/// The ledger read comes first: during a night an empty receive usually means the group is
/// held by another worker, and the (cheaper) read says so without asking the queue.
/// Returns whether this process should stop polling it: retired by this call, or by
/// another worker before it (or made active again by a new run, which the next refresh of
/// the list brings back). A failure to check only means polling it again.
async fn retire_if_idle(
    ports: &Ports,
    ledger: &Ledger,
    queue: &str,
    active: &ActiveAccount,
) -> bool {
    match ledger.is_finished(active).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            debug!(queue, error = %e, "cannot read the account's state; it stays polled");
            return false;
        }
    }
    match ports.queues.depth(queue).await {
        Ok(depth) if depth.total() == 0 => {}
        Ok(_) => return false,
        Err(e) => {
            debug!(queue, error = %e, "cannot read the queue's depth; it stays polled");
            return false;
        }
    }
    match ledger.retire(active).await {
        // Not retired here: another worker did, or a new run made the account active again
        // (a new version of its entry), which the next refresh of the list brings back.
        Ok(retired) => {
            if retired {
                debug!(queue, run = %active.run_id, "account finished and its queue empty: no longer polled");
            }
            true
        }
        Err(e) => {
            debug!(queue, error = %e, "cannot retire the account; it stays polled");
            false
        }
    }
}

/// Processes the messages of one receive, in order, under one lease over what is held.
async fn work_batch(
    consumer: &Consumer,
    queue: &str,
    messages: Vec<ReceivedMessage>,
    shutdown: &Shutdown,
    max_hold: Duration,
) {
    let queues = &consumer.ports.queues;
    let lease = Lease::start(
        queues.clone(),
        consumer.ports.store.clone(),
        queue,
        messages.iter().map(|m| m.receipt_handle.clone()).collect(),
        consumer.visibility,
    );

    let customer = consumer
        .names
        .parse_account_queue(queue)
        .map_or_else(|| "unknown".to_string(), |(customer, _)| customer);
    let mut remaining = messages.into_iter();
    for message in remaining.by_ref() {
        let started = std::time::Instant::now();
        let handled =
            tokio::time::timeout(max_hold, consumer.pipeline.handle(queue, &message, &lease));
        let outcome = match handled.await {
            Ok(outcome) => outcome,
            Err(_) => {
                consumer
                    .pipeline
                    .held_too_long(queue, &message, &lease, max_hold)
                    .await
            }
        };
        let retried = matches!(outcome, Outcome::Retry { .. });
        count_message(queue, &customer, &message, &outcome, started.elapsed());
        // Out of the heartbeat first, so a tick cannot undo a retry delay.
        lease.let_go(&message.receipt_handle).await;
        let dead_letter = matches!(outcome, Outcome::DeadLetter { .. });
        let settled = apply(queues.as_ref(), queue, &message, outcome).await;
        if settled && dead_letter {
            work_metrics()
                .dead_lettered
                .with_label_values(&[customer.as_str()])
                .inc();
        }
        // A message that is not finished blocks its group: the ones behind it in this
        // batch must wait for it, so they go back too (FIFO order, and the fan-in of
        // FinalizeAccount, depend on it).
        if retried || !settled || shutdown.is_triggered() {
            break;
        }
    }
    // The heartbeat stops here (and on a panic, when the lease is dropped with the task).
    drop(lease);
    // Give back what was received but not started, so the group's next receiver gets it
    // (after the unfinished message ahead of it, which keeps the group blocked meanwhile).
    let remaining: Vec<String> = remaining.map(|m| m.receipt_handle).collect();
    if !remaining.is_empty() {
        match queues
            .change_visibility_batch(queue, &remaining, Duration::ZERO)
            .await
        {
            Ok(()) if shutdown.is_triggered() => work_metrics()
                .released_on_shutdown
                .inc_by(remaining.len() as u64),
            Ok(()) => {}
            Err(e) => {
                warn!(queue, error = %e, "could not release every unstarted message; those return after their visibility timeout")
            }
        }
    }
}

/// Counts a handled message by its step and outcome, and the step's duration.
fn count_message(
    queue: &str,
    customer: &str,
    message: &ReceivedMessage,
    outcome: &Outcome,
    took: Duration,
) {
    let step = match WorkMessage::decode(&message.body) {
        Ok(WorkMessage::CollectAccount { .. }) => "collect",
        Ok(WorkMessage::AnalyzePrincipal { .. } | WorkMessage::AnalyzePrincipals { .. }) => {
            "analyze"
        }
        Ok(WorkMessage::FinalizeAccount { .. }) => "finalize",
        Err(_) => "undecodable",
    };
    let outcome = match outcome {
        Outcome::Delete => "done",
        Outcome::Retry { .. } => "retry",
        Outcome::DeadLetter { .. } => "dead_letter",
    };
    debug!(
        queue,
        step,
        outcome,
        took_ms = took.as_secs_f64() * 1000.0,
        "message handled"
    );
    let metrics = work_metrics();
    metrics
        .messages
        .with_label_values(&[customer, step, outcome])
        .inc();
    if step != "undecodable" {
        metrics
            .step_duration
            .with_label_values(&[step])
            .observe(took.as_secs_f64());
    }
}

/// Carries out a handler's outcome on the message.
/// Returns whether the message is settled (deleted, dead-lettered, or set to come back).
async fn apply(
    queues: &dyn WorkQueues,
    queue: &str,
    message: &ReceivedMessage,
    outcome: Outcome,
) -> bool {
    let result = match outcome {
        Outcome::Delete => {
            queues
                .delete_batch(queue, std::slice::from_ref(&message.receipt_handle))
                .await
        }
        Outcome::Retry { after, .. } => {
            queues
                .change_visibility(queue, &message.receipt_handle, after)
                .await
        }
        Outcome::DeadLetter { reason } => dead_letter(queues, queue, message, &reason).await,
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            warn!(queue, message_id = %message.message_id, error = %e, "could not settle the message; it will be redelivered");
            false
        }
    }
}

/// Moves a message to its queue's DLQ now, with the reason as an attribute: sent first,
/// deleted after, so a crash in between duplicates it in the DLQ rather than losing it.
async fn dead_letter(
    queues: &dyn WorkQueues,
    queue: &str,
    message: &ReceivedMessage,
    reason: &str,
) -> Result<(), PortError> {
    let dlq = queues.dlq_of(queue).await?;
    let mut copy = OutgoingMessage::new(
        message.group_id.clone(),
        message.message_id.clone(),
        message.body.clone(),
    );
    copy.attributes = message.attributes.clone();
    copy.attributes
        .insert(ERROR_ATTRIBUTE.into(), truncate_reason(reason, 1000));
    copy.attributes
        .insert(SOURCE_QUEUE_ATTRIBUTE.into(), queue.to_string());
    queues.send_batch(&dlq, &[copy]).await?;
    queues
        .delete_batch(queue, std::slice::from_ref(&message.receipt_handle))
        .await
}
