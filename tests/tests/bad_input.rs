//! Bad input loses nothing: a malformed message goes to the DLQ with its reason, a principal
//! using a malformed policy is marked failed with its reason, the rest of the run completes,
//! and the affected accounts' reports say they are partial and why.

use std::time::Duration;

use accessflow_shared::naming::Names;
use accessflow_shared::ports::OutgoingMessage;
use accessflow_tests::{spec, terminate, Deployment};

#[test]
fn malformed_message_and_malformed_policy_make_partial_reports() {
    let d = Deployment::new(2);
    let mut broken = spec("333300000002", 40, 32);
    broken.malformed_policy = true;
    let tenants = d.write_tenants(&[
        ("initech", spec("333300000001", 40, 31)),
        ("initech", broken),
    ]);
    let run = "bad-input";
    d.start_run(&tenants, run);

    // A garbage message behind the CollectAccount of the first account, in its group.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let names = Names::new("accessflow").unwrap();
    let queue = names.account_queue("initech", "333300000001");
    let dlq = names.account_dlq("initech", "333300000001");
    runtime.block_on(async {
        let ports = d.ports().await;
        let garbage = OutgoingMessage::new("333300000001", "garbage-1", "{this is not json");
        ports.queues.send_batch(&queue, &[garbage]).await.unwrap();
    });

    let mut workers: Vec<_> = (0..2).map(|i| d.spawn_worker(i, 2)).collect();
    let status = d.wait_for_run(run, Duration::from_secs(120));
    for w in &mut workers {
        assert!(terminate(w, Duration::from_secs(30)).success());
    }

    let accounts = status["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    // Status knows about the DLQs: the garbage message is there, and counted.
    let garbage_account = accounts
        .iter()
        .find(|a| a["account"] == "333300000001")
        .unwrap();
    assert_eq!(garbage_account["dead_lettered"], 1, "{garbage_account:#}");
    assert_eq!(status["totals"]["dead_lettered"], 1, "{status:#}");
    // Partial reports: `status --wait` exits 3.
    let waited = d.coordinator_unchecked(&["status", "--run", run, "--wait"]);
    assert_eq!(waited.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&waited.stdout).contains("1 dead-lettered message(s)"));
    for account in accounts {
        assert_eq!(
            account["status"], "finalized",
            "the run completes: {account:#}"
        );
        assert_eq!(
            account["partial"], true,
            "both accounts are partial: {account:#}"
        );
    }
    // The malformed policy: its users/roles failed, everything else was analysed.
    let broken = accounts
        .iter()
        .find(|a| a["account"] == "333300000002")
        .unwrap();
    let failed = broken["failed"].as_u64().unwrap();
    assert!(failed >= 1, "{broken:#}");
    assert_eq!(
        broken["done"].as_u64().unwrap() + failed,
        broken["items"].as_u64().unwrap()
    );

    // The reports say why.
    let files = d.report_files(run);
    let report = |account: &str| -> serde_json::Value {
        let (_, bytes) = files
            .iter()
            .find(|(n, _)| n == &format!("{account}/report.json"))
            .expect("report.json");
        serde_json::from_slice(bytes).unwrap()
    };
    let broken_report = report("333300000002");
    assert_eq!(broken_report["partial"], true);
    let reasons = broken_report["failures"].to_string();
    assert!(
        reasons.contains("Permit") || reasons.contains("Effect"),
        "the failure names the bad policy field: {reasons}"
    );
    let garbage_report = report("333300000001");
    assert_eq!(garbage_report["partial"], true);
    let reasons = garbage_report["failures"].to_string();
    assert!(reasons.contains("not a valid work message"), "{reasons}");

    // The garbage message is in the DLQ, with its reason.
    runtime.block_on(async {
        let ports = d.ports().await;
        let held = ports
            .queues
            .receive(&dlq, 10, None, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            held.len(),
            1,
            "exactly the garbage message is dead-lettered: {held:?}"
        );
        assert_eq!(held[0].body, "{this is not json");
        assert!(
            held[0].attributes[accessflow_shared::message::ERROR_ATTRIBUTE]
                .contains("not a valid work message")
        );
    });
}
