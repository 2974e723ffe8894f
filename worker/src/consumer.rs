//! The consumer: polls the account queues with bounded concurrency and hands each message
//! to the pipeline, one at a time per queue.
//!
//! - Only the queues of accounts with work outstanding are polled (the ledger's active
//!   accounts), largest account first, so the biggest work starts first
//!   (docs/ARCHITECTURE.md §9). An idle deployment makes no queue request at all.
//! - A free slot takes the next queue of the sweep ([`Sweep`]): the list in order, refreshed
//!   from the ledger every few seconds even in the middle of a sweep.
//! - A receive may return several messages of one group: they are processed in order, by
//!   one task; a queue is never worked on by two tasks of this process, and SQS FIFO (or the
//!   embedded backend) never hands the group to another process meanwhile.
//! - The task keeps the group: once a batch is settled it receives the group's next
//!   messages itself (the collect's batches, then the batches after them), so an account
//!   runs from its collect to its finalize without waiting for a sweep, and after its
//!   finalize the same task retires it (finished, queue empty), so no worker has to poll
//!   it to find out.
//! - A queue found empty while its account is unfinished is held by another worker (or its
//!   next message is delayed): the sweeps pass over it for a while, longer each time,
//!   instead of asking again on every sweep.
//! - While a task works, its batch's [`Lease`] extends the visibility of everything it
//!   holds and the lease of its idempotency claim.
//! - On shutdown, polling stops; each task finishes the message in hand and releases the
//!   rest (visibility 0), so nothing waits for a timeout and nothing is lost.
//! - On ECS, the task is protected from scale-in while it holds a batch
//!   ([`crate::scale_in_protection`]).
//! - Every message handled is counted by step and outcome, with its duration
//!   (`accessflow_messages_processed_total`, `accessflow_step_duration_seconds`), and every
//!   receive by whether it got messages (`accessflow_queue_receives_total`); the loop beats
//!   the process's [`Health`] on every turn (`/healthz`).

use std::collections::{HashMap, HashSet};
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
    // Queues a task retired after finishing its account: dropped from the list at once.
    let retired: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Told when a task frees its queue: a paused sweep starts again at once.
    let freed = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let mut queues: Vec<(String, ActiveAccount)> = Vec::new();
    let mut refreshed: Option<Instant> = None;
    let mut sweep = Sweep::default();
    let mut idle_sweeps: u32 = 0;
    let ledger = Ledger::new(consumer.ports.store.clone());
    let protector = Protector::start(options.scale_in_protection.clone());

    info!(concurrency = options.concurrency, "worker consuming");
    let metrics = work_metrics();
    metrics.concurrency.set(options.concurrency.max(1) as i64);
    while !shutdown.is_triggered() {
        options.health.beat();
        // A slot first (every slot may be busy for minutes; waiting still beats), then the
        // queue to use it on, from a list no older than `refresh_every`.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.ok(),
            _ = shutdown.triggered() => None,
            _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
        };
        let Some(permit) = permit else { break };
        // An empty list is read again on every turn (every idle pause at most: no queue
        // request, one ledger query), so a new night starts within a pause, not a refresh.
        if queues.is_empty() || refreshed.is_none_or(|at| at.elapsed() >= options.refresh_every) {
            match queue_order(&ledger, &consumer.names).await {
                Ok(list) => {
                    if list.len() != queues.len() {
                        debug!(queues = list.len(), "queue list refreshed");
                    }
                    queues = list;
                    sweep.forget_gone(&queues);
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
        {
            let mut retired = retired.lock().await;
            if !retired.is_empty() {
                queues.retain(|(queue, _)| !retired.contains(queue));
                retired.clear();
            }
        }

        let next = {
            let busy = busy.lock().await;
            sweep.next(&queues, |queue| busy.contains(queue))
        };
        let Some((queue, active)) = next else {
            // The end of a sweep. Idle sweeps back off (1, 2, 4, then 8 pauses): on AWS
            // every empty receive is a billed request. A sweep is not idle while this
            // process is still working on a queue.
            drop(permit);
            let found = sweep.restart();
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
            continue;
        };
        let messages = match receive(&consumer.ports, &queue).await {
            Ok(messages) => messages,
            Err(PortError::NotFound { .. }) => continue,
            Err(e) => {
                warn!(queue, error = %e, "receive failed");
                continue;
            }
        };
        if messages.is_empty() {
            drop(permit);
            match retire_if_idle(&consumer.ports, &ledger, &queue, &active).await {
                Retirement::Done => queues.retain(|(q, _)| *q != queue),
                Retirement::Unfinished => sweep.held_elsewhere(&queue, consumer.visibility),
                Retirement::Unknown => {}
            }
            continue;
        }
        sweep.found(&queue);
        // Counted from the receive until the queue is free again.
        let hold = protector.hold();
        {
            let mut busy = busy.lock().await;
            busy.insert(queue.clone());
            metrics.busy_queues.set(busy.len() as i64);
        }
        let (consumer, ledger, busy, retired, freed, shutdown) = (
            consumer.clone(),
            ledger.clone(),
            busy.clone(),
            retired.clone(),
            freed.clone(),
            shutdown.clone(),
        );
        let max_hold = options.max_hold;
        // The account's span: every line logged while its batches are worked on names it.
        let (customer, account) = consumer
            .names
            .parse_account_queue(&queue)
            .unwrap_or_default();
        let span = tracing::info_span!("queue", %customer, %account);
        tasks.spawn(
            async move {
                let mut messages = messages;
                loop {
                    // In its own task, so that even a panic frees the queue and the permit.
                    let batch = {
                        let (consumer, queue, shutdown) =
                            (consumer.clone(), queue.clone(), shutdown.clone());
                        tokio::spawn(
                            async move {
                                work_batch(&consumer, &queue, messages, &shutdown, max_hold).await
                            }
                            .in_current_span(),
                        )
                    };
                    let end = match batch.await {
                        Ok(end) => end,
                        Err(e) => {
                            work_metrics().panics.inc();
                            error!(queue, error = %e, "a batch panicked; its messages return after their visibility timeout");
                            BatchEnd::Stopped
                        }
                    };
                    if shutdown.is_triggered() {
                        break;
                    }
                    match end {
                        BatchEnd::Stopped => break,
                        // The account is most likely finished: retired here, by the worker
                        // that finished it, so that no worker has to poll it to find out.
                        BatchEnd::Finalized => {
                            if let Retirement::Done =
                                retire_if_idle(&consumer.ports, &ledger, &queue, &active).await
                            {
                                retired.lock().await.insert(queue.clone());
                            }
                            break;
                        }
                        BatchEnd::Settled => {}
                    }
                    // The group stays with this task: its next messages (the batches its
                    // collect just sent, the batches after these) are received at once,
                    // not when a sweep comes by, and no other worker needs to ask.
                    match receive(&consumer.ports, &queue).await {
                        Ok(next) if !next.is_empty() => messages = next,
                        Ok(_) => break,
                        Err(e) => {
                            warn!(queue, error = %e, "receive failed");
                            break;
                        }
                    }
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

/// One sweep over the queue list, in its order, and the queues to pass over for a while.
///
/// The list may be refreshed in the middle of a sweep (a sweep can last as long as the
/// night when every slot is busy): the sweep goes on after the last queue it looked at,
/// by the list's order, not by position.
#[derive(Default)]
struct Sweep {
    /// Where the last queue looked at in this sweep is in the list's order: (order,
    /// customer, account), the order [`Ledger::active_accounts`] sorts by.
    cursor: Option<(u32, String, String)>,
    /// Whether this sweep has received anything.
    found: bool,
    /// Queues found empty while their account is unfinished (another worker holds the
    /// group, or its next message is delayed), with when to ask again.
    held: HashMap<String, Held>,
}

/// An account's place in the list's order, to compare with a [`Sweep`]'s cursor.
fn key(active: &ActiveAccount) -> (u32, &str, &str) {
    (active.order, &active.customer, &active.account)
}

/// A queue found held elsewhere: not asked again before `until`.
struct Held {
    until: Instant,
    /// Empty receives in a row: each doubles the wait, up to the visibility timeout.
    streak: u32,
}

/// The first wait after a queue is found held by another worker.
const HELD_PAUSE: Duration = Duration::from_millis(500);

impl Sweep {
    /// The next queue after the cursor that is not `busy` here nor held elsewhere.
    fn next(
        &mut self,
        queues: &[(String, ActiveAccount)],
        busy: impl Fn(&str) -> bool,
    ) -> Option<(String, ActiveAccount)> {
        let now = Instant::now();
        let next = queues
            .iter()
            .filter(|(_, active)| {
                self.cursor
                    .as_ref()
                    .is_none_or(|(order, customer, account)| {
                        key(active) > (*order, customer.as_str(), account.as_str())
                    })
            })
            .find(|(queue, _)| {
                !busy(queue) && self.held.get(queue).is_none_or(|held| held.until <= now)
            })?
            .clone();
        self.cursor = Some((
            next.1.order,
            next.1.customer.clone(),
            next.1.account.clone(),
        ));
        Some(next)
    }

    /// Ends the sweep (the next starts at the top); returns whether it received anything.
    fn restart(&mut self) -> bool {
        self.cursor = None;
        std::mem::take(&mut self.found)
    }

    /// `queue` gave messages: it is not held elsewhere.
    fn found(&mut self, queue: &str) {
        self.found = true;
        self.held.remove(queue);
    }

    /// `queue` was empty with its account unfinished: asked again after a pause that
    /// doubles with each such receive, up to `longest` (the visibility timeout: a group
    /// whose holder died comes back no sooner; one released at a holder's shutdown or
    /// delayed for a retry waits at most that long for this worker, and its holder's own
    /// sweep asks for it sooner).
    fn held_elsewhere(&mut self, queue: &str, longest: Duration) {
        let streak = self.held.get(queue).map_or(0, |h| h.streak) + 1;
        let wait = (HELD_PAUSE * (1 << (streak - 1).min(8))).min(longest.max(HELD_PAUSE));
        self.held.insert(
            queue.to_string(),
            Held {
                until: Instant::now() + wait,
                streak,
            },
        );
    }

    /// Forgets the queues no longer in the list.
    fn forget_gone(&mut self, queues: &[(String, ActiveAccount)]) {
        let listed: HashSet<&str> = queues.iter().map(|(q, _)| q.as_str()).collect();
        self.held.retain(|queue, _| listed.contains(queue.as_str()));
    }
}

/// One receive of up to [`MAX_BATCH`] messages, counted by whether it got any.
async fn receive(ports: &Ports, queue: &str) -> Result<Vec<ReceivedMessage>, PortError> {
    let messages = ports
        .queues
        .receive(queue, MAX_BATCH, None, Duration::ZERO)
        .await?;
    work_metrics()
        .receives
        .with_label_values(&[if messages.is_empty() {
            "empty"
        } else {
            "messages"
        }])
        .inc();
    Ok(messages)
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

/// What an empty receive (or a finalize) found out about an account's queue.
enum Retirement {
    /// Finished and its queue empty through and through: retired, by this call or by
    /// another worker before it (or made active again by a new run, which the next
    /// refresh of the list brings back). Polled no more by this process.
    Done,
    /// Still has work: another worker holds its group, or its next message is delayed.
    Unfinished,
    /// Could not tell (a failed read or write): polled again as usual.
    Unknown,
}

/// After an empty receive, or after a task finalized the account: retires the account from
/// the polled set if it is finished in its run and its queue is empty through and through
/// (nothing in flight or delayed either). The ledger read comes first: during a night an
/// empty receive usually means the group is held by another worker, and the (cheaper)
/// read says so without asking the queue.
async fn retire_if_idle(
    ports: &Ports,
    ledger: &Ledger,
    queue: &str,
    active: &ActiveAccount,
) -> Retirement {
    match ledger.is_finished(active).await {
        Ok(true) => {}
        Ok(false) => return Retirement::Unfinished,
        Err(e) => {
            debug!(queue, error = %e, "cannot read the account's state; it stays polled");
            return Retirement::Unknown;
        }
    }
    match ports.queues.depth(queue).await {
        Ok(depth) if depth.total() == 0 => {}
        Ok(_) => return Retirement::Unfinished,
        Err(e) => {
            debug!(queue, error = %e, "cannot read the queue's depth; it stays polled");
            return Retirement::Unknown;
        }
    }
    match ledger.retire(active).await {
        Ok(retired) => {
            if retired {
                debug!(queue, run = %active.run_id, "account finished and its queue empty: no longer polled");
            }
            Retirement::Done
        }
        Err(e) => {
            debug!(queue, error = %e, "cannot retire the account; it stays polled");
            Retirement::Unknown
        }
    }
}

/// How a task's batch ended, which decides what the task does next.
enum BatchEnd {
    /// Every message settled, the last one the account's finalize: the account is most
    /// likely finished.
    Finalized,
    /// Every message settled: the group's next messages, if any, are the task's to receive.
    Settled,
    /// A message is to be retried or could not be settled, or shutdown came: the group is
    /// blocked or given back, and the task lets the queue go.
    Stopped,
}

/// Processes the messages of one receive, in order, under one lease over what is held.
async fn work_batch(
    consumer: &Consumer,
    queue: &str,
    messages: Vec<ReceivedMessage>,
    shutdown: &Shutdown,
    max_hold: Duration,
) -> BatchEnd {
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
    let mut end = BatchEnd::Settled;
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
        let step = count_message(queue, &customer, &message, &outcome, started.elapsed());
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
            end = BatchEnd::Stopped;
            break;
        }
        end = if step == "finalize" {
            BatchEnd::Finalized
        } else {
            BatchEnd::Settled
        };
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
    end
}

/// Counts a handled message by its step and outcome, and the step's duration; returns the
/// step (`collect`, `analyze`, `finalize` or `undecodable`).
fn count_message(
    queue: &str,
    customer: &str,
    message: &ReceivedMessage,
    outcome: &Outcome,
    took: Duration,
) -> &'static str {
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
    step
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

#[cfg(test)]
mod tests {
    use super::*;

    fn list(accounts: &[(&str, u32)]) -> Vec<(String, ActiveAccount)> {
        accounts
            .iter()
            .map(|(account, order)| {
                (
                    format!("q-{account}"),
                    ActiveAccount {
                        customer: "acme".into(),
                        account: account.to_string(),
                        run_id: "run".into(),
                        order: *order,
                        version: 1,
                    },
                )
            })
            .collect()
    }

    fn names(mut sweep: Sweep, queues: &[(String, ActiveAccount)]) -> Vec<String> {
        std::iter::from_fn(|| sweep.next(queues, |_| false).map(|(q, _)| q)).collect()
    }

    #[test]
    fn a_sweep_goes_down_the_list_once_passing_over_busy_queues() {
        let queues = list(&[("a", 0), ("b", 1), ("c", 2)]);
        let mut sweep = Sweep::default();
        let busy = |q: &str| q == "q-b";
        assert_eq!(
            sweep.next(&queues, busy).map(|(q, _)| q).as_deref(),
            Some("q-a")
        );
        assert_eq!(
            sweep.next(&queues, busy).map(|(q, _)| q).as_deref(),
            Some("q-c")
        );
        assert!(sweep.next(&queues, busy).is_none(), "the sweep is over");
        assert!(!sweep.restart(), "nothing was found");
        assert_eq!(names(sweep, &queues), ["q-a", "q-b", "q-c"]);
    }

    #[test]
    fn a_refreshed_list_is_taken_up_after_the_last_queue_looked_at() {
        let mut sweep = Sweep::default();
        let before = list(&[("a", 0), ("b", 1), ("c", 2), ("d", 3)]);
        assert_eq!(sweep.next(&before, |_| false).unwrap().0, "q-a");
        assert_eq!(sweep.next(&before, |_| false).unwrap().0, "q-b");
        // b and c finished and left the list, a new account came in at the top.
        let after = list(&[("a", 0), ("new", 0), ("d", 3)]);
        assert_eq!(sweep.next(&after, |_| false).unwrap().0, "q-d");
        assert!(sweep.next(&after, |_| false).is_none());
        sweep.restart();
        assert_eq!(sweep.next(&after, |_| false).unwrap().0, "q-a");
    }

    #[test]
    fn a_queue_held_elsewhere_is_passed_over_for_longer_each_time_until_it_gives_messages() {
        let queues = list(&[("a", 0), ("b", 1)]);
        let mut sweep = Sweep::default();
        let longest = Duration::from_secs(3);
        sweep.held_elsewhere("q-a", longest);
        assert_eq!(names(std::mem::take(&mut sweep), &queues), ["q-b"]);

        let mut sweep = Sweep::default();
        let mut waits = Vec::new();
        for _ in 0..5 {
            sweep.held_elsewhere("q-a", longest);
            let until = sweep.held["q-a"].until;
            waits.push((until - Instant::now()).as_millis().div_ceil(100) * 100);
        }
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000], "doubling, capped");
        sweep.found("q-a");
        sweep.restart();
        assert_eq!(
            names(sweep, &queues),
            ["q-a", "q-b"],
            "messages end the backoff"
        );

        let mut sweep = Sweep::default();
        sweep.held_elsewhere("q-a", longest);
        sweep.forget_gone(&list(&[("b", 1)]));
        assert!(
            sweep.held.is_empty(),
            "a queue gone from the list is forgotten"
        );
    }
}
