//! The README's run command on the bundled sample: it completes, writes every report, and a
//! second run over unchanged accounts reuses the caches and says so, and carries every
//! account's report forward (restamped with the second run) instead of building it again.

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

    // Every account was unchanged, so its report was carried forward from night 1 (the
    // worker logs say so) ...
    let logs = std::fs::read_dir(d.data_dir().join("logs"))
        .expect("worker logs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).expect("read log"))
        .collect::<String>();
    let carried = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "account finalized" && l["run"] == "night-2")
        .filter(|l| l["carried_from"] == "night-1")
        .count();
    assert_eq!(
        carried as u64,
        totals["accounts"].as_u64().unwrap(),
        "{logs}"
    );
    // ... and its files are night 1's with night 2's time in every CSV row, night 2's run
    // and an empty diff against night 1 (the byte-for-byte equality with a full build is
    // `analysis/tests/analysis_report_carry_forward.rs`).
    let night1: std::collections::BTreeMap<String, Vec<u8>> =
        d.report_files("night-1").into_iter().collect();
    let (t1, t2) = ("2026-11-25T02:00:00Z", "2026-11-26T02:00:00Z");
    let mut compared = 0;
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        let before = String::from_utf8_lossy(&night1[name]);
        if name.ends_with(".csv") && !name.ends_with("/diff.csv") {
            assert_eq!(text, before.replace(t1, t2), "{name}");
            compared += 1;
        } else if name.ends_with("/report.html") {
            assert!(text.contains("run night-2") && text.contains("Against run night-1."));
        } else if name.ends_with("/summary.json") {
            let summary: serde_json::Value = serde_json::from_slice(bytes).expect("summary");
            assert_eq!(summary["run_id"], "night-2", "{name}");
            assert_eq!(summary["diff_base_run"], "night-1", "{name}");
        }
    }
    assert_eq!(compared as u64, 5 * totals["accounts"].as_u64().unwrap());
}
