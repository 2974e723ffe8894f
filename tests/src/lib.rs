//! Helpers for the black-box tests: locate (and if needed build) the real `coordinator` and
//! `worker` binaries, run them against a scratch data directory, read what they produce.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod aws;
pub mod containers;
pub mod machine;
pub mod monitoring;

use accessflow_samples::{generate_account, write_fixture_dir, SampleAccountSpec};

/// The target directory the test binary runs from (`target/debug` or `target/release`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

/// The newest modification time of the sources the binaries are built from.
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(Some(modified));
            }
        }
    }
    let root = repo_root();
    let mut newest = None;
    for dir in [
        "analysis/src",
        "analysis/data",
        "samples/src",
        "shared/src",
        "worker/src",
        "coordinator/src",
    ] {
        walk(&root.join(dir), &mut newest);
    }
    newest
}

/// Path of a workspace binary. When it is missing or older than its sources (only this
/// package's tests were asked for), the binaries are built first, once per test process;
/// under `cargo test --workspace` they are fresh and nothing is rebuilt.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = target_dir().join(name);
    let stale = match std::fs::metadata(&path).and_then(|m| m.modified()) {
        Ok(built) => newest_source().is_some_and(|source| source > built),
        Err(_) => true,
    };
    if stale {
        BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "-p",
                "accessflow-worker",
                "-p",
                "accessflow-coordinator",
            ]);
            if target_dir().ends_with("release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("cargo build");
            assert!(status.success(), "building the binaries failed");
        });
    }
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// Receives before a message is dead-lettered, in every test deployment.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// A scratch deployment: a data directory and the settings flags pointing at it.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    tenants_files: std::sync::atomic::AtomicUsize,
    /// Visibility timeout in seconds (short, so crash tests recover quickly).
    pub visibility_secs: u64,
    /// Extra environment of every process started for this deployment.
    env: Vec<(String, String)>,
}

impl Deployment {
    pub fn new(visibility_secs: u64) -> Deployment {
        Deployment {
            dir: tempfile::tempdir().expect("tempdir"),
            tenants_files: Default::default(),
            visibility_secs,
            env: Vec::new(),
        }
    }

    /// The same deployment with `name=value` in the environment of its processes.
    pub fn with_env(mut self, name: &str, value: &str) -> Deployment {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The settings flags every process of this deployment gets.
    pub fn settings_args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--visibility-timeout-secs".into(),
            self.visibility_secs.to_string(),
            "--max-receive-count".into(),
            MAX_RECEIVE_COUNT.to_string(),
        ]
    }

    /// Runs the coordinator to completion and returns its output (asserting success).
    pub fn coordinator(&self, args: &[&str]) -> Output {
        let output = self.coordinator_unchecked(args);
        assert!(
            output.status.success(),
            "coordinator {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    pub fn coordinator_unchecked(&self, args: &[&str]) -> Output {
        Command::new(binary("coordinator"))
            .args(self.settings_args())
            .args(args)
            .env("ACCESSFLOW_WORKER_BIN", binary("worker"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run coordinator")
    }

    /// Starts a `worker serve` process logging to a file in the deployment.
    pub fn spawn_worker(&self, index: usize, concurrency: usize) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("worker-{index}.log")))
            .expect("log file");
        Command::new(binary("worker"))
            .args(self.settings_args())
            .args([
                "serve",
                "--concurrency",
                &concurrency.to_string(),
                "--idle-pause-ms",
                "50",
            ])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn worker")
    }

    /// The settings the binaries of this deployment use, for talking to its backend directly.
    pub fn settings(&self) -> accessflow_shared::config::Settings {
        accessflow_shared::config::Settings {
            backend: accessflow_shared::config::BackendKind::Embedded,
            data_dir: self.data_dir(),
            name_prefix: "accessflow".into(),
            visibility_timeout_secs: self.visibility_secs,
            max_receive_count: MAX_RECEIVE_COUNT,
            last_accessed_ttl_hours: 20,
            filter_propagation_secs: None,
        }
    }

    /// The ports of this deployment's embedded backend.
    pub async fn ports(&self) -> accessflow_shared::ports::Ports {
        accessflow_shared::backend::connect(&self.settings())
            .await
            .expect("open the backend")
            .ports
    }

    /// The ports of this deployment's embedded backend, with a filter-policy propagation
    /// delay like the one its processes were given.
    pub async fn ports_with_propagation(&self, secs: u64) -> accessflow_shared::ports::Ports {
        let mut settings = self.settings();
        settings.filter_propagation_secs = Some(secs);
        accessflow_shared::backend::connect(&settings)
            .await
            .expect("open the backend")
            .ports
    }

    /// `coordinator start` for a tenants file, with a fixed run id and as-of time.
    pub fn start_run(&self, tenants: &Path, run: &str) {
        self.coordinator(&start_args(tenants, run));
    }

    /// `coordinator status --json` for a run.
    pub fn status(&self, run: &str) -> serde_json::Value {
        let output = self.coordinator(&["status", "--run", run, "--json"]);
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    /// Polls the run until it completes or `timeout` passes.
    pub fn wait_for_run(&self, run: &str, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let status = self.status(run);
            if status["complete"] == true {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "run {run} did not complete in {timeout:?}: {status:#}\n{}",
                self.worker_log_tails(60)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The last `lines` lines of each worker log of this deployment (for a failure message:
    /// the deployment's directory is deleted when the test ends).
    pub fn worker_log_tails(&self, lines: usize) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("worker-") && n.ends_with(".log"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        let mut text = String::new();
        for log in logs {
            let content = std::fs::read_to_string(&log).unwrap_or_default();
            let all: Vec<&str> = content.lines().collect();
            text.push_str(&format!(
                "--- {} (last {} of {} lines)\n{}\n",
                log.display(),
                lines.min(all.len()),
                all.len(),
                all[all.len().saturating_sub(lines)..].join("\n")
            ));
        }
        text
    }

    /// Writes fixture accounts for `(customer, spec)` and a new tenants file; returns its path.
    pub fn write_tenants(&self, accounts: &[(&str, SampleAccountSpec)]) -> PathBuf {
        let root = self.dir.path().join("fixtures");
        let mut text = String::new();
        let mut customers: Vec<&str> = accounts.iter().map(|(c, _)| *c).collect();
        customers.dedup();
        for customer in customers {
            text.push_str(&format!("[[customers]]\nid = \"{customer}\"\n"));
            for (_, spec) in accounts.iter().filter(|(c, _)| *c == customer) {
                let dir = root.join(customer).join(&spec.account_id);
                write_fixture_dir(&generate_account(spec), &dir).expect("fixtures");
                text.push_str(&format!(
                    "[[customers.accounts]]\nid = \"{}\"\nfixture_dir = \"{}\"\nsize_hint = {}\n",
                    spec.account_id,
                    dir.display(),
                    spec.principals
                ));
            }
        }
        let n = self
            .tenants_files
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = self.dir.path().join(format!("tenants-{n}.toml"));
        std::fs::write(&path, text).expect("tenants file");
        path
    }

    /// Every report file of a run, as (relative path, bytes), sorted.
    pub fn report_files(&self, run: &str) -> Vec<(String, Vec<u8>)> {
        let blobs = self.data_dir().join("blobs");
        let mut files = Vec::new();
        for customer in std::fs::read_dir(&blobs).expect("blobs dir").flatten() {
            let reports = customer.path().join("reports").join(run);
            collect_files(&reports, &reports, &mut files);
        }
        files.sort();
        files
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("prefix")
                .display()
                .to_string();
            out.push((rel, std::fs::read(&path).expect("read report")));
        }
    }
}

/// Every subscription of the customers' topics, by topic: (subscription id, queue), sorted.
/// Listing by each customer's topic prefix on purpose: it also lists the topics of
/// customers whose id extends another's, which is what reconcile must not be fooled by.
pub async fn subscriptions(
    ports: &accessflow_shared::ports::Ports,
    names: &accessflow_shared::naming::Names,
    customers: &[&str],
) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut out = std::collections::BTreeMap::new();
    for customer in customers {
        let topics = ports
            .topics
            .list_topics(&names.topic_prefix(customer))
            .await
            .expect("list topics");
        for topic in topics {
            let mut subs: Vec<(String, String)> = ports
                .topics
                .list_subscriptions(&topic)
                .await
                .expect("list subscriptions")
                .into_iter()
                .map(|s| (s.id, s.queue))
                .collect();
            subs.sort();
            out.insert(topic, subs);
        }
    }
    out
}

/// Bytes under `dir` (a data directory), the worker logs left out: they are the operator's
/// to rotate, not retention's.
pub fn data_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "logs") {
            continue;
        }
        if path.is_dir() {
            total += data_size(&path);
        } else {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

/// A small sample account spec.
pub fn spec(account_id: &str, principals: usize, seed: u64) -> SampleAccountSpec {
    SampleAccountSpec {
        account_id: account_id.to_string(),
        principals,
        seed,
        malformed_policy: false,
        resources: false,
    }
}

/// Sends SIGKILL to a child process.
pub fn kill_hard(child: &mut Child) {
    let _ = child.kill(); // std's kill is SIGKILL on Unix
    let _ = child.wait();
}

/// Sends SIGTERM and waits for the exit status.
pub fn terminate(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("worker did not exit within {timeout:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The as-of time of the tests' nights (embedded and AWS).
pub const AS_OF: &str = "2026-11-26T02:00:00Z";

/// The arguments of `coordinator start` for `run` of `tenants`, as of [`AS_OF`].
pub(crate) fn start_args<'a>(tenants: &'a std::path::Path, run: &'a str) -> [&'a str; 7] {
    let tenants = tenants.to_str().expect("a UTF-8 tenants path");
    [
        "start",
        "--tenants",
        tenants,
        "--run-id",
        run,
        "--as-of",
        AS_OF,
    ]
}
