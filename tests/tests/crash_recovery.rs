//! A worker killed with SIGKILL mid-run: a replacement finishes the run, the reports are
//! byte-identical to a run without the kill, and the ledger counts are exact.

use std::time::{Duration, Instant};

use accessflow_tests::{kill_hard, spec, terminate, Deployment};

fn tenants(d: &Deployment) -> std::path::PathBuf {
    d.write_tenants(&[
        ("acme", spec("111100000001", 260, 11)),
        ("acme", spec("111100000002", 60, 12)),
        ("globex", spec("222200000001", 180, 21)),
    ])
}

fn start(d: &Deployment, run: &str) {
    d.start_run(&tenants(d), run);
}

fn assert_exact_counts(status: &serde_json::Value) {
    let totals = &status["totals"];
    assert_eq!(
        totals["accounts_finished"], totals["accounts"],
        "{status:#}"
    );
    assert_eq!(totals["items_failed"], 0, "{status:#}");
    assert_eq!(
        totals["items_done"], totals["items_expected"],
        "every item done exactly once: {status:#}"
    );
    for account in status["accounts"].as_array().unwrap() {
        assert_eq!(account["status"], "finalized", "{account:#}");
        assert_eq!(account["done"], account["items"], "{account:#}");
        assert_eq!(account["partial"], false, "{account:#}");
    }
}

#[test]
fn killed_worker_is_replaced_and_reports_match_a_clean_run() {
    let run = "crash-test";

    // The reference: two workers, nobody killed.
    let clean = Deployment::new(2);
    start(&clean, run);
    let mut workers: Vec<_> = (0..2).map(|i| clean.spawn_worker(i, 2)).collect();
    let clean_status = clean.wait_for_run(run, Duration::from_secs(240));
    for w in &mut workers {
        assert!(
            terminate(w, Duration::from_secs(30)).success(),
            "a worker exited non-zero on SIGTERM"
        );
    }
    assert_exact_counts(&clean_status);

    // The same run, with one worker killed hard in the middle.
    let crashed = Deployment::new(2);
    start(&crashed, run);
    let mut victim = crashed.spawn_worker(0, 2);
    let mut survivor = crashed.spawn_worker(1, 2);
    let expected_total: u64 = 500;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let status = crashed.status(run);
        let done = status["totals"]["items_done"].as_u64().unwrap();
        if done >= expected_total / 5 {
            assert_eq!(
                status["complete"], false,
                "the kill must land mid-run: {status:#}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress before the kill: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_hard(&mut victim);
    let mut replacement = crashed.spawn_worker(2, 2);
    let crashed_status = crashed.wait_for_run(run, Duration::from_secs(240));
    assert!(terminate(&mut survivor, Duration::from_secs(30)).success());
    assert!(terminate(&mut replacement, Duration::from_secs(30)).success());
    assert_exact_counts(&crashed_status);
    assert_eq!(
        crashed_status["totals"]["items_expected"],
        clean_status["totals"]["items_expected"]
    );

    let a = clean.report_files(run);
    let b = crashed.report_files(run);
    assert!(
        a.len() >= 3 * 5,
        "expected the report files of 3 accounts, got {:?}",
        a.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "the same report files"
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs between the clean and the crashed run"
        );
    }
}
