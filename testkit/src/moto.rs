//! Test harness: a moto server (AWS emulator, from PyPI) for the AWS backend's tests.
//!
//! - Installs moto in a virtualenv under the cargo target directory
//!   (`<target>/moto-venv`, made with `python3 -m venv` and
//!   `pip install 'moto[server]==5.*'`) the first time it is needed; later runs reuse it.
//! - Starts `python -m moto.server` on a free 127.0.0.1 port, once per test binary, and
//!   waits until it answers. The server watches its stdin: when the test process ends, in
//!   any way, the pipe closes and the server exits.
//! - Tests never reset the server: each one takes a unique name prefix
//!   ([`unique_prefix`]) for its queues, topics, table, bucket and keys.
//!
//! Environment overrides: `ACCESSFLOW_MOTO_URL` uses an already running server instead;
//! `ACCESSFLOW_MOTO_VENV` puts the virtualenv elsewhere; `ACCESSFLOW_PYTHON` picks the
//! Python used to create it (default `python3`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use accessflow_shared::aws::{AwsBackend, AwsSettings};

use crate::python_venv::{self, VenvSpec};

/// A running moto server.
pub struct MotoServer {
    pub url: String,
    child: Mutex<Option<Child>>,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The launcher: moto's server, patched for the atomicity real AWS has (see the script),
/// exiting when its stdin closes. Usable on its own too:
/// `python testkit/src/moto_server.py PORT` (stdin open), e.g. from end-to-end tests.
const WATCHDOG: &str = include_str!("moto_server.py");

static SERVER: OnceLock<MotoServer> = OnceLock::new();

/// The moto server of this test binary, started (and installed) on first use.
pub fn server() -> &'static MotoServer {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("ACCESSFLOW_MOTO_URL") {
            return MotoServer {
                url,
                child: Mutex::new(None),
            };
        }
        let python = ensure_venv();
        let mut last_error = String::new();
        for _ in 0..3 {
            match start(&python) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start moto: {last_error}");
    })
}

const MOTO_PROBE: &str =
    "import moto, moto.server, flask_cors; assert moto.__version__.startswith('5.')";

/// Makes sure the virtualenv with moto exists; returns its Python.
fn ensure_venv() -> PathBuf {
    let dir = std::env::var_os("ACCESSFLOW_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| python_venv::target_dir().join("moto-venv"));
    let spec = VenvSpec {
        dir,
        install: &["moto[server]==5.*"],
        probe: MOTO_PROBE,
    };
    match python_venv::ensure(&spec) {
        Ok(python) => python,
        Err(e) => {
            // No venv module or no PyPI: a moto 5 already installed for this Python will do.
            let base = std::env::var("ACCESSFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
            let system = PathBuf::from(&base);
            if python_venv::passes(&system, MOTO_PROBE) {
                eprintln!("moto harness: could not build the venv ({e}); using {base}'s own moto");
                return system;
            }
            panic!("moto harness: {e}");
        }
    }
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn answers_at(host: &str, port: u16) -> bool {
    answers_on(host, port, "/moto-api/data.json")
}

/// Whether `GET path` on `host:port` answers 200 within a few seconds.
fn answers_on(host: &str, port: u16, path: &str) -> bool {
    let Ok(addr) = format!("{host}:{port}").parse() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Removes server logs older than a day, so `target/` does not collect them forever.
fn prune_logs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn start(python: &Path) -> Result<MotoServer, String> {
    start_on(python, "127.0.0.1")
}

/// A moto server of its own listening on `host` (an address of this machine, e.g. the
/// host side of a test's network namespace), installed if needed; stopped when dropped.
/// Point [`server`] at it with `ACCESSFLOW_MOTO_URL` before anything else uses moto.
pub fn start_server_on(host: &str) -> MotoServer {
    let python = ensure_venv();
    start_on(&python, host).unwrap_or_else(|e| panic!("could not start moto on {host}: {e}"))
}

fn start_on(python: &Path, host: &str) -> Result<MotoServer, String> {
    let port = free_port();
    let log_dir = python_venv::target_dir().join("moto-logs");
    let _ = std::fs::create_dir_all(&log_dir);
    prune_logs(&log_dir);
    let log_path = log_dir.join(format!("moto-{port}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(python)
        .args(["-c", WATCHDOG, &port.to_string(), host])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .stdin(Stdio::piped())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn moto: {e}"))?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "moto exited with {status}; see {}",
                log_path.display()
            ));
        }
        if answers_at(host, port) {
            return Ok(MotoServer {
                url: format!("http://{host}:{port}"),
                child: Mutex::new(Some(child)),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "moto did not answer within 60 s; see {}",
        log_path.display()
    ))
}

/// A name prefix no other test (in this or another test binary) uses: lowercase letters and
/// digits ending in `-`, valid in queue, topic, table, bucket and alias names.
pub fn unique_prefix(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stamp = (nanos() % 1_000_000_000) as u64 ^ (std::process::id() as u64) << 20;
    let label: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(12)
        .collect();
    format!("{label}{stamp:x}{n}-")
}

/// Settings for a backend on the moto server, with everything named after `prefix`.
pub fn settings(prefix: &str) -> AwsSettings {
    let server = server();
    let mut s = AwsSettings::new(format!("{prefix}bucket"));
    s.region = Some("us-east-1".into());
    s.endpoint_url = Some(server.url.clone());
    s.static_credentials = Some(("testing".into(), "testing".into()));
    s.table = format!("{prefix}table");
    s.name_prefix = prefix.to_string();
    s.kms_alias_prefix = format!("alias/{prefix}");
    s.s3_force_path_style = true;
    s.retry_max_elapsed = Duration::from_secs(10);
    // moto 5.2 answers the service-last-accessed jobs with a bare HTTP 500.
    s.last_accessed = false;
    s
}

/// A connected backend with its table and bucket made, all under a fresh prefix.
pub async fn backend(label: &str) -> (AwsBackend, String) {
    let prefix = unique_prefix(label);
    let backend = AwsBackend::connect(&settings(&prefix))
        .await
        .expect("connect to moto");
    backend
        .provision()
        .await
        .expect("provision table and bucket");
    (backend, prefix)
}

/// An IAM client acting inside another (emulated) AWS account: moto keys its state by the
/// account of the credentials, and credentials from AssumeRole belong to the role's account.
pub async fn iam_in_account(account: &str) -> aws_sdk_iam::Client {
    use aws_sdk_iam::config::{BehaviorVersion, Region};
    let server = server();
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.url)
        .http_client(accessflow_shared::aws::https_client())
        .credentials_provider(credentials_in_account(account).await)
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

/// Credentials acting inside another (emulated) AWS account (see [`iam_in_account`]), for
/// clients of other services (S3, KMS) in that account.
pub async fn credentials_in_account(account: &str) -> aws_sdk_iam::config::Credentials {
    use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
    let server = server();
    let base = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.url)
        .http_client(accessflow_shared::aws::https_client())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let sts = aws_sdk_sts::Client::from_conf(base);
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seeder"))
        .role_session_name("seeder")
        .send()
        .await
        .expect("assume a role in the seeded account");
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "seeder",
    )
}

/// A random 12-digit account id, so tests never share IAM state.
pub fn unique_account() -> String {
    let p = unique_prefix("a");
    let digits: String = format!("{:x}", nanos())
        .chars()
        .chain(p.chars())
        .filter_map(|c| c.to_digit(16))
        .map(|d| char::from(b'0' + (d % 10) as u8))
        .collect();
    format!("9{}", &digits[digits.len() - 11..])
}

/// A fault-injecting proxy in front of the moto server (`fault_proxy.py`): a fraction
/// `rate` of the requests, drawn from a generator seeded with `seed`, get a throttling
/// error or a 5xx in the format of their service instead of reaching moto, and the
/// requests a `deny` pattern matches an access-denied error. Stopped when dropped.
pub struct FaultProxy {
    pub url: String,
    child: Child,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FAULT_PROXY: &str = include_str!("fault_proxy.py");

impl FaultProxy {
    pub fn start(rate: f64, seed: u64) -> FaultProxy {
        Self::start_denying(rate, seed, "")
    }

    /// Like [`Self::start`], and every request matching `deny` (a Python regular
    /// expression over "METHOD PATH?QUERY", the X-Amz-Target header and the body, one per
    /// line) is answered with its service's access-denied error.
    pub fn start_denying(rate: f64, seed: u64, deny: &str) -> FaultProxy {
        Self::spawn(rate, seed, deny, "")
    }

    /// A proxy that injects no fault but holds every request matching `hold` (the same
    /// kind of pattern as `deny`): never forwarded to moto, never answered, so its caller
    /// hangs inside that call. [`Self::faults`] counts them as `<service>:held`.
    pub fn start_holding(hold: &str) -> FaultProxy {
        Self::spawn(0.0, 0, "", hold)
    }

    fn spawn(rate: f64, seed: u64, deny: &str, hold: &str) -> FaultProxy {
        let upstream = server().url.clone();
        let python = ensure_venv();
        let port = free_port();
        let child = Command::new(python)
            .args([
                "-c",
                FAULT_PROXY,
                &port.to_string(),
                &upstream,
                &rate.to_string(),
                &seed.to_string(),
                deny,
                hold,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn the fault proxy");
        let proxy = FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let started = Instant::now();
        // Its own endpoint: a health check proxied to a busy moto could take long.
        while !answers_on("127.0.0.1", port, "/__faults") {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the fault proxy did not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        proxy
    }

    /// Faults injected so far, by `service:kind` (`throttle`, `5xx`, `denied` or `held`).
    pub fn faults(&self) -> std::collections::BTreeMap<String, u64> {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            return Default::default();
        };
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return Default::default();
        };
        use std::io::{Read, Write};
        let _ = stream.write_all(
            b"GET /__faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("{}");
        serde_json::from_str(body).unwrap_or_default()
    }
}
