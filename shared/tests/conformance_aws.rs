//! The conformance suite on the AWS backend, against a moto server that the harness
//! installs and starts itself (see `moto/mod.rs`). Every test gets a fresh backend whose
//! queues, topics, table, bucket and key aliases carry a name prefix of their own, so the
//! tests share one server without resets.

mod conformance;
use accessflow_testkit::moto;

use conformance::Fixture;

async fn setup() -> Fixture {
    let (backend, _prefix) = moto::backend("conf").await;
    Fixture {
        ports: backend.ports(),
        guard: Box::new(backend),
    }
}

conformance::conformance_suite!(setup);

// ---------------------------------------------------------------------------------------
// Multi-process: 2 child processes x 2 consumers + 2 consumers in this process, one SQS
// FIFO queue on the shared moto server. Smaller than the embedded run: moto handles a few
// hundred messages per second.

use std::time::{Duration, Instant};

use accessflow_shared::aws::AwsBackend;
use accessflow_shared::ports::{Ports, QueueSpec};
use conformance::mp;

const MP_PREFIX_ENV: &str = "ACCESSFLOW_MP_AWS_PREFIX";
const MP_DIR_ENV: &str = "ACCESSFLOW_MP_AWS_DIR";
const MP_QUEUE: &str = "mp-work";
const MP_LOCKS: &str = "mp#locks";
const MP_GROUPS: u32 = 12;
const MP_PER_GROUP: u32 = 10;
const MP_CHILD_CONSUMERS: usize = 2;
const MP_PARENT_CONSUMERS: usize = 2;
const MP_VISIBILITY: Duration = Duration::from_secs(60);
const MP_DEADLINE: Duration = Duration::from_secs(120);

fn mp_consumers(
    ports: &Ports,
    dir: &std::path::Path,
    tag: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let deadline = Instant::now() + MP_DEADLINE;
    (0..n)
        .map(|i| {
            let consumer = format!("{tag}-{}-c{i}", std::process::id());
            let file = dir.join(format!("{consumer}.jsonl"));
            tokio::spawn(mp::consume(
                ports.clone(),
                MP_QUEUE.to_string(),
                MP_LOCKS.to_string(),
                consumer,
                file,
                mp::Behaviour {
                    release_one_in: 15,
                    abandon_one_in: 40,
                    abandon_visibility: Duration::from_secs(1),
                },
                deadline,
            ))
        })
        .collect()
}

/// The child half of `aws_multi_process_consumers_never_overlap_a_group`.
#[test]
#[ignore = "child process of aws_multi_process_consumers_never_overlap_a_group"]
fn aws_mp_child() {
    let (Ok(prefix), Ok(dir)) = (std::env::var(MP_PREFIX_ENV), std::env::var(MP_DIR_ENV)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = AwsBackend::connect(&moto::settings(&prefix))
            .await
            .expect("child: connect");
        let ports = backend.ports();
        let dir = std::path::PathBuf::from(dir);
        for h in mp_consumers(&ports, &dir, "child", MP_CHILD_CONSUMERS) {
            h.await.expect("child consumer");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_multi_process_consumers_never_overlap_a_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (backend, prefix) = moto::backend("mp").await;
    let ports = backend.ports();
    ports
        .queues
        .ensure_queue(&QueueSpec {
            name: MP_QUEUE.into(),
            dlq_name: format!("{MP_QUEUE}-dlq"),
            visibility_timeout: MP_VISIBILITY,
            max_receive_count: 100,
            retention: Duration::from_secs(3600),
            tags: Default::default(),
        })
        .await
        .unwrap();
    mp::seed(&ports, MP_QUEUE, MP_GROUPS, MP_PER_GROUP).await;

    let exe = std::env::current_exe().unwrap();
    let url = moto::server().url.clone();
    let mut children: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "aws_mp_child",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(MP_PREFIX_ENV, &prefix)
                .env(MP_DIR_ENV, &dir)
                .env("ACCESSFLOW_MOTO_URL", &url)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child process")
        })
        .collect();
    let mut local = 0;
    for h in mp_consumers(&ports, &dir, "parent", MP_PARENT_CONSUMERS) {
        local += h.await.unwrap();
    }
    let statuses = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + MP_DEADLINE;
        children
            .iter_mut()
            .map(|c| loop {
                if let Some(status) = c.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break c.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for s in &statuses {
        assert!(s.success(), "child process failed: {s}");
    }
    let events = mp::read_events(&dir);
    let summary = mp::verify(&events, MP_GROUPS, MP_PER_GROUP).unwrap_or_else(|problems| {
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
    eprintln!("aws multi-process: {summary:?}, parent processed {local}");
    assert_eq!(summary.deleted, (MP_GROUPS * MP_PER_GROUP) as usize);
    assert!(summary.processes >= 2, "{summary:?}");
    assert_eq!(ports.queues.depth(MP_QUEUE).await.unwrap().total(), 0);
    assert_eq!(
        ports
            .queues
            .depth(&format!("{MP_QUEUE}-dlq"))
            .await
            .unwrap()
            .total(),
        0
    );
}
