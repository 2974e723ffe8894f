//! The AWS backend of every port: SQS FIFO queues, SNS FIFO topics, one DynamoDB table, an
//! S3 bucket, KMS keys per customer, and STS + IAM for the customers' accounts, all through
//! the official AWS SDK for Rust.
//!
//! Configuration follows the SDK conventions (`aws-config`: credential chain, region,
//! `AWS_ENDPOINT_URL`), plus Accessflow's own names ([`AwsSettings`]), so the same binary
//! runs against AWS, LocalStack or moto. Every client counts its requests
//! ([`AwsBackend::request_counts`]) so a run can report what it cost.

mod blobs;
mod config;
pub mod error;
mod iam_source;
mod keys;
pub mod prices;
mod queues;
mod request_counter;
mod resource_inventory;
mod retry;
mod store;
mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, ProvideCredentials, Region};
use aws_smithy_http_client::tls;

pub use blobs::{AwsBlobs, ObjectEncryption};
pub use config::{AwsSettings, SettingsError};
pub use iam_source::{decode_policy_document, percent_decode, AwsIamSource};
pub use keys::AwsKeys;
pub use queues::AwsQueues;
pub use request_counter::RequestCounter;
pub use resource_inventory::EmulatorS3ControlEndpoint;
pub use retry::{is_throttle, retry_transient, RetryPolicy, RetryStats};
pub use store::{AwsStore, COUNTER_PREFIX};
pub use topics::{AwsTopics, SNS_MANAGED_KEY};

use crate::clock::Clock;
use crate::ports::{PortError, Ports};

/// Every port on AWS, plus the request counters.
#[derive(Clone)]
pub struct AwsBackend {
    settings: AwsSettings,
    region: String,
    counter: RequestCounter,
    queues: Arc<AwsQueues>,
    topics: Arc<AwsTopics>,
    store: Arc<AwsStore>,
    blobs: Arc<AwsBlobs>,
    keys: Arc<AwsKeys>,
    iam: Arc<AwsIamSource>,
    /// The system clock: AWS itself decides visibility and delays; the store's expiry
    /// checks read this.
    clock: Clock,
}

impl std::fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsBackend")
            .field("region", &self.region)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn setup_error(message: impl Into<String>) -> PortError {
    PortError::Permanent {
        op: "aws:connect",
        message: message.into(),
    }
}

/// How long opening a TCP/TLS connection to AWS may take before the attempt fails.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The HTTPS client of every AWS client Accessflow makes: hyper with rustls on `ring`
/// (see the workspace manifest for why not the SDK's default, aws-lc).
pub fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl AwsBackend {
    /// Loads the SDK configuration, checks that a region and credentials can be found (so a
    /// misconfigured process stops at start with a message saying what to set), and builds
    /// one client per service. Makes no AWS request besides resolving credentials.
    pub async fn connect(settings: &AwsSettings) -> Result<AwsBackend, PortError> {
        settings.validate().map_err(|e| PortError::Invalid {
            op: "aws:connect",
            message: e.to_string(),
        })?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                None,
                None,
                "accessflow-settings",
            ));
        }
        let sdk = loader.load().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| {
                setup_error(
                    "no AWS region configured: set AWS_REGION (e.g. eu-west-1), or `region` in the AWS profile",
                )
            })?;
        let provider = sdk.credentials_provider().ok_or_else(|| {
            setup_error("no AWS credential provider: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a task/instance role")
        })?;
        provider.provide_credentials().await.map_err(|e| {
            setup_error(format!(
                "no AWS credentials found ({e}): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a task/instance role"
            ))
        })?;

        let counter = RequestCounter::new();
        let sqs_client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(counter.interceptor("sqs"))
                .build(),
        );
        let sns_client = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk)
                .interceptor(counter.interceptor("sns"))
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(counter.interceptor("dynamodb"))
                .build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(settings.s3_force_path_style)
                .interceptor(counter.interceptor("s3"))
                .build(),
        );
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&sdk)
                .interceptor(counter.interceptor("kms"))
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
                .interceptor(counter.interceptor("sts"))
                .build(),
        );

        let sqs = Arc::new(queues::SqsShared::new(
            sqs_client,
            settings.name_prefix.clone(),
        ));
        let clock = Clock::system();
        Ok(AwsBackend {
            settings: settings.clone(),
            region: region.clone(),
            counter: counter.clone(),
            queues: Arc::new(AwsQueues::new(sqs.clone())),
            topics: Arc::new(AwsTopics::new(sns_client, sts.clone(), sqs, region.clone())),
            store: Arc::new(AwsStore::new(
                dynamodb,
                settings.table.clone(),
                clock.clone(),
            )),
            blobs: Arc::new(AwsBlobs::new(
                s3,
                settings.bucket.clone(),
                settings.bucket_prefix.clone(),
                region,
                settings.kms_alias_prefix.clone(),
            )),
            keys: Arc::new(AwsKeys::new(kms, settings.kms_alias_prefix.clone())),
            iam: Arc::new(AwsIamSource::new(
                sdk,
                sts,
                counter,
                RetryPolicy::new(settings.retry_max_elapsed),
                settings.role_session_name.clone(),
                settings.last_accessed,
                settings
                    .collect_resources
                    .then_some(settings.s3_force_path_style),
            )),
            clock,
        })
    }

    /// Creates the DynamoDB table (with TTL) and the S3 bucket if they are missing. For
    /// emulators and first runs; in production Terraform owns them.
    pub async fn provision(&self) -> Result<(), PortError> {
        self.store.ensure_table().await?;
        self.blobs.ensure_bucket().await?;
        Ok(())
    }

    /// Every port, for the pipeline.
    pub fn ports(&self) -> Ports {
        Ports {
            queues: self.queues.clone(),
            topics: self.topics.clone(),
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            keys: self.keys.clone(),
            iam: self.iam.clone(),
            clock: self.clock.clone(),
        }
    }

    /// AWS requests sent so far by this backend, per service (`sqs`, `sns`, `dynamodb`,
    /// `s3`, `kms`, `sts`, `iam`), retries included.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.counter.requests()
    }

    /// AWS requests sent so far, per `service:Operation` (see [`RequestCounter::operations`]).
    pub fn operation_counts(&self) -> BTreeMap<String, u64> {
        self.counter.operations()
    }

    /// Requests made with a customer role's credentials, per `service:Operation` (see
    /// [`RequestCounter::customer_role_operations`]).
    pub fn customer_role_operation_counts(&self) -> BTreeMap<String, u64> {
        self.counter.customer_role_operations()
    }

    /// Billed units so far, per `service:Operation` (see [`RequestCounter::billed_units`]);
    /// [`prices::estimate`] turns them into dollars.
    pub fn billed_units(&self) -> BTreeMap<String, u64> {
        self.counter.billed_units()
    }

    /// Throttled responses seen so far, per service.
    pub fn throttle_counts(&self) -> BTreeMap<String, u64> {
        self.counter.throttles()
    }

    /// Retries of IAM/STS calls (throttling included), which the backend does itself.
    pub fn iam_retry_stats(&self) -> RetryStats {
        self.iam.retry_stats()
    }

    /// The settings this backend was built with.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The region in use.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The concrete backends, for callers that need more than the ports.
    pub fn store(&self) -> &Arc<AwsStore> {
        &self.store
    }

    pub fn blobs(&self) -> &Arc<AwsBlobs> {
        &self.blobs
    }

    pub fn keys(&self) -> &Arc<AwsKeys> {
        &self.keys
    }

    pub fn iam(&self) -> &Arc<AwsIamSource> {
        &self.iam
    }
}
