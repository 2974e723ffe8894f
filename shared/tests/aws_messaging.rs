//! The SQS and SNS backends against moto.

use accessflow_testkit::moto;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use accessflow_shared::ports::{
    FilterPolicy, OutgoingMessage, PortError, QueueSpec, ReceivedMessage, SendOutcome, WorkQueues,
};

fn spec(name: &str, max_receive_count: u32, visibility_secs: u64) -> QueueSpec {
    QueueSpec {
        name: name.to_string(),
        dlq_name: format!("{name}-dlq"),
        visibility_timeout: Duration::from_secs(visibility_secs),
        max_receive_count,
        retention: Duration::from_secs(4 * 24 * 3600),
        tags: BTreeMap::from([("customer".to_string(), "acme".to_string())]),
    }
}

fn msg(group: &str, dedup: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage::new(group, dedup, body)
}

/// Receives until `n` messages arrived or `within` passed.
async fn receive_n(
    q: &dyn WorkQueues,
    queue: &str,
    n: usize,
    visibility: Option<Duration>,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < n && started.elapsed() < within {
        got.extend(
            q.receive(queue, 10, visibility, Duration::from_secs(1))
                .await
                .expect("receive"),
        );
    }
    got
}

#[tokio::test]
async fn queues_are_created_listed_and_deleted() {
    let (backend, _) = moto::backend("qlife").await;
    let q = backend.ports().queues;
    q.ensure_queue(&spec("acme-111", 3, 30)).await.unwrap();
    q.ensure_queue(&spec("acme-111", 5, 60)).await.unwrap(); // idempotent, updates
    q.ensure_queue(&spec("acme-222", 3, 30)).await.unwrap();
    assert_eq!(
        q.list_queues("acme-").await.unwrap(),
        vec!["acme-111", "acme-111-dlq", "acme-222", "acme-222-dlq"]
    );
    assert_eq!(
        q.list_queues("acme-2").await.unwrap(),
        vec!["acme-222", "acme-222-dlq"]
    );
    assert_eq!(q.dlq_of("acme-111").await.unwrap(), "acme-111-dlq");
    assert!(matches!(
        q.dlq_of("acme-111-dlq").await,
        Err(PortError::NotFound { .. })
    ));
    q.delete_queue("acme-222").await.unwrap();
    q.delete_queue("acme-222").await.unwrap(); // missing is fine
    assert_eq!(
        q.list_queues("acme-").await.unwrap(),
        vec!["acme-111", "acme-111-dlq", "acme-222-dlq"]
    );
    assert!(matches!(
        q.send_batch("acme-222", &[msg("g", "d", "b")]).await,
        Err(PortError::NotFound { .. })
    ));
    assert!(matches!(
        q.depth("nope").await,
        Err(PortError::NotFound { .. })
    ));
}

#[tokio::test]
async fn fifo_order_and_one_group_in_flight() {
    let (backend, _) = moto::backend("qfifo").await;
    let q = backend.ports().queues;
    q.ensure_queue(&spec("acc", 5, 30)).await.unwrap();
    let batch: Vec<_> = (0..4)
        .map(|i| msg("A", &format!("a{i}"), &format!("A{i}")).with_attribute("account", "111"))
        .chain([msg("B", "b0", "B0")])
        .collect();
    let out = q.send_batch("acc", &batch).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, SendOutcome::Sent { .. })));
    let depth = q.depth("acc").await.unwrap();
    assert_eq!(depth.visible, 5);

    let got = receive_n(q.as_ref(), "acc", 5, None, Duration::from_secs(5)).await;
    let bodies_a: Vec<_> = got
        .iter()
        .filter(|m| m.group_id == "A")
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(bodies_a, vec!["A0", "A1", "A2", "A3"]);
    let first = &got[0];
    assert_eq!(first.receive_count, 1);
    assert!(!first.dedup_id.is_empty());
    let a0 = got.iter().find(|m| m.body == "A0").unwrap();
    assert_eq!(
        a0.attributes.get("account").map(String::as_str),
        Some("111")
    );
    assert_eq!(a0.dedup_id, "a0");

    // While group A is in flight nothing else of it is delivered.
    q.send_batch("acc", &[msg("A", "a4", "A4")]).await.unwrap();
    let none = q
        .receive("acc", 10, None, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(none.iter().all(|m| m.group_id != "A"), "{none:?}");
    let handles: Vec<String> = got.iter().map(|m| m.receipt_handle.clone()).collect();
    q.delete_batch("acc", &handles).await.unwrap();
    let next = receive_n(q.as_ref(), "acc", 1, None, Duration::from_secs(5)).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].body, "A4");
}

#[tokio::test]
async fn visibility_receive_count_and_redrive() {
    let (backend, _) = moto::backend("qredrive").await;
    let q = backend.ports().queues;
    q.ensure_queue(&spec("acc", 2, 1)).await.unwrap();
    q.send_batch("acc", &[msg("G", "m1", "payload")])
        .await
        .unwrap();
    let first = receive_n(q.as_ref(), "acc", 1, None, Duration::from_secs(5)).await;
    assert_eq!(first[0].receive_count, 1);
    // Heartbeat: extend, then release at once.
    q.change_visibility("acc", &first[0].receipt_handle, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(q
        .receive("acc", 1, None, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    q.change_visibility("acc", &first[0].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    let second = receive_n(q.as_ref(), "acc", 1, None, Duration::from_secs(5)).await;
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].message_id, first[0].message_id);
    // Let the 1 s visibility lapse: the third receive moves it to the DLQ instead.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = q
        .receive("acc", 10, None, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(third.is_empty(), "{third:?}");
    let dead = receive_n(q.as_ref(), "acc-dlq", 1, None, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "payload");
    assert_eq!(dead[0].group_id, "G");
}

#[tokio::test]
async fn duplicates_delays_and_bad_batches() {
    let (backend, _) = moto::backend("qdedup").await;
    let q = backend.ports().queues;
    q.ensure_queue(&spec("acc", 3, 30)).await.unwrap();
    let first = q
        .send_batch("acc", &[msg("G", "same", "one")])
        .await
        .unwrap();
    let second = q
        .send_batch("acc", &[msg("G", "same", "two")])
        .await
        .unwrap();
    let SendOutcome::Sent { message_id } = &first[0] else {
        panic!("{first:?}")
    };
    assert_eq!(
        second[0],
        SendOutcome::Duplicate {
            message_id: message_id.clone()
        }
    );
    let got = receive_n(q.as_ref(), "acc", 2, None, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "one");

    let mut delayed = msg("G", "later", "x");
    delayed.delay = Duration::from_secs(5);
    assert!(matches!(
        q.send_batch("acc", &[delayed]).await,
        Err(PortError::Invalid { .. })
    ));
    let eleven: Vec<_> = (0..11).map(|i| msg("G", &i.to_string(), "x")).collect();
    assert!(matches!(
        q.send_batch("acc", &eleven).await,
        Err(PortError::Invalid { .. })
    ));
    assert!(matches!(
        q.receive("acc", 0, None, Duration::ZERO).await,
        Err(PortError::Invalid { .. })
    ));
}

#[tokio::test]
async fn topics_fan_out_by_account_with_raw_delivery() {
    let (backend, _) = moto::backend("topics").await;
    let ports = backend.ports();
    let (q, t) = (ports.queues, ports.topics);
    q.ensure_queue(&spec("acme-111", 3, 30)).await.unwrap();
    q.ensure_queue(&spec("acme-222", 3, 30)).await.unwrap();
    t.ensure_topic("acme-0").await.unwrap();
    t.ensure_topic("acme-0").await.unwrap();
    t.ensure_topic("other-0").await.unwrap();
    assert_eq!(t.list_topics("acme").await.unwrap(), vec!["acme-0"]);

    let s1 = t
        .subscribe(
            "acme-0",
            "acme-111",
            &FilterPolicy::on("account", vec!["111".into()]),
        )
        .await
        .unwrap();
    let s2 = t
        .subscribe(
            "acme-0",
            "acme-222",
            &FilterPolicy::on("account", vec!["999".into()]),
        )
        .await
        .unwrap();
    // Subscribing again updates the filter and keeps the subscription.
    let s2b = t
        .subscribe(
            "acme-0",
            "acme-222",
            &FilterPolicy::on("account", vec!["222".into()]),
        )
        .await
        .unwrap();
    assert_eq!(s2.id, s2b.id);
    let subs = t.list_subscriptions("acme-0").await.unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].queue, "acme-111");
    assert_eq!(subs[0].id, s1.id);
    assert_eq!(
        subs[1].filter,
        FilterPolicy::on("account", vec!["222".into()])
    );

    let batch = vec![
        msg(
            "111",
            "c-111",
            r#"{"kind":"CollectAccount","account":"111"}"#,
        )
        .with_attribute("account", "111"),
        msg(
            "222",
            "c-222",
            r#"{"kind":"CollectAccount","account":"222"}"#,
        )
        .with_attribute("account", "222"),
        msg("333", "c-333", "nobody listens").with_attribute("account", "333"),
    ];
    let out = t.publish_batch("acme-0", &batch).await.unwrap();
    assert_eq!(out.len(), 3);
    let again = t.publish_batch("acme-0", &batch[..1]).await.unwrap();
    assert!(matches!(again[0], SendOutcome::Duplicate { .. }));

    let got = receive_n(q.as_ref(), "acme-111", 2, None, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, r#"{"kind":"CollectAccount","account":"111"}"#);
    assert_eq!(got[0].group_id, "111");
    assert_eq!(got[0].dedup_id, "c-111");
    assert_eq!(
        got[0].attributes.get("account").map(String::as_str),
        Some("111")
    );
    let got = receive_n(q.as_ref(), "acme-222", 1, None, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].group_id, "222");

    t.unsubscribe(&s1.id).await.unwrap();
    t.unsubscribe(&s1.id).await.unwrap();
    assert_eq!(t.list_subscriptions("acme-0").await.unwrap().len(), 1);
    t.delete_topic("acme-0").await.unwrap();
    t.delete_topic("acme-0").await.unwrap();
    assert!(t.list_topics("acme").await.unwrap().is_empty());
    assert!(matches!(
        t.publish_batch("missing", &batch[..1]).await,
        Err(PortError::NotFound { .. })
    ));
    let counts = backend.request_counts();
    assert!(counts["sns"] > 5 && counts["sqs"] > 5, "{counts:?}");
    let ops = backend.operation_counts();
    assert_eq!(ops["sns:PublishBatch"], 2, "{ops:?}");
    assert!(ops["sqs:ReceiveMessage"] >= 2, "{ops:?}");
    // 2 = the first batch and the one to the missing topic: the duplicate publish was
    // answered from memory, not sent (and not billed).
    assert_eq!(ops["sns:Subscribe"], 2, "{ops:?}");
}
