//! The README's run command on the bundled sample: it completes, writes every report, and a
//! second run over unchanged accounts reuses the caches and says so.

use accessflow_tests::Deployment;

#[test]
fn bundled_sample_runs_end_to_end_and_reruns_from_cache() {
    let d = Deployment::new(30);
    let first = d.coordinator(&[
        "run",
        "--workers",
        "3",
        "--no-progress",
        "--run-id",
        "night-1",
        "--as-of",
        "2026-11-25T02:00:00Z",
    ]);
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains("Run night-1 finished"), "{summary}");

    let status = d.status("night-1");
    let totals = &status["totals"];
    assert_eq!(status["complete"], true);
    assert!(totals["accounts"].as_u64().unwrap() >= 12, "{totals:#}");
    assert_eq!(totals["accounts_failed"], 0, "{totals:#}");
    assert_eq!(totals["items_failed"], 0, "{totals:#}");
    assert_eq!(totals["items_done"], totals["items_expected"]);
    assert_eq!(
        totals["items_reused"], 0,
        "nothing to reuse on the first run"
    );
    let files = d.report_files("night-1");
    for name in [
        "report.json",
        "principals.csv",
        "resources.csv",
        "principal-access-summaries.csv",
        "resource-access-summaries.csv",
    ] {
        let count = files
            .iter()
            .filter(|(n, _)| n.ends_with(&format!("/{name}")))
            .count();
        assert_eq!(
            count as u64,
            totals["accounts"].as_u64().unwrap(),
            "{name} for every account"
        );
    }

    let second = d.coordinator(&[
        "run",
        "--workers",
        "3",
        "--no-progress",
        "--run-id",
        "night-2",
        "--as-of",
        "2026-11-26T02:00:00Z",
    ]);
    let summary = String::from_utf8_lossy(&second.stdout);
    let status = d.status("night-2");
    let totals = &status["totals"];
    assert_eq!(totals["items_done"], totals["items_expected"]);
    assert_eq!(
        totals["items_reused"], totals["items_done"],
        "every principal result reused: {summary}"
    );
    assert_eq!(totals["snapshots_reused"], totals["accounts"], "{summary}");
    assert!(summary.contains("reused from caches"), "{summary}");
    // The second night's reports diff against the first: unchanged accounts, empty diffs.
    let files = d.report_files("night-2");
    let reports: Vec<serde_json::Value> = files
        .iter()
        .filter(|(n, _)| n.ends_with("/report.json"))
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(reports.len() as u64, totals["accounts"].as_u64().unwrap());
    for report in &reports {
        assert_eq!(report["diff_base_run"], "night-1", "{}", report["account"]);
        assert_eq!(
            report["diff"].as_array().map(Vec::len),
            Some(0),
            "nothing changed: {}",
            report["diff"]
        );
    }
}
