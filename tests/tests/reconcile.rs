//! Reconcile follows the tenants file: queues of new accounts are created, the queue of an
//! account no longer listed is removed once drained — and kept while it still holds work.

use accessflow_shared::naming::Names;
use accessflow_tests::{spec, Deployment};

fn queues(d: &Deployment) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ports = d.ports().await;
        ports
            .queues
            .list_queues(&Names::new("accessflow").unwrap().queue_prefix())
            .await
            .unwrap()
    })
}

#[test]
fn removed_accounts_lose_their_queues_only_once_drained() {
    let d = Deployment::new(30);
    let both = d.write_tenants(&[
        ("acme", spec("111100000001", 20, 1)),
        ("acme", spec("111100000002", 20, 2)),
    ]);
    d.coordinator(&["reconcile", "--tenants", both.to_str().unwrap()]);
    let names = Names::new("accessflow").unwrap();
    let q2 = names.account_queue("acme", "111100000002");
    let dlq2 = names.account_dlq("acme", "111100000002");
    assert!(
        queues(&d).contains(&q2) && queues(&d).contains(&dlq2),
        "{:?}",
        queues(&d)
    );

    // Work is published to both accounts, and nobody consumes it.
    d.coordinator(&[
        "start",
        "--tenants",
        both.to_str().unwrap(),
        "--run-id",
        "r1",
    ]);
    let only_first = d.write_tenants(&[("acme", spec("111100000001", 20, 1))]);
    let out = d.coordinator(&["reconcile", "--tenants", only_first.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("draining: 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        queues(&d).contains(&q2),
        "a queue with messages is kept until drained"
    );

    // A draining account stays registered, so workers finish its queue; once drained, the
    // queue and its empty DLQ go.
    let mut worker = d.spawn_worker(0, 2);
    d.wait_for_run("r1", std::time::Duration::from_secs(60));
    accessflow_tests::terminate(&mut worker, std::time::Duration::from_secs(30));
    let out = d.coordinator(&["reconcile", "--tenants", only_first.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed: 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left = queues(&d);
    assert!(!left.contains(&q2) && !left.contains(&dlq2), "{left:?}");
    assert!(left.contains(&names.account_queue("acme", "111100000001")));
}

/// Item 2 of "never lose a night", on the embedded backend: customer `acme`'s topic prefix
/// also matches `acme-eu`'s topics. Reconciling `acme` must leave `acme-eu`'s
/// subscriptions alone instead of deleting and recreating them every night.
#[test]
fn a_customer_whose_id_extends_another_keeps_its_subscriptions() {
    let d = Deployment::new(30);
    let tenants = d.write_tenants(&[
        ("acme", spec("111100000001", 5, 1)),
        ("acme-eu", spec("222200000001", 5, 2)),
    ]);
    let names = Names::new("accessflow").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let subscriptions = || {
        runtime.block_on(async {
            let ports = d.ports().await;
            accessflow_tests::subscriptions(&ports, &names, &["acme", "acme-eu"]).await
        })
    };
    d.coordinator(&["reconcile", "--tenants", tenants.to_str().unwrap()]);
    let before = subscriptions();
    d.coordinator(&["reconcile", "--tenants", tenants.to_str().unwrap()]);
    let after = subscriptions();
    assert_eq!(before.len(), 2, "one topic per customer: {before:#?}");
    assert!(before.values().all(|subs| subs.len() == 1), "{before:#?}");
    assert_eq!(before, after, "the second reconcile changed nothing");
}

/// A customer dropped from the tenants file loses its topics and their subscriptions, not
/// only its queues; a customer whose id extends it (`acme-eu`) keeps everything.
#[test]
fn a_removed_customer_loses_its_topics() {
    let d = Deployment::new(30);
    let both = d.write_tenants(&[
        ("acme", spec("111100000001", 5, 1)),
        ("acme-eu", spec("222200000001", 5, 2)),
    ]);
    let names = Names::new("accessflow").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let subscriptions = || {
        runtime.block_on(async {
            let ports = d.ports().await;
            accessflow_tests::subscriptions(&ports, &names, &["acme", "acme-eu"]).await
        })
    };
    d.coordinator(&["reconcile", "--tenants", both.to_str().unwrap()]);
    let before = subscriptions();
    assert_eq!(before.len(), 2, "{before:#?}");
    let only_eu = d.write_tenants(&[("acme-eu", spec("222200000001", 5, 2))]);
    d.coordinator(&["reconcile", "--tenants", only_eu.to_str().unwrap()]);
    let after = subscriptions();
    let eu_topic = names.customer_topic("acme-eu", 0);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        vec![&eu_topic],
        "only acme-eu's topic is left: {after:#?}"
    );
    assert_eq!(
        after[&eu_topic], before[&eu_topic],
        "acme-eu's subscription is untouched"
    );
}
