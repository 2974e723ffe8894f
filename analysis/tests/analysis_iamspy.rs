//! The 39 cases of IAMSpy's `tests/test_integration.py` (Apache-2.0, WithSecureLabs/IAMSpy),
//! as Rust tests with the same expected answers. Test files: `tests/data/iamspy/`.
//!
//! Mapping of IAMSpy's API:
//! - `can_i(src, action, resource)` (non-strict) = `Decision::Allowed` (conditional or not);
//!   `strict_conditions=True` = allowed and not conditional.
//! - `conditions=["k=v"]` = a request context (complete: absent keys are absent).
//! - `who_can` = `Engine::who_can`; `who_can_batch_resource` = `who_can` per resource.
//! - A principal not in the file (user-boundary-deny asks about `user/name`, the file has
//!   `user/PermissionBoundaryBlock` in another account) is an `UnknownPrincipal` error, which
//!   IAMSpy answers with `False`: the test expects "not allowed".
//!
//! No case is skipped.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use accessflow_analysis::{
    parse_resource_policies, AccountModel, CheckInputs, Decision, Engine, Scps,
};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));

fn data(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/iamspy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

struct Files<'a> {
    gaads: &'a [&'a str],
    resources: &'a [&'a str],
    scps: &'a [&'a str],
}

fn load(f: &Files) -> (AccountModel, CheckInputs) {
    assert_eq!(f.gaads.len(), 1);
    let model = AccountModel::parse(&data(f.gaads[0])).expect("gaad parses");
    let mut inputs = CheckInputs::default();
    for r in f.resources {
        inputs
            .resource_policies
            .extend(parse_resource_policies(&data(r)).expect("resource policies parse"));
    }
    for s in f.scps {
        inputs.scps.push(Scps::parse(&data(s)).expect("scps parse"));
    }
    (model, inputs)
}

fn ctx(kv: &[&str]) -> Vec<(String, String)> {
    kv.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').expect("k=v");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn can_i(
    f: Files,
    principal: &str,
    action: &str,
    resource: &str,
    context: &[&str],
    strict: bool,
) -> bool {
    let engine = &*ENGINE;
    let (model, inputs) = load(&f);
    match engine.check(&model, principal, action, resource, &ctx(context), &inputs) {
        Ok(r) => r.decision == Decision::Allowed && (!strict || !r.conditional),
        Err(accessflow_analysis::AnalysisError::UnknownPrincipal(_)) => false,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn who_can(
    f: Files,
    action: &str,
    resource: &str,
    context: &[&str],
    strict: bool,
) -> BTreeSet<String> {
    let engine = &*ENGINE;
    let (model, inputs) = load(&f);
    engine
        .who_can(&model, action, resource, &ctx(context), &inputs, strict)
        .expect("who_can")
        .into_iter()
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const LAMBDA_OWN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:helloworld";
const LAMBDA_OTHER: &str = "arn:aws:lambda:eu-west-1:111111111111:function:helloworld";
const ROLE: &str = "arn:aws:iam::123456789012:role/name";
const USER_PB: &str = "arn:aws:iam::123456789012:user/PermissionBoundaryAllow";

fn g(gaad: &'static [&'static str]) -> Files<'static> {
    Files {
        gaads: gaad,
        resources: &[],
        scps: &[],
    }
}
fn gr(gaad: &'static [&'static str], res: &'static [&'static str]) -> Files<'static> {
    Files {
        gaads: gaad,
        resources: res,
        scps: &[],
    }
}
fn gs(gaad: &'static [&'static str], scps: &'static [&'static str]) -> Files<'static> {
    Files {
        gaads: gaad,
        resources: &[],
        scps,
    }
}

// ---- test_can_i (22 cases)

#[test]
fn can_i_01_role_boundary_no_policies() {
    assert!(!can_i(
        g(&["role-boundary-no-policies.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_02_user_allow_check() {
    assert!(can_i(
        g(&["user-allow-check.json"]),
        USER_PB,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_03_user_boundary_allow() {
    assert!(can_i(
        g(&["user-boundary-allow.json"]),
        USER_PB,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_04_user_boundary_deny() {
    assert!(!can_i(
        g(&["user-boundary-deny.json"]),
        "arn:aws:iam::123456789012:user/name",
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
    // and the user that is in the file is blocked by its boundary, too
    assert!(!can_i(
        g(&["user-boundary-deny.json"]),
        "arn:aws:iam::391638756970:user/PermissionBoundaryBlock",
        "lambda:InvokeFunction",
        "arn:aws:lambda:eu-west-1:391638756970:function:helloworld",
        &[],
        false
    ));
}
#[test]
fn can_i_05_role_boundary_allow() {
    assert!(can_i(
        g(&["role-boundary-allow.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_06_role_boundary_deny() {
    assert!(!can_i(
        g(&["role-boundary-deny.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_07_basic_deny() {
    assert!(!can_i(
        g(&["basic-deny.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_08_basic_allow() {
    assert!(can_i(
        g(&["basic-allow.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_09_basic_allow_other_account() {
    assert!(!can_i(
        g(&["basic-allow.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OTHER,
        &[],
        false
    ));
}
#[test]
fn can_i_10_cross_account_resource_policy() {
    assert!(can_i(
        gr(&["basic-allow.json"], &["cross-account-rp.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OTHER,
        &[],
        false
    ));
}
#[test]
fn can_i_11_conditions_unknown_non_strict() {
    assert!(can_i(
        g(&["allow-with-conditions.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_12_conditions_unknown_strict() {
    assert!(!can_i(
        g(&["allow-with-conditions.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        true
    ));
}
#[test]
fn can_i_13_conditions_given() {
    assert!(can_i(
        g(&["allow-with-conditions.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &["aws:referer=bobby.tables"],
        false
    ));
}
#[test]
fn can_i_14_conditions_given_strict() {
    assert!(can_i(
        g(&["allow-with-conditions.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &["aws:referer=bobby.tables"],
        true
    ));
}
#[test]
fn can_i_15_resource_policy_allows_role() {
    assert!(can_i(
        gr(
            &["allow-testing-s3.json"],
            &["resource-s3-allow-testing.json"]
        ),
        "arn:aws:iam::111111111111:role/testing",
        "s3:ListBucket",
        "arn:aws:s3:::bucket",
        &[],
        false
    ));
}
#[test]
fn can_i_16_resource_policy_denies_role() {
    assert!(!can_i(
        gr(
            &["allow-testing-s3.json"],
            &["resource-s3-deny-testing2.json"]
        ),
        "arn:aws:iam::111111111111:role/testing2",
        "s3:ListBucket",
        "arn:aws:s3:::bucket",
        &[],
        false
    ));
}
#[test]
fn can_i_17_resource_policy_allows_all() {
    assert!(can_i(
        gr(&["allow-testing-s3.json"], &["resource-s3-allow-all.json"]),
        "arn:aws:iam::111111111111:role/testing",
        "s3:ListBucket",
        "arn:aws:s3:::bucket",
        &[],
        false
    ));
}
#[test]
fn can_i_18_scp_basic_identity_does_not_allow() {
    assert!(!can_i(
        gs(&["basic-deny.json"], &["scp-basic.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_19_scp_basic_allows() {
    assert!(can_i(
        gs(&["basic-allow.json"], &["scp-basic.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_20_scp_basic_other_account() {
    assert!(!can_i(
        gs(&["basic-allow.json"], &["scp-basic.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OTHER,
        &[],
        false
    ));
}
#[test]
fn can_i_21_scp_denies_lambda() {
    assert!(!can_i(
        gs(&["basic-allow.json"], &["scp-deny-lambda.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}
#[test]
fn can_i_22_scp_not_applied_to_management_account() {
    assert!(can_i(
        gs(&["basic-allow.json"], &["scp-deny-lambda2.json"]),
        ROLE,
        "lambda:InvokeFunction",
        LAMBDA_OWN,
        &[],
        false
    ));
}

// ---- test_who_can (16 cases)

#[test]
fn who_can_01() {
    assert_eq!(
        who_can(
            g(&["role-boundary-no-policies.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[])
    );
}
#[test]
fn who_can_02() {
    assert_eq!(
        who_can(
            g(&["user-allow-check.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[USER_PB])
    );
}
#[test]
fn who_can_03() {
    assert_eq!(
        who_can(
            g(&["user-boundary-allow.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[USER_PB])
    );
}
#[test]
fn who_can_04() {
    assert_eq!(
        who_can(
            g(&["user-boundary-deny.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[])
    );
}
#[test]
fn who_can_05() {
    assert_eq!(
        who_can(
            g(&["role-boundary-allow.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[ROLE])
    );
}
#[test]
fn who_can_06() {
    assert_eq!(
        who_can(
            g(&["role-boundary-deny.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[])
    );
}
#[test]
fn who_can_07() {
    assert_eq!(
        who_can(
            g(&["basic-allow.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[ROLE])
    );
}
#[test]
fn who_can_08_and_14() {
    // listed twice in IAMSpy's parameters (cases 8 and 14)
    let expect = set(&[
        "arn:aws:iam::111111111111:role/testing",
        "arn:aws:iam::111111111111:role/testing2",
    ]);
    for _ in 0..2 {
        assert_eq!(
            who_can(
                gr(
                    &["allow-testing-s3.json"],
                    &["resource-s3-allow-testing.json"]
                ),
                "s3:ListBucket",
                "arn:aws:s3:::bucket",
                &[],
                false
            ),
            expect
        );
    }
}
#[test]
fn who_can_09() {
    assert_eq!(
        who_can(
            gr(&["basic-allow.json"], &["cross-account-rp.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OTHER,
            &[],
            false
        ),
        set(&[ROLE])
    );
}
#[test]
fn who_can_10() {
    assert_eq!(
        who_can(
            g(&["allow-with-conditions.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            false
        ),
        set(&[ROLE])
    );
}
#[test]
fn who_can_11_strict() {
    assert_eq!(
        who_can(
            g(&["allow-with-conditions.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            true
        ),
        set(&[])
    );
}
#[test]
fn who_can_12() {
    assert_eq!(
        who_can(
            g(&["allow-with-conditions.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &["aws:referer=bobby.tables"],
            false
        ),
        set(&[ROLE])
    );
}
#[test]
fn who_can_13_strict() {
    assert_eq!(
        who_can(
            g(&["allow-with-conditions.json"]),
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &["aws:referer=bobby.tables"],
            true
        ),
        set(&[ROLE])
    );
}
#[test]
fn who_can_15() {
    assert_eq!(
        who_can(
            gr(
                &["allow-testing-s3.json"],
                &["resource-s3-deny-testing2.json"]
            ),
            "s3:ListBucket",
            "arn:aws:s3:::bucket",
            &[],
            false
        ),
        set(&[])
    );
}
#[test]
fn who_can_16() {
    assert_eq!(
        who_can(
            gr(&["allow-testing-s3.json"], &["resource-s3-allow-all.json"]),
            "s3:ListBucket",
            "arn:aws:s3:::bucket",
            &[],
            false
        ),
        set(&[
            "arn:aws:iam::111111111111:role/testing",
            "arn:aws:iam::111111111111:role/testing2"
        ])
    );
}

// ---- test_who_can_batch_resource (1 case)

#[test]
fn who_can_batch_resource() {
    let mut got = BTreeSet::new();
    for r in [
        "arn:aws:s3:::bucket1/foo",
        "arn:aws:s3:::bucket2/foo",
        "arn:aws:s3:::bucket3/foo",
        "arn:aws:s3:::bucket4/foo",
    ] {
        for p in who_can(
            gr(&["batch-allow.json"], &["batch-resource.json"]),
            "s3:GetObject",
            r,
            &[],
            false,
        ) {
            got.insert((p, r.to_string()));
        }
    }
    let expect: BTreeSet<(String, String)> = [
        (
            "arn:aws:iam::123456789012:role/name1",
            "arn:aws:s3:::bucket1/foo",
        ),
        (
            "arn:aws:iam::123456789012:role/name1",
            "arn:aws:s3:::bucket2/foo",
        ),
        (
            "arn:aws:iam::123456789012:role/name2",
            "arn:aws:s3:::bucket2/foo",
        ),
        (
            "arn:aws:iam::123456789012:role/name3",
            "arn:aws:s3:::bucket4/foo",
        ),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, expect);
}

#[test]
fn deciding_statements_are_reported() {
    let engine = &*ENGINE;
    let (model, inputs) = load(&gs(&["basic-allow.json"], &["scp-deny-lambda.json"]));
    let r = engine
        .check(
            &model,
            ROLE,
            "lambda:InvokeFunction",
            LAMBDA_OWN,
            &[],
            &inputs,
        )
        .expect("check");
    assert_eq!(r.decision, Decision::ExplicitDeny);
    assert_eq!(r.deciding_statements.len(), 1);
    assert_eq!(r.deciding_statements[0].policy, "block lambda");
}

#[test]
fn bulk_analysis_applies_attached_scps() {
    let engine = &*ENGINE;
    let lambda_grants = |scp: &str| -> usize {
        let model = AccountModel::parse(&data("basic-allow.json"))
            .expect("gaad")
            .with_scps(vec![Scps::parse(&data(scp)).expect("scp")]);
        let r = engine
            .analyze_principal(&model, ROLE, None)
            .expect("analyze");
        // the check path sees the attached SCPs too
        let c = engine
            .check(
                &model,
                ROLE,
                "lambda:InvokeFunction",
                LAMBDA_OWN,
                &[],
                &CheckInputs::default(),
            )
            .expect("check");
        let n = r.grants.iter().filter(|g| g.service == "lambda").count();
        assert_eq!(n > 0, c.decision == Decision::Allowed, "{scp}");
        n
    };
    assert!(lambda_grants("scp-basic.json") > 0);
    assert_eq!(lambda_grants("scp-deny-lambda.json"), 0);
    assert!(lambda_grants("scp-deny-lambda2.json") > 0); // management account
    let plain = AccountModel::parse(&data("basic-allow.json")).expect("gaad");
    let with = AccountModel::parse(&data("basic-allow.json"))
        .expect("gaad")
        .with_scps(vec![Scps::parse(&data("scp-basic.json")).expect("scp")]);
    assert_ne!(plain.principal_digest(ROLE), with.principal_digest(ROLE));
}
