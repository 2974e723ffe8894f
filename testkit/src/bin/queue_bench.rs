//! Throughput of one embedded (SQLite) work queue: send in batches of 10, receive in batches
//! of 10, delete in batches, with several consumers.
//!
//! ```text
//! cargo run --release -p accessflow-shared --bin queue-bench -- --messages 20000 --consumers 4
//! ```
//!
//! Options: `--messages N` (20000), `--consumers C` (4), `--groups G` (100: messages are
//! spread round-robin over G message groups; one group can only have one consumer at a
//! time), `--dir PATH` (a data directory to use; default a fresh temporary one, removed
//! afterwards).
//!
//! Two measurements: (1) phases — send everything, then drain with the consumers;
//! (2) concurrent — one producer and the consumers at the same time, end to end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accessflow_shared::embedded::EmbeddedBackend;
use accessflow_shared::ports::{OutgoingMessage, PortError, Ports, QueueSpec};

struct Args {
    messages: usize,
    consumers: usize,
    groups: usize,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        messages: 20_000,
        consumers: 4,
        groups: 100,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?
            }
            "--consumers" => {
                args.consumers = value()?.parse().map_err(|e| format!("--consumers: {e}"))?
            }
            "--groups" => args.groups = value()?.parse().map_err(|e| format!("--groups: {e}"))?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("queue-bench [--messages N] [--consumers C] [--groups G] [--dir PATH]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.messages == 0 || args.consumers == 0 || args.groups == 0 {
        return Err("--messages, --consumers and --groups must be positive".into());
    }
    Ok(args)
}

async fn retry<T, Fut: std::future::Future<Output = Result<T, PortError>>>(
    mut f: impl FnMut() -> Fut,
) -> T {
    let mut attempt = 0u64;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if e.is_transient() && attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            Err(e) => panic!("queue-bench: {e}"),
        }
    }
}

async fn produce(
    ports: Ports,
    queue: String,
    messages: usize,
    groups: usize,
    tag: &str,
) -> Duration {
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10);
    for i in 0..messages {
        batch.push(OutgoingMessage::new(
            format!("group-{}", i % groups),
            format!("{tag}-{i}"),
            format!("{{\"seq\":{i},\"payload\":\"{}\"}}", "x".repeat(200)),
        ));
        if batch.len() == 10 || i + 1 == messages {
            let chunk = std::mem::take(&mut batch);
            retry(|| ports.queues.send_batch(&queue, &chunk)).await;
        }
    }
    started.elapsed()
}

/// Consumers receive and delete until `total` messages were deleted; returns (elapsed,
/// receive calls).
async fn consume(ports: Ports, queue: String, consumers: usize, total: usize) -> (Duration, usize) {
    let started = Instant::now();
    let deleted = Arc::new(AtomicUsize::new(0));
    let receives = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..consumers)
        .map(|_| {
            let ports = ports.clone();
            let queue = queue.clone();
            let deleted = Arc::clone(&deleted);
            let receives = Arc::clone(&receives);
            tokio::spawn(async move {
                while deleted.load(Ordering::SeqCst) < total {
                    let got = retry(|| {
                        ports
                            .queues
                            .receive(&queue, 10, None, Duration::from_millis(200))
                    })
                    .await;
                    receives.fetch_add(1, Ordering::Relaxed);
                    if got.is_empty() {
                        continue;
                    }
                    let handles: Vec<String> =
                        got.iter().map(|m| m.receipt_handle.clone()).collect();
                    retry(|| ports.queues.delete_batch(&queue, &handles)).await;
                    deleted.fetch_add(got.len(), Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("consumer");
    }
    (started.elapsed(), receives.load(Ordering::Relaxed))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn make_queue(ports: &Ports, name: &str) {
    let spec = QueueSpec {
        name: name.into(),
        dlq_name: format!("{name}-dlq"),
        visibility_timeout: Duration::from_secs(60),
        max_receive_count: 5,
        retention: Duration::from_secs(3600),
        tags: Default::default(),
    };
    retry(|| ports.queues.ensure_queue(&spec)).await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("queue-bench: {e}");
            std::process::exit(2);
        }
    };
    let (dir, remove) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("accessflow-queue-bench-{}", std::process::id())),
            true,
        ),
    };
    let backend = EmbeddedBackend::open(&dir).expect("open embedded backend");
    let ports = backend.ports();
    println!(
        "queue-bench: {} messages, {} consumers, {} groups, batches of 10, data dir {}",
        args.messages,
        args.consumers,
        args.groups,
        dir.display()
    );

    // 1. Phases: send everything, then drain.
    let q1 = format!("bench-phases-{}", std::process::id());
    make_queue(&ports, &q1).await;
    let send_time = produce(ports.clone(), q1.clone(), args.messages, args.groups, "p").await;
    let (drain_time, receives) =
        consume(ports.clone(), q1.clone(), args.consumers, args.messages).await;
    println!(
        "phases:     send {:>8.0} msgs/s ({:.2} s) | receive+delete {:>8.0} msgs/s ({:.2} s, {} receive calls, {:.1} msgs/receive)",
        rate(args.messages, send_time),
        send_time.as_secs_f64(),
        rate(args.messages, drain_time),
        drain_time.as_secs_f64(),
        receives,
        args.messages as f64 / receives.max(1) as f64
    );

    // 2. Concurrent: producer and consumers together, end to end.
    let q2 = format!("bench-concurrent-{}", std::process::id());
    make_queue(&ports, &q2).await;
    let started = Instant::now();
    let producer = tokio::spawn(produce(
        ports.clone(),
        q2.clone(),
        args.messages,
        args.groups,
        "c",
    ));
    let (_, receives) = consume(ports.clone(), q2.clone(), args.consumers, args.messages).await;
    let send_time = producer.await.expect("producer");
    let total = started.elapsed();
    println!(
        "concurrent: end to end {:>8.0} msgs/s ({:.2} s; producer alone {:.0} msgs/s, {} receive calls)",
        rate(args.messages, total),
        total.as_secs_f64(),
        rate(args.messages, send_time),
        receives
    );

    drop(ports);
    drop(backend);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
