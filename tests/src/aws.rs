//! The AWS-backend deployments of the black-box tests: the real binaries with
//! `--backend aws` against moto (the harness in `accessflow-testkit`), their settings in the
//! environment, as an operator would give them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accessflow_shared::aws::AwsBackend;
use accessflow_testkit::moto;
use serde_json::Value;

use crate::{binary, start_args, terminate};

/// A deployment of the binaries on the AWS backend against moto.
pub struct AwsDeployment {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub name_prefix: String,
    pub max_receive_count: u32,
}

impl AwsDeployment {
    /// A deployment on the moto server for the harness's `prefix` and its settings: the
    /// binaries get the table, bucket and key aliases through the environment and a
    /// `--name-prefix` derived from `prefix`.
    pub fn new(prefix: &str, settings: &accessflow_shared::aws::AwsSettings) -> AwsDeployment {
        let server = moto::server();
        let name_prefix: String = prefix.trim_end_matches('-').chars().take(20).collect();
        let env = vec![
            ("AWS_ENDPOINT_URL".into(), server.url.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("ACCESSFLOW_TABLE".into(), settings.table.clone()),
            ("ACCESSFLOW_BUCKET".into(), settings.bucket.clone()),
            // moto 5.2 answers the service-last-accessed jobs with a bare HTTP 500.
            ("ACCESSFLOW_IAM_LAST_ACCESSED".into(), "off".into()),
            (
                "ACCESSFLOW_KMS_ALIAS_PREFIX".into(),
                settings.kms_alias_prefix.clone(),
            ),
        ];
        AwsDeployment {
            dir: tempfile::tempdir().unwrap(),
            env,
            name_prefix,
            max_receive_count: 5,
        }
    }

    /// The same deployment reaching AWS through `url` (a fault-injecting proxy).
    pub fn through(&self, url: &str) -> AwsDeployment {
        let mut env = self.env.clone();
        for (name, value) in &mut env {
            if name == "AWS_ENDPOINT_URL" {
                *value = url.to_string();
            }
        }
        AwsDeployment {
            dir: tempfile::tempdir().unwrap(),
            env,
            name_prefix: self.name_prefix.clone(),
            max_receive_count: self.max_receive_count,
        }
    }

    /// A backend that sees the binaries' queues and topics (no extra test prefix: the
    /// binaries name them after `--name-prefix` alone).
    pub async fn backend(&self, settings: &accessflow_shared::aws::AwsSettings) -> AwsBackend {
        let mut plain = settings.clone();
        plain.name_prefix = String::new();
        AwsBackend::connect(&plain).await.unwrap()
    }

    pub fn command(&self, name: &str) -> Command {
        self.with_settings(Command::new(binary(name)))
    }

    /// `cmd` with this deployment's environment and settings flags.
    fn with_settings(&self, mut cmd: Command) -> Command {
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args([
                "--backend",
                "aws",
                "--name-prefix",
                &self.name_prefix,
                "--visibility-timeout-secs",
                "3",
                "--max-receive-count",
                &self.max_receive_count.to_string(),
            ]);
        cmd
    }

    /// `coordinator start` of `run` for the tenants file `tenants`, as of [`AS_OF`](crate::AS_OF); panics
    /// with the coordinator's error if it fails.
    pub fn start(&self, tenants: &std::path::Path, run: &str) -> std::process::Output {
        self.coordinator(&start_args(tenants, run))
    }

    pub fn coordinator(&self, args: &[&str]) -> std::process::Output {
        let out = self.command("coordinator").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "coordinator {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `worker serve` logging to `worker-<index>.log`, its AWS requests counted into
    /// `requests-<index>.json` when it stops.
    pub fn worker(&self, index: usize) -> Child {
        self.spawn_worker(self.command("worker"), index, &[])
    }

    /// The same worker with more `serve` options (e.g. `--metrics-addr`).
    pub fn worker_with(&self, index: usize, extra: &[&str]) -> Child {
        self.spawn_worker(self.command("worker"), index, extra)
    }

    /// The same worker, started inside the network namespace `netns` (`ip netns exec`).
    pub fn worker_in_netns(&self, index: usize, netns: &str) -> Child {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).arg(binary("worker"));
        self.spawn_worker(self.with_settings(cmd), index, &[])
    }

    fn spawn_worker(&self, mut cmd: Command, index: usize, extra: &[&str]) -> Child {
        let log =
            std::fs::File::create(self.dir.path().join(format!("worker-{index}.log"))).unwrap();
        let report = self.dir.path().join(format!("requests-{index}.json"));
        cmd.args([
            "serve",
            "--concurrency",
            "1",
            "--idle-pause-ms",
            "100",
            "--request-report",
            report.to_str().unwrap(),
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
    }

    pub fn status(&self, run: &str) -> Value {
        serde_json::from_slice(&self.coordinator(&["status", "--run", run, "--json"]).stdout)
            .unwrap()
    }
}

/// A seeded account in one customer's tenants file, as the AWS tests write it: the role
/// `accessflow-reader` with the ExternalId `acme-external-id`.
pub fn tenants_for(account: &str) -> String {
    format!(
        "[[customers]]\nid = \"acme\"\n[[customers.accounts]]\nid = \"{account}\"\nrole_arn = \"arn:aws:iam::{account}:role/accessflow-reader\"\nexternal_id = \"acme-external-id\"\n"
    )
}

/// A fresh deployment on the moto server (a prefix of its own: table, bucket, queues,
/// topics), provisioned, with `tenants_text` as its tenants file; with a backend that sees
/// what its binaries write. Returns (deployment, backend, tenants file).
pub fn provisioned(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    tenants_text: &str,
) -> (AwsDeployment, AwsBackend, std::path::PathBuf) {
    let prefix = moto::unique_prefix(label);
    let settings = moto::settings(&prefix);
    let d = AwsDeployment::new(&prefix, &settings);
    let backend = runtime.block_on(async {
        let provisioned = AwsBackend::connect(&settings).await.unwrap();
        provisioned.provision().await.unwrap();
        d.backend(&settings).await
    });
    let tenants = d.dir.path().join("tenants.toml");
    std::fs::write(&tenants, tenants_text).unwrap();
    (d, backend, tenants)
}

/// The report files of a run in a deployment's bucket, as (key, bytes), sorted.
pub fn report_files(backend: &AwsBackend, run: &str) -> Vec<(String, Vec<u8>)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let blobs = backend.ports().blobs;
        let mut files = Vec::new();
        for key in blobs.list(&format!("acme/reports/{run}/")).await.unwrap() {
            let bytes = blobs.get(&key).await.unwrap().expect("listed report file");
            files.push((key, bytes));
        }
        files
    })
}

/// Runs `run` of `tenants` to completion in `d` with `workers` workers; `watch` reads the
/// status (straight from moto, so the check itself is not faulted).
pub fn night(
    d: &AwsDeployment,
    watch: &AwsDeployment,
    tenants: &std::path::Path,
    run: &str,
    workers: usize,
) {
    // `start` is what an operator (or a scheduler) retries: the same run id resumes.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = d
            .command("coordinator")
            .args(start_args(tenants, run))
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            attempts < 6,
            "start kept failing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut running: Vec<Child> = (0..workers).map(|i| d.worker(i)).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = watch.status(run);
        if status["complete"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the night did not complete: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for w in &mut running {
        assert!(terminate(w, Duration::from_secs(60)).success());
    }
}
