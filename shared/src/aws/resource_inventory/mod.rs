//! An account's resource inventory on AWS (`resources.json`, the format
//! `accessflow_analysis::resources::ResourceInventory` reads), collected with the customer
//! role's credentials (on by default; `ACCESSFLOW_COLLECT_RESOURCES=off` turns it off).
//!
//! One file per service says what is read and with which calls:
//! - [`s3`]: the buckets (listed once, read in their own region) and the account's Block
//!   Public Access (S3 Control);
//! - [`kms`]: customer managed keys, their key policies, grants and tags;
//! - [`sqs`] and [`sns`]: queue and topic policies and tags;
//! - [`secrets_manager`], [`lambda`], [`ecr`] and [`dynamodb`]: secret, function,
//!   repository and table policies and tags.
//!
//! **Regions.** The regional services are read in every region the customer lists
//! (`regions` in the tenants file), or in the backend's own region when it lists none.
//! A bucket in a region the customer does not list is named in a warning, not read.
//!
//! **Failures.** Throttling and 5xx are retried like the IAM calls ([`super::retry`]);
//! every request is counted under its service and as a customer-role request
//! ([`super::request_counter::RequestCounter::customer_role_interceptor`]). Access denied on
//! one resource, or on a whole service or region (a region not enabled for the account
//! answers like a bad token), is a warning in the inventory and so in the account's report,
//! never a failed account (proven on moto through a proxy that denies, in
//! `shared/tests/aws_iam.rs`).

use aws_sdk_iam::config::Credentials;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use serde_json::{json, Map, Value};

use super::error::{classify, has_code};
use super::request_counter::RequestCounter;
use super::retry::{retry_transient, RetryPolicy, RetryStats};
use crate::ports::{AccountLocator, PortResult};

mod dynamodb;
mod ecr;
mod kms;
mod lambda;
mod s3;
mod secrets_manager;
mod sns;
mod sqs;

/// Error codes that mean the caller may not read the resource, or (the last two) that the
/// region is not enabled for the account.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AllAccessDisabled",
    // SNS's name for it
    "AuthorizationError",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
];

/// What one read of one resource gave.
enum Got<T> {
    Value(T),
    /// The resource has none (no policy, no Block Public Access configuration, no tags).
    Missing,
    /// Access denied: the warning says what could not be read.
    Denied,
}

/// Maps an SDK result: `missing` codes are "none", denied codes a warning, the rest an
/// error (transient ones retried by the caller).
fn got<T, E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    r: Result<T, SdkError<E, HttpResponse>>,
    missing: &[&str],
) -> PortResult<Got<T>> {
    match r {
        Ok(v) => Ok(Got::Value(v)),
        Err(e) if !missing.is_empty() && has_code(&e, missing) => Ok(Got::Missing),
        Err(e) if has_code(&e, DENIED) => Ok(Got::Denied),
        Err(e) => Err(classify(op, e)),
    }
}

/// Every page of one listing, each page retried like any read: `page(token)` asks for
/// the page after `token` (the first with `None`); `read(page)` gives what the page lists
/// and the next token (`None` on the last page). `None` when the listing is denied.
async fn all_pages<P, T, F, Fut>(
    policy: &RetryPolicy,
    stats: &RetryStats,
    mut page: F,
    read: impl Fn(&P) -> (Vec<T>, Option<String>),
) -> PortResult<Option<Vec<T>>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = PortResult<Got<P>>>,
{
    let mut token: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let t = token.clone();
        let p = match retry_transient(policy, stats, || page(t.clone())).await? {
            Got::Value(p) => p,
            Got::Missing => return Ok(Some(out)),
            Got::Denied => return Ok(None),
        };
        let (items, next) = read(&p);
        out.extend(items);
        match next {
            // a token that does not move on ends the listing (never loop forever)
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            _ => return Ok(Some(out)),
        }
    }
}

/// Puts a resource's tags as `Tags`, when it has any.
fn insert_tags<K: Into<String>, V: Into<String>>(
    r: &mut Map<String, Value>,
    tags: impl Iterator<Item = (K, V)>,
) {
    let tags: Map<String, Value> = tags
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .collect();
    if !tags.is_empty() {
        r.insert("Tags".into(), Value::Object(tags));
    }
}

/// A new inventory entry: the resource's ARN, CloudFormation type and region.
fn resource(arn: &str, kind: &str, region: &str) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("Arn".into(), json!(arn));
    r.insert("Type".into(), json!(kind));
    r.insert("Region".into(), json!(region));
    r
}

/// What the collection has found so far.
#[derive(Default)]
struct Found {
    resources: Vec<Value>,
    warnings: Vec<String>,
    account_block_public_access: Option<Value>,
}

impl Found {
    fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// A listing's items ([`all_pages`]), sorted. A denied listing (`None`) gives none, and
    /// a warning: "`where_`: access denied listing the `things` (`op`): `things` not
    /// analysed".
    fn listed<T: Ord>(
        &mut self,
        listed: Option<Vec<T>>,
        where_: &str,
        things: &str,
        op: &str,
    ) -> Vec<T> {
        match listed {
            Some(mut items) => {
                items.sort();
                items
            }
            None => {
                self.warn(format!(
                    "{where_}: access denied listing the {things} ({op}): {things} not analysed"
                ));
                Vec::new()
            }
        }
    }
}

/// An SDK client of service `$krate`, acting with the customer role's `$credentials` in
/// `$region`, counted as customer-role requests of `$service`, retries left to
/// [`super::retry`]. (The eight SDK crates have the same builder but no common trait.)
macro_rules! customer_client {
    ($krate:ident, $service:literal, $sdk:expr, $region:expr, $credentials:expr, $counter:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .region($krate::config::Region::new($region.to_string()))
                .credentials_provider($credentials.clone())
                .retry_config($krate::config::retry::RetryConfig::disabled())
                .interceptor($counter.customer_role_interceptor($service))
                .build(),
        )
    };
}

/// The clients of one region.
struct Regional {
    region: String,
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    secrets_manager: aws_sdk_secretsmanager::Client,
    lambda: aws_sdk_lambda::Client,
    ecr: aws_sdk_ecr::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

/// Resolves every S3 Control request to an emulator's endpoint as it is. S3 Control puts
/// the account id in front of the host (`123456789012.s3-control...`), which an emulator on
/// `127.0.0.1` cannot serve; used only when `ACCESSFLOW_AWS_ENDPOINT_URL` is set.
#[derive(Debug)]
pub struct EmulatorS3ControlEndpoint(pub String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for EmulatorS3ControlEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        _params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        aws_sdk_s3control::config::endpoint::EndpointFuture::ready(Ok(
            aws_sdk_s3control::config::endpoint::Endpoint::builder()
                .url(self.0.clone())
                .build(),
        ))
    }
}

/// The clients of one customer session, in every region collected.
pub(crate) struct Collector<'a> {
    home_region: String,
    regions: Vec<Regional>,
    s3control: aws_sdk_s3control::Client,
    policy: &'a RetryPolicy,
    stats: &'a RetryStats,
}

impl<'a> Collector<'a> {
    /// Clients acting with `credentials` (the assumed customer role) in the regions
    /// `account` lists (the backend's own region when it lists none).
    pub(crate) fn new(
        sdk: &aws_config::SdkConfig,
        account: &AccountLocator,
        credentials: Credentials,
        counter: &RequestCounter,
        force_path_style: bool,
        policy: &'a RetryPolicy,
        stats: &'a RetryStats,
    ) -> Self {
        let home_region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        let names = if account.regions.is_empty() {
            vec![home_region.clone()]
        } else {
            account.regions.clone()
        };
        let regions = names
            .into_iter()
            .map(|region| {
                let s3 = aws_sdk_s3::config::Builder::from(sdk)
                    .region(aws_sdk_s3::config::Region::new(region.clone()))
                    .credentials_provider(credentials.clone())
                    .force_path_style(force_path_style)
                    .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                    .interceptor(counter.customer_role_interceptor("s3"))
                    .build();
                Regional {
                    s3: aws_sdk_s3::Client::from_conf(s3),
                    kms: customer_client!(aws_sdk_kms, "kms", sdk, region, credentials, counter),
                    sqs: customer_client!(aws_sdk_sqs, "sqs", sdk, region, credentials, counter),
                    sns: customer_client!(aws_sdk_sns, "sns", sdk, region, credentials, counter),
                    secrets_manager: customer_client!(
                        aws_sdk_secretsmanager,
                        "secretsmanager",
                        sdk,
                        region,
                        credentials,
                        counter
                    ),
                    lambda: customer_client!(
                        aws_sdk_lambda,
                        "lambda",
                        sdk,
                        region,
                        credentials,
                        counter
                    ),
                    ecr: customer_client!(aws_sdk_ecr, "ecr", sdk, region, credentials, counter),
                    dynamodb: customer_client!(
                        aws_sdk_dynamodb,
                        "dynamodb",
                        sdk,
                        region,
                        credentials,
                        counter
                    ),
                    region,
                }
            })
            .collect();
        let mut s3control = aws_sdk_s3control::config::Builder::from(sdk)
            .region(aws_sdk_s3control::config::Region::new(home_region.clone()))
            .credentials_provider(credentials)
            .retry_config(aws_sdk_s3control::config::retry::RetryConfig::disabled())
            .interceptor(counter.customer_role_interceptor("s3control"));
        if let Some(endpoint) = sdk.endpoint_url() {
            s3control =
                s3control.endpoint_resolver(EmulatorS3ControlEndpoint(endpoint.to_string()));
        }
        Collector {
            home_region,
            regions,
            s3control: aws_sdk_s3control::Client::from_conf(s3control.build()),
            policy,
            stats,
        }
    }

    /// The inventory of `account` as JSON bytes.
    pub(crate) async fn collect(&self, account: &AccountLocator) -> PortResult<Vec<u8>> {
        let mut found = Found::default();
        s3::account_block_public_access(self, &account.account, &mut found).await?;
        s3::buckets(self, &mut found).await?;
        let partition = partition_of(account);
        for r in &self.regions {
            let ctx = RegionCtx {
                clients: r,
                account: &account.account,
                partition,
                policy: self.policy,
                stats: self.stats,
            };
            kms::keys(&ctx, &mut found).await?;
            sqs::queues(&ctx, &mut found).await?;
            sns::topics(&ctx, &mut found).await?;
            secrets_manager::secrets(&ctx, &mut found).await?;
            lambda::functions(&ctx, &mut found).await?;
            ecr::repositories(&ctx, &mut found).await?;
            dynamodb::tables(&ctx, &mut found).await?;
        }
        let mut doc = Map::new();
        if let Some(bpa) = found.account_block_public_access {
            doc.insert("AccountBlockPublicAccess".into(), bpa);
        }
        doc.insert("Resources".into(), Value::Array(found.resources));
        doc.insert("Warnings".into(), json!(found.warnings));
        Ok(serde_json::to_vec_pretty(&Value::Object(doc)).unwrap_or_default())
    }

    /// The clients of `region`, when it is collected.
    fn region(&self, region: &str) -> Option<&Regional> {
        self.regions.iter().find(|r| r.region == region)
    }
}

/// The partition of the customer's role ARN (`aws`, `aws-us-gov`, `aws-cn`), for the ARNs
/// the collector builds itself (DynamoDB tables): `aws` when no role is given.
fn partition_of(account: &AccountLocator) -> &str {
    account
        .role_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(1))
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
}

/// What the regional readers need: one region's clients and the account.
struct RegionCtx<'a> {
    clients: &'a Regional,
    account: &'a str,
    partition: &'a str,
    policy: &'a RetryPolicy,
    stats: &'a RetryStats,
}

impl RegionCtx<'_> {
    fn region(&self) -> &str {
        &self.clients.region
    }
}
