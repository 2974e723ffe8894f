//! Retention (item 16 of "never lose a night"): thirty nights of accounts that change every
//! night, each followed by `coordinator gc --keep-days 3`, keep the data directory flat,
//! and the reports still diff against the night before.

use accessflow_shared::ledger::Ledger;
use accessflow_tests::{data_size, spec, Deployment};

#[test]
fn thirty_nights_with_gc_keep_the_data_directory_flat() {
    let d = Deployment::new(30);
    let mut sizes = Vec::new();
    for night in 1..=30u64 {
        // New seeds every night: new snapshots, results and reports every night.
        let tenants = d.write_tenants(&[
            ("initech", spec("333300000041", 8, night)),
            ("initech", spec("333300000042", 8, 1000 + night)),
        ]);
        let as_of = format!("2026-10-{night:02}T02:00:00Z");
        let run = format!("n{night}");
        d.coordinator(&[
            "run",
            "--tenants",
            tenants.to_str().unwrap(),
            "--workers",
            "1",
            "--no-progress",
            "--run-id",
            &run,
            "--as-of",
            &as_of,
        ]);
        let gc = d.coordinator(&["gc", "--keep-days", "3"]);
        if night > 4 {
            assert!(
                String::from_utf8_lossy(&gc.stdout).starts_with("deleted 1 run(s)"),
                "night {night}: {}",
                String::from_utf8_lossy(&gc.stdout)
            );
        }
        sizes.push(data_size(&d.data_dir()));
    }
    eprintln!("data directory by night (bytes): {sizes:?}");
    // Four nights are kept (the newest and three days before it); from then on the size
    // must not grow with the nights.
    let settled = sizes[5];
    let last = sizes[29];
    assert!(
        last <= settled + settled / 4,
        "the data directory grew from {settled} to {last} bytes: {sizes:?}"
    );
    let max = *sizes[5..].iter().max().unwrap();
    assert!(max <= settled + settled / 3, "{sizes:?}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let runs = runtime.block_on(async {
        let ledger = Ledger::new(d.ports().await.store.clone());
        ledger.run_ids().await.unwrap()
    });
    assert_eq!(runs, vec!["n27", "n28", "n29", "n30"]);
    let files = d.report_files("n30");
    let (_, report) = files
        .iter()
        .find(|(n, _)| n == "333300000041/report.json")
        .expect("the last night's report");
    let report: serde_json::Value = serde_json::from_slice(report).unwrap();
    assert_eq!(report["diff_base_run"], "n29", "the diff base survives gc");
    assert!(d.report_files("n26").is_empty(), "old reports are deleted");
}
