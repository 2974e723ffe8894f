//! The STS + IAM source against moto: an account's IAM data seeded through the IAM API,
//! read back through AssumeRole (with an ExternalId) into that account.

mod moto;

use accessflow_shared::ports::{AccountLocator, PortError};
use serde_json::Value;

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

async fn seed(account: &str) {
    let iam = moto::iam_in_account(account).await;
    let s3_read = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
    let boundary = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:root"},"Action":"sts:AssumeRole"}]}"#;
    let policy = iam
        .create_policy()
        .policy_name("S3Read")
        .policy_document(s3_read)
        .send()
        .await
        .unwrap();
    let s3_read_arn = policy.policy().unwrap().arn().unwrap().to_string();
    let b = iam
        .create_policy()
        .policy_name("S3Boundary")
        .policy_document(boundary)
        .send()
        .await
        .unwrap();
    let boundary_arn = b.policy().unwrap().arn().unwrap().to_string();
    iam.create_user().user_name("alice").send().await.unwrap();
    iam.put_user_policy()
        .user_name("alice")
        .policy_name("no-iam")
        .policy_document(deny)
        .send()
        .await
        .unwrap();
    iam.attach_user_policy()
        .user_name("alice")
        .policy_arn(&s3_read_arn)
        .send()
        .await
        .unwrap();
    // moto 5.2 has no PutUserPermissionsBoundary: boundaries are seeded on a role only.
    iam.create_user().user_name("bob").send().await.unwrap();
    iam.create_group()
        .group_name("admins")
        .send()
        .await
        .unwrap();
    iam.attach_group_policy()
        .group_name("admins")
        .policy_arn(ADMIN)
        .send()
        .await
        .unwrap();
    iam.add_user_to_group()
        .group_name("admins")
        .user_name("bob")
        .send()
        .await
        .unwrap();
    iam.create_role()
        .role_name("partner-audit")
        .assume_role_policy_document(trust)
        .permissions_boundary(&boundary_arn)
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("partner-audit")
        .policy_name("read")
        .policy_document(s3_read)
        .send()
        .await
        .unwrap();
}

fn locator(account: &str) -> AccountLocator {
    AccountLocator {
        customer: "acme".into(),
        account: account.into(),
        role_arn: Some(format!("arn:aws:iam::{account}:role/accessflow-reader")),
        external_id: Some("acme-external-id".into()),
        fixture_dir: None,
    }
}

fn find<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e[field] == name)
        .unwrap_or_else(|| panic!("no {field}={name} in {list}"))
}

#[tokio::test]
async fn fetches_authorization_details_and_credential_report() {
    let (backend, _) = moto::backend("iam").await;
    let account = moto::unique_account();
    seed(&account).await;
    let iam = backend.ports().iam;
    let raw = iam.fetch_account(&locator(&account)).await.unwrap();
    let doc: Value = serde_json::from_slice(&raw.authorization_details).unwrap();

    let alice = find(&doc["UserDetailList"], "UserName", "alice");
    assert_eq!(alice["Arn"], format!("arn:aws:iam::{account}:user/alice"));
    assert_eq!(
        alice["UserPolicyList"][0]["PolicyDocument"]["Statement"][0]["Effect"],
        "Deny"
    );
    assert_eq!(alice["AttachedManagedPolicies"][0]["PolicyName"], "S3Read");
    assert!(alice["CreateDate"].as_str().unwrap().ends_with("+00:00"));
    let bob = find(&doc["UserDetailList"], "UserName", "bob");
    assert_eq!(bob["GroupList"][0], "admins");
    let admins = find(&doc["GroupDetailList"], "GroupName", "admins");
    assert_eq!(admins["AttachedManagedPolicies"][0]["PolicyArn"], ADMIN);
    let role = find(&doc["RoleDetailList"], "RoleName", "partner-audit");
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::210987654321:root"
    );
    assert_eq!(
        role["PermissionsBoundary"]["PermissionsBoundaryArn"],
        format!("arn:aws:iam::{account}:policy/S3Boundary")
    );
    assert_eq!(
        role["PermissionsBoundary"]["PermissionsBoundaryType"],
        "PermissionsBoundaryPolicy"
    );
    assert_eq!(
        role["RolePolicyList"][0]["PolicyDocument"]["Statement"][0]["Action"][0],
        "s3:GetObject"
    );
    let s3_read = find(&doc["Policies"], "PolicyName", "S3Read");
    let default = s3_read["PolicyVersionList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["IsDefaultVersion"] == true)
        .unwrap();
    assert_eq!(
        default["Document"]["Statement"][0]["Action"][1],
        "s3:ListBucket"
    );
    // AWS managed policies in use are included (moto loads them with
    // MOTO_IAM_LOAD_MANAGED_POLICIES=true, which the harness sets).
    let admin = find(&doc["Policies"], "Arn", ADMIN);
    assert_eq!(admin["PolicyName"], "AdministratorAccess");

    let report = String::from_utf8(raw.credential_report).unwrap();
    assert!(
        report.starts_with("user,arn,user_creation_time"),
        "{report}"
    );
    assert!(report.contains(&format!("arn:aws:iam::{account}:user/alice")));

    // Another account sees none of it.
    let other = moto::unique_account();
    let raw = iam.fetch_account(&locator(&other)).await.unwrap();
    let doc: Value = serde_json::from_slice(&raw.authorization_details).unwrap();
    assert!(doc["UserDetailList"].as_array().unwrap().is_empty());

    let counts = backend.request_counts();
    assert!(counts["sts"] >= 2, "{counts:?}");
    assert!(counts["iam"] >= 4, "{counts:?}");
}

#[tokio::test]
async fn last_accessed_is_none_where_the_emulator_lacks_it() {
    let (backend, _) = moto::backend("iamla").await;
    let account = moto::unique_account();
    seed(&account).await;
    let iam = backend.ports().iam;
    let got = iam
        .last_accessed(
            &locator(&account),
            &format!("arn:aws:iam::{account}:user/alice"),
        )
        .await
        .unwrap();
    assert_eq!(got, None);
    assert_eq!(backend.iam_retry_stats().retries(), 0);
}

#[tokio::test]
async fn a_locator_without_a_role_is_invalid() {
    let (backend, _) = moto::backend("iamnorole").await;
    let mut l = locator("123456789012");
    l.role_arn = None;
    assert!(matches!(
        backend.ports().iam.fetch_account(&l).await,
        Err(PortError::Invalid { .. })
    ));
}
