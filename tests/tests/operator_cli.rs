//! What an operator's scripts see of the coordinator: exit codes that tell a failed or
//! unfinished night from a good one, `status --wait --timeout`, `samples --out` with a
//! relative directory, a run resumed after the coordinator died mid-publish, and a new
//! account's first night while its SNS filter policy is still propagating.

use std::process::Command;
use std::time::{Duration, Instant};

use accessflow_shared::ledger::{Ledger, RunHeader};
use accessflow_shared::message::{AccountWork, WorkMessage};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::{Condition, StoreKey};
use accessflow_shared::tenants::{Reach, TenantsFile};
use accessflow_tests::{binary, spec, terminate, Deployment};

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

/// Item 1 of "never lose a night": a new subscription's filter policy can take up to 15
/// minutes to apply, so the first CollectAccount of a new account, published right after
/// reconcile, could be lost and the run never finish. The embedded backend reproduces the
/// delay (an hour here); `start` sends a young subscription's work straight to its queue.
#[test]
fn a_new_accounts_first_night_completes_while_its_filter_policy_propagates() {
    let d = Deployment::new(30).with_env("ACCESSFLOW_FILTER_PROPAGATION_SECS", "3600");
    let tenants = d.write_tenants(&[("initech", spec("333300000011", 5, 11))]);
    d.start_run(&tenants, "first-night");
    let mut worker = d.spawn_worker(0, 1);
    let waited = d.coordinator_unchecked(&[
        "status",
        "--run",
        "first-night",
        "--wait",
        "--timeout",
        "60",
    ]);
    assert!(terminate(&mut worker, Duration::from_secs(30)).success());
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stdout)
    );

    // The delay is real: a publish to the topic does not reach the young subscription.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ports = d.ports_with_propagation(3600).await;
        let names = Names::new("accessflow").unwrap();
        let probe = WorkMessage::CollectAccount {
            work: AccountWork {
                run_id: "probe".into(),
                customer: "initech".into(),
                account: "333300000011".into(),
            },
        };
        ports
            .topics
            .publish_batch(&names.customer_topic("initech", 0), &[probe.to_outgoing()])
            .await
            .unwrap();
        let queue = names.account_queue("initech", "333300000011");
        assert_eq!(ports.queues.depth(&queue).await.unwrap().total(), 0);
    });
}

/// Two starts within one second, neither given a run id: the second used to take the
/// first's id (the time, to the second) and resume that run instead of opening its own.
/// A run id taken from the clock that a run already has now moves to the next second;
/// only a `--run-id` that was asked for resumes.
#[test]
fn a_start_without_a_run_id_never_resumes_another_run() {
    let d = Deployment::new(30);
    let tenants = d.write_tenants(&[("initech", spec("333300000031", 3, 31))]);
    // The ids of this second and the next three are taken by runs of the same accounts,
    // as back-to-back starts would leave them (a resume would accept these runs).
    let clock_id = |t: time::OffsetDateTime| {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime.block_on(async { Ledger::new(d.ports().await.store.clone()) });
    // (Binaries older than their sources are rebuilt here, not between `now` and the start.)
    binary("coordinator");
    binary("worker");
    let now = time::OffsetDateTime::now_utc();
    let taken: Vec<String> = (0..4)
        .map(|s| clock_id(now + time::Duration::seconds(s)))
        .collect();
    runtime.block_on(async {
        for id in &taken {
            let header = RunHeader {
                run_id: id.clone(),
                as_of: "2026-11-26T02:00:00Z".into(),
                accounts: vec![("initech".into(), "333300000031".into())],
                deadline: None,
                started_at: None,
            };
            ledger.open_run(&header).await.unwrap();
        }
    });

    let out = d.coordinator(&["start", "--tenants", tenants.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run = stdout.lines().last().unwrap_or_default().trim().to_string();
    // (It met a taken id: the start reached the ledger within the 4 s the ids cover.)
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("taking the next second"),
        "the start never met a taken id: {stderr}"
    );
    assert!(
        !taken.contains(&run),
        "start resumed run {run}, which it was not asked for (taken: {taken:?})"
    );
    assert!(
        run.len() == 16 && run > taken[taken.len() - 1],
        "the new run's id {run:?} is not a later second than {taken:?}"
    );
    // It is a run of its own (its own time, its account published), beside the four.
    let status = d.status(&run);
    assert_eq!(status["totals"]["accounts"], 1, "{status:#}");
    runtime.block_on(async {
        assert_eq!(ledger.runs().await.unwrap().len(), taken.len() + 1);
        let header = ledger
            .run(&run)
            .await
            .unwrap()
            .expect("the new run's header");
        assert_ne!(header.as_of, "2026-11-26T02:00:00Z");
    });
}

/// Item 3: the coordinator killed mid-publish (here: after writing the run's header, before
/// any account) leaves an orphan run; `start` again with the same run id resumes it, and
/// the run completes. Another `--as-of` for the same id is refused.
#[test]
fn start_with_the_same_run_id_resumes_a_half_opened_run() {
    let d = Deployment::new(30);
    let tenants = d.write_tenants(&[
        ("initech", spec("333300000021", 5, 21)),
        ("initech", spec("333300000022", 5, 22)),
    ]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ports = d.ports().await;
        let header = RunHeader {
            run_id: "orphan".into(),
            as_of: "2026-11-26T02:00:00Z".into(),
            accounts: vec![
                ("initech".into(), "333300000021".into()),
                ("initech".into(), "333300000022".into()),
            ],
            deadline: None,
            started_at: None,
        };
        ports
            .store
            .put(
                &StoreKey::new("runs", "orphan"),
                serde_json::to_value(&header).unwrap(),
                None,
                Condition::NotExists,
            )
            .await
            .unwrap();
        let ledger = Ledger::new(ports.store.clone());
        assert!(ledger.account_states("orphan").await.unwrap().is_empty());
    });
    let other_time = d.coordinator_unchecked(&[
        "start",
        "--tenants",
        tenants.to_str().unwrap(),
        "--run-id",
        "orphan",
        "--as-of",
        "2026-11-27T02:00:00Z",
    ]);
    assert_eq!(other_time.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other_time.stderr).contains("already exists with --as-of"));

    // Resumed twice (a retry of the retry changes nothing), then worked.
    for _ in 0..2 {
        d.coordinator(&[
            "start",
            "--tenants",
            tenants.to_str().unwrap(),
            "--run-id",
            "orphan",
        ]);
    }
    let mut worker = d.spawn_worker(0, 2);
    let status = d.wait_for_run("orphan", Duration::from_secs(60));
    assert!(terminate(&mut worker, Duration::from_secs(30)).success());
    assert_eq!(status["totals"]["accounts_failed"], 0, "{status:#}");
    assert_eq!(
        status["totals"]["items_done"],
        status["totals"]["items_expected"]
    );
    for account in status["accounts"].as_array().unwrap() {
        assert_eq!(account["status"], "finalized", "{account:#}");
    }
}

/// Item 3: a run deadline. A run whose work nobody does (here: no worker at all) ends at
/// its deadline: its unfinished accounts are marked failed with the reason, and
/// `status --wait` returns with code 4 instead of waiting forever.
#[test]
fn a_run_past_its_deadline_ends_with_its_unfinished_accounts_failed() {
    let d = Deployment::new(30);
    let tenants = d.write_tenants(&[("initech", spec("333300000051", 5, 51))]);
    d.coordinator(&[
        "start",
        "--tenants",
        tenants.to_str().unwrap(),
        "--run-id",
        "abandoned",
        "--deadline-secs",
        "1",
    ]);
    let started = Instant::now();
    let waited =
        d.coordinator_unchecked(&["status", "--run", "abandoned", "--wait", "--timeout", "60"]);
    assert_eq!(
        waited.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&waited.stdout)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let status = d.status("abandoned");
    let account = &status["accounts"][0];
    assert_eq!(account["status"], "failed", "{status:#}");
    let reason = account["reason"].as_str().unwrap();
    assert!(
        reason.contains("deadline") && reason.contains("it was published"),
        "{reason}"
    );
}

/// Issue 8's fault test "the coordinator killed mid-publish": `coordinator start` is killed
/// with SIGKILL at a point of its own (wherever it is after 5 to 300 ms: reconciling,
/// opening the run, publishing, or done); `start` again with the same run id completes
/// the run, with every account analysed once.
#[test]
fn a_coordinator_killed_mid_start_is_resumed_by_starting_again() {
    let d = Deployment::new(30);
    let specs: Vec<_> = (0..8)
        .map(|i| ("initech", spec(&format!("33330000007{i}"), 6, 70 + i)))
        .collect();
    let tenants = d.write_tenants(&specs);
    for (attempt, delay_ms) in [5u64, 60, 300].into_iter().enumerate() {
        let run = format!("killed-{attempt}");
        let mut start = Command::new(binary("coordinator"))
            .args(d.settings_args())
            .args([
                "start",
                "--tenants",
                tenants.to_str().unwrap(),
                "--run-id",
                &run,
                "--as-of",
                "2026-11-26T02:00:00Z",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the coordinator");
        std::thread::sleep(Duration::from_millis(delay_ms));
        accessflow_tests::kill_hard(&mut start);
        d.start_run(&tenants, &run);
        let mut worker = d.spawn_worker(0, 2);
        let status = d.wait_for_run(&run, Duration::from_secs(60));
        assert!(terminate(&mut worker, Duration::from_secs(30)).success());
        assert_eq!(status["totals"]["accounts"], 8, "{status:#}");
        assert_eq!(status["totals"]["accounts_failed"], 0, "{status:#}");
        assert_eq!(
            status["totals"]["items_done"], status["totals"]["items_expected"],
            "killed after {delay_ms} ms: {status:#}"
        );
    }
}

/// The EMF documents `start --wait` printed on stdout (every line but the run id).
fn metric_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("an EMF line is JSON"))
        .collect()
}

/// Issue 9, item 5: the nightly task runs `start --wait`, which prints the metric the
/// workers scale on (accounts with work, CloudWatch's embedded metric format) while it
/// watches the run, and exits with the run's code like `status --wait`.
#[test]
fn start_wait_prints_accounts_with_work_and_exits_with_the_runs_code() {
    let d = Deployment::new(30);
    let tenants = d.write_tenants(&[
        ("initech", spec("333300000011", 5, 11)),
        ("initech", spec("333300000012", 5, 12)),
    ]);
    let tenants = tenants.to_str().unwrap();
    // Nobody works: it gives up after its timeout with code 5, having said 2 accounts
    // have work.
    let out = d.coordinator_unchecked(&[
        "start",
        "--tenants",
        tenants,
        "--run-id",
        "metric-night",
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().next(), Some("metric-night"), "{stdout}");
    let lines = metric_lines(&out.stdout);
    let first = lines.first().expect("a metric line");
    assert_eq!(first["AccountsWithWork"], 2, "{first:#}");
    assert_eq!(first["Deployment"], "accessflow");
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Accessflow"
    );
    // `--timeout` needs `--wait`.
    let usage = d.coordinator_unchecked(&["start", "--tenants", tenants, "--timeout", "1"]);
    assert_eq!(usage.status.code(), Some(2));

    // With a worker, the same run (resumed) to its end: exit 0, and the last value is 0.
    let mut worker = d.spawn_worker(0, 2);
    let out = d.coordinator_unchecked(&[
        "start",
        "--tenants",
        tenants,
        "--run-id",
        "metric-night",
        "--wait",
        "--timeout",
        "120",
    ]);
    terminate(&mut worker, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = metric_lines(&out.stdout);
    assert_eq!(
        lines.last().map(|l| l["AccountsWithWork"].clone()),
        Some(serde_json::json!(0)),
        "{lines:#?}"
    );
    // The nightly task's run ended: it wrote the customer's morning review.
    let index = d
        .data_dir()
        .join("blobs/initech/reports/metric-night/index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index).expect("start --wait wrote index.json"))
            .expect("index.json");
    assert_eq!(index["run_id"], "metric-night");
    assert_eq!(index["accounts_complete"], 2, "{index:#}");
}
