//! The DynamoDB, S3 and KMS backends against moto.

use accessflow_testkit::moto;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use accessflow_shared::ports::{Condition, PortError, StoreKey, WriteOp};
use serde_json::json;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn deltas(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn conditional_puts_and_versions() {
    let (backend, _) = moto::backend("kvput").await;
    let s = backend.ports().store;
    let k = StoreKey::new("run#r1", "item#1");
    assert_eq!(s.get(&k).await.unwrap(), None);
    assert_eq!(
        s.put(&k, json!({"a": 1}), None, Condition::NotExists)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        s.put(&k, json!({"a": 2}), None, Condition::NotExists).await,
        Err(PortError::ConditionFailed { .. })
    ));
    assert_eq!(
        s.put(&k, json!({"a": 2}), None, Condition::VersionIs(1))
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        s.put(&k, json!({"a": 3}), None, Condition::VersionIs(1))
            .await,
        Err(PortError::ConditionFailed { .. })
    ));
    assert_eq!(
        s.put(&k, json!({"a": 3}), None, Condition::Exists)
            .await
            .unwrap(),
        3
    );
    let missing = StoreKey::new("run#r1", "item#2");
    assert!(matches!(
        s.put(&missing, json!(1), None, Condition::Exists).await,
        Err(PortError::ConditionFailed { .. })
    ));
    let r = s.get(&k).await.unwrap().unwrap();
    assert_eq!(r.value, json!({"a": 3}));
    assert_eq!(r.version, 3);
    assert_eq!(r.key, k);
    assert_eq!(r.expires_at, None);

    // Deletes.
    assert!(matches!(
        s.delete(&k, Condition::VersionIs(1)).await,
        Err(PortError::ConditionFailed { .. })
    ));
    s.delete(&k, Condition::VersionIs(3)).await.unwrap();
    s.delete(&k, Condition::None).await.unwrap();
    assert!(matches!(
        s.delete(&k, Condition::Exists).await,
        Err(PortError::ConditionFailed { .. })
    ));
    assert_eq!(s.get(&k).await.unwrap(), None);

    // DynamoDB's 400 KB item limit.
    let big = "x".repeat(500_000);
    assert!(matches!(
        s.put(&missing, json!(big), None, Condition::None).await,
        Err(PortError::Invalid { .. })
    ));
}

#[tokio::test]
async fn counters_are_atomic_and_survive_puts() {
    let (backend, _) = moto::backend("kvadd").await;
    let s = backend.ports().store;
    let k = StoreKey::new("run#r1#acct#1", "progress");
    let r = s
        .add(&k, &deltas(&[("done", 1), ("failed", 0)]))
        .await
        .unwrap();
    assert_eq!(r.counters, deltas(&[("done", 1), ("failed", 0)]));
    assert_eq!(r.version, 1);
    assert_eq!(r.value, serde_json::Value::Null);
    assert_eq!(r.key, k);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            s.add(&k, &deltas(&[("done", 2)])).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = s.get(&k).await.unwrap().unwrap();
    assert_eq!(r.counters["done"], 17);
    assert_eq!(r.version, 9);
    let v = s
        .put(&k, json!({"state": "open"}), None, Condition::VersionIs(9))
        .await
        .unwrap();
    assert_eq!(v, 10);
    let r = s.add(&k, &deltas(&[("failed", -1)])).await.unwrap();
    assert_eq!(r.counters, deltas(&[("done", 17), ("failed", -1)]));
    assert_eq!(r.value, json!({"state": "open"}));
    assert_eq!(r.version, 11);
}

#[tokio::test]
async fn query_by_prefix_sorted_without_expired() {
    let (backend, _) = moto::backend("kvquery").await;
    let s = backend.ports().store;
    for sk in ["item#3", "item#1", "item#2", "other#1"] {
        s.put(&StoreKey::new("p", sk), json!(sk), None, Condition::None)
            .await
            .unwrap();
    }
    s.put(
        &StoreKey::new("p2", "item#0"),
        json!(0),
        None,
        Condition::None,
    )
    .await
    .unwrap();
    s.put(
        &StoreKey::new("p", "item#4"),
        json!("gone"),
        Some(now() - 5),
        Condition::None,
    )
    .await
    .unwrap();
    let sks: Vec<String> = s
        .query("p", "item#")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.sk)
        .collect();
    assert_eq!(sks, vec!["item#1", "item#2", "item#3"]);
    assert_eq!(s.query("p", "").await.unwrap().len(), 4);
    assert!(s.query("nobody", "").await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_items_are_absent() {
    let (backend, _) = moto::backend("kvttl").await;
    let s = backend.ports().store;
    let k = StoreKey::new("lease", "item#1");
    s.add(&k, &deltas(&[("n", 5)])).await.unwrap();
    s.put(
        &k,
        json!({"lease": 1}),
        Some(now() - 1),
        Condition::VersionIs(1),
    )
    .await
    .unwrap();
    assert_eq!(s.get(&k).await.unwrap(), None);
    assert!(matches!(
        s.put(&k, json!(1), None, Condition::Exists).await,
        Err(PortError::ConditionFailed { .. })
    ));
    // Taking over an expired item starts afresh: version 1, no old counters.
    assert_eq!(
        s.put(
            &k,
            json!({"lease": 2}),
            Some(now() + 3600),
            Condition::NotExists
        )
        .await
        .unwrap(),
        1
    );
    let r = s.get(&k).await.unwrap().unwrap();
    assert!(r.counters.is_empty(), "{r:?}");
    assert_eq!(
        r.expires_at,
        Some(now() + 3600).map(|t| t - (t - r.expires_at.unwrap()))
    );
    // Adding to an expired item also starts afresh.
    let k2 = StoreKey::new("lease", "item#2");
    s.put(&k2, json!(1), Some(now() - 1), Condition::None)
        .await
        .unwrap();
    let r = s.add(&k2, &deltas(&[("n", 1)])).await.unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.counters["n"], 1);
    assert_eq!(r.value, serde_json::Value::Null);
}

#[tokio::test]
async fn transactions_are_all_or_nothing() {
    let (backend, _) = moto::backend("kvtx").await;
    let s = backend.ports().store;
    let result = StoreKey::new("run#1", "result#a");
    let done = StoreKey::new("run#1", "idem#a");
    let progress = StoreKey::new("run#1", "progress");
    s.put(&done, json!({"status": "leased"}), None, Condition::None)
        .await
        .unwrap();
    s.transact(vec![
        WriteOp::Put {
            key: result.clone(),
            value: json!({"digest": "abc"}),
            expires_at: None,
            condition: Condition::NotExists,
        },
        WriteOp::Put {
            key: done.clone(),
            value: json!({"status": "completed"}),
            expires_at: Some(now() + 86_400),
            condition: Condition::VersionIs(1),
        },
        WriteOp::Add {
            key: progress.clone(),
            deltas: deltas(&[("completed", 1)]),
            condition: Condition::None,
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&done).await.unwrap().unwrap().version, 2);
    assert_eq!(
        s.get(&progress).await.unwrap().unwrap().counters["completed"],
        1
    );

    // The same again: the first condition fails, so nothing lands.
    let err = s
        .transact(vec![
            WriteOp::Add {
                key: progress.clone(),
                deltas: deltas(&[("completed", 1)]),
                condition: Condition::None,
            },
            WriteOp::Put {
                key: result.clone(),
                value: json!({"digest": "abc"}),
                expires_at: None,
                condition: Condition::NotExists,
            },
            WriteOp::Check {
                key: done.clone(),
                condition: Condition::VersionIs(2),
            },
        ])
        .await
        .unwrap_err();
    match &err {
        PortError::TransactionCancelled { reasons } => {
            assert_eq!(reasons.len(), 3);
            assert_eq!(reasons[0], None);
            assert_eq!(reasons[1].as_deref(), Some("ConditionalCheckFailed"));
            assert_eq!(reasons[2], None);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_condition_failed());
    assert_eq!(
        s.get(&progress).await.unwrap().unwrap().counters["completed"],
        1
    );

    // Deletes and checks; an expired item counts as missing.
    let stale = StoreKey::new("run#1", "stale");
    s.put(&stale, json!(1), Some(now() - 10), Condition::None)
        .await
        .unwrap();
    s.transact(vec![
        WriteOp::Delete {
            key: result.clone(),
            condition: Condition::Exists,
        },
        WriteOp::Put {
            key: stale.clone(),
            value: json!(2),
            expires_at: None,
            condition: Condition::NotExists,
        },
        WriteOp::Check {
            key: done.clone(),
            condition: Condition::Exists,
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&result).await.unwrap(), None);
    assert_eq!(s.get(&stale).await.unwrap().unwrap().version, 1);

    let too_many: Vec<WriteOp> = (0..101)
        .map(|i| WriteOp::Check {
            key: StoreKey::new("x", i.to_string()),
            condition: Condition::None,
        })
        .collect();
    assert!(matches!(
        s.transact(too_many).await,
        Err(PortError::Invalid { .. })
    ));
}

#[tokio::test]
async fn blobs_in_s3() {
    let (backend, prefix) = moto::backend("blobs").await;
    backend
        .ports()
        .keys
        .ensure_customer_key("acme")
        .await
        .unwrap();
    let b = backend.ports().blobs;
    b.put("acme/reports/r1/111/report.json", b"{}".to_vec())
        .await
        .unwrap();
    b.put("acme/reports/r1/111/report.html", b"<html>".to_vec())
        .await
        .unwrap();
    b.put("acme/snapshots/abc", vec![0, 1, 2, 255])
        .await
        .unwrap();
    b.put("acme/snapshots/abc", vec![9]).await.unwrap();
    assert_eq!(b.get("acme/snapshots/abc").await.unwrap(), Some(vec![9]));
    assert_eq!(b.get("acme/snapshots/nope").await.unwrap(), None);
    assert!(b.exists("acme/reports/r1/111/report.json").await.unwrap());
    assert!(!b.exists("acme/reports/r1/111/nope").await.unwrap());
    assert_eq!(
        b.list("acme/reports/").await.unwrap(),
        vec![
            "acme/reports/r1/111/report.html",
            "acme/reports/r1/111/report.json"
        ]
    );
    assert_eq!(b.list("zzz").await.unwrap(), Vec::<String>::new());
    assert_eq!(
        b.locate("acme/snapshots/abc"),
        format!("s3://{prefix}bucket/acme/snapshots/abc")
    );
    assert!(backend.request_counts()["s3"] >= 9);
    let ops = backend.operation_counts();
    // The SDK's operation names, which the least-privilege test maps to IAM actions.
    assert_eq!(ops["s3:PutObject"], 4, "{ops:?}");
    assert_eq!(ops["s3:CreateBucket"], 1, "{ops:?}");
    assert_eq!(ops["s3:ListObjectsV2"], 2, "{ops:?}");
    assert_eq!(ops["s3:HeadObject"], 2, "{ops:?}");
    assert_eq!(ops["s3:GetObject"], 2, "{ops:?}");
    let cost =
        accessflow_shared::aws::prices::estimate(&backend.billed_units(), &Default::default());
    assert!(cost["s3"] > 0.0);
}

/// Item 7 of "never lose a night": a customer's reports are encrypted at rest with that
/// customer's own KMS key (SSE-KMS with a bucket key), like everything else of theirs.
#[tokio::test]
async fn reports_are_encrypted_with_their_customers_key() {
    let (backend, _) = moto::backend("sse").await;
    let keys = backend.ports().keys;
    keys.ensure_customer_key("acme").await.unwrap();
    keys.ensure_customer_key("globex").await.unwrap();
    let b = backend.ports().blobs;
    b.put("acme/reports/r1/111122223333/report.json", b"{}".to_vec())
        .await
        .unwrap();
    b.put("globex/reports/r1/444455556666/report.csv", b"a".to_vec())
        .await
        .unwrap();
    let alias = &backend.settings().kms_alias_prefix;
    for (key, customer) in [
        ("acme/reports/r1/111122223333/report.json", "acme"),
        ("globex/reports/r1/444455556666/report.csv", "globex"),
    ] {
        let e = backend.blobs().encryption(key).await.unwrap();
        assert_eq!(
            e.server_side_encryption.as_deref(),
            Some("aws:kms"),
            "{key}"
        );
        assert_eq!(
            e.kms_key_id.as_deref(),
            Some(format!("{alias}{customer}").as_str()),
            "{key}: {e:?}"
        );
        assert_eq!(e.bucket_key_enabled, Some(true), "{key}");
    }
}

#[tokio::test]
async fn kms_data_keys_are_bound_to_their_customer() {
    let (backend, _) = moto::backend("kms").await;
    let k = backend.ports().keys;
    k.ensure_customer_key("acme").await.unwrap();
    k.ensure_customer_key("acme").await.unwrap();
    k.ensure_customer_key("globex").await.unwrap();
    let key = k.generate_data_key("acme").await.unwrap();
    let other = k.generate_data_key("acme").await.unwrap();
    assert_ne!(key.plaintext, other.plaintext);
    assert!(!key.wrapped.is_empty());
    assert_eq!(
        k.decrypt_data_key("acme", &key.wrapped).await.unwrap(),
        key.plaintext
    );
    let err = k
        .decrypt_data_key("globex", &key.wrapped)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Permanent { .. }), "{err:?}");
    assert!(k.decrypt_data_key("acme", b"garbage").await.is_err());
    assert!(matches!(
        k.generate_data_key("nobody").await,
        Err(PortError::NotFound { .. })
    ));
    // A second backend (another process) finds the same key by its alias.
    let again = accessflow_shared::aws::AwsBackend::connect(backend.settings())
        .await
        .unwrap();
    assert_eq!(
        again
            .ports()
            .keys
            .decrypt_data_key("acme", &key.wrapped)
            .await
            .unwrap(),
        key.plaintext
    );
}
