//! Many consumers in several OS processes on one queue: the check that two messages of one
//! group are never in flight at once, that order within a group is kept, and that every
//! message is processed (deleted) exactly once.
//!
//! [`seed`] fills a queue; [`consume`] is one consumer (run several per process, in several
//! processes); each consumer writes one JSON line per event to its own file; [`verify`]
//! reads them all back and checks the invariants. On top, each consumer holds a lock item
//! in the key-value store (conditional put `NotExists`) while it processes a message of a
//! group: a second holder at the same time is recorded as a violation. [`Run`] puts it all
//! together: the parent and child halves of one multi-process test, for either backend.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accessflow_shared::ports::{Condition, OutgoingMessage, PortError, Ports, QueueSpec, StoreKey};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a consumer did with one received message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub group: u32,
    pub seq: u32,
    /// `deleted` (processed), `released` (processed, then handed back with visibility 0),
    /// `abandoned` (processed, then neither deleted nor released, as if the consumer had
    /// died: it comes back after the visibility timeout), `returned` / `dropped` (not
    /// processed because an earlier message of its group in the same batch was released /
    /// abandoned), `violation` (the group lock was held by someone else).
    pub outcome: String,
    pub receive_count: u32,
    /// When the receive that returned the message completed (µs since the epoch).
    pub received_us: i64,
    /// Processing interval: after the receive returned, before the lock and message were let
    /// go (for `abandoned`: until its visibility ends).
    pub start_us: i64,
    pub end_us: i64,
    pub pid: u32,
    pub consumer: String,
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

pub fn group_id(g: u32) -> String {
    format!("acct-{g:04}")
}

/// Sends `per_group` messages to each of `groups` groups, interleaved, in batches of 10.
pub async fn seed(ports: &Ports, queue: &str, groups: u32, per_group: u32) {
    let mut all = Vec::new();
    for seq in 0..per_group {
        for g in 0..groups {
            all.push(OutgoingMessage::new(
                group_id(g),
                format!("{g}-{seq}"),
                serde_json::json!({"group": g, "seq": seq}).to_string(),
            ));
        }
    }
    for chunk in all.chunks(10) {
        ports.queues.send_batch(queue, chunk).await.expect("seed");
    }
}

async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PortError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if e.is_transient() && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Sets a received message's remaining visibility (abandon, release), retrying transient
/// failures.
async fn set_visibility(ports: &Ports, queue: &str, handle: &str, timeout: Duration) {
    retry("change visibility", || {
        ports.queues.change_visibility(queue, handle, timeout)
    })
    .await
}

/// How a consumer behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Release (visibility 0) one in this many processed messages (0: never).
    pub release_one_in: u32,
    /// Abandon one in this many processed messages (0: never), as a crashed consumer would:
    /// its visibility is cut to `abandon_visibility` and it is neither deleted nor released,
    /// so it must come back by itself once that ends. (Cutting it keeps the test short while
    /// the queue's own visibility timeout stays long enough for slow machines.)
    pub abandon_one_in: u32,
    pub abandon_visibility: Duration,
}

/// One consumer: receives batches of up to 10 until the queue is empty and processes the
/// messages of a batch one at a time, in order. Now and then it releases a message or
/// abandons it (see [`Behaviour`]); the rest of that group's messages in the batch are then
/// released / abandoned too, unprocessed, as a correct worker must do to keep the order.
pub async fn consume(
    ports: Ports,
    queue: String,
    lock_pk: String,
    consumer: String,
    events_file: PathBuf,
    behaviour: Behaviour,
    deadline: Instant,
) -> usize {
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&events_file).expect("events file"));
    let pid = std::process::id();
    let mut processed = 0;
    loop {
        assert!(Instant::now() < deadline, "{consumer}: deadline passed");
        let batch = retry("receive", || {
            ports
                .queues
                .receive(&queue, 10, None, Duration::from_millis(500))
        })
        .await;
        let received_us = now_us();
        if batch.is_empty() {
            let depth = retry("depth", || ports.queues.depth(&queue)).await;
            if depth.total() == 0 {
                break;
            }
            continue;
        }
        let mut released: HashSet<String> = HashSet::new();
        let mut abandoned: HashSet<String> = HashSet::new();
        for m in batch {
            let body: serde_json::Value = serde_json::from_str(&m.body).expect("body");
            let group = body["group"].as_u64().unwrap() as u32;
            let seq = body["seq"].as_u64().unwrap() as u32;
            assert_eq!(m.group_id, group_id(group));
            let mut event = Event {
                group,
                seq,
                outcome: String::new(),
                receive_count: m.receive_count,
                received_us,
                start_us: now_us(),
                end_us: 0,
                pid,
                consumer: consumer.clone(),
            };
            if abandoned.contains(&m.group_id) {
                set_visibility(
                    &ports,
                    &queue,
                    &m.receipt_handle,
                    behaviour.abandon_visibility,
                )
                .await;
                event.end_us = now_us();
                event.outcome = "dropped".into();
                writeln!(out, "{}", serde_json::to_string(&event).unwrap()).unwrap();
                continue;
            }
            if released.contains(&m.group_id) {
                set_visibility(&ports, &queue, &m.receipt_handle, Duration::ZERO).await;
                event.end_us = now_us();
                event.outcome = "returned".into();
                writeln!(out, "{}", serde_json::to_string(&event).unwrap()).unwrap();
                continue;
            }
            let lock = StoreKey::new(&lock_pk, &m.group_id);
            let locked = loop {
                match ports
                    .store
                    .put(
                        &lock,
                        serde_json::json!({ "consumer": consumer }),
                        None,
                        Condition::NotExists,
                    )
                    .await
                {
                    Ok(_) => break true,
                    Err(PortError::ConditionFailed { .. }) => break false,
                    Err(e) if e.is_transient() => continue,
                    Err(e) => panic!("lock: {e}"),
                }
            };
            if !locked {
                let mut v = event.clone();
                v.outcome = "violation".into();
                v.end_us = now_us();
                writeln!(out, "{}", serde_json::to_string(&v).unwrap()).unwrap();
            }
            // "Work".
            let (work_us, release, abandon) = {
                let mut rng = rand::thread_rng();
                (
                    rng.gen_range(0..1500u64),
                    behaviour.release_one_in > 0 && rng.gen_range(0..behaviour.release_one_in) == 0,
                    behaviour.abandon_one_in > 0 && rng.gen_range(0..behaviour.abandon_one_in) == 0,
                )
            };
            tokio::time::sleep(Duration::from_micros(work_us)).await;
            event.end_us = now_us();
            if locked {
                retry("unlock", || ports.store.delete(&lock, Condition::None)).await;
            }
            if abandon {
                let before = now_us();
                set_visibility(
                    &ports,
                    &queue,
                    &m.receipt_handle,
                    behaviour.abandon_visibility,
                )
                .await;
                abandoned.insert(m.group_id.clone());
                event.outcome = "abandoned".into();
                // Nobody may get the group before the visibility set now has ended.
                event.end_us = before + behaviour.abandon_visibility.as_micros() as i64 - 10_000;
            } else if release {
                set_visibility(&ports, &queue, &m.receipt_handle, Duration::ZERO).await;
                released.insert(m.group_id.clone());
                event.outcome = "released".into();
            } else {
                let handles = vec![m.receipt_handle.clone()];
                retry("delete", || ports.queues.delete_batch(&queue, &handles)).await;
                event.outcome = "deleted".into();
                processed += 1;
            }
            writeln!(out, "{}", serde_json::to_string(&event).unwrap()).unwrap();
        }
        out.flush().unwrap();
    }
    out.flush().unwrap();
    processed
}

/// Reads every `*.jsonl` file of a directory.
pub fn read_events(dir: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir).expect("events dir") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                events.push(serde_json::from_str(line).expect("event line"));
            }
        }
    }
    events
}

/// What a verified run looked like.
#[derive(Debug)]
pub struct Summary {
    pub processes: usize,
    pub consumers: usize,
    pub deleted: usize,
    pub released: usize,
    pub abandoned: usize,
    pub returned: usize,
    /// Largest number of consumers that processed messages of one group.
    pub max_consumers_per_group: usize,
}

/// Checks the invariants; returns a summary or the list of problems.
pub fn verify(events: &[Event], groups: u32, per_group: u32) -> Result<Summary, Vec<String>> {
    let mut problems = Vec::new();
    for v in events.iter().filter(|e| e.outcome == "violation") {
        problems.push(format!(
            "group {} seq {}: {} found the group locked by another consumer",
            v.group, v.seq, v.consumer
        ));
    }

    // Exactly one deletion per message, none unknown.
    let mut deleted: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.outcome == "deleted") {
        *deleted.entry((e.group, e.seq)).or_default() += 1;
    }
    for g in 0..groups {
        for s in 0..per_group {
            match deleted.get(&(g, s)) {
                Some(1) => {}
                None => problems.push(format!("group {g} seq {s}: never processed (lost)")),
                Some(n) => problems.push(format!("group {g} seq {s}: processed {n} times")),
            }
        }
    }
    if deleted.len() as u32 > groups * per_group {
        problems.push("messages processed that were never sent".into());
    }

    // Per message: receives are counted without gaps (no receive we did not see).
    let mut per_message: BTreeMap<(u32, u32), Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.outcome != "violation") {
        per_message.entry((e.group, e.seq)).or_default().push(e);
    }
    for ((g, s), evs) in &mut per_message {
        evs.sort_by_key(|e| (e.received_us, e.receive_count));
        let counts: Vec<u32> = evs.iter().map(|e| e.receive_count).collect();
        let expected: Vec<u32> = (1..=evs.len() as u32).collect();
        if counts != expected {
            problems.push(format!(
                "group {g} seq {s}: receive counts {counts:?}, expected {expected:?}"
            ));
        }
    }

    // Per group: processing intervals never overlap, and each processed message is the
    // oldest one of its group not yet deleted (FIFO).
    let mut max_consumers_per_group = 0;
    for g in 0..groups {
        let mut evs: Vec<&Event> = events
            .iter()
            .filter(|e| {
                e.group == g && matches!(e.outcome.as_str(), "deleted" | "released" | "abandoned")
            })
            .collect();
        evs.sort_by_key(|e| (e.start_us, e.end_us));
        for w in evs.windows(2) {
            if w[0].end_us > w[1].start_us {
                problems.push(format!(
                    "group {g}: seq {} by {} (pid {}) [{}, {}] overlaps seq {} by {} (pid {}) [{}, {}]",
                    w[0].seq, w[0].consumer, w[0].pid, w[0].start_us, w[0].end_us,
                    w[1].seq, w[1].consumer, w[1].pid, w[1].start_us, w[1].end_us
                ));
            }
        }
        let mut next = 0;
        for e in &evs {
            if e.seq != next {
                problems.push(format!(
                    "group {g}: seq {} processed while seq {next} was not yet done",
                    e.seq
                ));
                break;
            }
            if e.outcome == "deleted" {
                next += 1;
            }
        }
        let consumers: BTreeSet<&str> = evs.iter().map(|e| e.consumer.as_str()).collect();
        max_consumers_per_group = max_consumers_per_group.max(consumers.len());
    }

    if problems.is_empty() {
        Ok(Summary {
            processes: events.iter().map(|e| e.pid).collect::<BTreeSet<_>>().len(),
            consumers: events
                .iter()
                .map(|e| e.consumer.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            deleted: events.iter().filter(|e| e.outcome == "deleted").count(),
            released: events.iter().filter(|e| e.outcome == "released").count(),
            abandoned: events.iter().filter(|e| e.outcome == "abandoned").count(),
            returned: events
                .iter()
                .filter(|e| e.outcome == "returned" || e.outcome == "dropped")
                .count(),
            max_consumers_per_group,
        })
    } else {
        Err(problems)
    }
}

/// One multi-process run: a queue seeded with `groups` x `per_group` messages, consumed by
/// `parent_consumers` tasks in the test process and `child_consumers` tasks in each of
/// `children` child processes. A child process is this test binary again, running the
/// ignored test `child_test`, which calls [`Run::child`]. Both backends' multi-process tests
/// are this one harness with other numbers.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub queue: &'static str,
    /// Partition key of the group lock items in the key-value store.
    pub locks: &'static str,
    pub groups: u32,
    pub per_group: u32,
    pub children: usize,
    pub child_consumers: usize,
    pub parent_consumers: usize,
    pub behaviour: Behaviour,
    /// The queue's visibility timeout.
    pub visibility: Duration,
    /// How long consumers (and then the children) may take.
    pub deadline: Duration,
    /// Name of the ignored test that runs [`Run::child`].
    pub child_test: &'static str,
}

impl Run {
    fn dlq(&self) -> String {
        format!("{}-dlq", self.queue)
    }

    /// `n` consumers in this process, each writing its events under `events`.
    fn consumers(
        &self,
        ports: &Ports,
        events: &Path,
        tag: &str,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<usize>> {
        let deadline = Instant::now() + self.deadline;
        (0..n)
            .map(|i| {
                let consumer = format!("{tag}-{}-c{i}", std::process::id());
                let file = events.join(format!("{consumer}.jsonl"));
                tokio::spawn(consume(
                    ports.clone(),
                    self.queue.to_string(),
                    self.locks.to_string(),
                    consumer,
                    file,
                    self.behaviour,
                    deadline,
                ))
            })
            .collect()
    }

    /// The child half: runs this process's consumers to the end; how many messages they
    /// processed.
    pub async fn child(&self, ports: &Ports, events: &Path) -> usize {
        let mut total = 0;
        for h in self.consumers(ports, events, "child", self.child_consumers) {
            total += h.await.expect("child consumer");
        }
        eprintln!("child {} processed {total} messages", std::process::id());
        total
    }

    /// The parent half: creates and seeds the queue, starts the children (with `env` set
    /// for them), consumes alongside them, waits for them, then checks the events written
    /// under `events` and that the queue and its DLQ are empty. Panics with the first
    /// problems found.
    pub async fn parent(
        &self,
        ports: &Ports,
        events: &Path,
        env: &[(&str, std::ffi::OsString)],
    ) -> Summary {
        std::fs::create_dir_all(events).expect("events dir");
        ports
            .queues
            .ensure_queue(&QueueSpec {
                name: self.queue.into(),
                dlq_name: self.dlq(),
                visibility_timeout: self.visibility,
                max_receive_count: 100,
                retention: Duration::from_secs(3600),
                tags: Default::default(),
            })
            .await
            .expect("create the queue");
        seed(ports, self.queue, self.groups, self.per_group).await;
        let started = Instant::now();

        let exe = std::env::current_exe().expect("test binary");
        let mut children: Vec<std::process::Child> = (0..self.children)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        self.child_test,
                        "--exact",
                        "--ignored",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .envs(env.iter().map(|(k, v)| (*k, v)))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn child process")
            })
            .collect();
        let mut local = 0;
        for h in self.consumers(ports, events, "parent", self.parent_consumers) {
            local += h.await.expect("parent consumer");
        }
        let deadline = Instant::now() + self.deadline;
        let statuses = tokio::task::spawn_blocking(move || {
            children
                .iter_mut()
                .map(|c| loop {
                    if let Some(status) = c.try_wait().expect("child status") {
                        break status;
                    }
                    if Instant::now() > deadline {
                        let _ = c.kill();
                        break c.wait().expect("child status");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                })
                .collect::<Vec<_>>()
        })
        .await
        .expect("wait for the children");
        for s in &statuses {
            assert!(s.success(), "child process failed: {s}");
        }
        let elapsed = started.elapsed();

        let summary =
            verify(&read_events(events), self.groups, self.per_group).unwrap_or_else(|problems| {
                panic!(
                    "{} problems, first ones:\n{}",
                    problems.len(),
                    problems
                        .iter()
                        .take(20)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
        eprintln!("multi-process: {summary:?}, parent processed {local}, {elapsed:?}");
        assert_eq!(summary.deleted, (self.groups * self.per_group) as usize);
        for queue in [self.queue.to_string(), self.dlq()] {
            let depth = ports.queues.depth(&queue).await.expect("depth");
            assert_eq!(depth.total(), 0, "{queue}: {depth:?}");
        }
        summary
    }
}

/// The runtime a child test process runs its half on.
pub fn child_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
