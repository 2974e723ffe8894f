//! Property tests: adding a Deny never grants; removing an Allow never grants; a permission
//! boundary never grants; an unrelated principal's policies never change another's result.
//! "Grants" is measured on a level scale (denied < conditionally allowed < allowed), both on
//! single decisions (`Engine::check`) and on the bulk result (`analyze_principal`).

use std::sync::LazyLock;

use accessflow_analysis::glob::wildcard_match;
use accessflow_analysis::{AccountModel, CheckInputs, Decision, Engine, PrincipalAnalysis};
use proptest::prelude::*;
use serde_json::{json, Value};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));

const ACTION_PATTERNS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "s3:DeleteObject",
    "s3:*",
    "s3:Get*",
    "*",
    "iam:PassRole",
    "iam:*",
    "lambda:InvokeFunction",
    "lambda:*",
    "sts:AssumeRole",
    "ec2:RunInstances",
];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "arn:aws:s3:::b1",
    "arn:aws:s3:::b1/*",
    "arn:aws:s3:::b2/k",
    "arn:aws:s3:::b*",
    "arn:aws:lambda:eu-west-1:123456789012:function:f",
    "arn:aws:iam::123456789012:role/r*",
    "arn:aws:iam::123456789012:role/${aws:username}",
];
const QUERIES: &[(&str, &str)] = &[
    ("s3:GetObject", "arn:aws:s3:::b1/x"),
    ("s3:GetObject", "arn:aws:s3:::b2/k"),
    ("s3:PutObject", "arn:aws:s3:::b1/x"),
    ("s3:ListBucket", "arn:aws:s3:::b1"),
    ("s3:DeleteObject", "arn:aws:s3:::b2/k"),
    ("iam:PassRole", "arn:aws:iam::123456789012:role/r1"),
    (
        "lambda:InvokeFunction",
        "arn:aws:lambda:eu-west-1:123456789012:function:f",
    ),
    ("sts:AssumeRole", "arn:aws:iam::123456789012:role/r1"),
    (
        "ec2:RunInstances",
        "arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
    ),
];

#[derive(Debug, Clone)]
struct St {
    deny: bool,
    not_action: bool,
    actions: Vec<usize>,
    not_resource: bool,
    resources: Vec<usize>,
    condition: bool,
}

fn st_strategy() -> impl Strategy<Value = St> {
    (
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.1),
        prop::collection::vec(0..ACTION_PATTERNS.len(), 1..4),
        prop::bool::weighted(0.1),
        prop::collection::vec(0..RESOURCE_PATTERNS.len(), 1..3),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(deny, not_action, actions, not_resource, resources, condition)| St {
                deny,
                not_action,
                actions,
                not_resource,
                resources,
                condition,
            },
        )
}

fn st_json(s: &St) -> Value {
    let mut v = json!({"Effect": if s.deny { "Deny" } else { "Allow" }});
    let a: Vec<&str> = s.actions.iter().map(|i| ACTION_PATTERNS[*i]).collect();
    let r: Vec<&str> = s.resources.iter().map(|i| RESOURCE_PATTERNS[*i]).collect();
    v[if s.not_action { "NotAction" } else { "Action" }] = json!(a);
    v[if s.not_resource {
        "NotResource"
    } else {
        "Resource"
    }] = json!(r);
    if s.condition {
        v["Condition"] = json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}});
    }
    v
}

fn doc(sts: &[St]) -> Value {
    json!({"Version": "2012-10-17", "Statement": sts.iter().map(st_json).collect::<Vec<_>>()})
}

const A: &str = "arn:aws:iam::123456789012:user/alice";
const B: &str = "arn:aws:iam::123456789012:role/bob";

fn account(alice: &[Vec<St>], alice_boundary: Option<&[St]>, bob: &[Vec<St>]) -> AccountModel {
    let inline = |ps: &[Vec<St>]| -> Vec<Value> {
        ps.iter()
            .enumerate()
            .map(|(i, p)| json!({"PolicyName": format!("p{i}"), "PolicyDocument": doc(p)}))
            .collect()
    };
    let mut user = json!({"UserName": "alice", "Arn": A, "UserPolicyList": inline(alice)});
    let mut policies = vec![];
    if let Some(b) = alice_boundary {
        user["PermissionsBoundary"] = json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": "arn:aws:iam::123456789012:policy/boundary"});
        policies.push(json!({"PolicyName": "boundary", "Arn": "arn:aws:iam::123456789012:policy/boundary",
            "PolicyVersionList": [{"Document": doc(b), "VersionId": "v1", "IsDefaultVersion": true}]}));
    }
    let v = json!({
        "UserDetailList": [user],
        "GroupDetailList": [],
        "RoleDetailList": [{"RoleName": "bob", "Arn": B, "RolePolicyList": inline(bob),
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}}],
        "Policies": policies
    });
    AccountModel::parse(&serde_json::to_vec(&v).expect("ser")).expect("valid account")
}

/// 0 denied, 1 conditionally allowed, 2 allowed.
fn check_levels(m: &AccountModel, who: &str) -> Vec<u8> {
    QUERIES
        .iter()
        .map(|(a, r)| {
            let c = ENGINE
                .check(m, who, a, r, &[], &CheckInputs::default())
                .expect("check");
            match (c.decision, c.conditional) {
                (Decision::Allowed, false) => 2,
                (Decision::Allowed, true) => 1,
                _ => 0,
            }
        })
        .collect()
}

fn bulk_levels(res: &PrincipalAnalysis) -> Vec<u8> {
    let cat = ENGINE.catalog();
    QUERIES
        .iter()
        .map(|(a, r)| {
            let Some(ai) = cat.action(a) else { return 0 };
            let info = &cat.actions[ai as usize];
            let svc = &cat.services[info.service as usize];
            let mut level = 0;
            for g in &res.grants {
                let has = if g.actions.is_empty() {
                    g.service == svc.prefix && g.capability == info.capability
                } else {
                    g.actions.iter().any(|x| x.eq_ignore_ascii_case(a))
                };
                if has
                    && wildcard_match(&g.resource, r, false)
                    && !g.except.iter().any(|e| wildcard_match(e, r, false))
                {
                    level = level.max(if g.conditional { 1 } else { 2 });
                }
            }
            level
        })
        .collect()
}

fn le(after: &[u8], before: &[u8]) -> bool {
    after.iter().zip(before).all(|(a, b)| a <= b)
}

fn policies() -> impl Strategy<Value = Vec<Vec<St>>> {
    prop::collection::vec(prop::collection::vec(st_strategy(), 1..4), 1..3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_deny_never_grants(ps in policies(), mut extra in st_strategy(), which in 0usize..3) {
        extra.deny = true;
        let before = account(&ps, None, &[]);
        let mut ps2 = ps.clone();
        let i = which % ps2.len();
        ps2[i].push(extra);
        let after = account(&ps2, None, &[]);
        prop_assert!(le(&check_levels(&after, A), &check_levels(&before, A)));
        let rb = ENGINE.analyze_principal(&before, A, None).expect("before");
        let ra = ENGINE.analyze_principal(&after, A, None).expect("after");
        prop_assert!(le(&bulk_levels(&ra), &bulk_levels(&rb)), "bulk {:?} > {:?}", bulk_levels(&ra), bulk_levels(&rb));
    }

    #[test]
    fn removing_an_allow_never_grants(ps in policies(), which in 0usize..3, stmt in 0usize..4) {
        let before = account(&ps, None, &[]);
        let mut ps2 = ps.clone();
        let i = which % ps2.len();
        let allows: Vec<usize> = ps2[i].iter().enumerate().filter(|(_, s)| !s.deny).map(|(j, _)| j).collect();
        prop_assume!(!allows.is_empty());
        let j = allows[stmt % allows.len()];
        ps2[i].remove(j);
        if ps2[i].is_empty() {
            ps2.remove(i);
        }
        let after = account(&ps2, None, &[]);
        prop_assert!(le(&check_levels(&after, A), &check_levels(&before, A)));
        let rb = ENGINE.analyze_principal(&before, A, None).expect("before");
        let ra = ENGINE.analyze_principal(&after, A, None).expect("after");
        prop_assert!(le(&bulk_levels(&ra), &bulk_levels(&rb)));
    }

    #[test]
    fn a_boundary_never_grants(ps in policies(), boundary in prop::collection::vec(st_strategy(), 1..4)) {
        let before = account(&ps, None, &[]);
        let after = account(&ps, Some(&boundary), &[]);
        prop_assert!(le(&check_levels(&after, A), &check_levels(&before, A)));
        let rb = ENGINE.analyze_principal(&before, A, None).expect("before");
        let ra = ENGINE.analyze_principal(&after, A, None).expect("after");
        prop_assert!(le(&bulk_levels(&ra), &bulk_levels(&rb)));
    }

    #[test]
    fn unrelated_principal_never_changes_another(ps in policies(), bob1 in policies(), bob2 in policies()) {
        let m1 = account(&ps, None, &bob1);
        let m2 = account(&ps, None, &bob2);
        prop_assert_eq!(m1.principal_digest(A), m2.principal_digest(A));
        let r1 = ENGINE.analyze_principal(&m1, A, None).expect("m1");
        let r2 = ENGINE.analyze_principal(&m2, A, None).expect("m2");
        prop_assert_eq!(r1, r2);
        prop_assert_eq!(check_levels(&m1, A), check_levels(&m2, A));
    }
}
