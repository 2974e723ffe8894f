//! What an operator's scripts see of the coordinator: exit codes that tell a failed or
//! unfinished night from a good one, `status --wait --timeout`, and `samples --out` with a
//! relative directory.

use std::process::Command;
use std::time::{Duration, Instant};

use accessflow_shared::tenants::{Reach, TenantsFile};
use accessflow_tests::{binary, spec, Deployment};

/// Item 13 of "never lose a night": a night where every account failed used to exit 0.
#[test]
fn a_night_where_every_account_failed_exits_4() {
    let d = Deployment::new(2);
    let tenants = d.write_tenants(&[
        ("initech", spec("333300000001", 5, 1)),
        ("initech", spec("333300000002", 5, 2)),
    ]);
    // Both accounts' IAM data is unreadable: collect fails permanently, with a reason.
    for account in ["333300000001", "333300000002"] {
        let file = d
            .dir
            .path()
            .join("fixtures/initech")
            .join(account)
            .join("authorization-details.json");
        std::fs::write(&file, "{ not json").expect("break the fixture");
    }
    let out = d.coordinator_unchecked(&[
        "run",
        "--tenants",
        tenants.to_str().unwrap(),
        "--workers",
        "1",
        "--no-progress",
        "--run-id",
        "all-failed",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("2 failed"), "{summary}");
    let status = d.status("all-failed");
    assert_eq!(status["totals"]["accounts_failed"], 2, "{status:#}");

    // `status --wait` on the finished run says the same.
    let waited = d.coordinator_unchecked(&["status", "--run", "all-failed", "--wait"]);
    assert_eq!(waited.status.code(), Some(4));
    // Without --wait, status only reports.
    let shown = d.coordinator_unchecked(&["status", "--run", "all-failed"]);
    assert_eq!(shown.status.code(), Some(0));
}

/// `status --wait --timeout` gives up with its own code while the run goes on.
#[test]
fn status_wait_gives_up_after_its_timeout_with_code_5() {
    let d = Deployment::new(30);
    let tenants = d.write_tenants(&[("initech", spec("333300000003", 5, 3))]);
    d.start_run(&tenants, "nobody-works");
    let started = Instant::now();
    let out = d.coordinator_unchecked(&[
        "status",
        "--run",
        "nobody-works",
        "--wait",
        "--timeout",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&out.stdout).contains("published"));

    // A wrong command line is clap's usage error, code 2: --timeout needs --wait.
    let usage = d.coordinator_unchecked(&["status", "--timeout", "1"]);
    assert_eq!(usage.status.code(), Some(2));
    // The coordinator's own failure is code 1, with the reason.
    let missing = d.coordinator_unchecked(&["status", "--run", "no-such-run"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-run"));
}

/// Item 14: `samples --out sub/dir` used to write fixture paths that repeated `sub/dir`
/// when read back relative to the tenants file, so every account failed.
#[test]
fn samples_with_a_relative_out_dir_write_a_tenants_file_that_finds_its_fixtures() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = Command::new(binary("coordinator"))
        .current_dir(cwd.path())
        .args(["samples", "--out", "sub/dir"])
        .output()
        .expect("run coordinator samples");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenants = TenantsFile::load(&cwd.path().join("sub/dir/tenants.toml"), Reach::Fixtures)
        .expect("the written tenants file loads");
    let accounts = tenants.accounts();
    assert!(accounts.len() >= 12);
    for (locator, _) in accounts {
        let dir = locator.fixture_dir.expect("fixture dir");
        assert!(
            std::path::Path::new(&dir)
                .join("authorization-details.json")
                .exists(),
            "{dir} does not hold the account's fixtures"
        );
    }
}
