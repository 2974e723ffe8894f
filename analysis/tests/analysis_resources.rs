//! Public and cross-account access to the account's data stores (`resources.rs`), on cases
//! from AWS's documentation: the bucket policy examples of the S3 user guide (public read,
//! cross-account, organisation-only, deny), Block Public Access ("The meaning of public"),
//! ACL grants to `AllUsers`, KMS key policies (the default policy delegating to the account,
//! a key shared with another account) and grants; then the report files and the diff, and
//! a property: adding a deny statement never adds access.

use accessflow_analysis::resources::{
    external_access, ExposureKind, ExposureRow, ExposureStatus, ResourceInventory,
};
use accessflow_analysis::{build_report, AccountModel, Capability, Engine, ReportContext};
use proptest::prelude::*;
use serde_json::{json, Value};

const OWN: &str = "111122223333";
const PARTNER: &str = "444455556666";
const STRANGER: &str = "999988887777";

fn engine() -> Engine {
    Engine::new().expect("the embedded catalog loads")
}

fn inventory(v: Value) -> ResourceInventory {
    ResourceInventory::parse(&serde_json::to_vec(&v).expect("json")).expect("inventory parses")
}

fn bucket(name: &str, policy: Value) -> Value {
    json!({"Arn": format!("arn:aws:s3:::{name}"), "Type": "AWS::S3::Bucket", "Region": "eu-west-1", "Policy": policy})
}

fn rows(inv: &ResourceInventory, trusted: &[&str]) -> Vec<ExposureRow> {
    let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
    external_access(&engine(), inv, OWN, &trusted)
}

/// (kind, principal, capability, status) of every row, for compact assertions.
fn summary(rows: &[ExposureRow]) -> Vec<(ExposureKind, String, Capability, ExposureStatus)> {
    rows.iter()
        .map(|r| (r.kind, r.principal.clone(), r.access_capability, r.status))
        .collect()
}

fn public_read_policy(bucket: &str) -> Value {
    // S3 user guide, "Granting read-only permission to a public anonymous user"
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": [format!("arn:aws:s3:::{bucket}/*")]
    }]})
}

#[test]
fn a_public_read_bucket_policy_is_public_read_data_on_its_objects() {
    let inv = inventory(json!({"Resources": [bucket("site", public_read_policy("site"))]}));
    let r = rows(&inv, &[]);
    assert_eq!(
        summary(&r),
        vec![(
            ExposureKind::Public,
            "*".to_string(),
            Capability::ReadData,
            ExposureStatus::Open
        )]
    );
    assert_eq!(r[0].scope, "arn:aws:s3:::site/*");
    assert_eq!(r[0].via, "bucket policy");
    assert_eq!(r[0].external_account, "*");
    assert!(r[0].finding_id.starts_with("ex-"));
}

#[test]
fn block_public_access_restrict_public_buckets_blocks_the_public_policy() {
    for (account_bpa, bucket_bpa) in [
        (json!({"RestrictPublicBuckets": true}), Value::Null),
        (Value::Null, json!({"RestrictPublicBuckets": true})),
    ] {
        let mut b = bucket("site", public_read_policy("site"));
        b["BlockPublicAccess"] = bucket_bpa.clone();
        let inv = inventory(json!({"AccountBlockPublicAccess": account_bpa, "Resources": [b]}));
        let r = rows(&inv, &[]);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].status, ExposureStatus::Blocked);
        assert!(r[0].condition.contains("RestrictPublicBuckets"), "{r:?}");
    }
    // BlockPublicPolicy only stops new public policies: an existing one stays open.
    let inv = inventory(json!({
        "AccountBlockPublicAccess": {"BlockPublicPolicy": true, "BlockPublicAcls": true},
        "Resources": [bucket("site", public_read_policy("site"))]
    }));
    assert_eq!(rows(&inv, &[])[0].status, ExposureStatus::Open);
}

#[test]
fn a_bucket_shared_with_another_account_is_cross_account_and_trust_is_told_apart() {
    // S3 user guide, "Granting cross-account permissions to upload objects"
    let policy = json!({"Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": [format!("arn:aws:iam::{PARTNER}:root"), STRANGER, format!("arn:aws:iam::{OWN}:role/app")]},
        "Action": ["s3:PutObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"]
    }]});
    let inv = inventory(json!({"Resources": [bucket("shared", policy)]}));
    let r = rows(&inv, &[PARTNER]);
    let mut accounts: Vec<(&str, bool)> = r
        .iter()
        .map(|x| (x.external_account.as_str(), x.trusted))
        .collect();
    accounts.sort();
    accounts.dedup();
    // the role of the account itself is not external
    assert_eq!(accounts, vec![(PARTNER, true), (STRANGER, false)], "{r:?}");
    assert!(r
        .iter()
        .all(|x| x.kind == ExposureKind::CrossAccount && x.status == ExposureStatus::Open));
    let caps: Vec<Capability> = r
        .iter()
        .filter(|x| x.external_account == PARTNER)
        .map(|x| x.access_capability)
        .collect();
    assert_eq!(caps, vec![Capability::ReadData, Capability::WriteData]);
}

#[test]
fn an_organisation_only_bucket_is_conditional_with_its_condition() {
    let policy = json!({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::org/*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
    }]});
    let mut b = bucket("org", policy);
    // not public in S3's sense: RestrictPublicBuckets does not block it
    b["BlockPublicAccess"] = json!({"RestrictPublicBuckets": true});
    let inv = inventory(json!({"Resources": [b]}));
    let r = rows(&inv, &[]);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, ExposureStatus::Conditional);
    assert_eq!(
        r[0].condition,
        "StringEquals aws:PrincipalOrgID = o-a1b2c3d4e5"
    );
}

#[test]
fn an_explicit_deny_wins_and_a_conditional_deny_makes_access_conditional() {
    let allow = json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"});
    let deny_all = json!({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"});
    let inv = inventory(
        json!({"Resources": [bucket("b", json!({"Statement": [allow.clone(), deny_all]}))]}),
    );
    assert!(rows(&inv, &[]).is_empty());

    // S3 user guide, "Restricting access to a specific VPC endpoint"
    let deny_outside_vpce = json!({"Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
        "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}});
    let inv = inventory(
        json!({"Resources": [bucket("b", json!({"Statement": [allow.clone(), deny_outside_vpce]}))]}),
    );
    let r = rows(&inv, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, ExposureStatus::Conditional);
    assert!(
        r[0].condition
            .contains("denied if StringNotEquals aws:SourceVpce"),
        "{r:?}"
    );

    // a deny on a narrower prefix does not remove the wider grant
    let deny_secret = json!({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"});
    let inv =
        inventory(json!({"Resources": [bucket("b", json!({"Statement": [allow, deny_secret]}))]}));
    assert_eq!(rows(&inv, &[])[0].status, ExposureStatus::Open);
}

#[test]
fn not_principal_in_an_allow_grants_everyone_else() {
    let policy = json!({"Statement": [{"Effect": "Allow",
        "NotPrincipal": {"AWS": format!("arn:aws:iam::{OWN}:user/bob")},
        "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}]});
    let r = rows(&inventory(json!({"Resources": [bucket("b", policy)]})), &[]);
    assert_eq!(
        summary(&r),
        vec![(
            ExposureKind::Public,
            "*".into(),
            Capability::ReadData,
            ExposureStatus::Open
        )]
    );
}

#[test]
fn acl_grants_to_all_users_are_public_unless_ignored() {
    let mut b = bucket("old", Value::Null);
    b["AclGrants"] = json!([
        {"Grantee": "http://acs.amazonaws.com/groups/global/AllUsers", "Permission": "READ"},
        {"Grantee": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be", "Permission": "FULL_CONTROL"}
    ]);
    let r = rows(&inventory(json!({"Resources": [b.clone()]})), &[]);
    assert!(!r.is_empty());
    assert!(r.iter().all(|x| x.via == "bucket ACL"
        && x.kind == ExposureKind::Public
        && x.status == ExposureStatus::Open));
    b["BlockPublicAccess"] = json!({"IgnorePublicAcls": true});
    let r = rows(&inventory(json!({"Resources": [b.clone()]})), &[]);
    assert!(r.iter().all(|x| x.status == ExposureStatus::Blocked));
    // S3 user guide, "Controlling ownership of objects and disabling ACLs": with Object
    // Ownership BucketOwnerEnforced, ACLs no longer affect permissions
    b["BlockPublicAccess"] = Value::Null;
    b["ObjectOwnership"] = json!("BucketOwnerEnforced");
    let r = rows(&inventory(json!({"Resources": [b.clone()]})), &[]);
    assert!(!r.is_empty());
    assert!(
        r.iter().all(|x| x.status == ExposureStatus::Blocked
            && x.condition == "Object Ownership: BucketOwnerEnforced (ACLs disabled)"),
        "{r:#?}"
    );
    b["ObjectOwnership"] = json!("BucketOwnerPreferred");
    let r = rows(&inventory(json!({"Resources": [b]})), &[]);
    assert!(r.iter().all(|x| x.status == ExposureStatus::Open));
}

fn key(policy: Value, grants: Value) -> Value {
    json!({"Arn": format!("arn:aws:kms:eu-west-1:{OWN}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        "Type": "AWS::KMS::Key", "Policy": policy, "Grants": grants})
}

#[test]
fn kms_the_default_key_policy_delegates_to_the_account_and_is_not_external() {
    // KMS developer guide, "Default key policy": the account root, then IAM policies
    let policy = json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [{
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")},
        "Action": "kms:*", "Resource": "*"}]});
    assert!(rows(
        &inventory(json!({"Resources": [key(policy, json!([]))]})),
        &[]
    )
    .is_empty());
}

#[test]
fn kms_a_key_shared_with_another_account_and_a_cross_account_grant() {
    // KMS developer guide, "Allowing users in other accounts to use a KMS key"
    let policy = json!({"Statement": [{
        "Sid": "Allow an external account to use this KMS key", "Effect": "Allow",
        "Principal": {"AWS": [format!("arn:aws:iam::{STRANGER}:root")]},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
        "Resource": "*"}]});
    let grants = json!([{"GranteePrincipal": format!("arn:aws:iam::{PARTNER}:role/backup"), "Operations": ["Decrypt"]}]);
    let r = rows(&inventory(json!({"Resources": [key(policy, grants)]})), &[]);
    let by_via = |via: &str| -> Vec<(&str, Capability)> {
        r.iter()
            .filter(|x| x.via == via)
            .map(|x| (x.external_account.as_str(), x.access_capability))
            .collect()
    };
    let policy_rows = by_via("key policy");
    assert!(!policy_rows.is_empty());
    assert!(policy_rows.iter().all(|(a, _)| *a == STRANGER));
    assert_eq!(by_via("KMS grant").len(), 1);
    assert_eq!(by_via("KMS grant")[0].0, PARTNER);
}

#[test]
fn finding_ids_are_stable_and_distinct() {
    let inv = inventory(json!({"Resources": [bucket("site", public_read_policy("site"))]}));
    let a = rows(&inv, &[]);
    let b = rows(&inv, &[]);
    assert_eq!(a[0].finding_id, b[0].finding_id);
    let other = inventory(json!({"Resources": [bucket("site2", public_read_policy("site2"))]}));
    assert_ne!(a[0].finding_id, rows(&other, &[])[0].finding_id);
}

#[test]
fn bad_input_is_named_where_it_is() {
    // a malformed policy: that resource's policy error, naming it and the path; no rows
    let bad = json!({"Statement": [{"Effect": "Permit", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]});
    let inv = inventory(
        json!({"Resources": [bucket("ok", public_read_policy("ok")), bucket("bad", bad)]}),
    );
    let errors = inv.policy_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].policy.contains("arn:aws:s3:::bad"), "{errors:?}");
    assert!(
        errors[0].path.starts_with("$.Resources[1].Policy"),
        "{errors:?}"
    );
    let r = rows(&inv, &[]);
    assert!(r.iter().all(|x| x.resource_arn == "arn:aws:s3:::ok"));
    // policy text that is not JSON
    let inv = inventory(json!({"Resources": [bucket("t", json!("{not json"))]}));
    assert!(inv.policy_errors()[0].message.contains("not valid JSON"));
    // not the inventory's shape, or not an ARN: the file is refused, saying where
    let e = ResourceInventory::parse(br#"{"Resources": [{"Type": "AWS::S3::Bucket"}]}"#)
        .expect_err("no Arn");
    assert!(e.to_string().contains("Arn"), "{e}");
    let e = ResourceInventory::parse(br#"{"Resources": [{"Arn": "bucket", "Type": "x"}]}"#)
        .expect_err("not an ARN");
    assert!(e.to_string().contains("$.Resources[0].Arn"), "{e}");
}

#[test]
fn the_report_lists_the_resources_counts_them_and_diffs_a_bucket_made_public() {
    let engine = engine();
    let model = AccountModel::parse(
        br#"{"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}"#,
    )
    .expect("empty account parses");
    let private = bucket(
        "data",
        json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{PARTNER}:root")},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]}),
    );
    let mut tagged = private.clone();
    tagged["Tags"] = json!({"confidentiality": "high"});
    let night1 = inventory(
        json!({"Resources": [tagged], "Warnings": ["eu-north-1: access denied listing queues"]}),
    );
    let trusted = vec![PARTNER.to_string()];
    let ctx = |run: &'static str, inv: &'static ResourceInventory| ReportContext {
        customer: "acme",
        account: OWN,
        run_id: run,
        analysis_time: "2026-11-25T02:00:00Z",
        credential_report: None,
        resources: Some(inv),
        trusted_accounts: &[],
    };
    let night1: &'static ResourceInventory = Box::leak(Box::new(night1));
    let mut c1 = ctx("r1", night1);
    c1.trusted_accounts = &trusted;
    let r1 = build_report(&engine, &model, &[], &[], &c1, None);
    assert_eq!(r1.totals.inventoried_resources, Some(1));
    assert_eq!(
        (
            r1.totals.public_resources,
            r1.totals.cross_account_resources
        ),
        (0, 1)
    );
    assert_eq!(r1.totals.untrusted_account_resources, 0);
    assert!(r1.warnings.iter().any(|w| w.contains("access denied")));
    let files = r1.render_files().expect("render");
    let file = |name: &str| {
        String::from_utf8(
            files
                .iter()
                .find(|(n, _)| n == name)
                .expect("file written")
                .1
                .clone(),
        )
        .expect("utf-8")
    };
    assert!(
        file("resources.csv").contains("data,arn:aws:s3:::data,AWS::S3::Bucket,,,,high,"),
        "the bucket with its confidentiality tag"
    );
    let csv = file("public-and-cross-account.csv");
    assert!(csv.starts_with("analysis_time,resource_arn,resource_type,exposure,principal"));
    assert!(
        csv.contains(&format!(
            "cross-account,arn:aws:iam::{PARTNER}:root,{PARTNER},true,read-data,open,bucket policy"
        )),
        "{csv}"
    );
    assert!(file("report.html").contains("Public and cross-account"));

    // night 2: the bucket is made public; the diff says so, the report reads back
    let mut public = private;
    public["Policy"]["Statement"]
        .as_array_mut()
        .expect("statements")
        .push(json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}));
    let night2: &'static ResourceInventory =
        Box::leak(Box::new(inventory(json!({"Resources": [public]}))));
    let prev = accessflow_analysis::AccountReport::from_files(
        file("report.json").as_bytes(),
        Some(file(accessflow_analysis::ACCESS_FILE).as_bytes()),
    )
    .expect("the report reads back");
    assert_eq!(prev.resource_exposure, r1.resource_exposure);
    let r2 = build_report(&engine, &model, &[], &[], &ctx("r2", night2), Some(&prev));
    assert_eq!(r2.totals.public_resources, 1);
    let added: Vec<String> = r2
        .diff
        .iter()
        .filter(|d| d.kind == accessflow_analysis::DiffKind::ResourceExposure)
        .map(|d| {
            format!(
                "{} {} {} {} {}",
                d.change.as_str(),
                d.service_name,
                d.principal_arn,
                d.access_capability,
                d.resource_arn
            )
        })
        .collect();
    assert!(
        added.contains(&"added public * read-data arn:aws:s3:::data".to_string()),
        "{added:?}"
    );
}

/// A small resource policy from a fixed alphabet of principals, actions, resources and
/// conditions.
fn arb_statement(effect: &'static str) -> impl Strategy<Value = Value> {
    let principal = prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": format!("arn:aws:iam::{PARTNER}:root")})),
        Just(json!({"AWS": STRANGER})),
        Just(json!({"AWS": "*"})),
    ];
    let action = prop_oneof![
        Just(json!("s3:*")),
        Just(json!("s3:GetObject")),
        Just(json!(["s3:PutObject", "s3:DeleteObject"])),
        Just(json!("s3:Get*")),
        Just(json!("s3:ListBucket")),
    ];
    let resource = prop_oneof![
        Just(json!("arn:aws:s3:::b")),
        Just(json!("arn:aws:s3:::b/*")),
        Just(json!("arn:aws:s3:::b/public/*")),
        Just(json!("*")),
    ];
    let condition = prop_oneof![
        Just(Value::Null),
        Just(json!({"StringEquals": {"aws:PrincipalOrgID": "o-1"}})),
        Just(json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    ];
    (principal, action, resource, condition).prop_map(move |(p, a, r, c)| {
        let mut st = json!({"Effect": effect, "Principal": p, "Action": a, "Resource": r});
        if !c.is_null() {
            st["Condition"] = c;
        }
        st
    })
}

fn rank(s: ExposureStatus) -> u8 {
    match s {
        ExposureStatus::Open => 2,
        ExposureStatus::Conditional => 1,
        ExposureStatus::Blocked => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn adding_a_deny_never_adds_access(
        allows in proptest::collection::vec(arb_statement("Allow"), 1..4),
        deny in arb_statement("Deny"),
    ) {
        let before = rows(&inventory(json!({"Resources": [bucket("b", json!({"Statement": allows.clone()}))]})), &[]);
        let mut with_deny = allows;
        with_deny.push(deny);
        let after = rows(&inventory(json!({"Resources": [bucket("b", json!({"Statement": with_deny}))]})), &[]);
        for a in &after {
            let b = before.iter().find(|b| {
                (b.kind, &b.principal, b.access_capability, &b.via)
                    == (a.kind, &a.principal, a.access_capability, &a.via)
            });
            prop_assert!(b.is_some(), "the deny added {a:?}");
            prop_assert!(rank(a.status) <= rank(b.expect("checked").status) || a.status == ExposureStatus::Blocked,
                "the deny raised {a:?} above {b:?}");
        }
    }
}

#[test]
fn an_organisation_only_bucket_made_public_is_one_added_row() {
    let engine = engine();
    let model = AccountModel::parse(
        br#"{"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}"#,
    )
    .expect("empty account parses");
    let org = json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::r/*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}});
    let public = json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::r/*"});
    let inv1 = inventory(json!({"Resources": [bucket("r", json!({"Statement": [org.clone()]}))]}));
    let inv2 = inventory(json!({"Resources": [bucket("r", json!({"Statement": [org, public]}))]}));
    let ctx = |run, inv| ReportContext {
        customer: "acme",
        account: OWN,
        run_id: run,
        analysis_time: "2026-11-25T02:00:00Z",
        credential_report: None,
        resources: Some(inv),
        trusted_accounts: &[],
    };
    let r1 = build_report(&engine, &model, &[], &[], &ctx("r1", &inv1), None);
    assert_eq!(
        r1.totals.public_resources, 0,
        "organisation-only is not public"
    );
    let r2 = build_report(&engine, &model, &[], &[], &ctx("r2", &inv2), Some(&r1));
    assert_eq!(r2.totals.public_resources, 1);
    let rows: Vec<(String, String)> = r2
        .diff
        .iter()
        .filter(|d| d.kind == accessflow_analysis::DiffKind::ResourceExposure)
        .map(|d| (d.change.as_str().to_string(), d.detail.clone()))
        .collect();
    assert_eq!(
        rows,
        vec![("added".to_string(), "open (was conditional)".to_string())]
    );
}

#[test]
fn check_decides_exactly_with_the_inventory_as_resource_policies() {
    use accessflow_analysis::{parse_resource_policies, CheckInputs, Decision};
    let engine = engine();
    let model = AccountModel::parse(
        format!(r#"{{"UserDetailList": [{{"UserName": "u", "UserId": "AIDA1", "Arn": "arn:aws:iam::{OWN}:user/u",
            "Path": "/", "GroupList": [], "AttachedManagedPolicies": [], "UserPolicyList": []}}],
            "GroupDetailList": [], "RoleDetailList": [], "Policies": []}}"#)
        .as_bytes(),
    )
    .expect("account parses");
    let names_user = json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{OWN}:user/u")},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::named/*"}]});
    let file =
        serde_json::to_vec(&json!({"Resources": [bucket("named", names_user)]})).expect("json");
    let inputs = CheckInputs {
        scps: Vec::new(),
        rcps: Vec::new(),
        resource_policies: parse_resource_policies(&file).expect("inventory as resource policies"),
    };
    let check = |resource: &str| {
        engine
            .check(
                &model,
                &format!("arn:aws:iam::{OWN}:user/u"),
                "s3:GetObject",
                resource,
                &[],
                &inputs,
            )
            .expect("check")
            .decision
    };
    // same account: the bucket policy naming the user grants on its own
    assert_eq!(check("arn:aws:s3:::named/k"), Decision::Allowed);
    assert_eq!(check("arn:aws:s3:::other/k"), Decision::ImplicitDeny);
    // a malformed policy in the inventory is refused, not skipped
    let bad = serde_json::to_vec(
        &json!({"Resources": [bucket("b", json!({"Statement": [{"Effect": "Permit"}]}))]}),
    )
    .expect("json");
    assert!(parse_resource_policies(&bad).is_err());
}

#[test]
fn the_default_sns_topic_policy_is_not_public_and_an_open_one_is() {
    // SNS's default topic policy: everyone, if the request's source owner is the account
    let topic = format!("arn:aws:sns:eu-west-1:{OWN}:alerts");
    let default = json!({"Version": "2008-10-17", "Id": "__default_policy_ID", "Statement": [{
        "Sid": "__default_statement_ID", "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": ["SNS:GetTopicAttributes", "SNS:Subscribe", "SNS:Publish"],
        "Resource": topic, "Condition": {"StringEquals": {"AWS:SourceOwner": OWN}}}]});
    let resource = |policy: Value| json!({"Arn": topic, "Type": "AWS::SNS::Topic", "Region": "eu-west-1", "Policy": policy});
    let inv = inventory(json!({"Resources": [resource(default)]}));
    assert_eq!(rows(&inv, &[]), vec![]);
    let open = json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "SNS:Publish", "Resource": topic}]});
    let inv = inventory(json!({"Resources": [resource(open)]}));
    let r = rows(&inv, &[]);
    assert!(
        r.iter()
            .any(|r| r.kind == ExposureKind::Public && r.status == ExposureStatus::Open),
        "{r:#?}"
    );
}

/// The other services' resource policies, shaped as their documentation shows them: a
/// secret shared for `GetSecretValue`, a function another account may invoke (what
/// `lambda add-permission` writes), an ECR repository anyone may pull (its policies have no
/// `Resource` element: the repository itself), a DynamoDB table shared for reads, and a
/// function URL open to anyone while its auth type is NONE (conditional).
#[test]
fn secrets_functions_repositories_and_tables_are_read_like_buckets() {
    let secret = format!("arn:aws:secretsmanager:eu-west-1:{OWN}:secret:db-password-AbCdEf");
    let function = format!("arn:aws:lambda:eu-west-1:{OWN}:function:thumbnailer");
    let repository = format!("arn:aws:ecr:eu-west-1:{OWN}:repository/images");
    let table = format!("arn:aws:dynamodb:eu-west-1:{OWN}:table/orders");
    let allow = |principal: Value, action: &str, resource: &str| {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource}
        ]})
    };
    let inv = inventory(json!({"Resources": [
        {"Arn": secret, "Type": "AWS::SecretsManager::Secret", "Region": "eu-west-1",
         "Policy": allow(json!({"AWS": format!("arn:aws:iam::{STRANGER}:root")}), "secretsmanager:GetSecretValue", "*")},
        {"Arn": function, "Type": "AWS::Lambda::Function", "Region": "eu-west-1",
         "Policy": {"Version": "2012-10-17", "Statement": [
            {"Sid": "partner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{PARTNER}:root")},
             "Action": "lambda:InvokeFunction", "Resource": function},
            {"Sid": "url", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
             "Resource": function, "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}}
         ]}},
        {"Arn": repository, "Type": "AWS::ECR::Repository", "Region": "eu-west-1",
         "Policy": {"Version": "2012-10-17", "Statement": [
            {"Sid": "pull", "Effect": "Allow", "Principal": "*",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}
         ]}},
        {"Arn": table, "Type": "AWS::DynamoDB::Table", "Region": "eu-west-1",
         "Policy": allow(json!({"AWS": format!("arn:aws:iam::{STRANGER}:root")}), "dynamodb:GetItem", &table)}
    ]}));
    let rows = rows(&inv, &[PARTNER]);
    let of = |arn: &str| -> Vec<(ExposureKind, String, Capability, ExposureStatus)> {
        summary(
            &rows
                .iter()
                .filter(|r| r.resource_arn == arn)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        of(&secret),
        vec![(
            ExposureKind::CrossAccount,
            format!("arn:aws:iam::{STRANGER}:root"),
            Capability::ReadData,
            ExposureStatus::Open
        )]
    );
    let function_rows = of(&function);
    assert!(
        function_rows
            .iter()
            .any(|(k, p, _, s)| *k == ExposureKind::CrossAccount
                && p.contains(PARTNER)
                && *s == ExposureStatus::Open),
        "{function_rows:?}"
    );
    assert!(
        function_rows
            .iter()
            .any(|(k, _, _, s)| *k == ExposureKind::Public && *s == ExposureStatus::Conditional),
        "the function URL is public while its auth type is NONE: {function_rows:?}"
    );
    assert!(rows
        .iter()
        .filter(|r| r.resource_arn == function && r.kind == ExposureKind::CrossAccount)
        .all(|r| r.trusted));
    assert_eq!(
        of(&repository),
        vec![(
            ExposureKind::Public,
            "*".to_string(),
            Capability::ReadData,
            ExposureStatus::Open
        )]
    );
    assert_eq!(
        of(&table),
        vec![(
            ExposureKind::CrossAccount,
            format!("arn:aws:iam::{STRANGER}:root"),
            Capability::ReadData,
            ExposureStatus::Open
        )]
    );
}

/// An organisation tree of resource control policies over the own account: AWS's default
/// `RCPFullAWSAccess` at the root, and the data-perimeter example of AWS's RCP
/// documentation (deny S3 and Secrets Manager to principals outside the organisation,
/// unless an AWS service acts) plus an unconditional deny of `s3:PutObject` on the vendor
/// bucket, attached to the account.
fn rcp_tree(management_account: &str) -> accessflow_analysis::Rcps {
    let tree = json!({
        "Id": "r-root",
        "Arn": format!("arn:aws:organizations::{management_account}:root/o-sample12345/r-root"),
        "Policies": [{"Name": "RCPFullAWSAccess", "Content": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}}],
        "Children": [{"Id": OWN, "Policies": [
            {"Name": "data-perimeter", "Content": {"Version": "2012-10-17", "Statement": [{
                "Sid": "EnforceOrgIdentities", "Effect": "Deny", "Principal": "*",
                "Action": ["s3:*", "secretsmanager:*"], "Resource": "*",
                "Condition": {
                    "StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-sample12345"},
                    "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}
                }}]}},
            {"Name": "no-vendor-uploads", "Content": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::vendor-drop/*"}]}}
        ]}]
    });
    accessflow_analysis::Rcps::parse(&serde_json::to_vec(&tree).expect("json")).expect("RCPs")
}

/// Resource control policies (AWS's "Resource control policies" and data perimeter
/// examples): a deny makes public and cross-account access `blocked`, a deny under
/// conditions the analysis cannot decide (who is in the organisation) `conditional` with
/// the RCP named; services RCPs do not govern (SNS) and the management account's own
/// resources are not limited; `worker check` decides with them.
#[test]
fn resource_control_policies_block_or_condition_external_access() {
    let public = bucket(
        "public-assets",
        json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::public-assets/*"}]}),
    );
    let vendor = bucket(
        "vendor-drop",
        json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": STRANGER}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::vendor-drop/*"}]}),
    );
    let topic = format!("arn:aws:sns:eu-west-1:{OWN}:alerts");
    let open_topic = json!({"Arn": topic, "Type": "AWS::SNS::Topic", "Region": "eu-west-1",
        "Policy": {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sns:Publish", "Resource": topic}]}});
    let inv = inventory(json!({"Resources": [public, vendor, open_topic]}));
    let before = rows(&inv, &[]);
    let with_rcps = inv.clone().with_rcps(vec![rcp_tree("023456789012")]);
    let after = rows(&with_rcps, &[]);
    let row = |rows: &[ExposureRow], arn: &str| -> ExposureRow {
        rows.iter()
            .find(|r| r.resource_arn == arn)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {arn}: {rows:#?}"))
    };
    // without RCPs: open
    assert_eq!(
        row(&before, "arn:aws:s3:::public-assets").status,
        ExposureStatus::Open
    );
    assert_eq!(
        row(&before, "arn:aws:s3:::vendor-drop").status,
        ExposureStatus::Open
    );
    // the data perimeter: conditional, the RCP and its condition named
    let public_row = row(&after, "arn:aws:s3:::public-assets");
    assert_eq!(
        public_row.status,
        ExposureStatus::Conditional,
        "{public_row:#?}"
    );
    assert!(
        public_row
            .condition
            .contains("RCP data-perimeter: denied if")
            && public_row.condition.contains("aws:PrincipalOrgID"),
        "{public_row:#?}"
    );
    // an unconditional deny: blocked
    let vendor_row = row(&after, "arn:aws:s3:::vendor-drop");
    assert_eq!(
        vendor_row.status,
        ExposureStatus::Blocked,
        "{vendor_row:#?}"
    );
    assert!(
        vendor_row
            .condition
            .contains("RCP no-vendor-uploads: denied"),
        "{vendor_row:#?}"
    );
    // SNS is not governed by RCPs: unchanged
    assert_eq!(row(&after, &topic), row(&before, &topic));
    // the management account's resources are not limited by RCPs
    let mgmt = inv.clone().with_rcps(vec![rcp_tree(OWN)]);
    assert_eq!(rows(&mgmt, &[]), before);
    // RCPFullAWSAccess cannot be detached: a file without it still lets through what no
    // RCP denies
    let deny_only = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "*"}]});
    let deny_only =
        accessflow_analysis::Rcps::parse(&serde_json::to_vec(&deny_only).expect("json"))
            .expect("RCP");
    assert_eq!(rows(&inv.clone().with_rcps(vec![deny_only]), &[]), before);

    // worker check: the same RCPs decide a request to the vendor bucket
    let model = AccountModel::parse(
        &serde_json::to_vec(&json!({
            "UserDetailList": [], "GroupDetailList": [], "Policies": [],
            "RoleDetailList": [{
                "RoleName": "uploader", "RoleId": "AROAUPLOADER", "Path": "/",
                "Arn": format!("arn:aws:iam::{OWN}:role/uploader"),
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
                "RolePolicyList": [{"PolicyName": "put", "PolicyDocument": {"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}}],
                "AttachedManagedPolicies": []
            }]
        }))
        .expect("json"),
    )
    .expect("model");
    let e = engine();
    let check = |rcps: Vec<accessflow_analysis::Rcps>, resource: &str| {
        let inputs = accessflow_analysis::CheckInputs {
            rcps,
            ..Default::default()
        };
        e.check(
            &model,
            &format!("arn:aws:iam::{OWN}:role/uploader"),
            "s3:PutObject",
            resource,
            &[],
            &inputs,
        )
        .expect("check")
    };
    let denied = check(vec![rcp_tree("023456789012")], "arn:aws:s3:::vendor-drop/x");
    assert_eq!(denied.decision, accessflow_analysis::Decision::ExplicitDeny);
    assert!(denied
        .deciding_statements
        .iter()
        .any(|s| s.policy == "no-vendor-uploads"
            && s.policy_type == accessflow_analysis::PolicyType::Rcp));
    let elsewhere = check(vec![rcp_tree("023456789012")], "arn:aws:s3:::reports/x");
    assert_eq!(elsewhere.decision, accessflow_analysis::Decision::Allowed);
    assert!(
        elsewhere.conditional,
        "the data perimeter's deny is undecided: {elsewhere:#?}"
    );
    let closed = e
        .check(
            &model,
            &format!("arn:aws:iam::{OWN}:role/uploader"),
            "s3:PutObject",
            "arn:aws:s3:::reports/x",
            &[
                (
                    "aws:PrincipalOrgID".to_string(),
                    "o-sample12345".to_string(),
                ),
                ("aws:PrincipalIsAWSService".to_string(), "false".to_string()),
            ],
            &accessflow_analysis::CheckInputs {
                rcps: vec![rcp_tree("023456789012")],
                ..Default::default()
            },
        )
        .expect("check");
    assert_eq!(closed.decision, accessflow_analysis::Decision::Allowed);
    assert!(!closed.conditional, "{closed:#?}");
}
