//! Exponential backoff with jitter (the `backoff` crate) around calls whose throttling the
//! SDK does not retry for us: the customer-facing IAM and STS calls, where the customer's
//! account-wide rate limits are the bottleneck. SDK-level retries are disabled on those
//! clients so that every throttle goes through here, is counted, and is waited out.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backoff::ExponentialBackoffBuilder;

use crate::ports::{PortError, PortResult};

/// How retries back off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub multiplier: f64,
    /// Each wait is drawn uniformly from `interval * (1 ± randomization)`.
    pub randomization: f64,
    pub max_interval: Duration,
    /// Give up (returning the last error) once this much time has passed.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    pub fn new(max_elapsed: Duration) -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            multiplier: 2.0,
            randomization: 0.5,
            max_interval: Duration::from_secs(20),
            max_elapsed,
        }
    }
}

/// Counts of retries, shared by the clones of one backend.
#[derive(Debug, Clone, Default)]
pub struct RetryStats {
    retries: Arc<AtomicU64>,
    throttle_retries: Arc<AtomicU64>,
}

impl RetryStats {
    /// Transient failures retried so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Of those, how many were throttling.
    pub fn throttle_retries(&self) -> u64 {
        self.throttle_retries.load(Ordering::Relaxed)
    }
}

/// Whether a port error is AWS saying "slow down" (rather than a 5xx or a timeout).
pub fn is_throttle(err: &PortError) -> bool {
    match err {
        PortError::Transient { message, .. } => {
            message.contains("Throttl")
                || message.contains("TooManyRequests")
                || message.contains("RequestLimitExceeded")
                || message.contains("ProvisionedThroughputExceeded")
                || message.contains("SlowDown")
        }
        _ => false,
    }
}

/// Runs `call` until it succeeds, fails non-transiently, or `policy.max_elapsed` has passed,
/// sleeping with exponential backoff and jitter between attempts.
pub async fn retry_transient<T, F, Fut>(
    policy: &RetryPolicy,
    stats: &RetryStats,
    mut call: F,
) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let backoff = ExponentialBackoffBuilder::new()
        .with_initial_interval(policy.initial)
        .with_multiplier(policy.multiplier)
        .with_randomization_factor(policy.randomization)
        .with_max_interval(policy.max_interval)
        .with_max_elapsed_time(Some(policy.max_elapsed))
        .build();
    backoff::future::retry_notify(
        backoff,
        || {
            let fut = call();
            async move {
                fut.await.map_err(|e| {
                    if e.is_transient() {
                        backoff::Error::transient(e)
                    } else {
                        backoff::Error::permanent(e)
                    }
                })
            }
        },
        |err: PortError, wait: Duration| {
            stats.retries.fetch_add(1, Ordering::Relaxed);
            // The port error's operation starts with the service (`iam:GetRole`).
            let service = match &err {
                PortError::Transient { op, .. } => op.split(':').next().unwrap_or("unknown"),
                _ => "unknown",
            };
            crate::metrics::aws::aws()
                .retries
                .with_label_values(&[service])
                .inc();
            if is_throttle(&err) {
                stats.throttle_retries.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(error = %err, wait_ms = wait.as_millis() as u64, "retrying AWS call");
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(1),
            multiplier: 2.0,
            randomization: 0.5,
            max_interval: Duration::from_millis(5),
            max_elapsed: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn throttles_are_retried_and_counted() {
        let stats = RetryStats::default();
        let attempts = AtomicU32::new(0);
        let out = retry_transient(&fast(), &stats, || async {
            if attempts.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(PortError::Transient {
                    op: "iam:GetAccountAuthorizationDetails",
                    message: "Throttling: Rate exceeded".into(),
                })
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 7);
        assert_eq!(stats.retries(), 3);
        assert_eq!(stats.throttle_retries(), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let stats = RetryStats::default();
        let attempts = AtomicU32::new(0);
        let err = retry_transient(&fast(), &stats, || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(PortError::Permanent {
                op: "sts:AssumeRole",
                message: "AccessDenied".into(),
            })
        })
        .await
        .unwrap_err();
        assert!(matches!(err, PortError::Permanent { .. }));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(stats.retries(), 0);
    }

    #[tokio::test]
    async fn gives_up_after_max_elapsed() {
        let stats = RetryStats::default();
        let policy = RetryPolicy {
            max_elapsed: Duration::from_millis(50),
            ..fast()
        };
        let err = retry_transient(&policy, &stats, || async {
            Err::<(), _>(PortError::Transient {
                op: "iam:GetCredentialReport",
                message: "InternalFailure".into(),
            })
        })
        .await
        .unwrap_err();
        assert!(err.is_transient());
        assert!(stats.retries() >= 1);
        assert_eq!(stats.throttle_retries(), 0);
    }
}
