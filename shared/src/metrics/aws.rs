//! The AWS requests a process makes: counted by the SDK interceptor
//! ([`crate::aws::RequestCounter`]) and the IAM/STS retry helper, in every process that
//! talks to AWS (workers, and the exporter's queue reads), with each request's estimated
//! price.
//!
//! The per-service series are created at 0 when the set is first used, so throttle and
//! error ratios exist before the first throttle or error.

use std::sync::LazyLock;

use prometheus::{CounterVec, IntCounterVec};

use super::catalog::{self as c, counter_vec, float_counter_vec};

/// The AWS services the code calls, the values of the `service` label.
pub const AWS_SERVICES: &[&str] = &["dynamodb", "iam", "kms", "s3", "sns", "sqs", "sts"];

/// The AWS request metrics.
pub struct AwsMetrics {
    pub requests: IntCounterVec,
    pub throttles: IntCounterVec,
    pub retries: IntCounterVec,
    pub errors: IntCounterVec,
    pub cost: CounterVec,
}

static AWS: LazyLock<AwsMetrics> = LazyLock::new(|| {
    let m = AwsMetrics {
        requests: counter_vec(&c::AWS_REQUESTS),
        throttles: counter_vec(&c::AWS_THROTTLES),
        retries: counter_vec(&c::AWS_RETRIES),
        errors: counter_vec(&c::AWS_ERRORS),
        cost: float_counter_vec(&c::AWS_COST),
    };
    for service in AWS_SERVICES {
        m.throttles.with_label_values(&[service]);
        m.retries.with_label_values(&[service]);
        m.errors.with_label_values(&[service]);
        m.cost.with_label_values(&[service]);
    }
    m
});

/// The process's AWS request metrics (registered on first use).
pub fn aws() -> &'static AwsMetrics {
    &AWS
}
