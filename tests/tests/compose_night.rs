//! The local AWS-mode stack of `deploy/compose.yaml` (moto, the seed and provision
//! one-shots, the coordinator, workers), run by `docker-compose` as a user would, with the
//! images built from this build (`accessflow_tests::containers`):
//!
//! - a night with three worker containers completes (the coordinator container exits 0:
//!   every account complete) and writes every report to moto's S3;
//! - then, in a second deployment on the same moto and the same seeded accounts (its own
//!   table, bucket and queues: `up` again with other names), the same night with one worker
//!   killed by `docker kill` mid-night: it still completes, and its reports are byte for
//!   byte the clean night's (same run id, same `--as-of`). The same moto, because two
//!   motos seeded alike do not hold the same IAM data: moto takes the users' dates in the
//!   credential report from its clock when they are created, and `principals.csv` shows
//!   them (two separate stacks' reports differed there).
//!
//! The stack is a compose project of its own (moto on a free port), taken down with its
//! volumes when the test ends, however it ends.

use std::time::{Duration, Instant};

use accessflow_shared::aws::{AwsBackend, AwsSettings};
use accessflow_tests::containers::{self, docker, run_ok, wait_exit, ComposeProject};
use accessflow_tests::{binary, AS_OF};
use serde_json::Value;

const RUN: &str = "compose-night";
/// The demo customer's accounts (the compose file's default).
const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
/// The account report files compared between the nights (`summary.json` beside them and
/// the run's morning review files are not: the review names its deployment's locations).
const REPORT_FILES: [&str; 8] = [
    "public-and-cross-account.csv",
    "report.json",
    "report.html",
    "principals.csv",
    "resources.csv",
    "principal-access-summaries.csv",
    "resource-access-summaries.csv",
    "diff.csv",
];

/// A running stack: its compose project, moto's port on this machine, and the names of the
/// deployment its coordinator and workers currently use (table and bucket; the queue
/// prefix is the same name).
struct Stack {
    project: ComposeProject,
    port: u16,
    names: String,
}

impl Stack {
    /// `docker-compose up -d --scale worker=3` of a new project, deployment `accessflow-demo`
    /// (the compose file's default): returns once the one-shots have finished and the
    /// coordinator and the workers run.
    fn up(label: &str) -> Stack {
        let image = containers::image();
        let moto_image = containers::moto_image();
        let port = containers::free_port().to_string();
        let project = ComposeProject::new(
            label,
            &[
                ("ACCESSFLOW_IMAGE", image),
                ("MOTO_IMAGE", moto_image),
                ("MOTO_PORT", &port),
                ("ACCESSFLOW_RUN_ID", RUN),
                ("ACCESSFLOW_AS_OF", AS_OF),
                // A killed worker's message comes back after this (60 s by default).
                ("ACCESSFLOW_VISIBILITY_TIMEOUT", "10"),
                // One account at a time per worker: three workers, three accounts, each
                // worker holds one.
                ("WORKER_CONCURRENCY", "1"),
                ("DEMO_ACCOUNTS", &ACCOUNTS.join(" ")),
            ],
        );
        let mut stack = Stack {
            project,
            port: port.parse().unwrap(),
            names: String::new(),
        };
        stack.deploy("accessflow-demo");
        stack
    }

    /// `docker-compose up -d --scale worker=3` with the deployment named `names`: a
    /// deployment of its own (provision, coordinator and workers recreated) on the same
    /// moto, whose state stays.
    fn deploy(&mut self, names: &str) {
        self.names = names.to_string();
        for var in [
            "ACCESSFLOW_BUCKET",
            "ACCESSFLOW_TABLE",
            "ACCESSFLOW_NAME_PREFIX",
        ] {
            self.project.set_env(var, names);
        }
        let started = Instant::now();
        let out = containers::output(
            self.project
                .command()
                .args(["up", "-d", "--no-build", "--scale", "worker=3"]),
            "docker-compose up",
        );
        assert!(
            out.status.success(),
            "docker-compose up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.project.logs()
        );
        eprintln!(
            "{} ({names}): up in {:.1} s",
            self.project.name,
            started.elapsed().as_secs_f64()
        );
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `coordinator status --json` by the host's binary, through moto's published port.
    fn status(&self) -> Value {
        let out = std::process::Command::new(binary("coordinator"))
            .args(["status", "--run", RUN, "--json"])
            .env("ACCESSFLOW_BACKEND", "aws")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("ACCESSFLOW_BUCKET", &self.names)
            .env("ACCESSFLOW_TABLE", &self.names)
            .env("ACCESSFLOW_NAME_PREFIX", &self.names)
            .env("ACCESSFLOW_IAM_LAST_ACCESSED", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "coordinator status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The running worker containers.
    fn workers(&self) -> Vec<String> {
        let workers = self.project.containers("worker");
        assert_eq!(workers.len(), 3, "three worker containers: {workers:?}");
        for id in &workers {
            assert_eq!(
                containers::inspect(id, "{{.State.Status}}"),
                "running",
                "{}",
                self.project.logs()
            );
        }
        workers
    }

    /// Waits for the coordinator container (`start`, then `status --wait`) to exit;
    /// returns its exit status.
    fn coordinator_exit(&self) -> i64 {
        let ids = self.project.containers("coordinator");
        assert_eq!(ids.len(), 1, "one coordinator: {ids:?}");
        wait_exit(&ids[0], Duration::from_secs(420), || self.project.logs())
    }

    /// The night's report files in the deployment's bucket, as (key, bytes), sorted.
    fn reports(&self) -> Vec<(String, Vec<u8>)> {
        let mut settings = AwsSettings::new(self.names.clone());
        settings.region = Some("us-east-1".into());
        settings.endpoint_url = Some(self.endpoint());
        settings.static_credentials = Some(("testing".into(), "testing".into()));
        settings.table = self.names.clone();
        settings.s3_force_path_style = true;
        settings.last_accessed = false;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let blobs = AwsBackend::connect(&settings).await.unwrap().ports().blobs;
            let mut files = Vec::new();
            for key in blobs.list(&format!("demo/reports/{RUN}/")).await.unwrap() {
                let is_report_file = key.rsplit_once('/').is_some_and(|(dir, file)| {
                    dir.len() > format!("demo/reports/{RUN}").len() && REPORT_FILES.contains(&file)
                });
                if !is_report_file {
                    continue;
                }
                let bytes = blobs.get(&key).await.unwrap().expect("a listed report");
                files.push((key, bytes));
            }
            files.sort();
            files
        })
    }

    /// Asserts the night finished with every account complete and every report written;
    /// returns the reports.
    fn finished_night(&self) -> Vec<(String, Vec<u8>)> {
        let code = self.coordinator_exit();
        assert_eq!(
            code,
            0,
            "the coordinator's exit status (0: every account complete)\n{}",
            self.project.logs()
        );
        let status = self.status();
        assert_eq!(status["complete"], true, "{status:#}");
        let totals = &status["totals"];
        assert_eq!(totals["accounts_finished"], 3, "{status:#}");
        assert_eq!(totals["accounts_failed"], 0, "{status:#}");
        assert_eq!(totals["accounts_partial"], 0, "{status:#}");
        assert_eq!(totals["items_failed"], 0, "{status:#}");
        let reports = self.reports();
        let keys: Vec<&str> = reports.iter().map(|(k, _)| k.as_str()).collect();
        for account in ACCOUNTS {
            for file in REPORT_FILES {
                let key = format!("demo/reports/{RUN}/{account}/{file}");
                assert!(keys.contains(&key.as_str()), "{key} missing: {keys:?}");
            }
        }
        assert_eq!(reports.len(), ACCOUNTS.len() * REPORT_FILES.len());
        reports
    }
}

#[test]
fn compose_night_with_three_workers_and_with_a_killed_one() {
    let started = Instant::now();
    let mut stack = Stack::up("afnight");

    // The clean night, three workers.
    stack.workers();
    let clean = stack.finished_night();
    // All three still there at the end: none crashed.
    stack.workers();
    let report: Value = serde_json::from_slice(
        &clean
            .iter()
            .find(|(k, _)| k.ends_with("/111111111111/report.json"))
            .expect("report.json")
            .1,
    )
    .unwrap();
    assert_eq!(report["partial"], false);
    // The seeded IAM data, read through AssumeRole: bob is an admin through his group.
    assert!(
        report["admins"].to_string().contains("user/bob"),
        "{:#}",
        report["admins"]
    );
    eprintln!(
        "clean compose night: {:.1} s from `up`",
        started.elapsed().as_secs_f64()
    );

    // The same night in a second deployment, one worker killed mid-night. Once the night
    // is under way the workers are frozen (`docker pause`), so the status read then is the
    // state the kill lands in: the night cannot finish between the read and the kill (a
    // night on moto takes about fifteen seconds; polling alone once missed it).
    let started = Instant::now();
    stack.deploy("accessflow-kill");
    let workers = stack.workers();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = stack.status();
        let under_way = status["accounts"].as_array().is_some_and(|accounts| {
            accounts.len() == ACCOUNTS.len()
                && accounts
                    .iter()
                    .any(|a| a["done"].as_u64().unwrap_or(0) >= 1)
        });
        if under_way {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {status:#}\n{}",
            stack.project.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in &workers {
        run_ok(docker().args(["pause", id]), "docker pause a worker");
    }
    let status = stack.status();
    assert_eq!(
        status["complete"], false,
        "the kill must land mid-night: {status:#}"
    );
    run_ok(docker().args(["kill", &workers[0]]), "docker kill a worker");
    for id in &workers[1..] {
        run_ok(docker().args(["unpause", id]), "docker unpause a worker");
    }
    assert_eq!(
        containers::inspect(&workers[0], "{{.State.Status}}"),
        "exited"
    );
    let killed = stack.finished_night();
    eprintln!(
        "compose night with a killed worker: {:.1} s from `up`",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        killed.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        clean.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for ((key, bytes), (_, clean_bytes)) in killed.iter().zip(&clean) {
        assert!(bytes == clean_bytes, "{key} differs from the clean night's");
    }
}
