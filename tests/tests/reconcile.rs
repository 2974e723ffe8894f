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
