//! The cloudsplaining test files (BSD-3-Clause, salesforce/cloudsplaining `test/files`) parse
//! and analyse without error, with explicit expected findings.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use accessflow_analysis::{
    build_report, AccountModel, AccountReport, Capability, Engine, IamAdmin, ParseError,
    PrincipalAnalysis, ReportContext,
};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));

fn data(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/data/cloudsplaining/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn analyse_bytes(bytes: &[u8]) -> (Vec<PrincipalAnalysis>, AccountReport) {
    let model = AccountModel::parse(bytes).expect("parses");
    let mut results = Vec::new();
    for p in model.principals() {
        results.push(
            ENGINE
                .analyze_principal(&model, &p.arn, None)
                .expect("analyses without error"),
        );
    }
    let ctx = ReportContext {
        customer: "acme",
        account: model.account_id(),
        run_id: "r1",
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    let report = build_report(&ENGINE, &model, &results, &[], &ctx, None);
    assert!(!report.partial);
    assert!(
        report.policy_errors.is_empty(),
        "{:?}",
        report.policy_errors
    );
    report.render_files().expect("renders");
    (results, report)
}

fn analyse(name: &str) -> (Vec<PrincipalAnalysis>, AccountReport) {
    analyse_bytes(&data(name))
}

fn admins(r: &AccountReport) -> BTreeSet<String> {
    r.admins.iter().map(|a| a.principal_name.clone()).collect()
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Principals (by name) with `cap` on `service_name` for resource `resource`.
fn who(r: &AccountReport, service_name: &str, cap: Capability, resource: &str) -> BTreeSet<String> {
    r.principal_access
        .iter()
        .filter(|a| {
            a.service_name == service_name
                && a.access_capability == cap
                && a.resource_arn == resource
                && !a.conditional
        })
        .map(|a| a.principal_name.clone())
        .collect()
}

fn escalations_of(r: &AccountReport, name: &str) -> BTreeSet<String> {
    r.escalations
        .iter()
        .filter(|e| e.principal_name == name)
        .map(|e| e.path.clone())
        .collect()
}

#[test]
fn example_authz_details() {
    let (results, r) = analyse("example-authz-details.json");
    assert_eq!(r.principal_count, 6);
    assert_eq!(admins(&r), names(&["obama", "userwithlotsofpermissions"]));
    // AdministratorAccess (attached to obama directly, and via the admin group)
    let obama = results
        .iter()
        .find(|p| p.principal.name == "obama")
        .expect("obama");
    assert!(obama.full_access);
    let biden = results
        .iter()
        .find(|p| p.principal.name == "biden")
        .expect("biden");
    assert!(!biden.full_access && !biden.is_admin);
    // s3:GetObject on * (inline policies, AWSLambdaFullAccess's s3:*, admin)
    assert_eq!(
        who(&r, "Amazon S3", Capability::ReadData, "*"),
        names(&[
            "OverprivilegedEC2",
            "biden",
            "obama",
            "userwithlotsofpermissions"
        ])
    );
    // s3:PutObject on *: OverprivilegedEC2 through the customer managed InsecurePolicy
    assert_eq!(
        who(&r, "Amazon S3", Capability::WriteData, "*"),
        names(&[
            "OverprivilegedEC2",
            "biden",
            "obama",
            "userwithlotsofpermissions"
        ])
    );
    assert_eq!(
        who(&r, "AWS Secrets Manager", Capability::ReadData, "*"),
        names(&["OverprivilegedEC2", "obama", "userwithlotsofpermissions"])
    );
    // MyRole / MyOtherRole only have IAM instance-profile plumbing and PassRole
    assert!(who(&r, "Amazon S3", Capability::ReadData, "*")
        .iter()
        .all(|n| !n.starts_with("My")));
    assert!(escalations_of(&r, "OverprivilegedEC2").contains("create-access-key"));
    assert!(escalations_of(&r, "biden").contains("passrole-lambda-invoke"));
    assert!(escalations_of(&r, "MyRole").contains("passrole-ec2-associate-instance-profile"));
    assert!(escalations_of(&r, "MyOtherRole").contains("passrole-ec2-associate-instance-profile"));
    // roles are assumable by AWS services only: no external access
    assert!(r.external_access.is_empty());
    let assumers: BTreeSet<(String, String)> = r
        .role_assumers
        .iter()
        .map(|a| {
            (
                a.role_arn
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                a.principal_arn.clone(),
            )
        })
        .collect();
    assert!(assumers.contains(&("MyRole".into(), "ssm.amazonaws.com".into())));
    assert!(assumers.contains(&("OverprivilegedEC2".into(), "ec2.amazonaws.com".into())));
    // IAM admins are flagged in principals.csv
    let flagged: BTreeSet<String> = r
        .principals
        .iter()
        .filter(|p| p.principal_is_iam_admin == IamAdmin::True)
        .map(|p| p.principal_name.clone())
        .collect();
    assert_eq!(flagged, admins(&r));
}

#[test]
fn example_authz_v2() {
    let (_, r) = analyse("example_authz_v2.json");
    assert_eq!(r.principal_count, 3);
    // BlakeBortles' group attaches AdministratorAccess, but the file does not include that
    // policy's document: no access is invented, the gap is reported
    assert!(admins(&r).is_empty());
    assert!(r.warnings.iter().any(|w| w.contains("user/BlakeBortles")
        && w.contains("arn:aws:iam::aws:policy/AdministratorAccess")));
    assert_eq!(
        who(&r, "Amazon S3", Capability::ReadData, "*"),
        names(&["GOAT", "MyOtherRole"])
    );
    assert_eq!(
        who(&r, "Amazon S3", Capability::WriteData, "*"),
        names(&["GOAT", "MyOtherRole"])
    );
    // NotYourPolicy is attached to nobody: nobody gets ECR through it
    assert!(r
        .principal_access
        .iter()
        .all(|a| a.service_name != "Amazon Elastic Container Registry"));
}

#[test]
fn example_authz_details_for_overrides_complete() {
    let (_, r) = analyse("example_authz_details_for_overrides_complete.json");
    assert_eq!(admins(&r), names(&["BlakeBortles", "GOATRole"]));
    // s3:CreateBucket on a named bucket: the bucket is a resource with its accessors
    assert!(r
        .resources
        .iter()
        .any(|x| x.resource_arn == "arn:aws:s3:::mybucket" && x.resource_type == "s3:bucket"));
    let on_bucket: BTreeSet<(String, Capability)> = r
        .resource_access
        .iter()
        .filter(|a| a.resource_arn == "arn:aws:s3:::mybucket")
        .map(|a| (a.principal_name.clone(), a.access_capability))
        .collect();
    assert!(on_bucket.contains(&("GOATRole".into(), Capability::AdministerResource)));
    // access to all resources (AdministratorAccess) is listed once per service, as `*`
    assert!(!on_bucket.iter().any(|(n, _)| n == "BlakeBortles"));
    assert!(r.resource_access.iter().any(|a| a.resource_arn == "*"
        && a.principal_name == "BlakeBortles"
        && a.service_name == "Amazon S3"
        && a.access_capability == Capability::ReadData));
    // MyOtherRole's s3:GetObject/PutObject on * take objects, not buckets
    assert!(
        !on_bucket.iter().any(|(n, _)| n == "MyOtherRole"),
        "{on_bucket:?}"
    );
}

#[test]
fn example_authz_details_for_overrides_has_no_principals() {
    let (results, r) = analyse("example_authz_details_for_overrides.json");
    assert!(results.is_empty());
    assert_eq!(r.principal_count, 0);
    assert!(r.resources.iter().any(|x| x
        .resource_arn
        .ends_with(":policy/PolicyForTestingOverrides")));
}

#[test]
fn managed_policy_mismatch_is_a_warning_not_an_error() {
    let (results, _) = analyse("managed_policy_mismatch.json");
    assert!(results.is_empty()); // a group only
                                 // add a member: the attached AWSLambdaReadOnlyAccess is not in the file (only
                                 // AWSLambda_ReadOnlyAccess is), which is reported, not fatal
    let mut v: serde_json::Value =
        serde_json::from_slice(&data("managed_policy_mismatch.json")).expect("json");
    v["UserDetailList"] = serde_json::json!([{
        "UserName": "anton", "Arn": "arn:aws:iam::123456789012:user/anton", "GroupList": ["anton-test"]
    }]);
    let (results, r) = analyse_bytes(&serde_json::to_vec(&v).expect("ser"));
    assert_eq!(results.len(), 1);
    assert!(results[0].grants.is_empty());
    assert!(
        results[0]
            .warnings
            .iter()
            .any(|w| w.contains("AWSLambdaReadOnlyAccess")),
        "{:?}",
        results[0].warnings
    );
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("AWSLambdaReadOnlyAccess")));
}

#[test]
fn cloudsplaining_results_file_is_rejected_with_a_clear_error() {
    // not an authorization details file: cloudsplaining's own scan output (a JSON list)
    let e = AccountModel::parse(&data(
        "scanning_test_authorization_file_details_missing_constraints_v2.json",
    ))
    .expect_err("a list is not an account file");
    match e {
        ParseError::Structure { path, message } => {
            assert_eq!(path, "$");
            assert!(message.contains("JSON object"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}
