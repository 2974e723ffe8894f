//! ECS task scale-in protection against a fake ECS agent: a tiny HTTP server on 127.0.0.1
//! that records every request, with the real consumer and pipeline on the embedded backend
//! pointed at it (what `ECS_AGENT_URI` does on ECS).
//!
//! - While a message is held the task is protected, the protection is renewed during a
//!   long hold, and it is released once nothing is held;
//! - a night with a healthy agent ends with the protection released;
//! - an agent answering 500 to everything does not stop the work.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accessflow_analysis::Engine;
use accessflow_samples::{generate_account, write_fixture_dir, SampleAccountSpec};
use accessflow_shared::config::Settings;
use accessflow_shared::embedded::EmbeddedBackend;
use accessflow_shared::ledger::{AccountStatus, Ledger, RunHeader, TenantAccount};
use accessflow_shared::message::{AccountWork, WorkMessage};
use accessflow_shared::ports::{AccountLocator, AccountSnapshotRaw, IamSource, PortResult, Ports};
use accessflow_worker::consumer::{self, Consumer, ConsumerOptions};
use accessflow_worker::pipeline::Pipeline;
use accessflow_worker::scale_in_protection::ProtectionSettings;
use accessflow_worker::shutdown::Shutdown;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CUSTOMER: &str = "acme";
const ACCOUNT: &str = "111122223333";
const RUN: &str = "n1";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// One request the fake agent received.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: String,
    path: String,
    body: serde_json::Value,
}

impl Seen {
    fn enabled(&self) -> Option<bool> {
        self.body["ProtectionEnabled"].as_bool()
    }
}

/// The fake ECS agent: answers every request with `status`, records it.
struct FakeAgent {
    uri: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAgent {
    async fn start(status: u16) -> FakeAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    if let Some(request) = read_request(&mut stream).await {
                        let enabled = request.enabled().unwrap_or(false);
                        record.lock().expect("lock").push(request);
                        let body = if status == 200 {
                            format!(
                                r#"{{"protection":{{"ExpirationDate":"2026-12-02T03:00:00Z","ProtectionEnabled":{enabled},"TaskArn":"arn:aws:ecs:eu-west-1:111122223333:task/c/t"}}}}"#
                            )
                        } else {
                            r#"{"error":{"Code":"ServerException","Message":"injected"}}"#.into()
                        };
                        let reason = if status == 200 { "OK" } else { "Error" };
                        let response = format!(
                            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                });
            }
        });
        FakeAgent {
            // The agent's URI has a path of its own on ECS (`/api/<task id>`).
            uri: format!("http://127.0.0.1:{port}/api/fake-task"),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Reads one HTTP/1.1 request (headers, then `content-length` bytes of body).
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buffer[header_end..]).unwrap_or(serde_json::Value::Null);
    Some(Seen {
        at: Instant::now(),
        method,
        path,
        body,
    })
}

/// The fixture IAM source, with a collect that takes `delay`: a long-held message.
struct SlowCollect {
    inner: Arc<dyn IamSource>,
    delay: Duration,
}

#[async_trait::async_trait]
impl IamSource for SlowCollect {
    async fn fetch_account(&self, account: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        tokio::time::sleep(self.delay).await;
        self.inner.fetch_account(account).await
    }

    async fn last_accessed(
        &self,
        account: &AccountLocator,
        principal: &str,
    ) -> PortResult<Option<Vec<u8>>> {
        self.inner.last_accessed(account, principal).await
    }
}

/// One account's deployment with an opened run and its CollectAccount queued, as
/// `coordinator reconcile` and `start` leave it.
struct Night {
    _dir: tempfile::TempDir,
    ports: Ports,
    settings: Settings,
    ledger: Ledger,
}

impl Night {
    /// `slow_collect`: how long the collect is held (default: as fast as it goes).
    async fn open(slow_collect: Option<Duration>) -> Night {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let backend = EmbeddedBackend::open(&data).expect("embedded backend");
        let mut ports = backend.ports();
        if let Some(delay) = slow_collect {
            ports.iam = Arc::new(SlowCollect {
                inner: ports.iam.clone(),
                delay,
            });
        }
        let settings = Cli::parse_from([
            "test".to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--visibility-timeout-secs".into(),
            "30".into(),
        ])
        .settings;
        let names = settings.validate().expect("settings");
        let sample = generate_account(&SampleAccountSpec {
            account_id: ACCOUNT.into(),
            principals: 12,
            seed: 7,
            malformed_policy: false,
            resources: false,
        });
        let fixtures = dir.path().join("fixtures").join(ACCOUNT);
        write_fixture_dir(&sample, &fixtures).expect("fixtures");
        ports
            .keys
            .ensure_customer_key(CUSTOMER)
            .await
            .expect("customer key");
        ports
            .queues
            .ensure_queue(&settings.queue_spec(&names, CUSTOMER, ACCOUNT))
            .await
            .expect("queue");
        let ledger = Ledger::new(ports.store.clone());
        ledger
            .put_tenant(&TenantAccount {
                locator: AccountLocator {
                    customer: CUSTOMER.into(),
                    account: ACCOUNT.into(),
                    role_arn: None,
                    external_id: None,
                    fixture_dir: Some(fixtures.display().to_string()),
                    trusted_accounts: Vec::new(),
                    regions: Vec::new(),
                },
                size_hint: 12,
                subscribed_at_ms: None,
            })
            .await
            .expect("tenant");
        ledger
            .open_run(&RunHeader {
                run_id: RUN.into(),
                as_of: "2026-11-25T02:00:00Z".into(),
                accounts: vec![(CUSTOMER.into(), ACCOUNT.into())],
                deadline: None,
                started_at: None,
            })
            .await
            .expect("run");
        let collect = WorkMessage::CollectAccount {
            work: AccountWork {
                run_id: RUN.into(),
                customer: CUSTOMER.into(),
                account: ACCOUNT.into(),
            },
        }
        .to_outgoing();
        ports
            .queues
            .send_batch(&names.account_queue(CUSTOMER, ACCOUNT), &[collect])
            .await
            .expect("send");
        Night {
            _dir: dir,
            ports,
            settings,
            ledger,
        }
    }

    /// Starts the real consumer over this night, protected through `agent_uri`.
    fn consume(
        &self,
        agent_uri: &str,
        max_hold: Duration,
    ) -> (
        Shutdown,
        tokio::task::JoinHandle<Result<(), accessflow_shared::ports::PortError>>,
    ) {
        let names = self.settings.validate().expect("names");
        let engine = Arc::new(Engine::new().expect("engine"));
        let pipeline = Arc::new(Pipeline::new(
            self.ports.clone(),
            self.settings.clone(),
            names.clone(),
            engine,
        ));
        let consumer = Consumer::new(
            pipeline,
            self.ports.clone(),
            names,
            self.settings.visibility_timeout(),
        );
        let options = ConsumerOptions {
            concurrency: 1,
            idle_pause: Duration::from_millis(20),
            max_hold,
            stop_timeout: Duration::from_secs(5),
            scale_in_protection: ProtectionSettings {
                expires_in: Duration::from_secs(60),
                renew_every: Duration::from_millis(300),
                idle_grace: Duration::from_millis(300),
                retry_after: Duration::from_millis(200),
                call_timeout: Duration::from_secs(2),
                tick: Duration::from_millis(50),
                ..ProtectionSettings::for_agent(Some(agent_uri.to_string()))
            },
            ..ConsumerOptions::default()
        };
        let shutdown = Shutdown::new();
        let running = tokio::spawn(consumer::run(consumer, options, shutdown.clone()));
        (shutdown, running)
    }

    async fn status(&self) -> Option<AccountStatus> {
        self.ledger
            .account_state(RUN, CUSTOMER, ACCOUNT)
            .await
            .expect("ledger")
            .map(|(state, _)| state.progress.status)
    }

    /// Waits until the account is finished (or fails the test after `limit`).
    async fn wait_finished(&self, limit: Duration) -> AccountStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.status().await.filter(|s| s.is_finished()) {
                return status;
            }
            assert!(Instant::now() < deadline, "the account did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn wait_for(agent: &FakeAgent, limit: Duration, what: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + limit;
    while !what(&agent.seen()) {
        assert!(
            Instant::now() < deadline,
            "the agent never saw what was expected: {:#?}",
            agent.seen()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_keeps_the_task_protected_renewed_and_released_after() {
    let agent = FakeAgent::start(200).await;
    // The collect is held for 2 s: protection is renewed every 300 ms meanwhile.
    let night = Night::open(Some(Duration::from_secs(2))).await;
    let (shutdown, running) = night.consume(&agent.uri, Duration::from_secs(60));

    // Protected while held: the first call enables protection, for whole minutes.
    wait_for(&agent, Duration::from_secs(10), |seen| !seen.is_empty()).await;
    let first = agent.seen()[0].clone();
    assert_eq!(first.method, "PUT");
    assert_eq!(first.path, "/api/fake-task/task-protection/v1/state");
    assert_eq!(
        first.body,
        serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": 1})
    );
    assert_eq!(
        night.status().await,
        Some(AccountStatus::Published),
        "protected before the collect finished"
    );
    assert_eq!(
        night.wait_finished(Duration::from_secs(60)).await,
        AccountStatus::Finalized
    );
    // Released once nothing is held (after the idle grace), before any shutdown.
    wait_for(&agent, Duration::from_secs(10), |seen| {
        seen.last().and_then(Seen::enabled) == Some(false)
    })
    .await;
    shutdown.trigger();
    running.await.expect("consumer task").expect("consumer");

    let seen = agent.seen();
    let release = seen
        .iter()
        .position(|s| s.enabled() == Some(false))
        .expect("a release");
    assert!(
        seen[..release].iter().all(|s| s.enabled() == Some(true)),
        "{seen:#?}"
    );
    assert!(
        release >= 4,
        "renewed while held (2 s, every 300 ms): {seen:#?}"
    );
    assert!(
        seen[release].at.duration_since(first.at) >= Duration::from_secs(2),
        "not released while the message was held: {seen:#?}"
    );
    assert_eq!(
        seen[release].body,
        serde_json::json!({"ProtectionEnabled": false})
    );
    assert_eq!(
        seen.len(),
        release + 1,
        "nothing after the release: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_with_the_agent_ends_unprotected() {
    let agent = FakeAgent::start(200).await;
    let night = Night::open(None).await;
    let (shutdown, running) = night.consume(&agent.uri, Duration::from_secs(60));
    assert_eq!(
        night.wait_finished(Duration::from_secs(60)).await,
        AccountStatus::Finalized
    );
    // Released after the idle grace, without waiting for the shutdown.
    wait_for(&agent, Duration::from_secs(10), |seen| {
        seen.last().and_then(Seen::enabled) == Some(false)
    })
    .await;
    shutdown.trigger();
    running.await.expect("consumer task").expect("consumer");
    let seen = agent.seen();
    assert_eq!(
        seen.first().and_then(Seen::enabled),
        Some(true),
        "{seen:#?}"
    );
    assert_eq!(
        seen.last().and_then(Seen::enabled),
        Some(false),
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answering_500_does_not_stop_the_work() {
    let agent = FakeAgent::start(500).await;
    let night = Night::open(None).await;
    let (shutdown, running) = night.consume(&agent.uri, Duration::from_secs(60));
    assert_eq!(
        night.wait_finished(Duration::from_secs(60)).await,
        AccountStatus::Finalized
    );
    shutdown.trigger();
    running.await.expect("consumer task").expect("consumer");
    let seen = agent.seen();
    assert!(
        seen.iter().any(|s| s.enabled() == Some(true)),
        "protection was asked for: {seen:#?}"
    );
}
