//! An account's resource inventory on AWS (`resources.json`, the format
//! `accessflow_analysis::resources::ResourceInventory` reads), collected with the customer
//! role's credentials when `ACCESSFLOW_COLLECT_RESOURCES=on`:
//! - **S3**: `ListBuckets` (paged), and per bucket in the backend's region
//!   `GetBucketPolicy`, `GetPublicAccessBlock`, `GetBucketAcl` (grants to everyone) and
//!   `GetBucketTagging`;
//! - **KMS**: `ListKeys` (paged), and per customer managed key `DescribeKey`,
//!   `GetKeyPolicy`, `ListGrants` (paged) and `ListResourceTags`. AWS managed keys (the
//!   `aws/` aliases) are AWS's and skipped;
//! - **SQS**: `ListQueues` (paged), and per queue `GetQueueAttributes` (`Policy`,
//!   `QueueArn`) and `ListQueueTags`;
//! - **SNS**: `ListTopics` (paged), and per topic `GetTopicAttributes` (`Policy`) and
//!   `ListTagsForResource`.
//!
//! Throttling and 5xx are retried like the IAM calls ([`super::retry`]); every request is
//! counted under its service. Access denied on one resource, or a bucket in another region,
//! is a warning in the inventory (and so in the account's report), never a failed account.
//!
//! Not collected yet (issue 12): the account-level Block Public Access (S3 Control),
//! Secrets Manager, Lambda, DynamoDB and ECR policies, and other regions than the
//! backend's.

use aws_sdk_iam::config::Credentials;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use serde_json::{json, Map, Value};

use super::error::{classify, has_code};
use super::request_counter::RequestCounter;
use super::retry::{retry_transient, RetryPolicy, RetryStats};
use crate::ports::{AccountLocator, PortResult};

/// Error codes that mean the caller may not read the resource.
const DENIED: &[&str] = &["AccessDenied", "AccessDeniedException", "AllAccessDisabled"];

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

/// The S3, KMS, SQS and SNS clients of one customer session.
pub(crate) struct Collector<'a> {
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub region: String,
    pub policy: &'a RetryPolicy,
    pub stats: &'a RetryStats,
}

impl<'a> Collector<'a> {
    /// Clients acting with `credentials` (the assumed customer role).
    pub(crate) fn new(
        sdk: &aws_config::SdkConfig,
        credentials: Credentials,
        counter: &RequestCounter,
        force_path_style: bool,
        policy: &'a RetryPolicy,
        stats: &'a RetryStats,
    ) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .credentials_provider(credentials.clone())
            .force_path_style(force_path_style)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .interceptor(counter.interceptor("s3"))
            .build();
        let kms = aws_sdk_kms::config::Builder::from(sdk)
            .credentials_provider(credentials.clone())
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
            .interceptor(counter.interceptor("kms"))
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(sdk)
            .credentials_provider(credentials.clone())
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .interceptor(counter.interceptor("sqs"))
            .build();
        let sns = aws_sdk_sns::config::Builder::from(sdk)
            .credentials_provider(credentials)
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .interceptor(counter.interceptor("sns"))
            .build();
        Collector {
            s3: aws_sdk_s3::Client::from_conf(s3),
            kms: aws_sdk_kms::Client::from_conf(kms),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            sns: aws_sdk_sns::Client::from_conf(sns),
            region: sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".to_string()),
            policy,
            stats,
        }
    }

    /// The inventory of `account` as JSON bytes.
    pub(crate) async fn collect(&self, account: &AccountLocator) -> PortResult<Vec<u8>> {
        let mut resources = Vec::new();
        let mut warnings = Vec::new();
        self.buckets(&mut resources, &mut warnings).await?;
        self.keys(&account.account, &mut resources, &mut warnings)
            .await?;
        self.queues(&mut resources, &mut warnings).await?;
        self.topics(&mut resources, &mut warnings).await?;
        let doc = json!({"Resources": resources, "Warnings": warnings});
        Ok(serde_json::to_vec_pretty(&doc).unwrap_or_default())
    }

    async fn buckets(&self, out: &mut Vec<Value>, warnings: &mut Vec<String>) -> PortResult<()> {
        let op = "s3:ListBuckets";
        let mut token: Option<String> = None;
        let mut names = Vec::new();
        loop {
            let t = token.clone();
            let page = retry_transient(self.policy, self.stats, || async {
                got(
                    op,
                    self.s3
                        .list_buckets()
                        .set_continuation_token(t.clone())
                        .max_buckets(1000)
                        .send()
                        .await,
                    &[],
                )
            })
            .await?;
            let page = match page {
                Got::Value(p) => p,
                _ => {
                    warnings.push(
                        "S3: access denied listing the buckets (s3:ListAllMyBuckets): buckets not analysed"
                            .to_string(),
                    );
                    return Ok(());
                }
            };
            for b in page.buckets() {
                if let Some(name) = b.name() {
                    names.push((name.to_string(), b.bucket_region().map(str::to_string)));
                }
            }
            match page.continuation_token() {
                Some(next) if Some(next) != token.as_deref() => token = Some(next.to_string()),
                _ => break,
            }
        }
        names.sort();
        for (name, region) in names {
            if let Some(r) = region.filter(|r| *r != self.region) {
                warnings.push(format!(
                    "S3 bucket {name} is in {r}: only {} is collected, its policy is not analysed",
                    self.region
                ));
                continue;
            }
            out.push(self.bucket(&name, warnings).await?);
        }
        Ok(())
    }

    async fn bucket(&self, name: &str, warnings: &mut Vec<String>) -> PortResult<Value> {
        let mut denied = |what: &str| {
            warnings.push(format!(
                "S3 bucket {name}: access denied reading its {what}: not analysed"
            ))
        };
        let mut r = Map::new();
        r.insert("Arn".into(), json!(format!("arn:aws:s3:::{name}")));
        r.insert("Type".into(), json!("AWS::S3::Bucket"));
        r.insert("Region".into(), json!(self.region));

        let op = "s3:GetBucketPolicy";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.s3.get_bucket_policy().bucket(name).send().await,
                &["NoSuchBucketPolicy"],
            )
        })
        .await?
        {
            Got::Value(p) => {
                if let Some(text) = p.policy() {
                    r.insert("Policy".into(), json!(text));
                }
            }
            Got::Missing => {}
            Got::Denied => denied("policy (s3:GetBucketPolicy)"),
        }

        let op = "s3:GetPublicAccessBlock";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.s3.get_public_access_block().bucket(name).send().await,
                &["NoSuchPublicAccessBlockConfiguration"],
            )
        })
        .await?
        {
            Got::Value(p) => {
                if let Some(c) = p.public_access_block_configuration() {
                    r.insert(
                        "BlockPublicAccess".into(),
                        json!({
                            "BlockPublicAcls": c.block_public_acls().unwrap_or(false),
                            "IgnorePublicAcls": c.ignore_public_acls().unwrap_or(false),
                            "BlockPublicPolicy": c.block_public_policy().unwrap_or(false),
                            "RestrictPublicBuckets": c.restrict_public_buckets().unwrap_or(false),
                        }),
                    );
                }
            }
            Got::Missing => {}
            Got::Denied => denied("Block Public Access (s3:GetBucketPublicAccessBlock)"),
        }

        let op = "s3:GetBucketAcl";
        match retry_transient(self.policy, self.stats, || async {
            got(op, self.s3.get_bucket_acl().bucket(name).send().await, &[])
        })
        .await?
        {
            Got::Value(acl) => {
                let grants: Vec<Value> = acl
                    .grants()
                    .iter()
                    .filter_map(|g| {
                        let uri = g.grantee()?.uri()?;
                        let everyone =
                            uri.ends_with("/AllUsers") || uri.ends_with("/AuthenticatedUsers");
                        everyone.then(|| {
                            json!({"Grantee": uri, "Permission": g.permission().map(|p| p.as_str()).unwrap_or_default()})
                        })
                    })
                    .collect();
                if !grants.is_empty() {
                    r.insert("AclGrants".into(), Value::Array(grants));
                }
            }
            Got::Missing => {}
            Got::Denied => denied("ACL (s3:GetBucketAcl)"),
        }

        let op = "s3:GetBucketTagging";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.s3.get_bucket_tagging().bucket(name).send().await,
                &["NoSuchTagSet", "NoSuchTagSetError"],
            )
        })
        .await?
        {
            Got::Value(t) => {
                insert_tags(&mut r, t.tag_set().iter().map(|t| (t.key(), t.value())));
            }
            Got::Missing => {}
            Got::Denied => denied("tags (s3:GetBucketTagging)"),
        }
        Ok(Value::Object(r))
    }

    async fn keys(
        &self,
        account: &str,
        out: &mut Vec<Value>,
        warnings: &mut Vec<String>,
    ) -> PortResult<()> {
        let op = "kms:ListKeys";
        let mut marker: Option<String> = None;
        let mut ids = Vec::new();
        loop {
            let m = marker.clone();
            let page = retry_transient(self.policy, self.stats, || async {
                got(
                    op,
                    self.kms
                        .list_keys()
                        .set_marker(m.clone())
                        .limit(1000)
                        .send()
                        .await,
                    &[],
                )
            })
            .await?;
            let page = match page {
                Got::Value(p) => p,
                _ => {
                    warnings.push(
                        "KMS: access denied listing the keys (kms:ListKeys): keys not analysed"
                            .to_string(),
                    );
                    return Ok(());
                }
            };
            ids.extend(
                page.keys()
                    .iter()
                    .filter_map(|k| k.key_id().map(str::to_string)),
            );
            match page.next_marker() {
                Some(next) if page.truncated() && Some(next) != marker.as_deref() => {
                    marker = Some(next.to_string())
                }
                _ => break,
            }
        }
        ids.sort();
        for id in ids {
            if let Some(key) = self.key(account, &id, warnings).await? {
                out.push(key);
            }
        }
        Ok(())
    }

    async fn key(
        &self,
        account: &str,
        id: &str,
        warnings: &mut Vec<String>,
    ) -> PortResult<Option<Value>> {
        let op = "kms:DescribeKey";
        let meta = match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.kms.describe_key().key_id(id).send().await,
                &["NotFoundException"],
            )
        })
        .await?
        {
            Got::Value(d) => d.key_metadata().cloned(),
            Got::Missing => return Ok(None),
            Got::Denied => {
                warnings.push(format!(
                    "KMS key {id}: access denied describing it (kms:DescribeKey): not analysed"
                ));
                return Ok(None);
            }
        };
        let Some(meta) = meta else { return Ok(None) };
        if meta.key_manager().map(|m| m.as_str()) == Some("AWS") {
            return Ok(None); // AWS managed (aws/ aliases): AWS's, not the account's
        }
        let arn = meta
            .arn()
            .map(str::to_string)
            .unwrap_or_else(|| format!("arn:aws:kms:{}:{account}:key/{id}", self.region));
        let mut r = Map::new();
        r.insert("Arn".into(), json!(arn));
        r.insert("Type".into(), json!("AWS::KMS::Key"));
        r.insert("Region".into(), json!(self.region));

        let op = "kms:GetKeyPolicy";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.kms
                    .get_key_policy()
                    .key_id(id)
                    .policy_name("default")
                    .send()
                    .await,
                &[],
            )
        })
        .await?
        {
            Got::Value(p) => {
                if let Some(text) = p.policy() {
                    r.insert("Policy".into(), json!(text));
                }
            }
            Got::Missing => {}
            Got::Denied => warnings.push(format!(
                "KMS key {arn}: access denied reading its key policy (kms:GetKeyPolicy): not analysed"
            )),
        }

        let op = "kms:ListGrants";
        let mut grants = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let m = marker.clone();
            match retry_transient(self.policy, self.stats, || async {
                got(
                    op,
                    self.kms
                        .list_grants()
                        .key_id(id)
                        .set_marker(m.clone())
                        .limit(100)
                        .send()
                        .await,
                    &[],
                )
            })
            .await?
            {
                Got::Value(page) => {
                    for g in page.grants() {
                        if let Some(p) = g.grantee_principal() {
                            let ops: Vec<&str> =
                                g.operations().iter().map(|o| o.as_str()).collect();
                            grants.push(json!({"GranteePrincipal": p, "Operations": ops}));
                        }
                    }
                    match page.next_marker() {
                        Some(next) if page.truncated() && Some(next) != marker.as_deref() => {
                            marker = Some(next.to_string())
                        }
                        _ => break,
                    }
                }
                Got::Missing => break,
                Got::Denied => {
                    warnings.push(format!(
                        "KMS key {arn}: access denied listing its grants (kms:ListGrants): not analysed"
                    ));
                    break;
                }
            }
        }
        if !grants.is_empty() {
            r.insert("Grants".into(), Value::Array(grants));
        }

        let op = "kms:ListResourceTags";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.kms.list_resource_tags().key_id(id).send().await,
                &[],
            )
        })
        .await?
        {
            Got::Value(t) => {
                insert_tags(
                    &mut r,
                    t.tags().iter().map(|t| (t.tag_key(), t.tag_value())),
                );
            }
            Got::Missing => {}
            Got::Denied => warnings.push(format!(
                "KMS key {arn}: access denied reading its tags (kms:ListResourceTags)"
            )),
        }
        Ok(Some(Value::Object(r)))
    }

    async fn queues(&self, out: &mut Vec<Value>, warnings: &mut Vec<String>) -> PortResult<()> {
        let op = "sqs:ListQueues";
        let mut token: Option<String> = None;
        let mut urls = Vec::new();
        loop {
            let t = token.clone();
            let page = retry_transient(self.policy, self.stats, || async {
                got(
                    op,
                    self.sqs
                        .list_queues()
                        .set_next_token(t.clone())
                        .max_results(1000)
                        .send()
                        .await,
                    &[],
                )
            })
            .await?;
            let Got::Value(page) = page else {
                warnings.push(
                    "SQS: access denied listing the queues (sqs:ListQueues): queues not analysed"
                        .to_string(),
                );
                return Ok(());
            };
            urls.extend(page.queue_urls().iter().cloned());
            match page.next_token() {
                Some(next) if Some(next) != token.as_deref() => token = Some(next.to_string()),
                _ => break,
            }
        }
        urls.sort();
        for url in urls {
            if let Some(q) = self.queue(&url, warnings).await? {
                out.push(q);
            }
        }
        Ok(())
    }

    async fn queue(&self, url: &str, warnings: &mut Vec<String>) -> PortResult<Option<Value>> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let op = "sqs:GetQueueAttributes";
        let attributes = match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::Policy)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await,
                &[
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "QueueDoesNotExist",
                ],
            )
        })
        .await?
        {
            Got::Value(a) => a.attributes().cloned().unwrap_or_default(),
            Got::Missing => return Ok(None), // deleted since it was listed
            Got::Denied => {
                warnings.push(format!(
                    "SQS queue {url}: access denied reading its attributes (sqs:GetQueueAttributes): not analysed"
                ));
                return Ok(None);
            }
        };
        let Some(arn) = attributes.get(&QueueAttributeName::QueueArn).cloned() else {
            warnings.push(format!(
                "SQS queue {url}: no QueueArn attribute: not analysed"
            ));
            return Ok(None);
        };
        let mut r = Map::new();
        r.insert("Arn".into(), json!(arn));
        r.insert("Type".into(), json!("AWS::SQS::Queue"));
        r.insert("Region".into(), json!(self.region));
        if let Some(policy) = attributes.get(&QueueAttributeName::Policy) {
            r.insert("Policy".into(), json!(policy));
        }
        let op = "sqs:ListQueueTags";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.sqs.list_queue_tags().queue_url(url).send().await,
                &[],
            )
        })
        .await?
        {
            Got::Value(t) => {
                insert_tags(
                    &mut r,
                    t.tags()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
            Got::Missing => {}
            Got::Denied => warnings.push(format!(
                "SQS queue {arn}: access denied reading its tags (sqs:ListQueueTags)"
            )),
        }
        Ok(Some(Value::Object(r)))
    }

    async fn topics(&self, out: &mut Vec<Value>, warnings: &mut Vec<String>) -> PortResult<()> {
        let op = "sns:ListTopics";
        let mut token: Option<String> = None;
        let mut arns = Vec::new();
        loop {
            let t = token.clone();
            let page = retry_transient(self.policy, self.stats, || async {
                got(
                    op,
                    self.sns
                        .list_topics()
                        .set_next_token(t.clone())
                        .send()
                        .await,
                    &[],
                )
            })
            .await?;
            let Got::Value(page) = page else {
                warnings.push(
                    "SNS: access denied listing the topics (sns:ListTopics): topics not analysed"
                        .to_string(),
                );
                return Ok(());
            };
            arns.extend(
                page.topics()
                    .iter()
                    .filter_map(|t| t.topic_arn().map(str::to_string)),
            );
            match page.next_token() {
                Some(next) if Some(next) != token.as_deref() => token = Some(next.to_string()),
                _ => break,
            }
        }
        arns.sort();
        for arn in arns {
            if let Some(t) = self.topic(&arn, warnings).await? {
                out.push(t);
            }
        }
        Ok(())
    }

    async fn topic(&self, arn: &str, warnings: &mut Vec<String>) -> PortResult<Option<Value>> {
        let op = "sns:GetTopicAttributes";
        let attributes = match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.sns.get_topic_attributes().topic_arn(arn).send().await,
                &["NotFound"],
            )
        })
        .await?
        {
            Got::Value(a) => a.attributes().cloned().unwrap_or_default(),
            Got::Missing => return Ok(None), // deleted since it was listed
            Got::Denied => {
                warnings.push(format!(
                    "SNS topic {arn}: access denied reading its attributes (sns:GetTopicAttributes): not analysed"
                ));
                return Ok(None);
            }
        };
        let mut r = Map::new();
        r.insert("Arn".into(), json!(arn));
        r.insert("Type".into(), json!("AWS::SNS::Topic"));
        r.insert("Region".into(), json!(self.region));
        if let Some(policy) = attributes.get("Policy") {
            r.insert("Policy".into(), json!(policy));
        }
        let op = "sns:ListTagsForResource";
        match retry_transient(self.policy, self.stats, || async {
            got(
                op,
                self.sns
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .send()
                    .await,
                &[],
            )
        })
        .await?
        {
            Got::Value(t) => {
                insert_tags(&mut r, t.tags().iter().map(|t| (t.key(), t.value())));
            }
            Got::Missing => {}
            Got::Denied => warnings.push(format!(
                "SNS topic {arn}: access denied reading its tags (sns:ListTagsForResource)"
            )),
        }
        Ok(Some(Value::Object(r)))
    }
}
