//! ECS task scale-in protection: a worker task that holds a message asks the ECS agent not
//! to be stopped by a scale-in, and gives the protection back once it holds nothing.
//!
//! Why: the worker service scales on the number of accounts with work (see
//! [`crate::autoscaling`]). When that number drops, Application Auto Scaling lowers the
//! service's desired count and ECS stops tasks of its choosing. Without protection it may
//! stop a task in the middle of a 2,400-principal account while an idle task survives: the
//! account's message comes back only after its visibility timeout, and the night is longer
//! (the well-known bug of queue-length scalers). With protection, ECS stops only the
//! unprotected (idle) tasks, and a busy one once it goes idle.
//!
//! How: on ECS the agent sets `ECS_AGENT_URI`; `PUT $ECS_AGENT_URI/task-protection/v1/state`
//! with `{"ProtectionEnabled": true, "ExpiresInMinutes": N}` protects the task for N
//! minutes, `{"ProtectionEnabled": false}` releases it. One background task (the driver)
//! watches how many batches the consumer holds ([`Protector::hold`]) and:
//! - protects the task as soon as it holds one (the first message is received before that
//!   call lands: a scale-in in that window sends SIGTERM, and the worker's graceful shutdown
//!   finishes the message in hand and releases the rest, so the race costs time, not work);
//! - renews the protection every `renew_every` while it holds any, so a long hold (up to
//!   `--max-hold-secs`, 30 min) never outlives it, while a task whose worker hangs is
//!   protected for at most `expires_in` after its last renewal;
//! - releases it after `idle_grace` without a held message (the consumer lets go of a
//!   queue between two batches of one account for a few milliseconds: no call for that).
//!
//! A failing agent call is logged as a warning and retried after `retry_after`, doubling
//! after each further failure up to `renew_every` (a task the agent keeps refusing warns a
//! handful of times per hour, not every few seconds); it never stops the work. (The agent calls ECS's UpdateTaskProtection with the task role's
//! credentials: the role needs `ecs:UpdateTaskProtection`, the `OwnTaskProtection`
//! statement of `terraform/modules/worker_service/iam.tf`; a task outside a service is
//! answered with a `failure`, logged the same way.) Without `ECS_AGENT_URI` (the embedded backend, laptops, `coordinator
//! run`) nothing is called at all.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The agent's environment variable, set in every container of an ECS task.
pub const AGENT_URI_ENV: &str = "ECS_AGENT_URI";

/// The task-protection path under the agent's URI.
const STATE_PATH: &str = "/task-protection/v1/state";

/// The largest response body read from the agent (its answers are a few hundred bytes).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// When and for how long the task is protected.
#[derive(Debug, Clone)]
pub struct ProtectionSettings {
    /// `$ECS_AGENT_URI`; `None` disables protection (nothing is ever called).
    pub agent_uri: Option<String>,
    /// How long one protection call protects the task (the agent accepts 1 to 2,880 min).
    pub expires_in: Duration,
    /// How often a protection is renewed while messages are held.
    pub renew_every: Duration,
    /// How long the worker holds nothing before the protection is released.
    pub idle_grace: Duration,
    /// Pause before a failed agent call is tried again (doubled after each further failure,
    /// up to `renew_every`).
    pub retry_after: Duration,
    /// Longest one agent call may take.
    pub call_timeout: Duration,
    /// How often the driver looks at the held count when nothing changes.
    pub tick: Duration,
}

impl Default for ProtectionSettings {
    /// Disabled; timings for ECS (10-minute protections renewed every 5 minutes).
    fn default() -> Self {
        ProtectionSettings {
            agent_uri: None,
            expires_in: Duration::from_secs(10 * 60),
            renew_every: Duration::from_secs(5 * 60),
            idle_grace: Duration::from_secs(15),
            retry_after: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            tick: Duration::from_secs(1),
        }
    }
}

impl ProtectionSettings {
    /// The default timings, enabled when `agent_uri` is a non-empty value (what
    /// `ECS_AGENT_URI` holds on ECS).
    pub fn for_agent(agent_uri: Option<String>) -> ProtectionSettings {
        ProtectionSettings {
            agent_uri: agent_uri
                .map(|uri| uri.trim().trim_end_matches('/').to_string())
                .filter(|uri| !uri.is_empty()),
            ..ProtectionSettings::default()
        }
    }

    /// From the process environment: enabled on ECS only.
    pub fn from_env() -> ProtectionSettings {
        Self::for_agent(std::env::var(AGENT_URI_ENV).ok())
    }

    /// The protection's length in whole minutes, as the agent takes it (1..=2880).
    pub fn expires_in_minutes(&self) -> u64 {
        self.expires_in.as_secs().div_ceil(60).clamp(1, 2880)
    }
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Protect,
    Release,
}

/// What the driver knows about the task's protection.
#[derive(Debug, Clone, Copy, Default)]
pub struct DriverState {
    /// When the last successful protect call landed (`None`: not protected as far as we
    /// know, or released since).
    pub protected_at: Option<Instant>,
    /// Since when nothing is held (`None` while something is).
    pub idle_since: Option<Instant>,
    /// When the last agent call failed, if the last call failed.
    pub failed_at: Option<Instant>,
    /// Agent calls failed in a row.
    pub failures: u32,
}

impl DriverState {
    /// The pause after the last failure: `retry_after`, doubled per further failure, at
    /// most `renew_every`.
    pub fn retry_pause(&self, settings: &ProtectionSettings) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        settings
            .retry_after
            .saturating_mul(1 << doublings)
            .min(settings.renew_every.max(settings.retry_after))
    }
}

/// The driver's decision, pure: protect while something is held (renewing it every
/// `renew_every`), release after `idle_grace` of holding nothing, and pause after a failed
/// call ([`DriverState::retry_pause`]). A protection past its expiry is over on its own: nothing to
/// release.
pub fn decide(
    settings: &ProtectionSettings,
    state: &DriverState,
    held: usize,
    now: Instant,
) -> Action {
    if state
        .failed_at
        .is_some_and(|at| now.saturating_duration_since(at) < state.retry_pause(settings))
    {
        return Action::Nothing;
    }
    let protected_for = state
        .protected_at
        .map(|at| now.saturating_duration_since(at));
    if held > 0 {
        return match protected_for {
            Some(age) if age < settings.renew_every => Action::Nothing,
            _ => Action::Protect,
        };
    }
    match (protected_for, state.idle_since) {
        (Some(age), Some(idle))
            if age < settings.expires_in
                && now.saturating_duration_since(idle) >= settings.idle_grace =>
        {
            Action::Release
        }
        _ => Action::Nothing,
    }
}

/// The consumer's handle: count what is held with [`Protector::hold`], and
/// [`Protector::stop`] at the end.
#[derive(Clone)]
pub struct Protector {
    held: Arc<watch::Sender<usize>>,
    stop: Arc<watch::Sender<bool>>,
    driver: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// One held batch; dropping it lets go.
pub struct Hold {
    held: Arc<watch::Sender<usize>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.held.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Protector {
    /// Starts the driver (when an agent URI is set). Must be called inside a tokio runtime.
    pub fn start(settings: ProtectionSettings) -> Protector {
        let (held, held_rx) = watch::channel(0usize);
        let (stop, stop_rx) = watch::channel(false);
        let driver = match settings.agent_uri.clone() {
            None => None,
            Some(uri) => match AgentClient::new(&uri, settings.call_timeout) {
                Ok(client) => {
                    info!(
                        agent = %uri,
                        expires_in_minutes = settings.expires_in_minutes(),
                        "ECS task scale-in protection on while messages are held"
                    );
                    Some(tokio::spawn(drive(settings, client, held_rx, stop_rx)))
                }
                Err(e) => {
                    warn!(agent = %uri, error = %e, "ECS_AGENT_URI is not a usable URI; no task scale-in protection");
                    None
                }
            },
        };
        Protector {
            held: Arc::new(held),
            stop: Arc::new(stop),
            driver: Arc::new(tokio::sync::Mutex::new(driver)),
        }
    }

    /// Counts one held batch until the returned guard is dropped.
    pub fn hold(&self) -> Hold {
        self.held.send_modify(|n| *n += 1);
        Hold {
            held: self.held.clone(),
        }
    }

    /// Stops the driver, releasing a protection it holds first (bounded by the call
    /// timeout).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(driver) = self.driver.lock().await.take() {
            if let Err(e) = driver.await {
                warn!(error = %e, "the scale-in protection driver panicked");
            }
        }
    }
}

/// The driver loop: wakes on every change of the held count and every `tick`.
async fn drive(
    settings: ProtectionSettings,
    client: AgentClient,
    mut held_rx: watch::Receiver<usize>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let mut state = DriverState::default();
    loop {
        let held = *held_rx.borrow_and_update();
        let now = Instant::now();
        if held > 0 {
            state.idle_since = None;
        } else if state.idle_since.is_none() {
            state.idle_since = Some(now);
        }
        let action = decide(&settings, &state, held, now);
        act(&client, &settings, &mut state, action).await;
        if *stop_rx.borrow() {
            break;
        }
        tokio::select! {
            changed = held_rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = stop_rx.changed() => {}
            _ = tokio::time::sleep(settings.tick) => {}
        }
    }
    // Stopping: a protection still on is given back now rather than left to expire.
    let now = Instant::now();
    if state
        .protected_at
        .is_some_and(|at| now.saturating_duration_since(at) < settings.expires_in)
    {
        act(&client, &settings, &mut state, Action::Release).await;
    }
}

async fn act(
    client: &AgentClient,
    settings: &ProtectionSettings,
    state: &mut DriverState,
    action: Action,
) {
    let enable = match action {
        Action::Nothing => return,
        Action::Protect => true,
        Action::Release => false,
    };
    let minutes = enable.then(|| settings.expires_in_minutes());
    match client.set_protection(minutes).await {
        Ok(()) => {
            debug!(enable, "task scale-in protection set");
            state.failed_at = None;
            state.failures = 0;
            state.protected_at = enable.then(Instant::now);
        }
        Err(e) => {
            // The work goes on: an unprotected task is merely one a scale-in may stop
            // (then SIGTERM, and the graceful shutdown releases what it holds).
            state.failed_at = Some(Instant::now());
            state.failures = state.failures.saturating_add(1);
            warn!(enable, error = %e, retry_in = ?state.retry_pause(settings), "the ECS agent's task-protection call failed; the work goes on");
        }
    }
}

/// Why an agent call failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent URI {uri:?}: {reason}")]
    Uri { uri: String, reason: String },
    #[error("request to the agent failed: {0}")]
    Request(String),
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the agent answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the agent refused: {0}")]
    Refused(String),
}

/// HTTP/1.1 client for the agent's endpoint (plain HTTP on the task's link-local address).
///
/// Why hyper: the AWS SDK's HTTP client (`aws-smithy-http-client`) already builds hyper 1
/// and hyper-util's legacy client with the `http1` and `tokio` features, and
/// http-body-util, for this workspace; this module uses exactly those crates and features,
/// so it adds no crate to the build (a dedicated client such as reqwest would add a dozen)
/// and does not change feature unification. The SDK's own client is not reused directly:
/// its interface is the SDK's orchestrator, not a plain request.
struct AgentClient {
    uri: hyper::Uri,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<hyper::body::Bytes>,
    >,
    timeout: Duration,
}

impl AgentClient {
    fn new(agent_uri: &str, timeout: Duration) -> Result<AgentClient, AgentError> {
        let text = format!("{agent_uri}{STATE_PATH}");
        let uri: hyper::Uri =
            text.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| AgentError::Uri {
                    uri: text.clone(),
                    reason: e.to_string(),
                })?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(AgentError::Uri {
                uri: text,
                reason: "expected http://host[:port]/path".into(),
            });
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Ok(AgentClient {
            uri,
            client,
            timeout,
        })
    }

    /// `Some(minutes)`: protect for that long; `None`: release.
    async fn set_protection(&self, minutes: Option<u64>) -> Result<(), AgentError> {
        let body = match minutes {
            Some(m) => serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": m}),
            None => serde_json::json!({"ProtectionEnabled": false}),
        };
        let request = hyper::Request::builder()
            .method(hyper::Method::PUT)
            .uri(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_string(),
            )))
            .map_err(|e| AgentError::Request(e.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| AgentError::Request(e.to_string()))?;
            let status = response.status();
            let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                response.into_body(),
                MAX_RESPONSE_BYTES,
            ))
            .await
            .map_err(|e| AgentError::Request(format!("reading the answer: {e}")))?
            .to_bytes();
            Ok::<_, AgentError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| AgentError::Timeout(self.timeout))??;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(AgentError::Status {
                status: status.as_u16(),
                body: truncate(&text, 300),
            });
        }
        // A 200 may still carry a `failure` or an `error` object instead of `protection`.
        if let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            for key in ["failure", "error"] {
                if let Some(detail) = answer.get(key) {
                    return Err(AgentError::Refused(truncate(&detail.to_string(), 300)));
                }
            }
        }
        Ok(())
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProtectionSettings {
        ProtectionSettings::for_agent(Some("http://169.254.170.2/api/task".into()))
    }

    #[test]
    fn no_agent_uri_means_disabled() {
        assert!(ProtectionSettings::for_agent(None).agent_uri.is_none());
        assert!(ProtectionSettings::for_agent(Some("  ".into()))
            .agent_uri
            .is_none());
        assert_eq!(
            settings().agent_uri.as_deref(),
            Some("http://169.254.170.2/api/task")
        );
    }

    #[test]
    fn expiry_is_whole_minutes_within_the_agents_range() {
        let mut s = settings();
        assert_eq!(s.expires_in_minutes(), 10);
        s.expires_in = Duration::from_secs(1);
        assert_eq!(s.expires_in_minutes(), 1);
        s.expires_in = Duration::from_secs(100 * 3600);
        assert_eq!(s.expires_in_minutes(), 2880);
    }

    #[test]
    fn protects_while_held_renews_and_releases_after_the_grace() {
        let s = settings();
        let t0 = Instant::now();
        let mut state = DriverState::default();
        // Holding, not protected: protect.
        assert_eq!(decide(&s, &state, 1, t0), Action::Protect);
        state.protected_at = Some(t0);
        // Protected recently: nothing; past renew_every: protect again (renewal).
        assert_eq!(
            decide(&s, &state, 2, t0 + Duration::from_secs(60)),
            Action::Nothing
        );
        assert_eq!(decide(&s, &state, 1, t0 + s.renew_every), Action::Protect);
        // Idle, within the grace: nothing; after it: release.
        state.idle_since = Some(t0 + Duration::from_secs(100));
        assert_eq!(
            decide(&s, &state, 0, t0 + Duration::from_secs(105)),
            Action::Nothing
        );
        assert_eq!(
            decide(&s, &state, 0, t0 + Duration::from_secs(100) + s.idle_grace),
            Action::Release
        );
        // An expired protection needs no release.
        assert_eq!(decide(&s, &state, 0, t0 + s.expires_in), Action::Nothing);
        // Never protected and idle: nothing.
        assert_eq!(
            decide(&s, &DriverState::default(), 0, t0 + s.expires_in),
            Action::Nothing
        );
    }

    #[test]
    fn a_failed_call_is_retried_after_a_pause_that_doubles() {
        let s = settings();
        let t0 = Instant::now();
        let mut state = DriverState {
            failed_at: Some(t0),
            failures: 1,
            ..DriverState::default()
        };
        assert_eq!(
            decide(&s, &state, 1, t0 + Duration::from_secs(1)),
            Action::Nothing
        );
        assert_eq!(decide(&s, &state, 1, t0 + s.retry_after), Action::Protect);
        state.failures = 3;
        assert_eq!(state.retry_pause(&s), s.retry_after * 4);
        assert_eq!(
            decide(&s, &state, 1, t0 + s.retry_after * 3),
            Action::Nothing
        );
        state.failures = 30;
        assert_eq!(state.retry_pause(&s), s.renew_every);
    }

    #[test]
    fn an_unusable_agent_uri_is_refused() {
        assert!(AgentClient::new("not a uri", Duration::from_secs(1)).is_err());
        assert!(AgentClient::new("https://example.com/api", Duration::from_secs(1)).is_err());
    }
}
