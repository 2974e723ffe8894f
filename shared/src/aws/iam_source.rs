//! The IAM source on AWS: STS `AssumeRole` (with the customer's ExternalId) into
//! [`AccountLocator::role_arn`], then, with those temporary credentials:
//! - `GetAccountAuthorizationDetails`, every page (following `Marker` while `IsTruncated`),
//!   merged into one document in the AWS CLI's JSON shape (`UserDetailList`,
//!   `GroupDetailList`, `RoleDetailList`, `Policies`; PascalCase fields; policy documents
//!   decoded to JSON objects; dates as `YYYY-MM-DDTHH:MM:SS+00:00`);
//! - the credential report (`GenerateCredentialReport` polled until `COMPLETE`, then
//!   `GetCredentialReport`);
//! - per principal, `GenerateServiceLastAccessedDetails` polled through
//!   `GetServiceLastAccessedDetails` until `COMPLETED`, pages merged.
//!
//! The SDK's own retries are off on these clients: throttling (the customer's IAM rate
//! limits) and 5xx are retried here with exponential backoff and jitter ([`super::retry`])
//! and counted. Access denied by the customer's role is `Permanent`.
//!
//! Emulator gaps handled here (moto 5.2.x):
//! - policy documents come back URL-encoded (as on AWS) or as raw JSON
//!   (`AssumeRolePolicyDocument`, policy versions): both are decoded;
//! - `Policies` entries lack `PolicyName`/`PolicyId`: the name is taken from the ARN;
//! - the service-last-accessed jobs are not implemented: moto answers HTTP 500 without an
//!   AWS error code. That answer is indistinguishable from a real AWS outage, so it is
//!   treated as one (transient, retried, then an error): guessing "not implemented" there
//!   would silently drop the unused-access findings of a real night. Emulators that lack
//!   the API are run with `ACCESSFLOW_IAM_LAST_ACCESSED=off` instead, and `last_accessed`
//!   then returns `Ok(None)` ("no usage data") without calling IAM. Only an explicit 501 or
//!   `NotImplemented` error code also means "no usage data".
//!
//! After `AssumeRole`, the assumed identity's account must be the account being
//! collected: a tenants file that pairs one customer's account id with a role in another
//! account can never put that other account's IAM data into the report.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_iam::config::Credentials;
use aws_sdk_iam::primitives::DateTime;
use aws_sdk_iam::types::{
    AttachedPermissionsBoundary, AttachedPolicy, JobStatusType, PolicyDetail, ReportStateType, Tag,
};
use aws_sdk_iam::Client as IamClient;
use serde_json::{json, Map, Value};

use super::error::{classify, code, status};
use super::request_counter::RequestCounter;
use super::retry::{retry_transient, RetryPolicy, RetryStats};
use crate::ports::{AccountLocator, AccountSnapshotRaw, IamSource, PortError, PortResult};

/// How long to wait for a credential report or a last-accessed job.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// (account, role ARN, ExternalId) of a cached session.
type SessionKey = (String, String, Option<String>);

struct CachedSession {
    client: IamClient,
    credentials: Credentials,
    expires: SystemTime,
}

/// The STS + IAM source.
pub struct AwsIamSource {
    sdk: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
    counter: RequestCounter,
    policy: RetryPolicy,
    stats: RetryStats,
    session_name: String,
    /// `false` (`ACCESSFLOW_IAM_LAST_ACCESSED=off`): no service-last-accessed jobs.
    last_accessed_enabled: bool,
    /// `Some(force_path_style)` (`ACCESSFLOW_COLLECT_RESOURCES=on`): the resource inventory
    /// (S3, KMS) is collected too, see [`super::resource_inventory`].
    collect_resources: Option<bool>,
    /// Keyed by (account, role ARN, ExternalId): a session checked for one account is never
    /// reused for another.
    sessions: Mutex<HashMap<SessionKey, CachedSession>>,
}

fn permanent(op: &'static str, message: impl Into<String>) -> PortError {
    PortError::Permanent {
        op,
        message: message.into(),
    }
}

/// Formats an AWS timestamp the way the AWS CLI prints it.
pub(crate) fn iso(dt: &DateTime) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(dt.secs())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn date(dt: Option<&DateTime>) -> Value {
    dt.map(|d| Value::String(iso(d))).unwrap_or(Value::Null)
}

/// Percent-decoding (RFC 3986, as IAM encodes policy documents; `+` stays `+`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A policy document as IAM returns it (URL-encoded JSON, or raw JSON from some emulators)
/// turned into JSON. A document that is neither stays a string, for the analysis to flag.
pub fn decode_policy_document(raw: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        if v.is_object() {
            return v;
        }
    }
    let decoded = percent_decode(raw);
    serde_json::from_str::<Value>(&decoded).unwrap_or(Value::String(decoded))
}

fn opt(v: Option<&str>) -> Value {
    v.map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null)
}

/// Builds a JSON object, leaving out null fields (as the CLI does for absent ones).
fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut map = Map::new();
    for (k, v) in fields {
        if !v.is_null() {
            map.insert(k.to_string(), v);
        }
    }
    Value::Object(map)
}

fn inline_policies(list: &[PolicyDetail]) -> Value {
    Value::Array(
        list.iter()
            .map(|p| {
                object(vec![
                    ("PolicyName", opt(p.policy_name())),
                    (
                        "PolicyDocument",
                        p.policy_document()
                            .map(decode_policy_document)
                            .unwrap_or(Value::Null),
                    ),
                ])
            })
            .collect(),
    )
}

fn attached(list: &[AttachedPolicy]) -> Value {
    Value::Array(
        list.iter()
            .map(|p| {
                object(vec![
                    ("PolicyName", opt(p.policy_name())),
                    ("PolicyArn", opt(p.policy_arn())),
                ])
            })
            .collect(),
    )
}

fn boundary(b: Option<&AttachedPermissionsBoundary>) -> Value {
    match b {
        Some(b) if b.permissions_boundary_arn().is_some() => object(vec![
            (
                "PermissionsBoundaryType",
                b.permissions_boundary_type()
                    .map(|t| Value::String(t.as_str().to_string()))
                    .unwrap_or_else(|| json!("PermissionsBoundaryPolicy")),
            ),
            ("PermissionsBoundaryArn", opt(b.permissions_boundary_arn())),
        ]),
        _ => Value::Null,
    }
}

fn tags(list: &[Tag]) -> Value {
    Value::Array(
        list.iter()
            .map(|t| json!({"Key": t.key(), "Value": t.value()}))
            .collect(),
    )
}

/// One page of `GetAccountAuthorizationDetails` in the CLI's JSON shape.
fn page_json(
    out: &aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput,
) -> [Vec<Value>; 4] {
    let users = out
        .user_detail_list()
        .iter()
        .map(|u| {
            object(vec![
                ("Path", opt(u.path())),
                ("UserName", opt(u.user_name())),
                ("UserId", opt(u.user_id())),
                ("Arn", opt(u.arn())),
                ("CreateDate", date(u.create_date())),
                ("UserPolicyList", inline_policies(u.user_policy_list())),
                ("GroupList", json!(u.group_list())),
                (
                    "AttachedManagedPolicies",
                    attached(u.attached_managed_policies()),
                ),
                ("PermissionsBoundary", boundary(u.permissions_boundary())),
                ("Tags", tags(u.tags())),
            ])
        })
        .collect();
    let groups = out
        .group_detail_list()
        .iter()
        .map(|g| {
            object(vec![
                ("Path", opt(g.path())),
                ("GroupName", opt(g.group_name())),
                ("GroupId", opt(g.group_id())),
                ("Arn", opt(g.arn())),
                ("CreateDate", date(g.create_date())),
                ("GroupPolicyList", inline_policies(g.group_policy_list())),
                (
                    "AttachedManagedPolicies",
                    attached(g.attached_managed_policies()),
                ),
            ])
        })
        .collect();
    let roles = out
        .role_detail_list()
        .iter()
        .map(|r| {
            let profiles: Vec<Value> = r
                .instance_profile_list()
                .iter()
                .map(|p| {
                    json!({
                        "Path": p.path(),
                        "InstanceProfileName": p.instance_profile_name(),
                        "InstanceProfileId": p.instance_profile_id(),
                        "Arn": p.arn(),
                        "CreateDate": iso(p.create_date()),
                        "Roles": p.roles().iter().map(|role| json!({
                            "RoleName": role.role_name(),
                            "RoleId": role.role_id(),
                            "Arn": role.arn(),
                            "Path": role.path(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let last_used = match r.role_last_used() {
                Some(l) => object(vec![
                    ("LastUsedDate", date(l.last_used_date())),
                    ("Region", opt(l.region())),
                ]),
                None => json!({}),
            };
            object(vec![
                ("Path", opt(r.path())),
                ("RoleName", opt(r.role_name())),
                ("RoleId", opt(r.role_id())),
                ("Arn", opt(r.arn())),
                ("CreateDate", date(r.create_date())),
                (
                    "AssumeRolePolicyDocument",
                    r.assume_role_policy_document()
                        .map(decode_policy_document)
                        .unwrap_or(Value::Null),
                ),
                ("InstanceProfileList", Value::Array(profiles)),
                ("RolePolicyList", inline_policies(r.role_policy_list())),
                (
                    "AttachedManagedPolicies",
                    attached(r.attached_managed_policies()),
                ),
                ("PermissionsBoundary", boundary(r.permissions_boundary())),
                ("Tags", tags(r.tags())),
                ("RoleLastUsed", last_used),
            ])
        })
        .collect();
    let policies = out
        .policies()
        .iter()
        .map(|p| {
            let name = p.policy_name().map(str::to_string).or_else(|| {
                p.arn()
                    .and_then(|a| a.rsplit('/').next())
                    .map(str::to_string)
            });
            let versions: Vec<Value> = p
                .policy_version_list()
                .iter()
                .map(|v| {
                    object(vec![
                        (
                            "Document",
                            v.document()
                                .map(decode_policy_document)
                                .unwrap_or(Value::Null),
                        ),
                        ("VersionId", opt(v.version_id())),
                        ("IsDefaultVersion", Value::Bool(v.is_default_version())),
                        ("CreateDate", date(v.create_date())),
                    ])
                })
                .collect();
            object(vec![
                ("PolicyName", name.map(Value::String).unwrap_or(Value::Null)),
                ("PolicyId", opt(p.policy_id())),
                ("Arn", opt(p.arn())),
                ("Path", opt(p.path())),
                ("DefaultVersionId", opt(p.default_version_id())),
                (
                    "AttachmentCount",
                    p.attachment_count().map(Value::from).unwrap_or(Value::Null),
                ),
                (
                    "PermissionsBoundaryUsageCount",
                    p.permissions_boundary_usage_count()
                        .map(Value::from)
                        .unwrap_or(Value::Null),
                ),
                ("IsAttachable", Value::Bool(p.is_attachable())),
                ("Description", opt(p.description())),
                ("CreateDate", date(p.create_date())),
                ("UpdateDate", date(p.update_date())),
                ("PolicyVersionList", Value::Array(versions)),
            ])
        })
        .collect();
    [users, groups, roles, policies]
}

/// Merges pages into one document; entries repeated across pages (emulators that ignore
/// `Marker`) are kept once, by ARN.
pub fn merge_pages(pages: Vec<[Vec<Value>; 4]>) -> Value {
    let keys = [
        "UserDetailList",
        "GroupDetailList",
        "RoleDetailList",
        "Policies",
    ];
    let mut merged: [Vec<Value>; 4] = Default::default();
    let mut seen: [std::collections::HashSet<String>; 4] = Default::default();
    for page in pages {
        for (i, entries) in page.into_iter().enumerate() {
            for e in entries {
                let arn = e["Arn"].as_str().unwrap_or_default().to_string();
                if arn.is_empty() || seen[i].insert(arn) {
                    merged[i].push(e);
                }
            }
        }
    }
    let mut doc = Map::new();
    for (k, list) in keys.iter().zip(merged) {
        doc.insert(k.to_string(), Value::Array(list));
    }
    Value::Object(doc)
}

/// Whether an error means "this API is not implemented" (emulators).
fn not_implemented<E: aws_sdk_iam::error::ProvideErrorMetadata>(
    err: &aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
) -> bool {
    let code = code(err);
    matches!(status(err), Some(501))
        || matches!(
            code.as_deref(),
            Some("NotImplemented") | Some("NotImplementedException")
        )
}

/// The account id in an ARN (`arn:partition:service:region:account:resource`).
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

impl AwsIamSource {
    pub(crate) fn new(
        sdk: aws_config::SdkConfig,
        sts: aws_sdk_sts::Client,
        counter: RequestCounter,
        policy: RetryPolicy,
        session_name: String,
        last_accessed_enabled: bool,
        collect_resources: Option<bool>,
    ) -> Self {
        AwsIamSource {
            sdk,
            sts,
            counter,
            policy,
            stats: RetryStats::default(),
            session_name,
            last_accessed_enabled,
            collect_resources,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Retry counts (throttling included) of the IAM/STS calls.
    pub fn retry_stats(&self) -> RetryStats {
        self.stats.clone()
    }

    /// An IAM client acting as the customer's role in the account (cached until shortly
    /// before expiry): for tools that need more than the port, like [`super::seed`].
    pub async fn iam_client(&self, account: &AccountLocator) -> PortResult<IamClient> {
        self.session(account).await
    }

    /// An IAM client acting as the customer's role (cached until shortly before expiry).
    async fn session(&self, account: &AccountLocator) -> PortResult<IamClient> {
        Ok(self.session_parts(account).await?.0)
    }

    /// The IAM client and the credentials of the customer role's session (cached).
    async fn session_parts(
        &self,
        account: &AccountLocator,
    ) -> PortResult<(IamClient, Credentials)> {
        let op = "sts:AssumeRole";
        let role_arn = account.role_arn.clone().ok_or_else(|| PortError::Invalid {
            op,
            message: format!(
                "account {} of customer {} has no role_arn to assume",
                account.account, account.customer
            ),
        })?;
        let cache_key = (
            account.account.clone(),
            role_arn.clone(),
            account.external_id.clone(),
        );
        if let Some(s) = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
        {
            if s.expires > SystemTime::now() + Duration::from_secs(300) {
                return Ok((s.client.clone(), s.credentials.clone()));
            }
        }
        let session_name = format!("{}-{}", self.session_name, account.account)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(*c))
            .take(64)
            .collect::<String>();
        let out = retry_transient(&self.policy, &self.stats, || async {
            self.sts
                .assume_role()
                .role_arn(&role_arn)
                .role_session_name(&session_name)
                .set_external_id(account.external_id.clone())
                .duration_seconds(3600)
                .send()
                .await
                .map_err(|e| classify(op, e))
        })
        .await?;
        let assumed = out.assumed_role_user().map(|u| u.arn()).unwrap_or_default();
        if arn_account(assumed) != Some(account.account.as_str()) {
            return Err(PortError::Invalid {
                op,
                message: format!(
                    "assuming {role_arn} for account {} of customer {} gave the identity \
                     `{assumed}`, which is not in account {}: refusing to collect another \
                     account's data; fix role_arn in the tenants file",
                    account.account, account.customer, account.account
                ),
            });
        }
        let creds = out
            .credentials()
            .ok_or_else(|| permanent(op, "AssumeRole returned no credentials"))?;
        let expires =
            SystemTime::UNIX_EPOCH + Duration::from_secs(creds.expiration().secs().max(0) as u64);
        let provider = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            Some(expires),
            "accessflow-assume-role",
        );
        let config = aws_sdk_iam::config::Builder::from(&self.sdk)
            .credentials_provider(provider.clone())
            .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
            .interceptor(self.counter.customer_role_interceptor("iam"))
            .build();
        let client = IamClient::from_conf(config);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                cache_key,
                CachedSession {
                    client: client.clone(),
                    credentials: provider.clone(),
                    expires,
                },
            );
        Ok((client, provider))
    }

    async fn authorization_details(&self, iam: &IamClient) -> PortResult<Value> {
        let op = "iam:GetAccountAuthorizationDetails";
        let mut pages = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let m = marker.clone();
            let out = retry_transient(&self.policy, &self.stats, || async {
                iam.get_account_authorization_details()
                    .set_marker(m.clone())
                    .max_items(1000)
                    .send()
                    .await
                    .map_err(|e| classify(op, e))
            })
            .await?;
            pages.push(page_json(&out));
            match out.marker() {
                Some(next) if out.is_truncated() && Some(next) != marker.as_deref() => {
                    marker = Some(next.to_string())
                }
                _ => break,
            }
            if pages.len() > 10_000 {
                return Err(permanent(op, "more than 10,000 pages: giving up"));
            }
        }
        Ok(merge_pages(pages))
    }

    async fn credential_report(&self, iam: &IamClient) -> PortResult<Vec<u8>> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let out = retry_transient(&self.policy, &self.stats, || async {
                iam.generate_credential_report()
                    .send()
                    .await
                    .map_err(|e| classify("iam:GenerateCredentialReport", e))
            })
            .await?;
            if out.state() == Some(&ReportStateType::Complete) {
                break;
            }
            if started.elapsed() > JOB_TIMEOUT {
                return Err(PortError::Transient {
                    op: "iam:GenerateCredentialReport",
                    message: "the credential report did not complete in time".into(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        let out = retry_transient(&self.policy, &self.stats, || async {
            iam.get_credential_report()
                .send()
                .await
                .map_err(|e| classify("iam:GetCredentialReport", e))
        })
        .await?;
        Ok(out
            .content()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default())
    }
}

#[async_trait]
impl IamSource for AwsIamSource {
    async fn fetch_account(&self, account: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        let (iam, credentials) = self.session_parts(account).await?;
        let details = self.authorization_details(&iam).await?;
        let credential_report = self.credential_report(&iam).await?;
        let authorization_details =
            serde_json::to_vec_pretty(&details).map_err(|e| PortError::Permanent {
                op: "iam:GetAccountAuthorizationDetails",
                message: e.to_string(),
            })?;
        Ok(AccountSnapshotRaw {
            authorization_details,
            credential_report,
            resources: match self.collect_resources {
                Some(force_path_style) => Some(
                    super::resource_inventory::Collector::new(
                        &self.sdk,
                        account,
                        credentials,
                        &self.counter,
                        force_path_style,
                        &self.policy,
                        &self.stats,
                    )
                    .collect(account)
                    .await?,
                ),
                None => None,
            },
        })
    }

    async fn last_accessed(
        &self,
        account: &AccountLocator,
        principal_arn: &str,
    ) -> PortResult<Option<Vec<u8>>> {
        if !self.last_accessed_enabled {
            return Ok(None);
        }
        let iam = self.session(account).await?;
        let op = "iam:GenerateServiceLastAccessedDetails";
        let generated = retry_transient(&self.policy, &self.stats, || async {
            match iam
                .generate_service_last_accessed_details()
                .arn(principal_arn)
                .send()
                .await
            {
                Ok(out) => Ok(Some(out.job_id().unwrap_or_default().to_string())),
                Err(e) if not_implemented(&e) => Ok(None),
                Err(e) if super::error::has_code(&e, &["NoSuchEntity"]) => {
                    Err(PortError::NotFound {
                        what: "principal",
                        name: principal_arn.to_string(),
                    })
                }
                Err(e) => Err(classify(op, e)),
            }
        })
        .await?;
        let Some(job_id) = generated else {
            tracing::debug!(
                principal_arn,
                "service-last-accessed jobs are not implemented by this endpoint"
            );
            return Ok(None);
        };
        let op = "iam:GetServiceLastAccessedDetails";
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        let mut services = Vec::new();
        let mut marker: Option<String> = None;
        let mut header = Map::new();
        loop {
            let m = marker.clone();
            let out = retry_transient(&self.policy, &self.stats, || async {
                iam.get_service_last_accessed_details()
                    .job_id(&job_id)
                    .set_marker(m.clone())
                    .send()
                    .await
                    .map_err(|e| classify(op, e))
            })
            .await?;
            match out.job_status() {
                JobStatusType::InProgress => {
                    if started.elapsed() > JOB_TIMEOUT {
                        return Err(PortError::Transient {
                            op,
                            message: format!("job {job_id} did not complete in time"),
                        });
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    continue;
                }
                JobStatusType::Failed => {
                    return Err(PortError::Transient {
                        op,
                        message: format!(
                            "job {job_id} failed: {}",
                            out.error().map(|e| e.message()).unwrap_or_default()
                        ),
                    })
                }
                _ => {}
            }
            header.insert("JobStatus".into(), json!("COMPLETED"));
            if let Some(t) = out.job_type() {
                header.insert("JobType".into(), json!(t.as_str()));
            }
            header.insert(
                "JobCreationDate".into(),
                json!(iso(out.job_creation_date())),
            );
            header.insert(
                "JobCompletionDate".into(),
                json!(iso(out.job_completion_date())),
            );
            for s in out.services_last_accessed() {
                let actions: Vec<Value> = s
                    .tracked_actions_last_accessed()
                    .iter()
                    .map(|a| {
                        object(vec![
                            ("ActionName", opt(a.action_name())),
                            ("LastAccessedEntity", opt(a.last_accessed_entity())),
                            ("LastAccessedTime", date(a.last_accessed_time())),
                            ("LastAccessedRegion", opt(a.last_accessed_region())),
                        ])
                    })
                    .collect();
                services.push(object(vec![
                    ("ServiceName", json!(s.service_name())),
                    ("LastAuthenticated", date(s.last_authenticated())),
                    ("ServiceNamespace", json!(s.service_namespace())),
                    (
                        "LastAuthenticatedEntity",
                        opt(s.last_authenticated_entity()),
                    ),
                    (
                        "LastAuthenticatedRegion",
                        opt(s.last_authenticated_region()),
                    ),
                    (
                        "TotalAuthenticatedEntities",
                        s.total_authenticated_entities()
                            .map(Value::from)
                            .unwrap_or(Value::Null),
                    ),
                    (
                        "TrackedActionsLastAccessed",
                        if actions.is_empty() {
                            Value::Null
                        } else {
                            Value::Array(actions)
                        },
                    ),
                ]));
            }
            match out.marker() {
                Some(next) if out.is_truncated() => marker = Some(next.to_string()),
                _ => break,
            }
        }
        header.insert("ServicesLastAccessed".into(), Value::Array(services));
        header.insert("IsTruncated".into(), json!(false));
        serde_json::to_vec_pretty(&Value::Object(header))
            .map(Some)
            .map_err(|e| permanent(op, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_decode_both_ways() {
        let raw = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        assert_eq!(decode_policy_document(raw), decode_policy_document(encoded));
        assert_eq!(
            decode_policy_document(raw)["Statement"][0]["Action"],
            "s3:*"
        );
        assert_eq!(
            decode_policy_document("not json"),
            Value::String("not json".into())
        );
        assert_eq!(percent_decode("a%20b+c%"), "a b+c%");
    }

    #[test]
    fn dates_look_like_the_cli() {
        assert_eq!(
            iso(&DateTime::from_secs(1_576_696_208)),
            "2019-12-18T19:10:08+00:00"
        );
    }

    #[test]
    fn pages_merge_without_repeats() {
        let u = |arn: &str| json!({"Arn": arn});
        let doc = merge_pages(vec![
            [vec![u("a")], vec![], vec![u("r")], vec![]],
            [vec![u("a"), u("b")], vec![u("g")], vec![], vec![u("p")]],
        ]);
        assert_eq!(doc["UserDetailList"].as_array().unwrap().len(), 2);
        assert_eq!(doc["GroupDetailList"].as_array().unwrap().len(), 1);
        assert_eq!(doc["Policies"].as_array().unwrap().len(), 1);
    }
}
