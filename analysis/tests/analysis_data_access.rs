//! Who inside the account can reach its data stores (`data_access.rs`), and the same rules
//! in single decisions (`Engine::check`), on the cases of AWS's documentation:
//!
//! - "Policy evaluation logic" (IAM user guide): within one account a resource-based
//!   policy naming a user or role grants on its own; a role's permissions boundary still
//!   limits what a resource policy grants it, a user named directly is not limited;
//! - "Key policies in AWS KMS": a key's policy must allow, by naming the principal or by
//!   delegating to the account (the default key policy), before IAM policies count;
//! - an explicit deny in the resource policy wins, a conditional one makes access
//!   conditional;
//! - AWS's fixed rules: AWS managed policies cannot be changed, service-linked and
//!   AWS-reserved roles are changed only by their service, `aws/` aliases are AWS's,
//!   `sts:GetCallerIdentity` is always allowed; a service-linked role is no escalation
//!   path to itself;
//! - and a property: adding a deny statement to a bucket policy never adds data access.

use accessflow_analysis::data_access::{data_access, DataAccessRow};
use accessflow_analysis::resources::ResourceInventory;
use accessflow_analysis::{
    build_report, parse_resource_policies, AccountModel, Capability, CheckInputs, Decision, Engine,
    PrincipalAnalysis, ReportContext,
};
use serde_json::{json, Value};

const OWN: &str = "111122223333";
const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/0b5e7d1a-0000-4000-8000-00000000da7a";

fn engine() -> Engine {
    Engine::new().expect("the embedded catalog loads")
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iam::{OWN}:{kind}/{name}")
}

fn doc(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn allow(action: &str, resource: &str) -> Value {
    json!({"Effect": "Allow", "Action": action, "Resource": resource})
}

/// The account: users and roles with one inline policy each (`None`: no policy), and an
/// optional boundary (a managed policy) per principal.
struct Account {
    users: Vec<Value>,
    roles: Vec<Value>,
    policies: Vec<Value>,
}

impl Account {
    fn new() -> Account {
        Account {
            users: Vec::new(),
            roles: Vec::new(),
            policies: Vec::new(),
        }
    }

    fn principal(
        &mut self,
        kind: &str,
        name: &str,
        policy: Option<Value>,
        boundary: Option<Value>,
    ) -> &mut Account {
        let inline: Vec<Value> = policy
            .into_iter()
            .map(|p| json!({"PolicyName": "inline", "PolicyDocument": p}))
            .collect();
        let mut p = if kind == "user" {
            json!({"UserName": name, "UserId": format!("AIDA{name}"), "Arn": arn("user", name),
                "Path": "/", "GroupList": [], "AttachedManagedPolicies": [], "UserPolicyList": inline})
        } else {
            json!({"RoleName": name, "RoleId": format!("AROA{name}"), "Arn": arn("role", name),
                "Path": "/", "AttachedManagedPolicies": [], "RolePolicyList": inline,
                "AssumeRolePolicyDocument": doc(json!([{"Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]))})
        };
        if let Some(b) = boundary {
            let b_arn = format!("arn:aws:iam::{OWN}:policy/boundary-{name}");
            p["PermissionsBoundary"] =
                json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": b_arn});
            self.policies.push(json!({"PolicyName": format!("boundary-{name}"), "Arn": b_arn,
                "DefaultVersionId": "v1",
                "PolicyVersionList": [{"Document": b, "VersionId": "v1", "IsDefaultVersion": true}]}));
        }
        if kind == "user" {
            self.users.push(p);
        } else {
            self.roles.push(p);
        }
        self
    }

    fn model(&self) -> AccountModel {
        let v = json!({"UserDetailList": self.users, "GroupDetailList": [],
            "RoleDetailList": self.roles, "Policies": self.policies});
        AccountModel::parse(&serde_json::to_vec(&v).expect("json")).expect("account parses")
    }
}

fn bucket(name: &str, policy: Option<Value>) -> Value {
    let mut b = json!({"Arn": format!("arn:aws:s3:::{name}"), "Type": "AWS::S3::Bucket", "Region": "eu-west-1"});
    if let Some(p) = policy {
        b["Policy"] = p;
    }
    b
}

fn key(policy: Value) -> Value {
    json!({"Arn": KEY, "Type": "AWS::KMS::Key", "Region": "eu-west-1", "Policy": policy})
}

fn inventory(resources: Vec<Value>) -> ResourceInventory {
    ResourceInventory::parse(&serde_json::to_vec(&json!({"Resources": resources})).expect("json"))
        .expect("inventory parses")
}

fn analyse(engine: &Engine, model: &AccountModel) -> Vec<PrincipalAnalysis> {
    model
        .principals()
        .iter()
        .map(|p| {
            engine
                .analyze_principal(model, &p.arn, None)
                .expect("analysis")
        })
        .collect()
}

/// (principal name, capability, conditional, via) of the rows on `resource`.
fn on(rows: &[DataAccessRow], resource: &str) -> Vec<(String, Capability, bool, String)> {
    rows.iter()
        .filter(|r| r.resource_arn == resource)
        .map(|r| {
            (
                r.principal_name.clone(),
                r.access_capability,
                r.conditional,
                r.via.clone(),
            )
        })
        .collect()
}

fn rows_of(account: &Account, resources: Vec<Value>) -> Vec<DataAccessRow> {
    let engine = engine();
    let model = account.model();
    let results = analyse(&engine, &model);
    let refs: Vec<&PrincipalAnalysis> = results.iter().collect();
    data_access(&engine, &model, &inventory(resources), &refs, OWN).rows
}

fn row(
    name: &str,
    cap: Capability,
    conditional: bool,
    via: &str,
) -> (String, Capability, bool, String) {
    (name.to_string(), cap, conditional, via.to_string())
}

#[test]
fn a_bucket_policy_naming_a_user_grants_on_its_own_and_identity_grants_are_listed_per_bucket() {
    let mut a = Account::new();
    a.principal("user", "reader", None, None).principal(
        "role",
        "app",
        Some(doc(json!([allow("s3:PutObject", "arn:aws:s3:::data/*")]))),
        None,
    );
    let policy = doc(
        json!([{"Effect": "Allow", "Principal": {"AWS": arn("user", "reader")},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]),
    );
    let rows = rows_of(&a, vec![bucket("data", Some(policy))]);
    assert_eq!(
        on(&rows, "arn:aws:s3:::data"),
        vec![
            row("app", Capability::WriteData, false, "identity policy"),
            row("reader", Capability::ReadData, false, "bucket policy"),
        ]
    );
    let reader = rows
        .iter()
        .find(|r| r.principal_name == "reader")
        .expect("reader");
    assert_eq!(reader.principal_type, "IAMUser");
    assert_eq!(reader.service_name, "Amazon S3");
}

#[test]
fn a_roles_boundary_limits_what_a_resource_policy_grants_it_a_users_does_not() {
    // IAM user guide, "Policy evaluation logic": within an account, a resource-based policy
    // naming an IAM user grants whatever the user's boundary says; naming a role, the
    // boundary still applies.
    let ec2_only = doc(json!([allow("ec2:*", "*")]));
    let mut a = Account::new();
    a.principal("user", "bounded-user", None, Some(ec2_only.clone()))
        .principal("role", "bounded-role", None, Some(ec2_only));
    let policy = doc(json!([{"Effect": "Allow",
        "Principal": {"AWS": [arn("user", "bounded-user"), arn("role", "bounded-role")]},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]));
    let rows = rows_of(&a, vec![bucket("data", Some(policy))]);
    assert_eq!(
        on(&rows, "arn:aws:s3:::data"),
        vec![row(
            "bounded-user",
            Capability::ReadData,
            false,
            "bucket policy"
        )]
    );
}

#[test]
fn a_key_policy_must_allow_or_delegate_before_iam_policies_count() {
    let mut a = Account::new();
    a.principal(
        "role",
        "decrypter",
        Some(doc(json!([allow("kms:Decrypt", KEY)]))),
        None,
    )
    .principal("role", "named", None, None);
    // the default key policy: delegation to the account, IAM policies apply
    let default = doc(
        json!([{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")}, "Action": "kms:*", "Resource": "*"}]),
    );
    let rows = rows_of(&a, vec![key(default)]);
    assert_eq!(
        on(&rows, KEY),
        vec![row(
            "decrypter",
            Capability::ReadData,
            false,
            "identity policy"
        )],
        "{rows:#?}"
    );
    // a key policy that names one role and does not delegate: the IAM grant counts for
    // nothing, the named role decrypts through the key policy alone
    let own = doc(
        json!([{"Effect": "Allow", "Principal": {"AWS": arn("role", "named")},
        "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}]),
    );
    let rows = rows_of(&a, vec![key(own)]);
    let got = on(&rows, KEY);
    assert!(
        got.iter().all(|r| r.0 == "named" && r.3 == "key policy"),
        "{got:#?}"
    );
    assert!(got.contains(&row("named", Capability::ReadData, false, "key policy")));
}

#[test]
fn a_deny_in_the_bucket_policy_removes_access_and_a_conditional_one_makes_it_conditional() {
    let mut a = Account::new();
    a.principal(
        "role",
        "etl",
        Some(doc(json!([{"Effect": "Allow", "Action": "s3:GetObject",
            "Resource": ["arn:aws:s3:::data/*", "arn:aws:s3:::open/*", "arn:aws:s3:::tls/*"]}]))),
        None,
    )
    // a grant on every bucket is not repeated for each one (principal-access-summaries.csv
    // has it once, with its pattern)
    .principal(
        "role",
        "every-bucket",
        Some(doc(json!([allow("s3:GetObject", "arn:aws:s3:::*")]))),
        None,
    );
    let deny = |bucket: &str, condition: Option<Value>| {
        let mut st = json!({"Effect": "Deny", "Principal": {"AWS": arn("role", "etl")},
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")});
        if let Some(c) = condition {
            st["Condition"] = c;
        }
        doc(json!([st]))
    };
    let tls_only = json!({"Bool": {"aws:SecureTransport": "false"}});
    let rows = rows_of(
        &a,
        vec![
            bucket("data", Some(deny("data", None))),
            bucket("open", None),
            bucket("tls", Some(deny("tls", Some(tls_only)))),
        ],
    );
    assert_eq!(on(&rows, "arn:aws:s3:::data"), vec![]);
    assert_eq!(
        on(&rows, "arn:aws:s3:::open"),
        vec![row("etl", Capability::ReadData, false, "identity policy")]
    );
    assert_eq!(
        on(&rows, "arn:aws:s3:::tls"),
        vec![row("etl", Capability::ReadData, true, "identity policy")]
    );
}

#[test]
fn the_report_lists_data_access_in_its_files_and_the_diff_names_new_access() {
    let engine = engine();
    let mut a = Account::new();
    a.principal("user", "reader", None, None);
    let model = a.model();
    let results = analyse(&engine, &model);
    let policy = |who: Vec<String>| {
        doc(json!([{"Effect": "Allow", "Principal": {"AWS": who},
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]))
    };
    let night1 = inventory(vec![bucket(
        "data",
        Some(policy(vec![arn("role", "gone")])),
    )]);
    let night2 = inventory(vec![bucket(
        "data",
        Some(policy(vec![arn("user", "reader")])),
    )]);
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
    let night2: &'static ResourceInventory = Box::leak(Box::new(night2));
    let r1 = build_report(&engine, &model, &results, &[], &ctx("r1", night1), None);
    // a role the policy names but the account does not have is still listed, by its ARN
    assert_eq!(
        on(&r1.data_access, "arn:aws:s3:::data"),
        vec![row("gone", Capability::ReadData, false, "bucket policy")]
    );
    let r2 = build_report(
        &engine,
        &model,
        &results,
        &[],
        &ctx("r2", night2),
        Some(&r1),
    );
    let files = r2.render_files().expect("render");
    let file = |name: &str| -> String {
        String::from_utf8(
            files
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} rendered"))
                .1
                .clone(),
        )
        .expect("UTF-8")
    };
    let summaries = file("resource-access-summaries.csv");
    assert!(
        summaries.lines().any(|l| l.contains("arn:aws:s3:::data")
            && l.contains("read-data")
            && l.contains(&arn("user", "reader"))),
        "{summaries}"
    );
    let html = file("report.html");
    // the section, and in it the reader's row
    let section = html
        .split("id=\"sec-data-access\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("the Data access section");
    assert!(section.contains("Data access"), "{section}");
    assert!(section.contains(&arn("user", "reader")), "{section}");
    assert!(section.contains("bucket policy"), "{section}");
    let diff = file("diff.csv");
    assert!(
        diff.lines().any(|l| l.contains("added")
            && l.contains("data-access")
            && l.contains(&arn("user", "reader"))),
        "{diff}"
    );
    assert!(
        diff.lines().any(|l| l.contains("removed")
            && l.contains("data-access")
            && l.contains(&arn("role", "gone"))),
        "{diff}"
    );
    // report.json carries the rows: read back, the diff against it is the same
    let file = |name: &str| &files.iter().find(|(n, _)| n == name).expect(name).1;
    let back = accessflow_analysis::AccountReport::from_files(
        file("report.json"),
        Some(file(accessflow_analysis::ACCESS_FILE)),
    )
    .expect("reads back");
    assert_eq!(back.data_access, r2.data_access);
}

fn check(
    model: &AccountModel,
    who: &str,
    action: &str,
    resource: &str,
    inputs: &CheckInputs,
) -> accessflow_analysis::CheckResult {
    engine()
        .check(model, who, action, resource, &[], inputs)
        .expect("check")
}

fn no_inputs() -> CheckInputs {
    CheckInputs {
        scps: Vec::new(),
        rcps: Vec::new(),
        resource_policies: Vec::new(),
    }
}

#[test]
fn check_decides_kms_by_the_key_policy() {
    let mut a = Account::new();
    a.principal(
        "role",
        "decrypter",
        Some(doc(json!([allow("kms:Decrypt", "*")]))),
        None,
    );
    let model = a.model();
    let who = arn("role", "decrypter");
    let inputs = |policy: Value| CheckInputs {
        scps: Vec::new(),
        rcps: Vec::new(),
        resource_policies: parse_resource_policies(
            &serde_json::to_vec(&json!({"Resources": [key(policy)]})).expect("json"),
        )
        .expect("key policy"),
    };
    let delegating = doc(json!([{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")}, "Action": "kms:*", "Resource": "*"}]));
    let not_delegating = doc(json!([{"Effect": "Allow",
        "Principal": {"AWS": arn("role", "someone-else")}, "Action": "kms:*", "Resource": "*"}]));
    assert_eq!(
        check(&model, &who, "kms:Decrypt", KEY, &inputs(delegating)).decision,
        Decision::Allowed
    );
    assert_eq!(
        check(&model, &who, "kms:Decrypt", KEY, &inputs(not_delegating)).decision,
        Decision::ImplicitDeny
    );
    // no key policy given: decided as the default one, and said so
    let r = check(&model, &who, "kms:Decrypt", KEY, &no_inputs());
    assert_eq!(r.decision, Decision::Allowed);
    assert!(
        r.warnings.iter().any(|w| w.contains("no key policy")),
        "{r:?}"
    );
}

#[test]
fn check_applies_awss_fixed_rules_whatever_the_policies_say() {
    let mut a = Account::new();
    a.principal(
        "user",
        "admin",
        Some(doc(json!([allow("*", "*"),
            {"Effect": "Deny", "Action": "sts:GetCallerIdentity", "Resource": "*"}]))),
        None,
    );
    let model = a.model();
    let who = arn("user", "admin");
    let cases = [
        ("iam:CreatePolicyVersion", "arn:aws:iam::aws:policy/AdministratorAccess", Decision::ExplicitDeny),
        ("iam:GetPolicyVersion", "arn:aws:iam::aws:policy/AdministratorAccess", Decision::Allowed),
        ("iam:CreatePolicyVersion", &format!("arn:aws:iam::{OWN}:policy/mine"), Decision::Allowed),
        ("iam:AttachRolePolicy", &format!("arn:aws:iam::{OWN}:role/aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport"), Decision::ExplicitDeny),
        ("iam:UpdateRoleDescription", &format!("arn:aws:iam::{OWN}:role/aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport"), Decision::Allowed),
        ("iam:PutRolePolicy", &format!("arn:aws:iam::{OWN}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123"), Decision::ExplicitDeny),
        ("kms:DeleteAlias", "arn:aws:kms:eu-west-1:111122223333:alias/aws/s3", Decision::ExplicitDeny),
        ("kms:DeleteAlias", "arn:aws:kms:eu-west-1:111122223333:alias/mine", Decision::Allowed),
        ("sts:GetCallerIdentity", "*", Decision::Allowed),
    ];
    for (action, resource, want) in cases {
        let r = check(&model, &who, action, resource, &no_inputs());
        assert_eq!(r.decision, want, "{action} on {resource}: {r:?}");
        if r.aws_rule.is_some() {
            assert!(r.deciding_statements.is_empty());
        }
    }
    assert!(
        check(&model, &who, "sts:GetCallerIdentity", "*", &no_inputs())
            .aws_rule
            .is_some()
    );
}

#[test]
fn a_service_linked_role_is_no_escalation_path_to_itself() {
    let engine = engine();
    let slr = "arn:aws:iam::111122223333:role/aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport";
    let v = json!({"UserDetailList": [], "GroupDetailList": [], "Policies": [],
        "RoleDetailList": [{"RoleName": "AWSServiceRoleForSupport", "RoleId": "AROASLR", "Arn": slr,
            "Path": "/aws-service-role/support.amazonaws.com/", "AttachedManagedPolicies": [],
            "RolePolicyList": [{"PolicyName": "iam", "PolicyDocument": doc(json!([allow("iam:*", slr)]))}],
            "AssumeRolePolicyDocument": doc(json!([{"Effect": "Allow",
                "Principal": {"Service": "support.amazonaws.com"}, "Action": "sts:AssumeRole"}]))}]});
    let model = AccountModel::parse(&serde_json::to_vec(&v).expect("json")).expect("parses");
    let r = engine
        .analyze_principal(&model, slr, None)
        .expect("analysis");
    assert!(
        !r.escalations.iter().any(|e| e.id.ends_with("-self")),
        "{:#?}",
        r.escalations
    );
    assert!(!r.is_admin);
    // the same policy on an ordinary role is an escalation to admin
    let ordinary = slr.replace("aws-service-role/support.amazonaws.com/", "");
    let v2 = serde_json::to_string(&v)
        .expect("json")
        .replace(slr, &ordinary)
        .replace("/aws-service-role/support.amazonaws.com/", "/");
    let model = AccountModel::parse(v2.as_bytes()).expect("parses");
    let r = engine
        .analyze_principal(&model, &ordinary, None)
        .expect("analysis");
    assert!(r
        .escalations
        .iter()
        .any(|e| e.id == "attach-role-policy-self"));
}

#[test]
fn the_samples_payroll_bucket_and_key_are_reached_by_the_role_they_name() {
    use accessflow_samples::{generate_account, SampleAccountSpec};
    let engine = engine();
    let spec = SampleAccountSpec {
        account_id: OWN.to_string(),
        principals: 80,
        seed: 3,
        malformed_policy: false,
        resources: true,
    };
    let account = generate_account(&spec);
    let model = AccountModel::parse(&account.authorization_details).expect("sample parses");
    let results = analyse(&engine, &model);
    let refs: Vec<&PrincipalAnalysis> = results.iter().collect();
    let inv = ResourceInventory::parse(account.resources.as_deref().expect("an inventory"))
        .expect("sample inventory parses");
    let rows = data_access(&engine, &model, &inv, &refs, OWN).rows;
    let role = "OrganizationAccountAccessRole";
    let bucket = on(&rows, &format!("arn:aws:s3:::{OWN}-payroll"));
    assert!(
        bucket.contains(&row(
            role,
            Capability::ReadData,
            false,
            "identity policy + bucket policy"
        )),
        "{bucket:#?}"
    );
    // the deny for everyone else: nobody else reads the payroll objects
    assert!(
        bucket
            .iter()
            .all(|r| r.0 == role || r.1 != Capability::ReadData),
        "{bucket:#?}"
    );
    let key_arn = inv
        .resources
        .iter()
        .find(|r| r.tags.get("alias").map(String::as_str) == Some("payroll"))
        .expect("the payroll key")
        .arn
        .clone();
    let key = on(&rows, &key_arn);
    assert!(
        !key.is_empty() && key.iter().all(|r| r.0 == role),
        "{key:#?}"
    );
    // the log bucket names a role the account does not have: listed by its name
    assert!(on(&rows, &format!("arn:aws:s3:::{OWN}-logs"))
        .iter()
        .any(|r| r.0 == "log-delivery" && r.3 == "bucket policy"));
}

/// A bucket policy statement from a small alphabet naming the account's principals.
fn arb_statement(effect: &'static str) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let principal = prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": arn("user", "alice")})),
        Just(json!({"AWS": arn("role", "bob")})),
        Just(json!({"AWS": format!("arn:aws:iam::{OWN}:root")})),
    ];
    let action = prop_oneof![
        Just(json!("s3:*")),
        Just(json!("s3:GetObject")),
        Just(json!(["s3:PutObject", "s3:DeleteObject"])),
        Just(json!("s3:ListBucket")),
    ];
    let resource = prop_oneof![
        Just(json!("arn:aws:s3:::b")),
        Just(json!("arn:aws:s3:::b/*")),
        Just(json!("*")),
    ];
    let condition = prop_oneof![
        Just(Value::Null),
        Just(json!({"Bool": {"aws:SecureTransport": "false"}})),
        Just(json!({"StringEquals": {"aws:PrincipalTag/team": "data"}})),
    ];
    (principal, action, resource, condition).prop_map(move |(p, a, r, c)| {
        let mut st = json!({"Effect": effect, "Principal": p, "Action": a, "Resource": r});
        if !c.is_null() {
            st["Condition"] = c;
        }
        st
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn adding_a_deny_to_the_bucket_policy_never_adds_data_access(
        allows in proptest::collection::vec(arb_statement("Allow"), 1..4),
        deny in arb_statement("Deny"),
        alice_reads in proptest::bool::ANY,
    ) {
        let mut a = Account::new();
        let alice = alice_reads.then(|| doc(json!([allow("s3:GetObject", "arn:aws:s3:::b/*")])));
        a.principal("user", "alice", alice, None)
            .principal("role", "bob", None, None);
        let before = rows_of(&a, vec![bucket("b", Some(doc(json!(allows.clone()))))]);
        let mut with_deny = allows;
        with_deny.push(deny);
        let after = rows_of(&a, vec![bucket("b", Some(doc(json!(with_deny))))]);
        for row in &after {
            let was = before.iter().find(|b| {
                (&b.principal_arn, &b.service_name, b.access_capability)
                    == (&row.principal_arn, &row.service_name, row.access_capability)
            });
            proptest::prop_assert!(was.is_some(), "the deny added {row:?}");
            proptest::prop_assert!(
                row.conditional || !was.expect("checked").conditional,
                "the deny made {row:?} unconditional"
            );
        }
    }
}

/// Resource control policies apply inside the account too: an RCP that denies writes to
/// a bucket removes the writer's row; one that denies unless the request uses TLS (AWS's
/// RCP example "enforce secure transport") makes the reader's access conditional.
#[test]
fn resource_control_policies_limit_data_access_inside_the_account() {
    let mut a = Account::new();
    a.principal(
        "role",
        "app",
        Some(doc(json!([
            allow("s3:PutObject", "arn:aws:s3:::data/*"),
            allow("s3:GetObject", "arn:aws:s3:::data/*")
        ]))),
        None,
    );
    let engine = engine();
    let model = a.model();
    let results = analyse(&engine, &model);
    let refs: Vec<&PrincipalAnalysis> = results.iter().collect();
    let rcp = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "NoWrites", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": "arn:aws:s3:::data/*"},
        {"Sid": "SecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": "*", "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}}
    ]});
    let rcps = vec![
        accessflow_analysis::Rcps::parse(&serde_json::to_vec(&rcp).expect("json")).expect("RCP"),
    ];
    let inv = inventory(vec![bucket("data", None)]);
    let without = data_access(&engine, &model, &inv, &refs, OWN).rows;
    assert_eq!(
        on(&without, "arn:aws:s3:::data"),
        vec![
            row("app", Capability::ReadData, false, "identity policy"),
            row("app", Capability::WriteData, false, "identity policy"),
        ]
    );
    let with = data_access(&engine, &model, &inv.with_rcps(rcps), &refs, OWN).rows;
    assert_eq!(
        on(&with, "arn:aws:s3:::data"),
        vec![row("app", Capability::ReadData, true, "identity policy")]
    );
}
