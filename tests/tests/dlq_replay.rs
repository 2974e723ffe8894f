//! An account that cannot be collected fails its collect for good: the account is marked
//! failed with the reason (so the run still completes and says why) and the message waits in
//! the DLQ. Once the cause is fixed, `coordinator dlq replay` sends it back and the account is
//! analysed completely, with no failure left in its report.

use std::time::{Duration, Instant};

use accessflow_tests::{spec, terminate, Deployment};

#[test]
fn a_failed_collect_is_replayed_after_the_cause_is_fixed() {
    let d = Deployment::new(5);
    let tenants = d.write_tenants(&[
        ("acme", spec("555500000001", 30, 51)),
        ("acme", spec("555500000002", 20, 52)),
    ]);
    let fixtures = d.dir.path().join("fixtures/acme/555500000001");
    let hidden = d.dir.path().join("fixtures/acme/hidden");
    std::fs::rename(&fixtures, &hidden).unwrap();

    let t0 = Instant::now();
    d.start_run(&tenants, "replay");
    let mut worker = d.spawn_worker(0, 2);
    let status = d.wait_for_run("replay", Duration::from_secs(60));
    let broken = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "555500000001")
        .unwrap()
        .clone();
    assert_eq!(broken["status"], "failed", "{status:#}");
    assert!(
        broken["reason"].as_str().unwrap().contains("fixture"),
        "the reason names the cause: {broken:#}"
    );
    assert_eq!(status["totals"]["accounts_failed"], 1);
    eprintln!("failed run complete after {:?}", t0.elapsed());
    let listed = d.coordinator(&["dlq", "show"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("collect_account run=replay") && listed.contains("1 dead-lettered"),
        "{listed}"
    );

    // Fix the cause, replay: the account is analysed and reported completely.
    std::fs::rename(&hidden, &fixtures).unwrap();
    let replayed = d.coordinator(&["dlq", "replay", "--account", "555500000001"]);
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("replayed 1 message"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let account = loop {
        let status = d.status("replay");
        let account = status["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == "555500000001")
            .unwrap()
            .clone();
        if account["status"] == "finalized" {
            break account;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed account did not finish: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("replayed account finalized after {:?}", t0.elapsed());
    assert!(terminate(&mut worker, Duration::from_secs(30)).success());
    eprintln!("worker stopped after {:?}", t0.elapsed());
    assert_eq!(account["done"], 30);
    assert_eq!(account["partial"], false, "{account:#}");
    assert!(account["reason"].is_null(), "{account:#}");
    let files = d.report_files("replay");
    let (_, report) = files
        .iter()
        .find(|(n, _)| n == "555500000001/report.json")
        .expect("report after replay");
    let report: serde_json::Value = serde_json::from_slice(report).unwrap();
    assert_eq!(report["partial"], false);
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    let listed = d.coordinator(&["dlq", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("0 dead-lettered"));
}
