//! Seeds an account's IAM from an authorization-details document (the JSON of
//! `aws iam get-account-authorization-details`, as the embedded backend's fixtures hold it):
//! customer managed policies, groups, users, roles, inline policies, attachments, group
//! memberships, permission boundaries and tags.
//!
//! For emulators and test accounts: end-to-end tests load a fixture account into moto and
//! then read it back through the AWS IAM source. Account ids in policy and boundary ARNs are
//! rewritten to the target account; AWS managed policies (`arn:aws:iam::aws:policy/...`) are
//! attached as they are (moto has them with `MOTO_IAM_LOAD_MANAGED_POLICIES=true`). Entities
//! that already exist are left as they are, so seeding twice is harmless.
//!
//! The accounts the AWS tests seed are such documents too, in `testkit/fixtures/`
//! ([`load_fixture`]), so a test's IAM data reads as data rather than as a list of calls.
//!
//! moto 5.2 ignores a user's `PermissionsBoundary` (and has no `PutUserPermissionsBoundary`):
//! user boundaries are lost there; role boundaries are kept.

use aws_sdk_iam::types::Tag;
use aws_sdk_iam::Client;
use serde_json::Value;

use accessflow_shared::aws::decode_policy_document;
use accessflow_shared::aws::error::{classify, has_code};
use accessflow_shared::ports::{PortError, PortResult};

/// Reads an authorization-details document from `testkit/fixtures/<name>`.
pub fn load_fixture(name: &str) -> anyhow::Result<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read fixture {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("fixture {} is not JSON: {e}", path.display()))
}

/// Seeds account `account` of the moto server with the fixture `name` (see
/// [`load_fixture`]), through a client acting in that account.
pub async fn seed_fixture(account: &str, name: &str) -> anyhow::Result<SeedSummary> {
    let details = load_fixture(name)?;
    let iam = crate::moto::iam_in_account(account).await;
    seed_account(&iam, account, &details)
        .await
        .map_err(|e| anyhow::anyhow!("seeding {name} into account {account}: {e}"))
}

/// What was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedSummary {
    pub policies: usize,
    pub groups: usize,
    pub users: usize,
    pub roles: usize,
}

const EXISTS: &[&str] = &["EntityAlreadyExists", "EntityAlreadyExistsException"];

fn s<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A policy document as a JSON string, whether the input holds an object or a string.
fn document(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(raw)) => decode_policy_document(raw).to_string(),
        Some(other) => other.to_string(),
        None => r#"{"Version":"2012-10-17","Statement":[]}"#.to_string(),
    }
}

/// Rewrites `arn:aws:iam::<other account>:` to the target account (AWS managed policies,
/// `arn:aws:iam::aws:`, stay).
fn rebase(arn: &str, account: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 && parts[2] == "iam" && parts[4] != "aws" && !parts[4].is_empty() {
        parts[4] = account;
    }
    parts.join(":")
}

/// The entity's tags; `None` when it has none (an empty tag list is not sent at all).
fn tags(v: &Value) -> Option<Vec<Tag>> {
    let tags: Vec<Tag> = list(v, "Tags")
        .iter()
        .filter_map(|t| {
            Tag::builder()
                .key(s(t, "Key")?)
                .value(s(t, "Value").unwrap_or_default())
                .build()
                .ok()
        })
        .collect();
    (!tags.is_empty()).then_some(tags)
}

/// Ignores "already exists" so seeding is idempotent.
fn tolerate<T, E>(
    op: &'static str,
    result: Result<T, aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>>,
) -> PortResult<bool>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if has_code(&e, EXISTS) => Ok(false),
        Err(e) => Err(classify(op, e)),
    }
}

/// Creates everything in `details` through `iam`, a client acting in account `account`.
pub async fn seed_account(iam: &Client, account: &str, details: &Value) -> PortResult<SeedSummary> {
    if !details.is_object() {
        return Err(PortError::Invalid {
            op: "seed",
            message: "authorization details must be a JSON object".into(),
        });
    }
    let mut summary = SeedSummary::default();

    for p in list(details, "Policies") {
        let Some(arn) = s(p, "Arn") else { continue };
        if arn.starts_with("arn:aws:iam::aws:") {
            continue; // AWS managed: exists already
        }
        let name = s(p, "PolicyName")
            .map(str::to_string)
            .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default().to_string());
        let default = list(p, "PolicyVersionList")
            .iter()
            .find(|v| v.get("IsDefaultVersion") == Some(&Value::Bool(true)))
            .or_else(|| list(p, "PolicyVersionList").first());
        let mut request = iam
            .create_policy()
            .policy_name(name)
            .policy_document(document(default.and_then(|v| v.get("Document"))));
        if let Some(path) = s(p, "Path") {
            request = request.path(path);
        }
        if tolerate("iam:CreatePolicy", request.send().await)? {
            summary.policies += 1;
        }
    }

    let attach_arn = |a: &Value| s(a, "PolicyArn").map(|arn| rebase(arn, account));

    for g in list(details, "GroupDetailList") {
        let Some(name) = s(g, "GroupName") else {
            continue;
        };
        let mut request = iam.create_group().group_name(name);
        if let Some(path) = s(g, "Path") {
            request = request.path(path);
        }
        if tolerate("iam:CreateGroup", request.send().await)? {
            summary.groups += 1;
        }
        for inline in list(g, "GroupPolicyList") {
            tolerate(
                "iam:PutGroupPolicy",
                iam.put_group_policy()
                    .group_name(name)
                    .policy_name(s(inline, "PolicyName").unwrap_or("inline"))
                    .policy_document(document(inline.get("PolicyDocument")))
                    .send()
                    .await,
            )?;
        }
        for a in list(g, "AttachedManagedPolicies") {
            if let Some(arn) = attach_arn(a) {
                tolerate(
                    "iam:AttachGroupPolicy",
                    iam.attach_group_policy()
                        .group_name(name)
                        .policy_arn(arn)
                        .send()
                        .await,
                )?;
            }
        }
    }

    for u in list(details, "UserDetailList") {
        let Some(name) = s(u, "UserName") else {
            continue;
        };
        let mut request = iam.create_user().user_name(name).set_tags(tags(u));
        if let Some(path) = s(u, "Path") {
            request = request.path(path);
        }
        if let Some(b) = u
            .get("PermissionsBoundary")
            .and_then(|b| s(b, "PermissionsBoundaryArn"))
        {
            request = request.permissions_boundary(rebase(b, account));
        }
        if tolerate("iam:CreateUser", request.send().await)? {
            summary.users += 1;
        }
        for group in list(u, "GroupList").iter().filter_map(Value::as_str) {
            tolerate(
                "iam:AddUserToGroup",
                iam.add_user_to_group()
                    .group_name(group)
                    .user_name(name)
                    .send()
                    .await,
            )?;
        }
        for inline in list(u, "UserPolicyList") {
            tolerate(
                "iam:PutUserPolicy",
                iam.put_user_policy()
                    .user_name(name)
                    .policy_name(s(inline, "PolicyName").unwrap_or("inline"))
                    .policy_document(document(inline.get("PolicyDocument")))
                    .send()
                    .await,
            )?;
        }
        for a in list(u, "AttachedManagedPolicies") {
            if let Some(arn) = attach_arn(a) {
                tolerate(
                    "iam:AttachUserPolicy",
                    iam.attach_user_policy()
                        .user_name(name)
                        .policy_arn(arn)
                        .send()
                        .await,
                )?;
            }
        }
    }

    for r in list(details, "RoleDetailList") {
        let Some(name) = s(r, "RoleName") else {
            continue;
        };
        let mut request = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(document(r.get("AssumeRolePolicyDocument")))
            .set_tags(tags(r));
        if let Some(path) = s(r, "Path") {
            request = request.path(path);
        }
        if let Some(b) = r
            .get("PermissionsBoundary")
            .and_then(|b| s(b, "PermissionsBoundaryArn"))
        {
            request = request.permissions_boundary(rebase(b, account));
        }
        if tolerate("iam:CreateRole", request.send().await)? {
            summary.roles += 1;
        }
        for inline in list(r, "RolePolicyList") {
            tolerate(
                "iam:PutRolePolicy",
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name(s(inline, "PolicyName").unwrap_or("inline"))
                    .policy_document(document(inline.get("PolicyDocument")))
                    .send()
                    .await,
            )?;
        }
        for a in list(r, "AttachedManagedPolicies") {
            if let Some(arn) = attach_arn(a) {
                tolerate(
                    "iam:AttachRolePolicy",
                    iam.attach_role_policy()
                        .role_name(name)
                        .policy_arn(arn)
                        .send()
                        .await,
                )?;
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_move_to_the_target_account() {
        assert_eq!(
            rebase(
                "arn:aws:iam::012345678901:policy/NotYourPolicy",
                "111122223333"
            ),
            "arn:aws:iam::111122223333:policy/NotYourPolicy"
        );
        assert_eq!(
            rebase(
                "arn:aws:iam::aws:policy/AdministratorAccess",
                "111122223333"
            ),
            "arn:aws:iam::aws:policy/AdministratorAccess"
        );
        assert_eq!(
            document(Some(&Value::String("%7B%22a%22%3A1%7D".into()))),
            r#"{"a":1}"#
        );
    }
}
