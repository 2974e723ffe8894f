//! The building blocks of exactly-once effects and tenancy, on the embedded backend:
//! idempotency claims (take-over after a lease, fencing of a lost claim, replays), the
//! ledger's item accounting, and per-customer sealing.

use std::collections::BTreeMap;
use std::time::Duration;

use accessflow_shared::clock::Clock;
use accessflow_shared::crypto::Sealer;
use accessflow_shared::embedded::EmbeddedBackend;
use accessflow_shared::idempotency::{self, Claim, ItemStatus};
use accessflow_shared::ports::{Condition, Ports, StoreKey, WriteOp};

/// The ports of a fresh embedded backend on a manual clock (`ports.clock`), which the tests
/// advance instead of sleeping.
fn ports() -> (tempfile::TempDir, Ports) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(1_800_000_000_000);
    let ports = EmbeddedBackend::open_with_clock(dir.path(), clock)
        .unwrap()
        .ports();
    (dir, ports)
}

#[tokio::test]
async fn a_claim_is_exclusive_until_its_lease_runs_out() {
    let (_dir, ports) = ports();
    let store = ports.store.as_ref();
    let key = idempotency::record_key("r1", "acme", "111122223333", "item#000001");
    let lease = Duration::from_secs(30);

    let Claim::Acquired(first) =
        idempotency::claim(store, &ports.clock, &key, "worker-a", lease, false)
            .await
            .unwrap()
    else {
        panic!("the first claim must succeed")
    };
    assert!(matches!(
        idempotency::claim(store, &ports.clock, &key, "worker-b", lease, false)
            .await
            .unwrap(),
        Claim::Held { .. }
    ));

    // Just before the lease runs out it is still held.
    assert!(ports.clock.advance(lease - Duration::from_millis(1)));
    assert!(matches!(
        idempotency::claim(store, &ports.clock, &key, "worker-b", lease, false)
            .await
            .unwrap(),
        Claim::Held { .. }
    ));

    // worker-a dies; after the lease worker-b takes over.
    assert!(ports.clock.advance(Duration::from_millis(101)));
    let Claim::Acquired(second) =
        idempotency::claim(store, &ports.clock, &key, "worker-b", lease, false)
            .await
            .unwrap()
    else {
        panic!("an expired lease must be taken over")
    };

    // worker-a wakes up and tries to finish: its effect must not land.
    let effect = StoreKey::new("effects", "item-1");
    let stale = store
        .transact(vec![
            idempotency::finish_op(&first, ItemStatus::Done, None, None),
            WriteOp::Put {
                key: effect.clone(),
                value: serde_json::json!("from a"),
                expires_at: None,
                condition: Condition::None,
            },
        ])
        .await;
    assert!(stale.unwrap_err().is_condition_failed());
    assert!(
        store.get(&effect).await.unwrap().is_none(),
        "a fenced claim writes no effect"
    );

    // worker-b finishes; later duplicates see it finished.
    store
        .transact(vec![
            idempotency::finish_op(&second, ItemStatus::Done, Some("digest".into()), None),
            WriteOp::Put {
                key: effect.clone(),
                value: serde_json::json!("from b"),
                expires_at: None,
                condition: Condition::None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(&effect).await.unwrap().unwrap().value,
        serde_json::json!("from b")
    );
    match idempotency::claim(store, &ports.clock, &key, "worker-c", lease, false)
        .await
        .unwrap()
    {
        Claim::Finished(record) => assert_eq!(record.status, ItemStatus::Done),
        other => panic!("expected Finished, got {other:?}"),
    }
    // Even a replay does not redo a step that succeeded.
    assert!(matches!(
        idempotency::claim(store, &ports.clock, &key, "worker-c", lease, true)
            .await
            .unwrap(),
        Claim::Finished(_)
    ));
}

#[tokio::test]
async fn an_extended_lease_runs_from_the_extension_and_records_expire_after_their_ttl() {
    let (_dir, ports) = ports();
    let store = ports.store.as_ref();
    let key = idempotency::record_key("r1", "acme", "111122223333", "item#000002");
    let lease = Duration::from_secs(60);
    let start = ports.clock.now_ms();
    let Claim::Acquired(token) = idempotency::claim(store, &ports.clock, &key, "a", lease, false)
        .await
        .unwrap()
    else {
        panic!("the first claim must succeed")
    };

    // The heartbeat at 50 s moves the lease to 110 s; at 100 s it is still held.
    assert!(ports.clock.advance(Duration::from_secs(50)));
    idempotency::extend(store, &token, lease).await.unwrap();
    assert!(ports.clock.advance(Duration::from_secs(50)));
    match idempotency::claim(store, &ports.clock, &key, "b", lease, false)
        .await
        .unwrap()
    {
        Claim::Held { lease_until_ms, .. } => assert_eq!(lease_until_ms, start + 110_000),
        other => panic!("expected Held, got {other:?}"),
    }

    // A finished record guards against duplicates for RECORD_TTL, then is gone.
    store
        .transact(vec![idempotency::finish_op(
            &token,
            ItemStatus::Done,
            None,
            None,
        )])
        .await
        .unwrap();
    assert!(ports
        .clock
        .advance(idempotency::RECORD_TTL - Duration::from_secs(1)));
    assert!(idempotency::record(store, &key).await.unwrap().is_some());
    assert!(ports.clock.advance(Duration::from_secs(1)));
    assert!(idempotency::record(store, &key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_failed_step_is_retried_only_by_a_replay() {
    let (_dir, ports) = ports();
    let store = ports.store.as_ref();
    let key = idempotency::record_key("r1", "acme", "111122223333", "collect");
    let lease = Duration::from_secs(30);
    let Claim::Acquired(token) = idempotency::claim(store, &ports.clock, &key, "a", lease, false)
        .await
        .unwrap()
    else {
        panic!()
    };
    store
        .transact(vec![idempotency::finish_op(
            &token,
            ItemStatus::Failed,
            None,
            Some("access denied".into()),
        )])
        .await
        .unwrap();
    match idempotency::claim(store, &ports.clock, &key, "b", lease, false)
        .await
        .unwrap()
    {
        Claim::Finished(record) => assert_eq!(record.reason.as_deref(), Some("access denied")),
        other => panic!("a duplicate must not retry a failed step: {other:?}"),
    }
    assert!(matches!(
        idempotency::claim(store, &ports.clock, &key, "b", lease, true)
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn concurrent_claims_have_exactly_one_winner() {
    let (_dir, ports) = ports();
    let key = idempotency::record_key("r1", "acme", "111122223333", "finalize");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = ports.store.clone();
        let clock = ports.clock.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            idempotency::claim(
                store.as_ref(),
                &clock,
                &key,
                &format!("w{i}"),
                Duration::from_secs(30),
                false,
            )
            .await
            .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Claim::Acquired(_)) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn sealed_data_opens_only_for_its_customer_and_account() {
    let (_dir, ports) = ports();
    for customer in ["acme", "globex"] {
        ports.keys.ensure_customer_key(customer).await.unwrap();
    }
    let sealer = Sealer::new(ports.keys.clone());
    let sealed = sealer
        .seal("acme", "111122223333", "snapshot", b"secret iam data")
        .await
        .unwrap();
    assert!(
        !sealed.windows(6).any(|w| w == b"secret"),
        "ciphertext must not contain the plaintext"
    );
    assert_eq!(
        sealer
            .open("acme", "111122223333", "snapshot", &sealed)
            .await
            .unwrap(),
        b"secret iam data"
    );
    // Another account, another purpose, another customer: all refused.
    assert!(sealer
        .open("acme", "999999999999", "snapshot", &sealed)
        .await
        .is_err());
    assert!(sealer
        .open("acme", "111122223333", "result", &sealed)
        .await
        .is_err());
    assert!(sealer
        .open("globex", "111122223333", "snapshot", &sealed)
        .await
        .is_err());
    // A fresh sealer (another process) opens it through the key port.
    let other = Sealer::new(ports.keys.clone());
    assert_eq!(
        other
            .open("acme", "111122223333", "snapshot", &sealed)
            .await
            .unwrap(),
        b"secret iam data"
    );
    // Tampering is detected.
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(sealer
        .open("acme", "111122223333", "snapshot", &tampered)
        .await
        .is_err());
}

#[tokio::test]
async fn ledger_counters_add_up_under_concurrency() {
    let (_dir, ports) = ports();
    let key = StoreKey::new("run#r1", "acct#acme#111122223333");
    ports
        .store
        .put(
            &key,
            serde_json::json!({"k": 1}),
            None,
            Condition::NotExists,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = ports.store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let mut deltas = BTreeMap::new();
                deltas.insert("done".to_string(), 1);
                store
                    .transact(vec![WriteOp::Add {
                        key: key.clone(),
                        deltas,
                        condition: Condition::Exists,
                    }])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let record = ports.store.get(&key).await.unwrap().unwrap();
    assert_eq!(record.counters["done"], 100);
    assert_eq!(
        record.value,
        serde_json::json!({"k": 1}),
        "counters leave the document alone"
    );
}

/// Item 11 of "never lose a night": claim versions never repeat. Releasing used to delete
/// the record, so the next claim started again at version 1, which a stalled holder's
/// token from before could match.
#[tokio::test]
async fn a_released_claim_never_gives_a_stale_holder_its_version_back() {
    let (_dir, ports) = ports();
    let store = ports.store.as_ref();
    let key = idempotency::record_key("r1", "acme", "111122223333", "item#000002");
    let lease = Duration::from_secs(30);
    let claim = |owner: &'static str| {
        let clock = ports.clock.clone();
        let key = key.clone();
        async move {
            match idempotency::claim(store, &clock, &key, owner, lease, false)
                .await
                .unwrap()
            {
                Claim::Acquired(token) => token,
                other => panic!("{owner} could not claim: {other:?}"),
            }
        }
    };

    // worker-a claims and stalls past its lease; worker-b takes over, then gives the step
    // back (say it is shutting down); worker-c claims it.
    let stalled = claim("worker-a").await;
    assert!(ports.clock.advance(lease + Duration::from_millis(1)));
    let taken_over = claim("worker-b").await;
    idempotency::release(store, &taken_over).await.unwrap();
    let current = claim("worker-c").await;
    assert!(
        current.version() > taken_over.version() && taken_over.version() > stalled.version(),
        "versions only go up: {} {} {}",
        stalled.version(),
        taken_over.version(),
        current.version()
    );

    // worker-a wakes up and commits with its old token: nothing lands.
    let effect = StoreKey::new("effects", "item-2");
    let stale = store
        .transact(vec![
            idempotency::finish_op(&stalled, ItemStatus::Done, None, None),
            WriteOp::Put {
                key: effect.clone(),
                value: serde_json::json!("from a"),
                expires_at: None,
                condition: Condition::None,
            },
        ])
        .await;
    assert!(stale.unwrap_err().is_condition_failed());
    assert!(store.get(&effect).await.unwrap().is_none());

    // worker-c's commit lands.
    store
        .transact(vec![idempotency::finish_op(
            &current,
            ItemStatus::Done,
            None,
            None,
        )])
        .await
        .unwrap();
    let record = idempotency::record(store, &key).await.unwrap().unwrap();
    assert_eq!(record.status, ItemStatus::Done);
    assert_eq!(record.owner, "worker-c");
}
