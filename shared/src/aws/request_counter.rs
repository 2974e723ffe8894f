//! Counts the AWS requests the program itself makes, per service, for the cost table.
//!
//! An SDK interceptor is installed on every client; it counts each HTTP attempt (retries
//! included: AWS bills every request) just before it is sent, and each response that says
//! the caller was throttled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct ServiceCounts {
    requests: AtomicU64,
    throttled: AtomicU64,
    operations: Mutex<BTreeMap<String, u64>>,
}

/// Request and throttle counters, shared by every client of one backend.
#[derive(Clone, Default)]
pub struct RequestCounter {
    services: Arc<Mutex<BTreeMap<String, Arc<ServiceCounts>>>>,
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
        }
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
    }
}

/// The SDK interceptor behind [`RequestCounter`].
#[derive(Clone)]
pub struct CountingInterceptor {
    service: &'static str,
    counts: Arc<ServiceCounts>,
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

/// The operation of a request, from what is on the wire: the `X-Amz-Target` header (JSON
/// protocols: SQS, DynamoDB, KMS), the `Action=` form field (query protocols: SNS, IAM,
/// STS), or for S3 the HTTP method (`LIST` for a bucket listing).
fn operation_name(target: Option<&str>, body: Option<&[u8]>, method: &str, uri: &str) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    if let Some(body) = body {
        if let Some(rest) = body.strip_prefix(b"Action=") {
            let end = rest.iter().position(|b| *b == b'&').unwrap_or(rest.len());
            return String::from_utf8_lossy(&rest[..end]).into_owned();
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
        if let Some(i) = text.find("&Action=") {
            let rest = &text[i + 8..];
            return rest.split('&').next().unwrap_or_default().to_string();
        }
    }
    if method == "GET" && uri.contains("list-type=") {
        return "LIST".to_string();
    }
    method.to_string()
}

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
        let request = context.request();
        // The SDK stores each call's operation name (`GetObject`, `SendMessageBatch`); the
        // wire is only read when it is missing (a request the SDK did not make).
        let op = match cfg.load::<Metadata>() {
            Some(metadata) => metadata.name().to_string(),
            None => operation_name(
                request.headers().get("x-amz-target"),
                request.body().bytes(),
                request.method(),
                request.uri(),
            ),
        };
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
            if looks_throttled(response.status().as_u16(), response.body().bytes()) {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
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
    fn operation_names() {
        assert_eq!(
            operation_name(Some("AmazonSQS.SendMessageBatch"), None, "POST", "/"),
            "SendMessageBatch"
        );
        assert_eq!(
            operation_name(
                None,
                Some(b"Action=PublishBatch&Version=2010-03-31"),
                "POST",
                "/"
            ),
            "PublishBatch"
        );
        assert_eq!(
            operation_name(
                None,
                Some(b"Version=2011-06-15&Action=AssumeRole"),
                "POST",
                "/"
            ),
            "AssumeRole"
        );
        assert_eq!(operation_name(None, Some(b""), "PUT", "/b/k"), "PUT");
        assert_eq!(
            operation_name(None, None, "GET", "/b?list-type=2&prefix=a"),
            "LIST"
        );
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
