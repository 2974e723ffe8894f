//! Engine behaviour on hand-written accounts: conditions with a request context, policy
//! variables, NotAction/NotResource, boundaries, trust and external access, admins through
//! roles, escalation paths, unused access, digests, the report (partial flag, credential
//! report) and the diff.

use std::sync::LazyLock;

use accessflow_analysis::{
    build_report, AccountModel, AccountReport, Capability, CheckInputs, Decision, DiffChange,
    Engine, IamAdmin, LastAccessed, PrincipalAnalysis, PrincipalFailure, ReportContext, TrustKind,
};
use serde_json::{json, Value};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));
const ACCT: &str = "123456789012";

fn model(v: Value) -> AccountModel {
    AccountModel::parse(&serde_json::to_vec(&v).expect("ser")).expect("parses")
}

fn user(name: &str, stmts: Value) -> Value {
    json!({"UserName": name, "UserId": format!("AIDA{name}"), "Arn": format!("arn:aws:iam::{ACCT}:user/{name}"),
        "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": stmts}}]})
}

fn role(name: &str, trust_principal: Value, stmts: Value) -> Value {
    json!({"RoleName": name, "Arn": format!("arn:aws:iam::{ACCT}:role/{name}"),
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": trust_principal, "Action": "sts:AssumeRole"}]},
        "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": stmts}}]})
}

fn arn_u(n: &str) -> String {
    format!("arn:aws:iam::{ACCT}:user/{n}")
}
fn arn_r(n: &str) -> String {
    format!("arn:aws:iam::{ACCT}:role/{n}")
}

fn check(m: &AccountModel, p: &str, a: &str, r: &str, ctx: &[(&str, &str)]) -> (Decision, bool) {
    let ctx: Vec<(String, String)> = ctx
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = ENGINE
        .check(m, p, a, r, &ctx, &CheckInputs::default())
        .expect("check");
    (c.decision, c.conditional)
}

fn analyse_all(m: &AccountModel) -> Vec<PrincipalAnalysis> {
    m.principals()
        .iter()
        .map(|p| ENGINE.analyze_principal(m, &p.arn, None).expect("analyze"))
        .collect()
}

fn report(
    m: &AccountModel,
    results: &[PrincipalAnalysis],
    prev: Option<&AccountReport>,
) -> AccountReport {
    let ctx = ReportContext {
        customer: "acme",
        account: ACCT,
        run_id: if prev.is_some() { "run-2" } else { "run-1" },
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    build_report(&ENGINE, m, results, &[], &ctx, prev)
}

#[test]
fn conditions_with_request_context() {
    let m = model(json!({"UserDetailList": [user("u", json!([
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}
    ]))]}));
    let u = arn_u("u");
    let obj = "arn:aws:s3:::b/k";
    // no context: allowed only conditionally
    assert_eq!(
        check(&m, &u, "s3:GetObject", obj, &[]),
        (Decision::Allowed, true)
    );
    // right IP, MFA present: allowed outright
    assert_eq!(
        check(
            &m,
            &u,
            "s3:GetObject",
            obj,
            &[
                ("aws:SourceIp", "10.1.2.3"),
                ("aws:MultiFactorAuthPresent", "true")
            ]
        ),
        (Decision::Allowed, false)
    );
    // wrong IP: implicit deny
    assert_eq!(
        check(
            &m,
            &u,
            "s3:GetObject",
            obj,
            &[
                ("aws:SourceIp", "192.168.0.1"),
                ("aws:MultiFactorAuthPresent", "true")
            ]
        )
        .0,
        Decision::ImplicitDeny
    );
    // no MFA key at all in a complete context: BoolIfExists -> true -> explicit deny
    assert_eq!(
        check(&m, &u, "s3:GetObject", obj, &[("aws:SourceIp", "10.1.2.3")]).0,
        Decision::ExplicitDeny
    );
    // the bulk view marks the access conditional
    let r = ENGINE.analyze_principal(&m, &u, None).expect("analyze");
    assert!(r.grants.iter().all(|g| g.conditional), "{:?}", r.grants);
}

#[test]
fn policy_variables_and_global_keys() {
    let m = model(json!({"UserDetailList": [
    {"UserName": "alice", "Arn": arn_u("alice"), "Tags": [{"Key": "team", "Value": "red"}],
     "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"},
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}}},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}}}
     ]}}]}]}));
    let a = arn_u("alice");
    assert_eq!(
        check(&m, &a, "s3:GetObject", "arn:aws:s3:::home/alice/x", &[]),
        (Decision::Allowed, false)
    );
    assert_eq!(
        check(&m, &a, "s3:GetObject", "arn:aws:s3:::home/bob/x", &[]).0,
        Decision::ImplicitDeny
    );
    // principal tags are known: these conditions are decided without a request context
    assert_eq!(
        check(
            &m,
            &a,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:eu-west-1:123456789012:table/t",
            &[]
        ),
        (Decision::Allowed, false)
    );
    assert_eq!(
        check(
            &m,
            &a,
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:123456789012:q",
            &[]
        )
        .0,
        Decision::ImplicitDeny
    );
    let r = ENGINE.analyze_principal(&m, &a, None).expect("analyze");
    assert!(r
        .grants
        .iter()
        .any(|g| g.resource == "arn:aws:s3:::home/alice/*" && !g.conditional));
    assert!(r
        .grants
        .iter()
        .any(|g| g.service == "dynamodb" && !g.conditional));
    assert!(!r.grants.iter().any(|g| g.service == "sqs"));
}

#[test]
fn not_action_not_resource_and_boundaries() {
    let m = model(json!({
    "UserDetailList": [
        {"UserName": "power", "Arn": arn_u("power"), "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::public", "arn:aws:s3:::public/*"]}]}}]},
        {"UserName": "bounded", "Arn": arn_u("bounded"),
         "PermissionsBoundary": {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": format!("arn:aws:iam::{ACCT}:policy/b")},
         "AttachedManagedPolicies": [{"PolicyName": "admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}]}
    ],
    "RoleDetailList": [{"RoleName": "r", "Arn": arn_r("r"),
        "PermissionsBoundary": {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": format!("arn:aws:iam::{ACCT}:policy/b")},
        "AttachedManagedPolicies": [{"PolicyName": "admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}]}],
    "Policies": [
        {"PolicyName": "AdministratorAccess", "Arn": "arn:aws:iam::aws:policy/AdministratorAccess",
         "PolicyVersionList": [{"VersionId": "v1", "IsDefaultVersion": true, "Document": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}]},
        {"PolicyName": "b", "Arn": format!("arn:aws:iam::{ACCT}:policy/b"),
         "PolicyVersionList": [{"VersionId": "v1", "IsDefaultVersion": true, "Document": {"Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::logs*"}]}}]}
    ]}));
    let p = arn_u("power");
    assert_eq!(
        check(&m, &p, "ec2:RunInstances", "*", &[]).0,
        Decision::Allowed
    );
    assert_eq!(
        check(&m, &p, "iam:CreateUser", "*", &[]).0,
        Decision::ImplicitDeny
    );
    assert_eq!(
        check(&m, &p, "s3:GetObject", "arn:aws:s3:::public/x", &[]).0,
        Decision::Allowed
    );
    assert_eq!(
        check(&m, &p, "s3:GetObject", "arn:aws:s3:::secret/x", &[]).0,
        Decision::ExplicitDeny
    );
    let rp = ENGINE.analyze_principal(&m, &p, None).expect("power");
    assert!(!rp.full_access && !rp.is_admin);
    assert!(!rp.grants.iter().any(|g| g.service == "iam"));
    assert!(rp
        .grants
        .iter()
        .any(|g| g.service == "ec2" && g.capability == Capability::AdministerResource));
    for who in [arn_u("bounded"), arn_r("r")] {
        // boundaries limit users and roles alike
        assert_eq!(
            check(&m, &who, "s3:GetObject", "arn:aws:s3:::logs-1/x", &[]).0,
            Decision::Allowed
        );
        assert_eq!(
            check(&m, &who, "s3:PutObject", "arn:aws:s3:::logs-1/x", &[]).0,
            Decision::ImplicitDeny
        );
        assert_eq!(
            check(&m, &who, "ec2:RunInstances", "*", &[]).0,
            Decision::ImplicitDeny
        );
        let r = ENGINE.analyze_principal(&m, &who, None).expect("bounded");
        assert!(!r.is_admin && !r.full_access, "{who}");
        assert!(
            r.grants
                .iter()
                .all(|g| g.service == "s3" && g.resource == "arn:aws:s3:::logs*"),
            "{:?}",
            r.grants
        );
    }
}

#[test]
fn trust_external_access_and_admins_through_roles() {
    let m = model(json!({
    "UserDetailList": [
        user("dev", json!([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn_r("admin")}])),
        user("named", json!([{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]))
    ],
    "RoleDetailList": [
        role("admin", json!({"AWS": format!("arn:aws:iam::{ACCT}:root")}), json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}])),
        role("vendor", json!({"AWS": "arn:aws:iam::999988887777:root"}), json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])),
        role("ci", json!({"Federated": format!("arn:aws:iam::{ACCT}:oidc-provider/token.actions.githubusercontent.com")}), json!([{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}])),
        role("open", json!("*"), json!([{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}])),
        role("svc", json!({"Service": "lambda.amazonaws.com"}), json!([{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}])),
        role("direct", json!({"AWS": arn_u("named")}), json!([{"Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": arn_r("direct")}]))
    ]}));
    let results = analyse_all(&m);
    let by = |n: &str| {
        results
            .iter()
            .find(|r| r.principal.name == n)
            .expect("principal")
    };
    assert!(by("vendor").externally_assumable);
    assert_eq!(by("vendor").trust[0].kind, TrustKind::CrossAccount);
    assert!(by("ci").externally_assumable);
    assert_eq!(by("ci").trust[0].kind, TrustKind::Federated);
    assert!(by("open").externally_assumable);
    assert_eq!(by("open").trust[0].kind, TrustKind::Public);
    assert!(!by("svc").externally_assumable);
    assert!(!by("admin").externally_assumable);
    let r = report(&m, &results, None);
    let ext: Vec<&str> = r
        .external_access
        .iter()
        .map(|e| e.role_name.as_str())
        .collect();
    assert_eq!(ext, vec!["ci", "open", "vendor"]);
    // dev may assume the admin role (account trust + identity policy): dev is an admin too;
    // named is trusted by name by `direct`, which can attach any policy to itself
    let mut admins: Vec<&str> = r.admins.iter().map(|a| a.principal_name.as_str()).collect();
    admins.sort();
    assert_eq!(admins, vec!["admin", "dev", "direct", "named"]);
    assert!(r
        .escalations
        .iter()
        .any(|e| e.principal_name == "dev" && e.path == "assume-admin-role"));
    // direct can attach any policy to itself; named is trusted by name and so can become it
    assert!(r
        .escalations
        .iter()
        .any(|e| e.principal_name == "direct" && e.path == "attach-role-policy-self"));
    assert!(r
        .role_assumers
        .iter()
        .any(|a| a.role_arn == arn_r("direct") && a.principal_arn == arn_u("named")));
    // the HTML lists admins before external access
    let html = r
        .render_files()
        .expect("render")
        .into_iter()
        .find(|(n, _)| n == "report.html")
        .map(|(_, b)| String::from_utf8(b).expect("utf8"))
        .expect("html");
    let a = html.find("id=\"admins\"").expect("admins");
    let e = html.find("id=\"external\"").expect("external");
    assert!(a < e);
}

#[test]
fn unused_access_from_last_accessed_data() {
    let m = model(
        json!({"UserDetailList": [user("u", json!([{"Effect": "Allow", "Action": ["s3:GetObject", "dynamodb:Query", "sqs:SendMessage"], "Resource": "*"}]))]}),
    );
    let la = LastAccessed::parse(br#"{"ServicesLastAccessed":[
        {"ServiceName":"Amazon S3","ServiceNamespace":"s3","LastAuthenticated":"2026-10-01T12:00:00Z","TotalAuthenticatedEntities":1},
        {"ServiceName":"Amazon DynamoDB","ServiceNamespace":"dynamodb","TotalAuthenticatedEntities":0}]}"#)
    .expect("last accessed");
    let r = ENGINE
        .analyze_principal(&m, &arn_u("u"), Some(&la))
        .expect("analyze");
    let unused: Vec<&str> = r
        .unused_services
        .iter()
        .map(|u| u.service.as_str())
        .collect();
    assert_eq!(unused, vec!["dynamodb", "sqs"]);
    assert!(r.last_accessed_available);
    assert_eq!(la.last_used(), Some("2026-10-01T12:00:00Z"));
    let rep = report(&m, &[r], None);
    assert_eq!(rep.unused_access.len(), 2);
}

#[test]
fn digest_covers_groups_and_boundaries() {
    let base = |group_action: &str, other: &str| {
        json!({
            "UserDetailList": [{"UserName": "u", "Arn": arn_u("u"), "GroupList": ["g"]},
                               user("other", json!([{"Effect": "Allow", "Action": other, "Resource": "*"}]))],
            "GroupDetailList": [{"GroupName": "g", "Arn": format!("arn:aws:iam::{ACCT}:group/g"),
                "GroupPolicyList": [{"PolicyName": "gp", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": group_action, "Resource": "*"}]}}]}]
        })
    };
    let m1 = model(base("s3:GetObject", "sqs:*"));
    let m2 = model(base("s3:PutObject", "sqs:*"));
    let m3 = model(base("s3:GetObject", "sns:*"));
    let d = |m: &AccountModel| m.principal_digest(&arn_u("u")).expect("digest");
    assert_ne!(d(&m1), d(&m2), "a group policy change changes the digest");
    assert_eq!(d(&m1), d(&m3), "another principal's change does not");
    assert_eq!(d(&m1).len(), 64);
    assert!(m1.principal_digest("arn:aws:iam::1:user/none").is_none());
}

#[test]
fn partial_report_credential_report_and_diff() {
    let v1 = json!({"UserDetailList": [
        user("a", json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}])),
        user("b", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]))]});
    let v2 = json!({"UserDetailList": [
        user("a", json!([{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}])),
        user("b", json!([{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]))]});
    let m1 = model(v1);
    let r1 = report(&m1, &analyse_all(&m1), None);
    assert!(r1.diff.is_empty() && r1.diff_base_run.is_none());
    let m2 = model(v2);
    let r2 = report(&m2, &analyse_all(&m2), Some(&r1));
    let has = |change: &str, kind: &str, who: &str| {
        r2.diff.iter().any(|d| {
            d.change.as_str() == change && d.kind.as_str() == kind && d.principal_arn == arn_u(who)
        })
    };
    assert!(has("added", "access", "a"), "{:#?}", r2.diff);
    assert!(r2.diff.iter().any(|d| d.change == DiffChange::Added
        && d.access_capability == "write-data"
        && d.resource_arn == "arn:aws:s3:::b/*"));
    assert!(has("removed", "admin", "b"));
    assert!(has("removed", "access", "b"));
    assert!(!has("added", "admin", "a"));
    // round trip through report.json and the access CSV (report.json leaves out the access
    // rows: the CSV files have them; the resource-access rows are not read back)
    let files = r1.render_files().expect("render");
    let file = |name: &str| &files.iter().find(|(n, _)| n == name).expect(name).1;
    let json = file("report.json");
    let access = file(accessflow_analysis::ACCESS_FILE);
    let mut without_resource_access = r1.clone();
    without_resource_access.resource_access.clear();
    assert_eq!(
        AccountReport::from_files(json, Some(access)).expect("reload"),
        without_resource_access
    );

    // partial: a failed principal is listed and flagged
    let ctx = ReportContext {
        customer: "acme",
        account: ACCT,
        run_id: "run-3",
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: Some("user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\na,arn:aws:iam::123456789012:user/a,2024-01-01T00:00:00+00:00,true,2026-11-20T10:00:00+00:00,2026-01-01T00:00:00+00:00,N/A,true,true,2026-02-01T00:00:00+00:00,2026-11-25T09:00:00+00:00,eu-west-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"),
        resources: None,
        trusted_accounts: &[],
    };
    let results: Vec<_> = analyse_all(&m2)
        .into_iter()
        .filter(|r| r.principal.name == "a")
        .collect();
    let failures = vec![PrincipalFailure {
        principal_arn: arn_u("b"),
        reason: "malformed policy".into(),
    }];
    let r3 = build_report(&ENGINE, &m2, &results, &failures, &ctx, None);
    assert!(r3.partial);
    assert_eq!(r3.failures, failures);
    let row_a = r3
        .principals
        .iter()
        .find(|p| p.principal_name == "a")
        .expect("a");
    assert_eq!(row_a.password_state, "enabled");
    assert_eq!(row_a.access_key_1_state, "active");
    assert_eq!(row_a.access_key_2_state, "inactive");
    assert_eq!(row_a.principal_last_used, "2026-11-25T09:00:00+00:00");
    let row_b = r3
        .principals
        .iter()
        .find(|p| p.principal_name == "b")
        .expect("b");
    assert_eq!(row_b.principal_is_iam_admin, IamAdmin::Unknown);
    let csv = r3.render_files().expect("render");
    let principals_csv = String::from_utf8(
        csv.iter()
            .find(|(n, _)| n == "principals.csv")
            .expect("csv")
            .1
            .clone(),
    )
    .expect("utf8");
    assert!(principals_csv.starts_with("analysis_time,principal_name,principal_arn,principal_type,principal_is_iam_admin,principal_last_used,"));
}

/// A principal that could not be analysed tonight has unknown access, not removed access:
/// the diff against last night says nothing about it, while the others' changes still show.
#[test]
fn the_diff_never_reports_a_failed_principals_access_as_removed() {
    let v1 = json!({"UserDetailList": [
        user("a", json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}])),
        user("b", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]))]});
    let m1 = model(v1);
    let r1 = report(&m1, &analyse_all(&m1), None);
    assert!(r1.admins.iter().any(|a| a.principal_arn == arn_u("b")));

    let v2 = json!({"UserDetailList": [
        user("a", json!([{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}])),
        user("b", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]))]});
    let m2 = model(v2);
    let only_a: Vec<_> = analyse_all(&m2)
        .into_iter()
        .filter(|r| r.principal.name == "a")
        .collect();
    let failures = vec![PrincipalFailure {
        principal_arn: arn_u("b"),
        reason: "dead-lettered: throttled".into(),
    }];
    let ctx = ReportContext {
        customer: "acme",
        account: ACCT,
        run_id: "run-2",
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    let r2 = build_report(&ENGINE, &m2, &only_a, &failures, &ctx, Some(&r1));
    assert!(
        !r2.diff.iter().any(|d| d.principal_arn == arn_u("b")),
        "nothing about b, whose access is unknown tonight: {:#?}",
        r2.diff
    );
    assert!(r2
        .diff
        .iter()
        .any(|d| d.change == DiffChange::Added && d.principal_arn == arn_u("a")));

    // The next night b is analysed again: compared with the partial night, b's access is
    // not "added" either (it was unknown then), and nothing is lost against the full night.
    let r3 = report(&m2, &analyse_all(&m2), Some(&r2));
    assert!(
        !r3.diff.iter().any(|d| d.principal_arn == arn_u("b")),
        "{:#?}",
        r3.diff
    );
}
