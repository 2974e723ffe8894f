//! The conformance suite: the behaviour every backend of the ports must have, written
//! against the traits only (a behaviour difference between the backends is a bug).
//!
//! Every test is a `pub async fn name(ports: &Ports, prefix: &str)`. `prefix` is unique per
//! test and run (see [`unique_prefix`]); each test names its queues, topics, keys and blobs
//! under it, so the tests can share one backend (a moto server, an AWS account) and run in
//! parallel. Durations are whole seconds, the granularity of SQS.
//!
//! Time passes through [`let_time_pass`]: a backend on a manual clock (`ports.clock`) has
//! its clock advanced, so the embedded run waits for nothing; a backend whose service keeps
//! its own time (moto, AWS) really waits.
//!
//! To run the whole suite against a backend, write a test target with
//!
//! ```ignore
//! mod conformance;
//! async fn setup() -> conformance::Fixture { /* build the Ports */ }
//! conformance::conformance_suite!(setup);
//! ```
//!
//! (see `conformance_embedded.rs`). The multi-process consumer used by the embedded
//! multi-process test is here too ([`mp`]), so another backend can drive the same check.

#![allow(dead_code)]

pub mod mp;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accessflow_shared::ports::{
    Condition, Consistency, FilterPolicy, OutgoingMessage, PortError, Ports, QueueSpec,
    ReceivedMessage, SendOutcome, StoreKey, WriteOp,
};

/// What a backend's `setup` hands the suite: the ports, and whatever must stay alive while
/// a test runs (a temporary directory, a server handle).
pub struct Fixture {
    pub ports: Ports,
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Generates one `#[tokio::test]` per conformance test, each calling `$setup().await` for a
/// fresh [`Fixture`]. The calling test target must declare `mod conformance;` at its root.
macro_rules! conformance_suite {
    ($setup:path) => {
        conformance::conformance_tests!($setup;
            queue_lifecycle,
            queue_ensure_updates_attributes,
            queue_fifo_order_per_group,
            queue_one_in_flight_per_group,
            queue_visibility_timeout_redelivers,
            queue_heartbeat_extends_visibility,
            queue_release_with_zero,
            queue_visibility_batch,
            queue_dead_letter_at_max_receive_count,
            queue_dedup_window,
            queue_delay,
            queue_long_poll,
            queue_batch_limits,
            queue_depth,
            topic_lifecycle,
            topic_filter_routes_by_account,
            topic_dedup,
            store_conditional_writes,
            store_counters_concurrent,
            store_transactions,
            store_ttl,
            store_query_prefix,
            store_batch_reads_and_writes,
            blobs_roundtrip,
            blobs_reject_escaping_keys,
            keys_wrap_unwrap,
        );
    };
}

/// One `#[tokio::test]` per named conformance test.
macro_rules! conformance_tests {
    ($setup:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let fixture = $setup().await;
                let prefix = conformance::unique_prefix(stringify!($name));
                conformance::$name(&fixture.ports, &prefix).await;
                drop(fixture);
            }
        )*
    };
}
pub(crate) use {conformance_suite, conformance_tests};

/// A prefix unique to this test and run: short, letters, digits and `-` only (it goes into
/// queue names, which SQS limits to 80 characters).
pub fn unique_prefix(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!(
        "cf{:x}{:x}{}-{short}",
        std::process::id() % 0xffff,
        nanos % 0xfffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------
// helpers

/// Lets `d` pass for the backend: advances its manual clock, or, on the system clock (where
/// the service decides visibility and delays itself, as moto does), sleeps.
pub async fn let_time_pass(ports: &Ports, d: Duration) {
    if !ports.clock.advance(d) {
        tokio::time::sleep(d).await;
    }
}

pub fn spec(name: &str, visibility_secs: u64, max_receive_count: u32) -> QueueSpec {
    let mut tags = BTreeMap::new();
    tags.insert("customer".to_string(), "conformance".to_string());
    QueueSpec {
        name: name.to_string(),
        dlq_name: format!("{name}-dlq"),
        visibility_timeout: Duration::from_secs(visibility_secs),
        max_receive_count,
        retention: Duration::from_secs(3600),
        tags,
    }
}

pub async fn make_queue(ports: &Ports, name: &str, visibility_secs: u64, max_rc: u32) {
    ports
        .queues
        .ensure_queue(&spec(name, visibility_secs, max_rc))
        .await
        .expect("ensure_queue");
}

pub fn msg(group: &str, dedup: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage::new(group, dedup, body)
}

pub async fn send(ports: &Ports, queue: &str, messages: &[OutgoingMessage]) -> Vec<SendOutcome> {
    let mut out = Vec::new();
    for chunk in messages.chunks(10) {
        out.extend(
            ports
                .queues
                .send_batch(queue, chunk)
                .await
                .expect("send_batch"),
        );
    }
    out
}

pub async fn receive(ports: &Ports, queue: &str, max: usize) -> Vec<ReceivedMessage> {
    ports
        .queues
        .receive(queue, max, None, Duration::ZERO)
        .await
        .expect("receive")
}

pub async fn receive_wait(
    ports: &Ports,
    queue: &str,
    max: usize,
    wait_secs: u64,
) -> Vec<ReceivedMessage> {
    ports
        .queues
        .receive(queue, max, None, Duration::from_secs(wait_secs))
        .await
        .expect("receive")
}

pub async fn delete(ports: &Ports, queue: &str, messages: &[ReceivedMessage]) {
    for chunk in messages.chunks(10) {
        let handles: Vec<String> = chunk.iter().map(|m| m.receipt_handle.clone()).collect();
        ports
            .queues
            .delete_batch(queue, &handles)
            .await
            .expect("delete_batch");
    }
}

/// Receives (with a short wait) until a message arrives or `timeout` passes.
pub async fn receive_within(
    ports: &Ports,
    queue: &str,
    max: usize,
    timeout: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = receive_wait(ports, queue, max, 1).await;
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
    }
}

/// Drains a queue: receives and deletes until nothing arrives for one long poll.
pub async fn drain(ports: &Ports, queue: &str) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let got = receive_wait(ports, queue, 10, 1).await;
        if got.is_empty() {
            return all;
        }
        delete(ports, queue, &got).await;
        all.extend(got);
    }
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

fn is_sent(o: &SendOutcome) -> bool {
    matches!(o, SendOutcome::Sent { .. })
}

// ---------------------------------------------------------------------------------------
// queues

/// ensure_queue is idempotent and creates the DLQ; list, dlq_of, delete; unknown queues
/// are NotFound.
pub async fn queue_lifecycle(ports: &Ports, prefix: &str) {
    let q = ports.queues.as_ref();
    let name = format!("{prefix}-a");
    make_queue(ports, &name, 30, 3).await;
    make_queue(ports, &name, 30, 3).await; // idempotent
    make_queue(ports, &format!("{prefix}-b"), 30, 3).await;

    let listed = q.list_queues(prefix).await.unwrap();
    assert_eq!(
        listed,
        vec![
            format!("{prefix}-a"),
            format!("{prefix}-a-dlq"),
            format!("{prefix}-b"),
            format!("{prefix}-b-dlq"),
        ]
    );
    assert_eq!(q.dlq_of(&name).await.unwrap(), format!("{name}-dlq"));
    assert_eq!(q.depth(&name).await.unwrap().total(), 0);

    q.delete_queue(&format!("{prefix}-b")).await.unwrap();
    q.delete_queue(&format!("{prefix}-b")).await.unwrap(); // missing is fine
    let listed = q.list_queues(prefix).await.unwrap();
    assert_eq!(
        listed,
        vec![
            format!("{prefix}-a"),
            format!("{prefix}-a-dlq"),
            format!("{prefix}-b-dlq"),
        ]
    );

    let missing = format!("{prefix}-missing");
    let err = q
        .send_batch(&missing, &[msg("g", "d", "x")])
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::NotFound { .. }), "{err:?}");
    let err = q
        .receive(&missing, 1, None, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::NotFound { .. }), "{err:?}");
}

/// ensure_queue on an existing queue updates its attributes (here the visibility timeout)
/// and keeps its messages.
pub async fn queue_ensure_updates_attributes(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 600, 5).await;
    send(ports, &name, &[msg("g", "d1", "kept")]).await;
    make_queue(ports, &name, 1, 5).await;
    let got = receive(ports, &name, 1).await;
    assert_eq!(bodies(&got), vec!["kept"]);
    let_time_pass(ports, Duration::from_secs(1)).await;
    let again = receive_within(ports, &name, 1, Duration::from_secs(5)).await;
    assert_eq!(
        bodies(&again),
        vec!["kept"],
        "the new 1 s visibility applies"
    );
    assert_eq!(again[0].receive_count, 2);
    delete(ports, &name, &again).await;
}

/// Messages of a group come out in the order they were sent, whatever the interleaving of
/// groups and however they are batched.
pub async fn queue_fifo_order_per_group(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    let mut out = Vec::new();
    for i in 0..12 {
        for g in ["a", "b", "c"] {
            out.push(msg(g, &format!("{g}-{i}"), &format!("{g}:{i}")));
        }
    }
    let outcomes = send(ports, &name, &out).await;
    assert!(outcomes.iter().all(is_sent));

    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    let received = drain(ports, &name).await;
    for m in &received {
        let (g, i) = m.body.split_once(':').unwrap();
        assert_eq!(g, m.group_id);
        assert_eq!(m.dedup_id, format!("{g}-{i}"));
        assert_eq!(m.receive_count, 1);
        seen.entry(g.to_string())
            .or_default()
            .push(i.parse().unwrap());
    }
    for g in ["a", "b", "c"] {
        assert_eq!(seen[g], (0..12).collect::<Vec<_>>(), "group {g}");
    }
}

/// While a message of a group is in flight nothing else of that group is delivered; other
/// groups are. A receive returning several messages of one group returns them in order.
pub async fn queue_one_in_flight_per_group(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    send(
        ports,
        &name,
        &[
            msg("a", "a1", "a1"),
            msg("a", "a2", "a2"),
            msg("a", "a3", "a3"),
            msg("b", "b1", "b1"),
        ],
    )
    .await;

    let first = receive(ports, &name, 1).await;
    assert_eq!(bodies(&first), vec!["a1"]);
    // Group a is blocked: only b1 may come.
    let second = receive(ports, &name, 10).await;
    assert_eq!(bodies(&second), vec!["b1"]);
    assert!(receive(ports, &name, 10).await.is_empty());
    delete(ports, &name, &second).await;
    assert!(
        receive(ports, &name, 10).await.is_empty(),
        "a1 still in flight"
    );

    delete(ports, &name, &first).await;
    // Now a2 (and possibly a3 with it, in order).
    let next = receive(ports, &name, 10).await;
    assert!(!next.is_empty());
    assert_eq!(next[0].body, "a2");
    if next.len() > 1 {
        assert_eq!(bodies(&next), vec!["a2", "a3"]);
    }
    assert!(receive(ports, &name, 10).await.is_empty());
    delete(ports, &name, &next).await;
    if next.len() == 1 {
        let last = receive(ports, &name, 10).await;
        assert_eq!(bodies(&last), vec!["a3"]);
        delete(ports, &name, &last).await;
    }
    assert_eq!(ports.queues.depth(&name).await.unwrap().total(), 0);

    // When one receive returned several messages of a group, releasing the first while the
    // others are still in flight must not let anything of the group out.
    send(
        ports,
        &name,
        &[
            msg("c", "c1", "c1"),
            msg("c", "c2", "c2"),
            msg("c", "c3", "c3"),
        ],
    )
    .await;
    let batch = receive(ports, &name, 10).await;
    assert_eq!(batch[0].body, "c1");
    if batch.len() >= 2 {
        ports
            .queues
            .change_visibility(&name, &batch[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
        assert!(
            receive(ports, &name, 10).await.is_empty(),
            "c2 is still in flight: group c must stay blocked"
        );
        for m in &batch[1..] {
            ports
                .queues
                .change_visibility(&name, &m.receipt_handle, Duration::ZERO)
                .await
                .unwrap();
        }
        let again = receive(ports, &name, 10).await;
        assert_eq!(again[0].body, "c1");
        assert_eq!(again[0].receive_count, 2);
        delete(ports, &name, &again).await;
    } else {
        delete(ports, &name, &batch).await;
    }
    drain(ports, &name).await;
}

/// An undeleted message comes back after the visibility timeout, with its receive count
/// raised and a new receipt handle; the old handle is stale.
pub async fn queue_visibility_timeout_redelivers(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 1, 5).await;
    send(ports, &name, &[msg("g", "d1", "hello")]).await;

    let first = receive(ports, &name, 1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(
        receive(ports, &name, 1).await.is_empty(),
        "invisible while in flight"
    );

    let_time_pass(ports, Duration::from_secs(1)).await;
    let again = receive_within(ports, &name, 1, Duration::from_secs(5)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].body, "hello");
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);

    let err = ports
        .queues
        .delete_batch(&name, &[first[0].receipt_handle.clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Invalid { .. }), "{err:?}");
    let err = ports
        .queues
        .change_visibility(&name, &first[0].receipt_handle, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Invalid { .. }), "{err:?}");

    delete(ports, &name, &again).await;
    assert_eq!(ports.queues.depth(&name).await.unwrap().total(), 0);
}

/// Several held messages extended or released in one call (the heartbeat, and giving back
/// what was received but not started); a stale handle among them is an error naming it,
/// and the valid ones are still applied.
pub async fn queue_visibility_batch(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 2, 5).await;
    send(
        ports,
        &name,
        &[
            msg("a", "d1", "a1"),
            msg("b", "d2", "b1"),
            msg("c", "d3", "c1"),
        ],
    )
    .await;
    let mut held = Vec::new();
    while held.len() < 3 {
        let got = receive_within(ports, &name, 10, Duration::from_secs(5)).await;
        assert!(
            !got.is_empty(),
            "three messages of three groups are receivable"
        );
        held.extend(got);
    }
    let handles: Vec<String> = held.iter().map(|m| m.receipt_handle.clone()).collect();
    ports
        .queues
        .change_visibility_batch(&name, &handles, Duration::from_secs(5))
        .await
        .unwrap();
    // Past the original 2 s timeout, all three are still held.
    let_time_pass(ports, Duration::from_secs(3)).await;
    assert!(receive(ports, &name, 10).await.is_empty());
    // Given back at once.
    ports
        .queues
        .change_visibility_batch(&name, &handles, Duration::ZERO)
        .await
        .unwrap();
    let mut again = Vec::new();
    while again.len() < 3 {
        let got = receive_within(ports, &name, 10, Duration::from_secs(5)).await;
        assert!(!got.is_empty(), "the released messages come back");
        again.extend(got);
    }
    let mut back = bodies(&again);
    back.sort();
    assert_eq!(back, vec!["a1", "b1", "c1"]);
    assert!(again.iter().all(|m| m.receive_count == 2));
    // The first receive's handles are stale now; the one fresh handle is still applied.
    let mut mixed = handles.clone();
    mixed.push(again[0].receipt_handle.clone());
    let err = ports
        .queues
        .change_visibility_batch(&name, &mixed, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Invalid { .. }), "{err:?}");
    let released = receive_within(ports, &name, 10, Duration::from_secs(5)).await;
    assert_eq!(bodies(&released), vec![again[0].body.as_str()]);
    delete(ports, &name, &released).await;
    delete(ports, &name, &again[1..]).await;
    assert!(drain(ports, &name).await.is_empty());
}

/// Extending the visibility (a heartbeat) keeps the message invisible past its original
/// timeout.
pub async fn queue_heartbeat_extends_visibility(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 2, 5).await;
    send(ports, &name, &[msg("g", "d1", "work")]).await;
    let got = receive(ports, &name, 1).await;
    assert_eq!(got.len(), 1);
    ports
        .queues
        .change_visibility(&name, &got[0].receipt_handle, Duration::from_secs(5))
        .await
        .unwrap();
    // Well past the original 2 s timeout, still invisible.
    let_time_pass(ports, Duration::from_secs(3)).await;
    assert!(receive(ports, &name, 1).await.is_empty());
    // Another heartbeat on the same handle works while in flight; it counts from now.
    ports
        .queues
        .change_visibility(&name, &got[0].receipt_handle, Duration::from_secs(2))
        .await
        .unwrap();
    let_time_pass(ports, Duration::from_secs(1)).await;
    assert!(
        receive(ports, &name, 1).await.is_empty(),
        "invisible until the new timeout ends"
    );
    let_time_pass(ports, Duration::from_secs(1)).await;
    let back = receive_within(ports, &name, 1, Duration::from_secs(5)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].receive_count, 2);
    delete(ports, &name, &back).await;
}

/// Changing the visibility to zero releases the message at once.
pub async fn queue_release_with_zero(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 60, 5).await;
    send(ports, &name, &[msg("g", "d1", "x"), msg("g", "d2", "y")]).await;
    let got = receive(ports, &name, 1).await;
    assert_eq!(bodies(&got), vec!["x"]);
    ports
        .queues
        .change_visibility(&name, &got[0].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    let again = receive(ports, &name, 1).await;
    assert_eq!(
        bodies(&again),
        vec!["x"],
        "released message first, in order"
    );
    assert_eq!(again[0].receive_count, 2);
    delete(ports, &name, &again).await;
    let next = receive(ports, &name, 1).await;
    assert_eq!(bodies(&next), vec!["y"]);
    delete(ports, &name, &next).await;
}

/// A message received max_receive_count times without being deleted is moved to the DLQ
/// on its next receive (body, attributes, group and dedup ids intact, receive count kept as
/// SQS does), and its group moves on to the next message.
pub async fn queue_dead_letter_at_max_receive_count(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 60, 2).await;
    let dlq = ports.queues.dlq_of(&name).await.unwrap();
    send(
        ports,
        &name,
        &[
            msg("g", "poison", "poison").with_attribute("account", "111122223333"),
            msg("g", "good", "good"),
        ],
    )
    .await;
    for round in 1..=2 {
        let got = receive(ports, &name, 1).await;
        assert_eq!(bodies(&got), vec!["poison"], "round {round}");
        assert_eq!(got[0].receive_count, round);
        ports
            .queues
            .change_visibility(&name, &got[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
    }
    // Third receive: the poison message goes to the DLQ; the group unblocks.
    let got = receive_within(ports, &name, 1, Duration::from_secs(3)).await;
    assert_eq!(bodies(&got), vec!["good"]);
    assert_eq!(got[0].receive_count, 1);
    delete(ports, &name, &got).await;
    assert_eq!(ports.queues.depth(&name).await.unwrap().total(), 0);

    let dead = receive_within(ports, &dlq, 10, Duration::from_secs(3)).await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.body, "poison");
    assert_eq!(d.group_id, "g");
    assert_eq!(d.dedup_id, "poison");
    assert_eq!(
        d.attributes.get("account").map(String::as_str),
        Some("111122223333")
    );
    assert_eq!(
        d.receive_count, 3,
        "receive count is kept across the redrive"
    );
    delete(ports, &dlq, &dead).await;
}

/// A deduplication id seen within 5 minutes is accepted and dropped, in the same batch or
/// a later one, even after the first message was consumed.
pub async fn queue_dedup_window(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    let outcomes = send(
        ports,
        &name,
        &[
            msg("g", "same", "first"),
            msg("g", "same", "second"),
            msg("g", "other", "third"),
        ],
    )
    .await;
    assert!(is_sent(&outcomes[0]));
    assert!(matches!(outcomes[1], SendOutcome::Duplicate { .. }));
    assert!(is_sent(&outcomes[2]));

    let got = drain(ports, &name).await;
    assert_eq!(bodies(&got), vec!["first", "third"]);

    let later = send(ports, &name, &[msg("other-group", "same", "fourth")]).await;
    assert!(matches!(later[0], SendOutcome::Duplicate { .. }));
    assert!(receive(ports, &name, 10).await.is_empty());
}

/// A delayed message is not delivered before its delay. Backends that cannot delay a single
/// message must say so with `PortError::Invalid` (the trait allows it).
pub async fn queue_delay(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    let mut m = msg("g", "d1", "later");
    m.delay = Duration::from_secs(2);
    match ports.queues.send_batch(&name, &[m]).await {
        Err(PortError::Invalid { .. }) => return,
        Err(e) => panic!("send with delay: {e:?}"),
        Ok(outcomes) => assert!(is_sent(&outcomes[0])),
    }
    send(ports, &name, &[msg("h", "d2", "now")]).await;
    let got = receive(ports, &name, 10).await;
    assert_eq!(bodies(&got), vec!["now"]);
    delete(ports, &name, &got).await;
    let depth = ports.queues.depth(&name).await.unwrap();
    assert_eq!(depth.delayed, 1);
    let_time_pass(ports, Duration::from_secs(1)).await;
    assert!(
        receive(ports, &name, 10).await.is_empty(),
        "not before its delay"
    );
    let_time_pass(ports, Duration::from_secs(1)).await;
    let got = receive_within(ports, &name, 10, Duration::from_secs(5)).await;
    assert_eq!(bodies(&got), vec!["later"]);
    delete(ports, &name, &got).await;
}

/// A long poll returns as soon as a message arrives, and returns empty after `wait`.
pub async fn queue_long_poll(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    let started = Instant::now();
    assert!(receive_wait(ports, &name, 10, 1).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));

    let sender = {
        let ports = ports.clone();
        let name = name.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            send(&ports, &name, &[msg("g", "d", "wake")]).await;
        })
    };
    let started = Instant::now();
    let got = receive_wait(ports, &name, 10, 10).await;
    assert_eq!(bodies(&got), vec!["wake"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    sender.await.unwrap();
    delete(ports, &name, &got).await;
}

/// Batch limits: at most 10 entries, at least 1; receive max 1..=10.
pub async fn queue_batch_limits(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    let eleven: Vec<_> = (0..11).map(|i| msg("g", &format!("d{i}"), "x")).collect();
    let err = ports.queues.send_batch(&name, &eleven).await.unwrap_err();
    assert!(matches!(err, PortError::Invalid { .. }), "{err:?}");
    let err = ports.queues.send_batch(&name, &[]).await.unwrap_err();
    assert!(matches!(err, PortError::Invalid { .. }), "{err:?}");
    for max in [0, 11] {
        let err = ports
            .queues
            .receive(&name, max, None, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Invalid { .. }), "{err:?}");
    }
    assert_eq!(ports.queues.depth(&name).await.unwrap().total(), 0);
}

/// Depth counts visible and in-flight messages.
pub async fn queue_depth(ports: &Ports, prefix: &str) {
    let name = format!("{prefix}-q");
    make_queue(ports, &name, 30, 5).await;
    send(
        ports,
        &name,
        &[msg("a", "1", "1"), msg("b", "2", "2"), msg("c", "3", "3")],
    )
    .await;
    let depth = ports.queues.depth(&name).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (3, 0));
    let got = receive(ports, &name, 1).await;
    let depth = ports.queues.depth(&name).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (2, 1));
    delete(ports, &name, &got).await;
    let depth = ports.queues.depth(&name).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (2, 0));
}

// ---------------------------------------------------------------------------------------
// topics

pub async fn topic_lifecycle(ports: &Ports, prefix: &str) {
    let t = ports.topics.as_ref();
    let a = format!("{prefix}-a");
    let b = format!("{prefix}-b");
    t.ensure_topic(&a).await.unwrap();
    t.ensure_topic(&a).await.unwrap();
    t.ensure_topic(&b).await.unwrap();
    assert_eq!(
        t.list_topics(prefix).await.unwrap(),
        vec![a.clone(), b.clone()]
    );

    let q = format!("{prefix}-q");
    make_queue(ports, &q, 30, 5).await;
    let sub = t
        .subscribe(&b, &q, &FilterPolicy::on("account", vec!["1".into()]))
        .await
        .unwrap();
    t.delete_topic(&b).await.unwrap();
    t.delete_topic(&b).await.unwrap(); // missing is fine
    assert_eq!(t.list_topics(prefix).await.unwrap(), vec![a.clone()]);
    t.unsubscribe(&sub.id).await.unwrap(); // already gone with its topic: fine

    let err = t
        .publish_batch(&b, &[msg("g", "d", "x")])
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::NotFound { .. }), "{err:?}");
}

/// A filter policy on `account` routes each message to exactly the matching queues, raw
/// (body, attributes, group id, dedup id unchanged); a queue whose filter matches nothing
/// receives nothing. Re-subscribing updates the filter; unsubscribing stops delivery.
pub async fn topic_filter_routes_by_account(ports: &Ports, prefix: &str) {
    let t = ports.topics.as_ref();
    let topic = format!("{prefix}-t");
    t.ensure_topic(&topic).await.unwrap();
    let qa = format!("{prefix}-qa");
    let qb = format!("{prefix}-qb");
    let qn = format!("{prefix}-qn");
    for q in [&qa, &qb, &qn] {
        make_queue(ports, q, 30, 5).await;
    }
    let sa = t
        .subscribe(
            &topic,
            &qa,
            &FilterPolicy::on("account", vec!["111".into()]),
        )
        .await
        .unwrap();
    // Subscribed first with a wrong filter, then corrected: same subscription.
    let sb0 = t
        .subscribe(
            &topic,
            &qb,
            &FilterPolicy::on("account", vec!["999".into()]),
        )
        .await
        .unwrap();
    let sb = t
        .subscribe(
            &topic,
            &qb,
            &FilterPolicy::on("account", vec!["222".into()]),
        )
        .await
        .unwrap();
    assert_eq!(sb0.id, sb.id);
    t.subscribe(
        &topic,
        &qn,
        &FilterPolicy::on("account", vec!["333".into()]),
    )
    .await
    .unwrap();

    let subs = t.list_subscriptions(&topic).await.unwrap();
    assert_eq!(
        subs.iter().map(|s| s.queue.clone()).collect::<Vec<_>>(),
        vec![qa.clone(), qb.clone(), qn.clone()]
    );
    assert_eq!(
        subs[1].filter,
        FilterPolicy::on("account", vec!["222".into()])
    );

    let batch = vec![
        msg("111", "a-1", "collect 111")
            .with_attribute("account", "111")
            .with_attribute("kind", "CollectAccount"),
        msg("222", "b-1", "collect 222").with_attribute("account", "222"),
        msg("111", "a-2", "finalize 111").with_attribute("account", "111"),
        msg("444", "x-1", "nobody").with_attribute("account", "444"),
        msg("111", "no-attr", "no account attribute"),
    ];
    let outcomes = t.publish_batch(&topic, &batch).await.unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes.iter().all(is_sent));

    let got_a = drain(ports, &qa).await;
    assert_eq!(bodies(&got_a), vec!["collect 111", "finalize 111"]);
    assert_eq!(got_a[0].group_id, "111");
    assert_eq!(got_a[0].dedup_id, "a-1");
    assert_eq!(got_a[0].attributes, batch[0].attributes);
    let got_b = drain(ports, &qb).await;
    assert_eq!(bodies(&got_b), vec!["collect 222"]);
    assert_eq!(got_b[0].attributes, batch[1].attributes);
    assert!(drain(ports, &qn).await.is_empty());

    t.unsubscribe(&sa.id).await.unwrap();
    t.unsubscribe(&sa.id).await.unwrap();
    t.publish_batch(
        &topic,
        &[msg("111", "a-3", "after unsubscribe").with_attribute("account", "111")],
    )
    .await
    .unwrap();
    assert!(drain(ports, &qa).await.is_empty());
}

/// Publishing a deduplication id again within 5 minutes delivers nothing more.
pub async fn topic_dedup(ports: &Ports, prefix: &str) {
    let t = ports.topics.as_ref();
    let topic = format!("{prefix}-t");
    t.ensure_topic(&topic).await.unwrap();
    let q = format!("{prefix}-q");
    make_queue(ports, &q, 30, 5).await;
    t.subscribe(&topic, &q, &FilterPolicy::default())
        .await
        .unwrap();
    let m = msg("g", "once", "payload").with_attribute("account", "1");
    let first = t
        .publish_batch(&topic, std::slice::from_ref(&m))
        .await
        .unwrap();
    assert!(is_sent(&first[0]));
    let second = t.publish_batch(&topic, &[m.clone(), m]).await.unwrap();
    assert!(second
        .iter()
        .all(|o| matches!(o, SendOutcome::Duplicate { .. })));
    assert_eq!(bodies(&drain(ports, &q).await), vec!["payload"]);
}

// ---------------------------------------------------------------------------------------
// key-value store

fn is_condition_failed(e: &PortError) -> bool {
    matches!(e, PortError::ConditionFailed { .. })
}

pub async fn store_conditional_writes(ports: &Ports, prefix: &str) {
    let s = ports.store.as_ref();
    let key = StoreKey::new(format!("{prefix}#run"), "item#1");
    let v1 = s
        .put(
            &key,
            serde_json::json!({"state": "new"}),
            None,
            Condition::NotExists,
        )
        .await
        .unwrap();
    assert_eq!(v1, 1);
    let err = s
        .put(
            &key,
            serde_json::json!({"state": "again"}),
            None,
            Condition::NotExists,
        )
        .await
        .unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");
    let v2 = s
        .put(
            &key,
            serde_json::json!({"state": "leased"}),
            None,
            Condition::Exists,
        )
        .await
        .unwrap();
    assert_eq!(v2, 2);
    let v3 = s
        .put(
            &key,
            serde_json::json!({"state": "done"}),
            None,
            Condition::VersionIs(2),
        )
        .await
        .unwrap();
    assert_eq!(v3, 3);
    let err = s
        .put(
            &key,
            serde_json::json!({"state": "lost race"}),
            None,
            Condition::VersionIs(2),
        )
        .await
        .unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");

    let rec = s.get(&key).await.unwrap().unwrap();
    assert_eq!(rec.key, key);
    assert_eq!(rec.value, serde_json::json!({"state": "done"}));
    assert_eq!(rec.version, 3);
    assert_eq!(rec.expires_at, None);

    let missing = StoreKey::new(format!("{prefix}#run"), "item#missing");
    assert!(s.get(&missing).await.unwrap().is_none());
    let err = s
        .put(&missing, serde_json::json!(1), None, Condition::Exists)
        .await
        .unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");
    let err = s
        .put(
            &missing,
            serde_json::json!(1),
            None,
            Condition::VersionIs(1),
        )
        .await
        .unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");

    let err = s.delete(&key, Condition::VersionIs(1)).await.unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");
    s.delete(&key, Condition::VersionIs(3)).await.unwrap();
    assert!(s.get(&key).await.unwrap().is_none());
    s.delete(&key, Condition::None).await.unwrap();
    let err = s.delete(&key, Condition::Exists).await.unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");
}

/// 8 tasks x 50 adds: the counters are exact, every add bumps the version, and a put
/// keeps the counters.
pub async fn store_counters_concurrent(ports: &Ports, prefix: &str) {
    let key = StoreKey::new(format!("{prefix}#run"), "totals");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&ports.store);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let deltas = BTreeMap::from([("done".to_string(), 1), ("weight".to_string(), 3)]);
            for _ in 0..50 {
                let mut attempt = 0;
                loop {
                    match store.add(&key, &deltas).await {
                        Ok(_) => break,
                        Err(e) if e.is_transient() && attempt < 10 => attempt += 1,
                        Err(e) => panic!("add: {e:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rec = ports.store.get(&key).await.unwrap().unwrap();
    assert_eq!(rec.counters["done"], 400);
    assert_eq!(rec.counters["weight"], 1200);
    assert_eq!(rec.version, 400);
    assert_eq!(rec.value, serde_json::Value::Null);

    let v = ports
        .store
        .put(
            &key,
            serde_json::json!({"note": "x"}),
            None,
            Condition::Exists,
        )
        .await
        .unwrap();
    assert_eq!(v, 401);
    let after = ports
        .store
        .add(&key, &BTreeMap::from([("done".to_string(), -1)]))
        .await
        .unwrap();
    assert_eq!(after.counters["done"], 399);
    assert_eq!(after.counters["weight"], 1200);
    assert_eq!(after.value, serde_json::json!({"note": "x"}));
    assert_eq!(after.version, 402);
}

/// A transaction applies all its operations or none, and says which condition failed.
pub async fn store_transactions(ports: &Ports, prefix: &str) {
    let s = ports.store.as_ref();
    let pk = format!("{prefix}#run");
    let item = StoreKey::new(&pk, "item#1");
    let totals = StoreKey::new(&pk, "totals");
    let guard = StoreKey::new(&pk, "guard");
    let old = StoreKey::new(&pk, "old");
    s.put(&old, serde_json::json!("old"), None, Condition::None)
        .await
        .unwrap();

    let ops = |guard_condition: Condition| {
        vec![
            WriteOp::Put {
                key: item.clone(),
                value: serde_json::json!({"status": "completed"}),
                expires_at: None,
                condition: Condition::NotExists,
            },
            WriteOp::Add {
                key: totals.clone(),
                deltas: BTreeMap::from([("done".to_string(), 1)]),
                condition: Condition::None,
            },
            WriteOp::Check {
                key: guard.clone(),
                condition: guard_condition,
            },
            WriteOp::Delete {
                key: old.clone(),
                condition: Condition::Exists,
            },
        ]
    };

    let err = s.transact(ops(Condition::Exists)).await.unwrap_err();
    match &err {
        PortError::TransactionCancelled { reasons } => {
            assert_eq!(reasons.len(), 4);
            assert!(reasons[0].is_none() && reasons[1].is_none() && reasons[3].is_none());
            assert!(reasons[2].is_some());
        }
        other => panic!("expected TransactionCancelled, got {other:?}"),
    }
    assert!(err.is_condition_failed());
    assert!(s.get(&item).await.unwrap().is_none(), "nothing applied");
    assert!(s.get(&totals).await.unwrap().is_none(), "nothing applied");
    assert!(s.get(&old).await.unwrap().is_some(), "nothing applied");

    s.transact(ops(Condition::NotExists)).await.unwrap();
    assert_eq!(
        s.get(&item).await.unwrap().unwrap().value,
        serde_json::json!({"status": "completed"})
    );
    assert_eq!(s.get(&totals).await.unwrap().unwrap().counters["done"], 1);
    assert!(s.get(&old).await.unwrap().is_none());
    assert!(s.get(&guard).await.unwrap().is_none());

    // Replaying the same transaction fails on the first and last operations.
    let err = s.transact(ops(Condition::NotExists)).await.unwrap_err();
    match err {
        PortError::TransactionCancelled { reasons } => {
            let failed: Vec<usize> = reasons
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().map(|_| i))
                .collect();
            assert_eq!(failed, vec![0, 3]);
        }
        other => panic!("expected TransactionCancelled, got {other:?}"),
    }
    assert_eq!(s.get(&totals).await.unwrap().unwrap().counters["done"], 1);
}

/// An expired item is absent for get, query and conditions, and can be created again.
pub async fn store_ttl(ports: &Ports, prefix: &str) {
    let s = ports.store.as_ref();
    let now_secs = || ports.clock.now_secs();
    let pk = format!("{prefix}#cache");
    let expired = StoreKey::new(&pk, "a");
    let live = StoreKey::new(&pk, "b");
    let soon = StoreKey::new(&pk, "c");
    s.put(
        &expired,
        serde_json::json!(1),
        Some(now_secs() - 10),
        Condition::None,
    )
    .await
    .unwrap();
    s.put(
        &live,
        serde_json::json!(2),
        Some(now_secs() + 3600),
        Condition::None,
    )
    .await
    .unwrap();
    s.put(
        &soon,
        serde_json::json!(3),
        Some(now_secs() + 1),
        Condition::None,
    )
    .await
    .unwrap();

    assert!(s.get(&expired).await.unwrap().is_none());
    let live_rec = s.get(&live).await.unwrap().unwrap();
    assert!(live_rec.expires_at.is_some_and(|t| t > now_secs() + 3000));
    let keys: Vec<String> = s
        .query(&pk, "")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.sk)
        .collect();
    assert_eq!(keys, vec!["b", "c"]);
    let err = s
        .put(&expired, serde_json::json!(9), None, Condition::Exists)
        .await
        .unwrap_err();
    assert!(is_condition_failed(&err), "{err:?}");
    s.delete(&expired, Condition::NotExists).await.unwrap();

    // Let `soon` expire.
    let_time_pass(ports, Duration::from_millis(2100)).await;
    assert!(s.get(&soon).await.unwrap().is_none());
    let keys: Vec<String> = s
        .query(&pk, "")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.sk)
        .collect();
    assert_eq!(keys, vec!["b"]);

    // An expired item can be created again, as a new item.
    let v = s
        .put(&soon, serde_json::json!(4), None, Condition::NotExists)
        .await
        .unwrap();
    assert_eq!(v, 1);
    let rec = s.get(&soon).await.unwrap().unwrap();
    assert_eq!(rec.value, serde_json::json!(4));
    assert_eq!(rec.expires_at, None);
}

/// get_many reads many keys in their order (absent and expired ones as None, duplicates
/// answered twice); put_many writes many items across request-size boundaries, replacing
/// whole items, the last document of a repeated key winning.
pub async fn store_batch_reads_and_writes(ports: &Ports, prefix: &str) {
    let s = ports.store.as_ref();
    let now = ports.clock.now_secs();
    let key = |i: usize| StoreKey::new(format!("{prefix}#p{}", i % 2), format!("k{i:03}"));
    // An item with counters and a few versions, which put_many replaces whole.
    s.add(&key(0), &BTreeMap::from([("n".to_string(), 5)]))
        .await
        .unwrap();
    s.put(&key(0), serde_json::json!("old"), None, Condition::None)
        .await
        .unwrap();
    let mut items: Vec<(StoreKey, serde_json::Value, Option<i64>)> = (0..130)
        .map(|i| (key(i), serde_json::json!({ "i": i }), Some(now + 3600)))
        .collect();
    items.push((key(7), serde_json::json!("second"), None));
    items.push((key(8), serde_json::json!("gone"), Some(now - 60)));
    s.put_many(items).await.unwrap();

    let mut keys: Vec<StoreKey> = (0..130).map(key).collect();
    keys.push(StoreKey::new(format!("{prefix}#p0"), "absent"));
    keys.push(key(3));
    let got = s.get_many(&keys, Consistency::Strong).await.unwrap();
    assert_eq!(got.len(), keys.len());
    // An eventually consistent read may miss a recent write, never return something else.
    let eventual = s.get_many(&keys, Consistency::Eventual).await.unwrap();
    assert_eq!(eventual.len(), keys.len());
    for ((key, strong), maybe) in keys.iter().zip(&got).zip(&eventual) {
        if let Some(record) = maybe {
            assert_eq!(
                Some(&record.value),
                strong.as_ref().map(|r| &r.value),
                "{key}"
            );
        }
    }
    for (i, record) in got.iter().enumerate().take(130) {
        match i {
            7 => {
                let r = record.as_ref().expect("k007");
                assert_eq!(r.value, serde_json::json!("second"));
                assert_eq!(r.expires_at, None);
            }
            8 => assert!(record.is_none(), "an expired item reads as absent"),
            _ => {
                let r = record.as_ref().unwrap_or_else(|| panic!("k{i:03} written"));
                assert_eq!(r.key, key(i));
                assert_eq!(r.value, serde_json::json!({ "i": i }));
                assert_eq!(r.expires_at, Some(now + 3600));
            }
        }
    }
    let replaced = got[0].as_ref().expect("k000");
    assert!(replaced.counters.is_empty(), "{replaced:?}");
    assert_eq!(replaced.version, 1);
    assert!(got[130].is_none());
    assert_eq!(
        got[131].as_ref().map(|r| &r.value),
        Some(&serde_json::json!({ "i": 3 }))
    );
    assert!(s
        .get_many(&[], Consistency::Strong)
        .await
        .unwrap()
        .is_empty());
    s.put_many(Vec::new()).await.unwrap();
}

/// query returns the live items of one partition whose sort key starts with the prefix,
/// sorted by sort key.
pub async fn store_query_prefix(ports: &Ports, prefix: &str) {
    let s = ports.store.as_ref();
    let pk = format!("{prefix}#run");
    for sk in ["item#b", "item#a", "item#c", "itemz", "other#1", "item"] {
        s.put(
            &StoreKey::new(&pk, sk),
            serde_json::json!(sk),
            None,
            Condition::None,
        )
        .await
        .unwrap();
    }
    s.put(
        &StoreKey::new(format!("{prefix}#other"), "item#a"),
        serde_json::json!("elsewhere"),
        None,
        Condition::None,
    )
    .await
    .unwrap();
    let got: Vec<String> = s
        .query(&pk, "item#")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.sk)
        .collect();
    assert_eq!(got, vec!["item#a", "item#b", "item#c"]);
    let all = s.query(&pk, "").await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].key.sk < w[1].key.sk));
    assert!(s
        .query(&format!("{prefix}#none"), "")
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// blobs

pub async fn blobs_roundtrip(ports: &Ports, prefix: &str) {
    let b = ports.blobs.as_ref();
    let k1 = format!("{prefix}/snapshots/abc");
    let k2 = format!("{prefix}/reports/run1/111/report.json");
    let k3 = format!("{prefix}/reports/run1/111/principals.csv");
    let k4 = format!("{prefix}/reports/run2/111/report.json");
    assert_eq!(b.get(&k1).await.unwrap(), None);
    assert!(!b.exists(&k1).await.unwrap());
    b.put(&k1, b"v1".to_vec()).await.unwrap();
    b.put(&k1, b"v2".to_vec()).await.unwrap();
    assert_eq!(b.get(&k1).await.unwrap(), Some(b"v2".to_vec()));
    assert!(b.exists(&k1).await.unwrap());
    for k in [&k2, &k3, &k4] {
        b.put(k, k.as_bytes().to_vec()).await.unwrap();
    }
    b.put(&format!("{prefix}/empty"), Vec::new()).await.unwrap();
    assert_eq!(
        b.get(&format!("{prefix}/empty")).await.unwrap(),
        Some(vec![])
    );

    assert_eq!(
        b.list(&format!("{prefix}/reports/run1/")).await.unwrap(),
        vec![k3.clone(), k2.clone()]
    );
    assert_eq!(
        b.list(&format!("{prefix}/reports/run")).await.unwrap(),
        vec![k3.clone(), k2.clone(), k4.clone()]
    );
    assert_eq!(b.list(&format!("{prefix}/")).await.unwrap().len(), 5);
    assert!(b
        .list(&format!("{prefix}/nothing/"))
        .await
        .unwrap()
        .is_empty());
    assert!(!b.locate(&k2).is_empty());
}

/// Keys cannot escape the store: absolute keys and `..` segments are Invalid.
pub async fn blobs_reject_escaping_keys(ports: &Ports, prefix: &str) {
    let b = ports.blobs.as_ref();
    for bad in [
        format!("{prefix}/../escape"),
        "../escape".to_string(),
        format!("/{prefix}/abs"),
        format!("{prefix}/a/../../b"),
    ] {
        let err = b.put(&bad, b"x".to_vec()).await.unwrap_err();
        assert!(matches!(err, PortError::Invalid { .. }), "{bad}: {err:?}");
        let err = b.get(&bad).await.unwrap_err();
        assert!(matches!(err, PortError::Invalid { .. }), "{bad}: {err:?}");
    }
}

// ---------------------------------------------------------------------------------------
// keys

pub async fn keys_wrap_unwrap(ports: &Ports, prefix: &str) {
    let k = ports.keys.as_ref();
    let acme = format!("{prefix}-acme");
    let globex = format!("{prefix}-globex");
    k.ensure_customer_key(&acme).await.unwrap();
    k.ensure_customer_key(&globex).await.unwrap();

    let dk = k.generate_data_key(&acme).await.unwrap();
    let dk2 = k.generate_data_key(&acme).await.unwrap();
    assert_ne!(dk.plaintext, dk2.plaintext);
    assert_ne!(dk.wrapped, dk.plaintext.to_vec());
    assert_eq!(
        k.decrypt_data_key(&acme, &dk.wrapped).await.unwrap(),
        dk.plaintext
    );

    // Idempotent: ensuring again does not replace the master key.
    k.ensure_customer_key(&acme).await.unwrap();
    assert_eq!(
        k.decrypt_data_key(&acme, &dk.wrapped).await.unwrap(),
        dk.plaintext
    );

    // Another customer cannot unwrap it.
    let err = k.decrypt_data_key(&globex, &dk.wrapped).await.unwrap_err();
    assert!(matches!(err, PortError::Permanent { .. }), "{err:?}");

    // Tampering is detected.
    let mut tampered = dk.wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = k.decrypt_data_key(&acme, &tampered).await.unwrap_err();
    assert!(matches!(err, PortError::Permanent { .. }), "{err:?}");
}
