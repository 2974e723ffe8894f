//! Counts the AWS requests the program itself makes, per service, for the cost table.
//!
//! An SDK interceptor is installed on every client; it counts each HTTP attempt (retries
//! included: AWS bills every request) just before it is sent, and each response that says
//! the caller was throttled. The same events feed the process's Prometheus metrics
//! (`accessflow_aws_*`, [`crate::metrics::aws`]), with each request's estimated price.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;

use super::prices::{billed_units, price_of, Prices};
use crate::metrics::aws::aws;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct ServiceCounts {
    requests: AtomicU64,
    throttled: AtomicU64,
    operations: Mutex<BTreeMap<String, u64>>,
    /// Billed units per operation ([`billed_units`]).
    units: Mutex<BTreeMap<String, u64>>,
}

/// Request and throttle counters, shared by every client of one backend.
#[derive(Clone, Default)]
pub struct RequestCounter {
    services: Arc<Mutex<BTreeMap<String, Arc<ServiceCounts>>>>,
    /// The requests made with a customer role's credentials, per `service:Operation` (also
    /// counted in `services`): the least-privilege test proves the customer role with them.
    customer_role: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl std::fmt::Debug for RequestCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCounter")
            .field("requests", &self.requests())
            .finish()
    }
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    fn service(&self, service: &str) -> Arc<ServiceCounts> {
        let mut map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(service.to_string()).or_default().clone()
    }

    /// An interceptor that counts into this counter under `service` (e.g. `"sqs"`).
    pub fn interceptor(&self, service: &'static str) -> CountingInterceptor {
        CountingInterceptor {
            service,
            counts: self.service(service),
            customer_role: None,
        }
    }

    /// Like [`Self::interceptor`], for a client acting with a customer role's credentials
    /// (the IAM reads and the resource inventory): its requests are also counted in
    /// [`Self::customer_role_operations`].
    pub fn customer_role_interceptor(&self, service: &'static str) -> CountingInterceptor {
        CountingInterceptor {
            service,
            counts: self.service(service),
            customer_role: Some(self.customer_role.clone()),
        }
    }

    /// Requests made with a customer role's credentials, per `service:Operation`.
    pub fn customer_role_operations(&self) -> BTreeMap<String, u64> {
        self.customer_role
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests sent so far, per service.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        let map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, v)| (k.clone(), v.requests.load(Ordering::Relaxed)))
            .collect()
    }

    /// Requests sent so far, per `service:Operation`, the SDK's operation names (e.g.
    /// `sqs:SendMessageBatch`, `s3:PutObject`, `s3:ListObjectsV2`).
    pub fn operations(&self) -> BTreeMap<String, u64> {
        let map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for (service, counts) in map.iter() {
            let ops = counts.operations.lock().unwrap_or_else(|e| e.into_inner());
            for (op, n) in ops.iter() {
                out.insert(format!("{service}:{op}"), *n);
            }
        }
        out
    }

    /// Billed units so far, per `service:Operation` (see [`billed_units`]: DynamoDB request
    /// units; for other services the request counts): what [`super::prices::estimate`]
    /// prices.
    pub fn billed_units(&self) -> BTreeMap<String, u64> {
        let map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for (service, counts) in map.iter() {
            let units = counts.units.lock().unwrap_or_else(|e| e.into_inner());
            for (op, n) in units.iter() {
                out.insert(format!("{service}:{op}"), *n);
            }
        }
        out
    }

    /// Throttled responses so far, per service.
    pub fn throttles(&self) -> BTreeMap<String, u64> {
        let map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, v)| (k.clone(), v.throttled.load(Ordering::Relaxed)))
            .collect()
    }

    /// Records a throttle seen outside an SDK response (used by the retry helper's tests).
    pub fn record_throttle(&self, service: &str) {
        self.service(service)
            .throttled
            .fetch_add(1, Ordering::Relaxed);
        aws().throttles.with_label_values(&[service]).inc();
    }
}

/// The list prices the cost metric uses.
static PRICES: std::sync::LazyLock<Prices> = std::sync::LazyLock::new(Prices::default);

/// The SDK interceptor behind [`RequestCounter`].
#[derive(Clone)]
pub struct CountingInterceptor {
    service: &'static str,
    counts: Arc<ServiceCounts>,
    customer_role: Option<Arc<Mutex<BTreeMap<String, u64>>>>,
}

impl std::fmt::Debug for CountingInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingInterceptor")
            .field("service", &self.service)
            .finish()
    }
}

/// Error codes by which AWS services say "slow down".
pub(crate) const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "TransactionInProgressException",
    "KMSThrottlingException",
];

fn looks_throttled(status: u16, body: Option<&[u8]>) -> bool {
    if status == 429 {
        return true;
    }
    if !(status == 400 || status == 503) {
        return false;
    }
    let Some(body) = body else { return false };
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]);
    THROTTLE_CODES
        .iter()
        .filter(|c| **c != "LimitExceededException")
        .any(|code| text.contains(code))
}

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "AccessflowRequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        // Every SDK operation stores its name (`GetObject`, `SendMessageBatch`) before it
        // sends anything.
        let op = cfg
            .load::<Metadata>()
            .map_or_else(|| "unknown".to_string(), |m| m.name().to_string());
        let metrics = aws();
        metrics
            .requests
            .with_label_values(&[self.service, &op])
            .inc();
        let operation = format!("{}:{op}", self.service);
        if let Some(customer_role) = &self.customer_role {
            *customer_role
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(operation.clone())
                .or_default() += 1;
        }
        let units = billed_units(&operation, context.request().body().bytes());
        metrics
            .cost
            .with_label_values(&[self.service])
            .inc_by(units as f64 * price_of(&operation, &PRICES));
        *self
            .counts
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op.clone())
            .or_default() += units;
        // The orchestrator numbers the attempts of one operation from 1.
        if cfg
            .load::<RequestAttempts>()
            .is_some_and(|a| a.attempts() > 1)
        {
            metrics.retries.with_label_values(&[self.service]).inc();
        }
        *self
            .counts
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op)
            .or_default() += 1;
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(response) = context.response() {
            let status = response.status().as_u16();
            if status >= 400 {
                aws().errors.with_label_values(&[self.service]).inc();
            }
            if looks_throttled(status, response.body().bytes()) {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
                aws().throttles.with_label_values(&[self.service]).inc();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_detection() {
        assert!(looks_throttled(429, None));
        assert!(looks_throttled(
            400,
            Some(br#"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"#)
        ));
        assert!(looks_throttled(
            400,
            Some(br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}"#)
        ));
        assert!(!looks_throttled(400, Some(b"ValidationException")));
        assert!(!looks_throttled(200, Some(b"Throttling")));
    }

    #[test]
    fn counts_per_service() {
        let c = RequestCounter::new();
        let _ = c.interceptor("sqs");
        c.record_throttle("iam");
        assert_eq!(c.requests().get("sqs"), Some(&0));
        assert_eq!(c.throttles().get("iam"), Some(&1));
    }
}
