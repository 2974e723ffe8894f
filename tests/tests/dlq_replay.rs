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

/// Items 8, 9 and 10 of "never lose a night":
/// - a removed account's dead-lettered messages stay reachable: listed, shown, refused by
///   replay with what to do, purged on purpose (and its DLQ with them);
/// - `dlq show` and `replay --dry-run` see every message, not only the first 10 of the
///   account's group, and change nothing;
/// - an error on one account's replay does not skip rebuilding the reports of the accounts
///   replayed.
#[test]
fn every_dead_lettered_message_stays_reachable_and_one_failed_replay_spoils_nothing() {
    use accessflow_shared::message::{AccountWork, WorkMessage};
    use accessflow_shared::naming::Names;
    use accessflow_shared::ports::OutgoingMessage;

    let d = Deployment::new(30);
    // 031 sorts first: its replay fails before 032's is attempted.
    let (removed, kept) = ("333300000031", "333300000032");
    let both = d.write_tenants(&[
        ("initech", spec(removed, 5, 31)),
        ("initech", spec(kept, 5, 32)),
    ]);
    d.start_run(&both, "night");
    let mut worker = d.spawn_worker(0, 2);
    let status = d.wait_for_run("night", Duration::from_secs(60));
    assert!(terminate(&mut worker, Duration::from_secs(30)).success());
    let kept_state = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == kept)
        .unwrap()
        .clone();
    let items = kept_state["items"].as_u64().unwrap();

    // Twelve dead-lettered items of the kept account (copies of its real items, as if each
    // had failed), and two messages in the other account's DLQ.
    let names = Names::new("accessflow").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ports = d.ports().await;
        let ledger = accessflow_shared::ledger::Ledger::new(ports.store.clone());
        let (state, _) = ledger
            .account_state("night", "initech", kept)
            .await
            .unwrap()
            .unwrap();
        let snapshot = state.progress.snapshot.unwrap();
        let outcomes = ledger
            .item_outcomes("night", "initech", kept)
            .await
            .unwrap();
        for n in 0..12u32 {
            let item = n % items as u32;
            let message = WorkMessage::AnalyzePrincipal {
                work: AccountWork {
                    run_id: "night".into(),
                    customer: "initech".into(),
                    account: kept.into(),
                },
                snapshot: snapshot.clone(),
                item,
                principal_arn: outcomes[&item].principal_arn.clone(),
            };
            let mut out = message.to_outgoing();
            out.dedup_id = format!("dead-{n}");
            ports
                .queues
                .send_batch(&names.account_dlq("initech", kept), &[out])
                .await
                .unwrap();
        }
        for n in 0..2 {
            let out = OutgoingMessage::new(removed, format!("gone-{n}"), "{\"stale\": true}");
            ports
                .queues
                .send_batch(&names.account_dlq("initech", removed), &[out])
                .await
                .unwrap();
        }
    });
    let dlq_depth = |account: &str| {
        runtime.block_on(async {
            let ports = d.ports().await;
            ports
                .queues
                .depth(&names.account_dlq("initech", account))
                .await
                .map(|depth| depth.total())
                .ok()
        })
    };

    // The account leaves the tenants file: its queue goes, its non-empty DLQ stays.
    let only_kept = d.write_tenants(&[("initech", spec(kept, 5, 32))]);
    d.coordinator(&["reconcile", "--tenants", only_kept.to_str().unwrap()]);
    let listed = d.coordinator(&["dlq", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains(&format!("{removed}-dlq: 2 message(s) (account removed"))
            && listed.contains("14 dead-lettered"),
        "{listed}"
    );

    // Every message is shown, in order, and nothing changes.
    let shown = d.coordinator(&["dlq", "show", "--account", kept]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert_eq!(
        shown.matches("analyze_principal run=night").count(),
        12,
        "{shown}"
    );
    assert_eq!(dlq_depth(kept), Some(12));
    let dry = d.coordinator(&["dlq", "replay", "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    assert_eq!(dry_out.matches("would replay  ").count(), 12, "{dry_out}");
    assert!(
        dry_out.contains(&format!("would not replay initech {removed}")),
        "{dry_out}"
    );
    assert_eq!(dlq_depth(kept), Some(12));

    // Replay everything: the removed account's is refused with what to do, the kept
    // account's is replayed and its reports are rebuilt all the same; the exit code says
    // that not everything was replayed.
    let replay = d.coordinator_unchecked(&["dlq", "replay"]);
    let out = String::from_utf8_lossy(&replay.stdout).to_string();
    let err = String::from_utf8_lossy(&replay.stderr).to_string();
    assert_eq!(replay.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains(removed) && err.contains("dlq purge"), "{err}");
    assert!(out.contains("replayed 12 message(s)"), "{out}");
    assert!(
        out.contains(&format!(
            "reports of initech {kept} (run night) will be rebuilt"
        )),
        "{out}"
    );
    assert_eq!(dlq_depth(kept), Some(0));
    assert_eq!(dlq_depth(removed), Some(2));

    // Purge on purpose: without --yes nothing happens; with it, the messages and the
    // removed account's DLQ are gone.
    let dry_purge = d.coordinator(&["dlq", "purge", "--account", removed]);
    assert!(String::from_utf8_lossy(&dry_purge.stdout).contains("would purge 2"));
    assert_eq!(dlq_depth(removed), Some(2));
    d.coordinator(&["dlq", "purge", "--account", removed, "--yes"]);
    assert_eq!(
        dlq_depth(removed),
        None,
        "the removed account's DLQ is deleted"
    );

    // The replayed items run again (as duplicates of finished steps) and the rebuilt
    // reports are finalized.
    let mut worker = d.spawn_worker(1, 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let depth = runtime.block_on(async {
            let ports = d.ports().await;
            ports
                .queues
                .depth(&names.account_queue("initech", kept))
                .await
                .unwrap()
                .total()
        });
        if depth == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replay was not worked off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(terminate(&mut worker, Duration::from_secs(30)).success());
    let after = d.status("night");
    let kept_after = after["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == kept)
        .unwrap()
        .clone();
    assert_eq!(kept_after["status"], "finalized");
    assert_eq!(kept_after["done"], kept_state["done"], "no effect twice");
}
