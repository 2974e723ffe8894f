//! The conformance suite on the embedded backend (a fresh data directory per test), the
//! multi-process test, and the checks that only make sense for the embedded backend
//! (files on disk, fixture directories).
//!
//! The suite runs on a manual clock: visibility timeouts, delays and TTLs pass by advancing
//! it, not by sleeping.

mod conformance;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use accessflow_shared::clock::Clock;
use accessflow_shared::embedded::EmbeddedBackend;
use accessflow_shared::ports::{AccountLocator, PortError};
use conformance::{mp, Fixture};

/// Where the manual clocks of these tests start (epoch millis, a Tuesday in 2027).
const CLOCK_START_MS: i64 = 1_800_000_000_000;

async fn setup() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = EmbeddedBackend::open_with_clock(dir.path(), Clock::manual(CLOCK_START_MS))
        .expect("open embedded backend");
    Fixture {
        ports: backend.ports(),
        guard: Box::new((backend, dir)),
    }
}

conformance::conformance_suite!(setup);

// ---------------------------------------------------------------------------------------
// Multi-process: 2 child processes x 3 consumers + 2 consumers in this process, one queue.

const MP_DIR_ENV: &str = "ACCESSFLOW_MP_DATA_DIR";
const MP: mp::Run = mp::Run {
    queue: "mp-work",
    locks: "mp#locks",
    groups: 50,
    per_group: 40,
    children: 2,
    child_consumers: 3,
    parent_consumers: 2,
    behaviour: mp::Behaviour {
        release_one_in: 25,
        abandon_one_in: 60,
        abandon_visibility: Duration::from_secs(1),
    },
    visibility: Duration::from_secs(30),
    deadline: Duration::from_secs(60),
    child_test: "mp_child",
};

/// The child half of `multi_process_consumers_never_overlap_a_group`: does nothing unless
/// started by it (with the data directory in `ACCESSFLOW_MP_DATA_DIR`).
#[test]
#[ignore = "child process of multi_process_consumers_never_overlap_a_group"]
fn mp_child() {
    let Ok(dir) = std::env::var(MP_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    mp::child_runtime().block_on(async {
        let backend = EmbeddedBackend::open(&dir.join("data")).expect("child: open backend");
        MP.child(&backend.ports(), &dir.join("events")).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_process_consumers_never_overlap_a_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let backend = EmbeddedBackend::open(&dir.join("data")).unwrap();
    let env: [(&str, std::ffi::OsString); 1] = [(MP_DIR_ENV, dir.clone().into())];
    let summary = MP.parent(&backend.ports(), &dir.join("events"), &env).await;
    assert!(summary.processes >= 3, "{summary:?}");
    assert!(summary.consumers >= 4, "{summary:?}");
    assert!(summary.released > 0, "{summary:?}");
    assert!(summary.abandoned > 0, "{summary:?}");
    assert!(
        summary.max_consumers_per_group >= 2,
        "groups moved between consumers: {summary:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Embedded-only checks.

#[tokio::test]
async fn data_dir_layout_and_keyring_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open(tmp.path()).unwrap();
    let ports = backend.ports();
    ports.keys.ensure_customer_key("acme").await.unwrap();
    ports
        .blobs
        .put("acme/reports/r1/a.json", b"{}".to_vec())
        .await
        .unwrap();

    assert!(tmp.path().join("accessflow.db").is_file());
    assert!(tmp.path().join("blobs/acme/reports/r1/a.json").is_file());
    assert_eq!(
        ports.blobs.locate("acme/reports/r1/a.json"),
        tmp.path()
            .join("blobs/acme/reports/r1/a.json")
            .display()
            .to_string()
    );
    let keyring = tmp.path().join("keyring.json");
    let mode = std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&keyring).unwrap();
    assert!(text.contains("acme"));
}

/// Two backends on one directory (as two processes would be) see each other's writes, and
/// a reopened backend finds everything again.
#[tokio::test]
async fn shared_and_reopened_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let a = EmbeddedBackend::open(tmp.path()).unwrap().ports();
    let b = EmbeddedBackend::open(tmp.path()).unwrap().ports();
    conformance::make_queue(&a, "shared", 30, 3).await;
    conformance::send(
        &a,
        "shared",
        &[
            conformance::msg("g", "1", "one"),
            conformance::msg("g", "2", "two"),
        ],
    )
    .await;
    let got = conformance::receive(&b, "shared", 1).await;
    assert_eq!(got[0].body, "one");
    assert!(
        conformance::receive(&a, "shared", 10).await.is_empty(),
        "group in flight in b"
    );
    conformance::delete(&b, "shared", &got).await;

    a.keys.ensure_customer_key("acme").await.unwrap();
    let dk = a.keys.generate_data_key("acme").await.unwrap();
    // b never saw acme's key: it reads the keyring again.
    assert_eq!(
        b.keys.decrypt_data_key("acme", &dk.wrapped).await.unwrap(),
        dk.plaintext
    );
    drop((a, b));

    let c = EmbeddedBackend::open(tmp.path()).unwrap().ports();
    let got = conformance::receive(&c, "shared", 10).await;
    assert_eq!(got[0].body, "two");
    assert_eq!(
        c.keys.decrypt_data_key("acme", &dk.wrapped).await.unwrap(),
        dk.plaintext
    );
}

/// Concurrent first use of a customer key from several backends creates one key only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_customer_key_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let backends: Vec<_> = (0..4)
        .map(|_| EmbeddedBackend::open(tmp.path()).unwrap())
        .collect();
    let tasks: Vec<_> = backends
        .iter()
        .map(|b| {
            let keys = b.ports().keys;
            tokio::spawn(async move {
                keys.ensure_customer_key("acme").await.unwrap();
                keys.generate_data_key("acme").await.unwrap()
            })
        })
        .collect();
    let mut wrapped = Vec::new();
    for t in tasks {
        wrapped.push(t.await.unwrap());
    }
    for b in &backends {
        for dk in &wrapped {
            assert_eq!(
                b.ports()
                    .keys
                    .decrypt_data_key("acme", &dk.wrapped)
                    .await
                    .unwrap(),
                dk.plaintext
            );
        }
    }
}

fn locator(dir: Option<&Path>) -> AccountLocator {
    AccountLocator {
        customer: "acme".into(),
        account: "111122223333".into(),
        role_arn: None,
        external_id: None,
        fixture_dir: dir.map(|d| d.display().to_string()),
        trusted_accounts: Vec::new(),
        regions: Vec::new(),
    }
}

#[tokio::test]
async fn iam_source_reads_fixture_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = EmbeddedBackend::open(&tmp.path().join("data"))
        .unwrap()
        .ports();
    let fixture = tmp.path().join("acme/111122223333");
    std::fs::create_dir_all(&fixture).unwrap();
    std::fs::write(
        fixture.join("authorization-details.json"),
        br#"{"UserDetailList":[]}"#,
    )
    .unwrap();
    std::fs::write(fixture.join("credential-report.csv"), b"user,arn\n").unwrap();
    std::fs::write(
        fixture.join("last-accessed.json"),
        br#"{"arn:aws:iam::111122223333:user/alice": {"JobStatus": "COMPLETED", "ServicesLastAccessed": []}}"#,
    )
    .unwrap();

    let snap = ports
        .iam
        .fetch_account(&locator(Some(&fixture)))
        .await
        .unwrap();
    assert_eq!(snap.authorization_details, br#"{"UserDetailList":[]}"#);
    assert_eq!(snap.credential_report, b"user,arn\n");

    let la = ports
        .iam
        .last_accessed(
            &locator(Some(&fixture)),
            "arn:aws:iam::111122223333:user/alice",
        )
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&la).unwrap();
    assert_eq!(v["JobStatus"], "COMPLETED");
    assert!(ports
        .iam
        .last_accessed(
            &locator(Some(&fixture)),
            "arn:aws:iam::111122223333:user/bob"
        )
        .await
        .unwrap()
        .is_none());

    let err = ports.iam.fetch_account(&locator(None)).await.unwrap_err();
    match &err {
        PortError::Permanent { message, .. } => {
            assert!(
                message.contains("111122223333") && message.contains("fixture_dir"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let missing = tmp.path().join("nope");
    let err = ports
        .iam
        .fetch_account(&locator(Some(&missing)))
        .await
        .unwrap_err();
    match &err {
        PortError::NotFound { name, .. } => assert!(name.contains("nope"), "{name}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(fixture.join("credential-report.csv")).unwrap();
    let err = ports
        .iam
        .fetch_account(&locator(Some(&fixture)))
        .await
        .unwrap_err();
    match &err {
        PortError::NotFound { name, .. } => {
            assert!(name.ends_with("credential-report.csv"), "{name}")
        }
        other => panic!("{other:?}"),
    }
}

/// A database lock held longer than the busy timeout (5 s) makes writes fail as Transient,
/// and they succeed once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_database_is_transient() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open(tmp.path()).unwrap();
    let ports = backend.ports();
    let key = accessflow_shared::ports::StoreKey::new("p", "s");
    ports
        .store
        .put(
            &key,
            serde_json::json!(1),
            None,
            accessflow_shared::ports::Condition::None,
        )
        .await
        .unwrap();

    let blocker = rusqlite::Connection::open(tmp.path().join("accessflow.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = ports
        .store
        .put(
            &key,
            serde_json::json!(2),
            None,
            accessflow_shared::ports::Condition::None,
        )
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    // Reads still work while a writer holds the lock (WAL).
    assert_eq!(
        ports.store.get(&key).await.unwrap().unwrap().value,
        serde_json::json!(1)
    );
    blocker.execute_batch("COMMIT").unwrap();
    ports
        .store
        .put(
            &key,
            serde_json::json!(3),
            None,
            accessflow_shared::ports::Condition::None,
        )
        .await
        .unwrap();
}

/// Time-based expiry that the suite cannot wait for on moto (the 5-minute deduplication
/// window, the queue's 1-hour retention), checked by advancing the clock.
#[tokio::test]
async fn dedup_window_and_retention_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = EmbeddedBackend::open_with_clock(tmp.path(), Clock::manual(CLOCK_START_MS))
        .unwrap()
        .ports();
    conformance::make_queue(&ports, "q", 30, 3).await;

    let first = conformance::send(&ports, "q", &[conformance::msg("g", "d", "one")]).await;
    let dup = conformance::send(&ports, "q", &[conformance::msg("g", "d", "two")]).await;
    assert!(matches!(
        first[0],
        accessflow_shared::ports::SendOutcome::Sent { .. }
    ));
    assert!(matches!(
        dup[0],
        accessflow_shared::ports::SendOutcome::Duplicate { .. }
    ));
    // Just inside the window it is still a duplicate; when it ends, accepted again.
    assert!(ports
        .clock
        .advance(Duration::from_secs(5 * 60) - Duration::from_millis(1)));
    let late = conformance::send(&ports, "q", &[conformance::msg("g", "d", "late")]).await;
    assert!(matches!(
        late[0],
        accessflow_shared::ports::SendOutcome::Duplicate { .. }
    ));
    assert!(ports.clock.advance(Duration::from_millis(1)));
    let again = conformance::send(&ports, "q", &[conformance::msg("g", "d", "three")]).await;
    assert!(matches!(
        again[0],
        accessflow_shared::ports::SendOutcome::Sent { .. }
    ));
    assert_eq!(ports.queues.depth("q").await.unwrap().visible, 2);

    // Retention (1 hour) ends for the first message, sent 5 minutes before the second: it
    // is gone, the group goes on with the next.
    assert!(ports.clock.advance(Duration::from_secs(55 * 60)));
    assert_eq!(ports.queues.depth("q").await.unwrap().visible, 1);
    let got = conformance::receive(&ports, "q", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "three");
}

/// A publish delivers to every matching queue or to none: a failure while writing to the
/// second queue leaves the first one untouched and the dedup id unused.
#[tokio::test]
async fn publish_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = EmbeddedBackend::open(tmp.path()).unwrap().ports();
    ports.topics.ensure_topic("t").await.unwrap();
    for q in ["qa", "qb"] {
        conformance::make_queue(&ports, q, 30, 3).await;
        ports
            .topics
            .subscribe("t", q, &accessflow_shared::ports::FilterPolicy::default())
            .await
            .unwrap();
    }
    let raw = rusqlite::Connection::open(tmp.path().join("accessflow.db")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER fail_qb BEFORE INSERT ON messages WHEN NEW.queue = 'qb'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let batch = [
        conformance::msg("g", "d1", "one"),
        conformance::msg("g", "d2", "two"),
    ];
    assert!(ports.topics.publish_batch("t", &batch).await.is_err());
    assert_eq!(ports.queues.depth("qa").await.unwrap().total(), 0);
    assert_eq!(ports.queues.depth("qb").await.unwrap().total(), 0);

    raw.execute_batch("DROP TRIGGER fail_qb").unwrap();
    let outcomes = ports.topics.publish_batch("t", &batch).await.unwrap();
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, accessflow_shared::ports::SendOutcome::Sent { .. })));
    assert_eq!(ports.queues.depth("qa").await.unwrap().visible, 2);
    assert_eq!(ports.queues.depth("qb").await.unwrap().visible, 2);
}

// ---------------------------------------------------------------------------------------
// A process killed with SIGKILL in the middle of writing: the database stays intact and
// what it held comes back after the visibility timeout.

const KILL_DIR_ENV: &str = "ACCESSFLOW_KILL_DATA_DIR";

/// The child half of `killed_process_loses_nothing`: receives, then writes until killed.
#[test]
#[ignore = "child process of killed_process_loses_nothing"]
fn kill_child() {
    let Ok(dir) = std::env::var(KILL_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ports = EmbeddedBackend::open(&dir.join("data")).unwrap().ports();
        let got = conformance::receive(&ports, "held", 10).await;
        std::fs::write(dir.join("received"), got.len().to_string()).unwrap();
        let mut i = 0u64;
        loop {
            let batch: Vec<_> = (0..10)
                .map(|j| conformance::msg(&format!("g{}", j % 3), &format!("{i}-{j}"), "filler"))
                .collect();
            let _ = ports.queues.send_batch("busy", &batch).await;
            let _ = ports
                .store
                .add(
                    &accessflow_shared::ports::StoreKey::new("kill", "count"),
                    &[("n".to_string(), 1)].into(),
                )
                .await;
            i += 1;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_process_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // The child runs on the system clock; this process on a manual one that starts with it
    // and is advanced past the held messages' visibility timeout instead of waiting for it.
    let clock = Clock::manual(Clock::system().now_ms());
    let ports = EmbeddedBackend::open_with_clock(&dir.join("data"), clock.clone())
        .unwrap()
        .ports();
    let held_visibility = Duration::from_secs(600);
    conformance::make_queue(&ports, "held", held_visibility.as_secs(), 5).await;
    conformance::make_queue(&ports, "busy", 30, 5).await;
    let sent: Vec<_> = (0..6)
        .map(|i| conformance::msg(&format!("g{}", i % 2), &format!("m{i}"), &format!("m{i}")))
        .collect();
    conformance::send(&ports, "held", &sent).await;

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_DIR_ENV, &dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("received").exists() {
        assert!(Instant::now() < deadline, "child never received");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held: usize = std::fs::read_to_string(dir.join("received"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        held, 6,
        "the child took every message (two groups, in one receive)"
    );
    // Let it write for a while, then kill it mid-transaction (most likely).
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let raw = rusqlite::Connection::open(dir.join("data/accessflow.db")).unwrap();
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // What the dead process held comes back after the visibility timeout (catch up with the
    // child's clock first), in order, with its receive count raised.
    let behind_ms = (Clock::system().now_ms() - clock.now_ms()).max(0) as u64;
    assert!(clock.advance(Duration::from_millis(behind_ms) + held_visibility));
    let mut back = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while back.len() < 6 && Instant::now() < deadline {
        let got = conformance::receive_wait(&ports, "held", 10, 1).await;
        conformance::delete(&ports, "held", &got).await;
        back.extend(got);
    }
    let mut by_group: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in &back {
        assert_eq!(m.receive_count, 2, "{m:?}");
        by_group
            .entry(m.group_id.clone())
            .or_default()
            .push(m.body.clone());
    }
    assert_eq!(by_group["g0"], vec!["m0", "m2", "m4"]);
    assert_eq!(by_group["g1"], vec!["m1", "m3", "m5"]);

    // The writes the child committed are all there and consistent.
    let count = ports
        .store
        .get(&accessflow_shared::ports::StoreKey::new("kill", "count"))
        .await
        .unwrap()
        .map(|r| r.counters["n"])
        .unwrap_or(0);
    let depth = ports.queues.depth("busy").await.unwrap();
    assert!(count > 0, "the child wrote before it was killed");
    // Each loop iteration sends 10 then adds 1: the kill may fall between the two.
    assert!(
        depth.visible == 10 * count as u64 || depth.visible == 10 * (count as u64 + 1),
        "{depth:?} vs {count} counter increments"
    );
    let drained = conformance::drain(&ports, "busy").await;
    assert_eq!(drained.len() as u64, depth.visible);
}
