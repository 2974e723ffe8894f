//! The sample-tenant generator: deterministic, AWS-shaped, sized as the bundled sample says.

use std::collections::BTreeSet;
use std::time::Instant;

use accessflow_samples::{
    bundled_sample, generate_account, generate_account_with_policies, write_fixture_dir,
    GeneratedAccount, SampleAccountSpec,
};
use serde_json::Value;

fn spec(principals: usize, seed: u64) -> SampleAccountSpec {
    SampleAccountSpec {
        account_id: "111122223333".into(),
        principals,
        seed,
        malformed_policy: false,
        resources: false,
    }
}

fn details(a: &GeneratedAccount) -> Value {
    serde_json::from_slice(&a.authorization_details).expect("authorization details are JSON")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is an array"))
}

fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(xs) => xs.iter().collect(),
        Value::Object(_) => vec![&doc["Statement"]],
        _ => vec![],
    }
}

fn is_str_or_str_list(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(xs) => !xs.is_empty() && xs.iter().all(Value::is_string),
        _ => false,
    }
}

/// What a strict policy parser checks; returns why a document is bad, if it is.
fn policy_problem(doc: &Value, trust: bool) -> Option<String> {
    if doc["Version"] != "2012-10-17" {
        return Some("Version".into());
    }
    let sts = statements(doc);
    if sts.is_empty() {
        return Some("no Statement".into());
    }
    for s in sts {
        let Some(obj) = s.as_object() else {
            return Some("statement is not an object".into());
        };
        match obj.get("Effect").and_then(Value::as_str) {
            Some("Allow") | Some("Deny") => {}
            other => return Some(format!("Effect {other:?}")),
        }
        let actions: Vec<&Value> = ["Action", "NotAction"]
            .iter()
            .filter_map(|k| obj.get(*k))
            .collect();
        if actions.len() != 1 || !is_str_or_str_list(actions[0]) {
            return Some("Action/NotAction".into());
        }
        let resources: Vec<&Value> = ["Resource", "NotResource"]
            .iter()
            .filter_map(|k| obj.get(*k))
            .collect();
        if trust {
            if !resources.is_empty() || !obj.get("Principal").is_some_and(Value::is_object) {
                return Some("trust policy shape".into());
            }
        } else if resources.len() != 1 || !is_str_or_str_list(resources[0]) {
            return Some("Resource/NotResource".into());
        }
        if let Some(c) = obj.get("Condition") {
            if !c.is_object() {
                return Some("Condition".into());
            }
        }
        for k in obj.keys() {
            let known = [
                "Sid",
                "Effect",
                "Principal",
                "Action",
                "NotAction",
                "Resource",
                "NotResource",
                "Condition",
            ];
            if !known.contains(&k.as_str()) {
                return Some(format!("unknown key {k}"));
            }
        }
    }
    None
}

/// Every policy document in the file: (where, document, is a trust policy).
fn all_documents(d: &Value) -> Vec<(String, &Value, bool)> {
    let mut out = Vec::new();
    for u in list(d, "UserDetailList") {
        for p in u["UserPolicyList"].as_array().into_iter().flatten() {
            out.push((
                format!("user inline {}", p["PolicyName"]),
                &p["PolicyDocument"],
                false,
            ));
        }
    }
    for g in list(d, "GroupDetailList") {
        for p in list(g, "GroupPolicyList") {
            out.push((
                format!("group inline {}", p["PolicyName"]),
                &p["PolicyDocument"],
                false,
            ));
        }
    }
    for r in list(d, "RoleDetailList") {
        out.push((
            format!("trust {}", r["RoleName"]),
            &r["AssumeRolePolicyDocument"],
            true,
        ));
        for p in list(r, "RolePolicyList") {
            out.push((
                format!("role inline {}", p["PolicyName"]),
                &p["PolicyDocument"],
                false,
            ));
        }
    }
    for p in list(d, "Policies") {
        for v in list(p, "PolicyVersionList") {
            out.push((
                format!("{} {}", p["Arn"], v["VersionId"]),
                &v["Document"],
                false,
            ));
        }
    }
    out
}

fn bad_documents(d: &Value) -> Vec<String> {
    all_documents(d)
        .into_iter()
        .filter_map(|(w, doc, trust)| policy_problem(doc, trust).map(|p| format!("{w}: {p}")))
        .collect()
}

fn count_principals(d: &Value) -> (usize, usize) {
    (
        list(d, "UserDetailList").len(),
        list(d, "RoleDetailList").len(),
    )
}

#[test]
fn same_spec_gives_identical_bytes_and_seeds_differ() {
    let s = spec(300, 42);
    let a = generate_account(&s);
    let b = generate_account(&s);
    assert_eq!(a, b);
    let c = generate_account(&spec(300, 43));
    assert_ne!(a.authorization_details, c.authorization_details);
    assert_ne!(a.credential_report, c.credential_report);

    let dir1 = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    write_fixture_dir(&a, dir1.path()).unwrap();
    write_fixture_dir(&b, dir2.path()).unwrap();
    for f in [
        "authorization-details.json",
        "credential-report.csv",
        "last-accessed.json",
    ] {
        let x = std::fs::read(dir1.path().join(f)).unwrap();
        let y = std::fs::read(dir2.path().join(f)).unwrap();
        assert!(!x.is_empty(), "{f} is written");
        assert_eq!(x, y, "{f} is deterministic");
    }
}

#[test]
fn bundled_sample_has_the_promised_sizes_and_shapes() {
    let sample = bundled_sample();
    assert!(sample.len() >= 3, "at least 3 customers");
    let accounts: Vec<&SampleAccountSpec> = sample.iter().flat_map(|c| &c.accounts).collect();
    assert!(accounts.len() >= 12, "at least 12 accounts");
    let ids: BTreeSet<&str> = accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(ids.len(), accounts.len(), "account ids are unique");
    let customers: BTreeSet<&str> = sample.iter().map(|c| c.customer_id.as_str()).collect();
    assert_eq!(customers.len(), sample.len(), "customer ids are unique");
    for a in &accounts {
        assert_eq!(a.account_id.len(), 12);
        assert!(a.account_id.bytes().all(|b| b.is_ascii_digit()));
        assert!(!a.malformed_policy, "the bundled sample is well-formed");
    }

    let mut sizes = Vec::new();
    let mut star_trust = 0;
    for a in &accounts {
        let g = generate_account(a);
        let d = details(&g);
        let (users, roles) = count_principals(&d);
        assert_eq!(
            users + roles,
            a.principals,
            "{}: users + roles",
            a.account_id
        );
        assert!(users >= 2 && roles >= 6);
        sizes.push(users + roles);
        assert!(bad_documents(&d).is_empty(), "{:?}", bad_documents(&d));

        let text = String::from_utf8(g.authorization_details.clone()).unwrap();
        for needle in [
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "\"PermissionsBoundary\"",
            "\"NotAction\"",
            "\"Deny\"",
            "aws:MultiFactorAuthPresent",
            "aws:SourceIp",
            "lambda.amazonaws.com",
            "ec2.amazonaws.com",
            "sts:AssumeRoleWithSAML",
            "sts:AssumeRoleWithWebIdentity",
            "iam:PassRole",
            "lambda:CreateFunction",
            "iam:CreatePolicyVersion",
            "iam:AttachUserPolicy",
            "s3:GetObject",
            "s3:DeleteObject",
            "kms:Decrypt",
            "dynamodb:",
            "\"s3:*\"",
            "ec2:Describe*",
        ] {
            assert!(text.contains(needle), "{}: has {needle}", a.account_id);
        }
        // Boundaries on users and on roles; cross-account trust.
        let users_with_boundary = list(&d, "UserDetailList")
            .iter()
            .filter(|u| u.get("PermissionsBoundary").is_some())
            .count();
        let roles_with_boundary = list(&d, "RoleDetailList")
            .iter()
            .filter(|r| r.get("PermissionsBoundary").is_some())
            .count();
        assert!(roles_with_boundary > 0, "{}: role boundaries", a.account_id);
        if a.principals >= 100 {
            assert!(users_with_boundary > 0, "{}: user boundaries", a.account_id);
        }
        let cross_account = list(&d, "RoleDetailList").iter().any(|r| {
            let t = r["AssumeRolePolicyDocument"].to_string();
            t.contains("arn:aws:iam::") && !t.contains(&format!("arn:aws:iam::{}:", a.account_id))
        });
        assert!(cross_account, "{}: cross-account trust", a.account_id);
        if text.contains("\"AWS\": \"*\"") {
            star_trust += 1;
        }
    }
    let min = *sizes.iter().min().unwrap();
    let max = *sizes.iter().max().unwrap();
    assert!(min <= 25, "smallest account {min}");
    assert!(max >= 2000, "largest account {max}");
    assert!(max >= 10 * min);
    assert!(
        star_trust >= 1 && star_trust < accounts.len(),
        "\"AWS\": \"*\" is rare: {star_trust}"
    );
}

#[test]
fn documents_are_valid_and_complete() {
    for (n, seed) in [(8, 1), (20, 2), (150, 3), (700, 4)] {
        let g = generate_account(&spec(n, seed));
        let d = details(&g);
        let keys: BTreeSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "UserDetailList",
                "GroupDetailList",
                "RoleDetailList",
                "Policies"
            ])
        );
        let (users, roles) = count_principals(&d);
        assert_eq!(users + roles, n.max(8));
        assert!(!list(&d, "GroupDetailList").is_empty());

        // Every attached policy is in Policies, with exactly one default version and the
        // right attachment counts.
        let policies = list(&d, "Policies");
        let arns: BTreeSet<&str> = policies
            .iter()
            .map(|p| p["Arn"].as_str().unwrap())
            .collect();
        let mut attached = std::collections::BTreeMap::<String, u64>::new();
        for kind in ["UserDetailList", "GroupDetailList", "RoleDetailList"] {
            for e in list(&d, kind) {
                for p in list(e, "AttachedManagedPolicies") {
                    let arn = p["PolicyArn"].as_str().unwrap();
                    assert!(arns.contains(arn), "{arn} is in Policies");
                    *attached.entry(arn.to_string()).or_default() += 1;
                }
                if let Some(b) = e.get("PermissionsBoundary") {
                    assert!(arns.contains(b["PermissionsBoundaryArn"].as_str().unwrap()));
                }
            }
        }
        for p in policies {
            let arn = p["Arn"].as_str().unwrap();
            assert_eq!(
                p["AttachmentCount"].as_u64().unwrap(),
                attached.get(arn).copied().unwrap_or(0)
            );
            let versions = list(p, "PolicyVersionList");
            let defaults: Vec<&Value> = versions
                .iter()
                .filter(|v| v["IsDefaultVersion"] == true)
                .collect();
            assert_eq!(defaults.len(), 1, "{arn}");
            assert_eq!(defaults[0]["VersionId"], p["DefaultVersionId"]);
        }
        // Group members exist.
        let groups: BTreeSet<&str> = list(&d, "GroupDetailList")
            .iter()
            .map(|g| g["GroupName"].as_str().unwrap())
            .collect();
        for u in list(&d, "UserDetailList") {
            for g in list(u, "GroupList") {
                assert!(groups.contains(g.as_str().unwrap()));
            }
        }
        assert!(bad_documents(&d).is_empty(), "{:?}", bad_documents(&d));

        // Credential report: header, root, one row per user, 22 columns each.
        let csv = String::from_utf8(g.credential_report.clone()).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert!(
            rows[0].starts_with("user,arn,user_creation_time,password_enabled,password_last_used,")
        );
        assert!(rows[0]
            .ends_with(",cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated"));
        assert!(rows[1].starts_with("<root_account>,arn:aws:iam::111122223333:root,"));
        assert_eq!(rows.len(), users + 2);
        let user_arns: BTreeSet<&str> = list(&d, "UserDetailList")
            .iter()
            .map(|u| u["Arn"].as_str().unwrap())
            .collect();
        for r in &rows {
            assert_eq!(r.split(',').count(), 22, "{r}");
        }
        let report_arns: BTreeSet<&str> = rows[2..]
            .iter()
            .map(|r| r.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(report_arns, user_arns);

        // Last accessed: one entry per user and role, each a completed job.
        let role_arns = list(&d, "RoleDetailList")
            .iter()
            .map(|r| r["Arn"].as_str().unwrap());
        let principals: BTreeSet<&str> = user_arns.iter().copied().chain(role_arns).collect();
        let keys: BTreeSet<&str> = g.last_accessed.keys().map(String::as_str).collect();
        assert_eq!(keys, principals);
        let mut used = 0;
        let mut unused = 0;
        for (arn, v) in &g.last_accessed {
            let v: Value = serde_json::from_slice(v).unwrap();
            assert_eq!(v["JobStatus"], "COMPLETED");
            for s in list(&v, "ServicesLastAccessed") {
                assert!(s["ServiceName"].is_string() && s["ServiceNamespace"].is_string());
                if s.get("LastAuthenticated").is_some() {
                    assert_eq!(s["LastAuthenticatedEntity"], arn.as_str());
                    assert!(s["LastAuthenticated"]
                        .as_str()
                        .unwrap()
                        .starts_with("2026-"));
                    used += 1;
                } else {
                    unused += 1;
                }
            }
        }
        assert!(used > 0 && unused > 0);

        // The fixture directory's last-accessed.json is one object with the same data.
        let dir = tempfile::tempdir().unwrap();
        write_fixture_dir(&g, dir.path()).unwrap();
        let file: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("last-accessed.json")).unwrap())
                .unwrap();
        assert_eq!(file.as_object().unwrap().len(), principals.len());
        for (arn, v) in &g.last_accessed {
            assert_eq!(file[arn], serde_json::from_slice::<Value>(v).unwrap());
        }
        let d2: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("authorization-details.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(d2, d);
    }
}

#[test]
fn malformed_policy_breaks_exactly_one_used_document() {
    for (n, seed) in [(20, 7), (400, 8)] {
        let good = generate_account(&spec(n, seed));
        let bad = generate_account(&SampleAccountSpec {
            malformed_policy: true,
            resources: false,
            ..spec(n, seed)
        });
        let d = details(&bad);
        let problems: Vec<(String, &Value)> = list(&d, "Policies")
            .iter()
            .flat_map(|p| {
                list(p, "PolicyVersionList")
                    .iter()
                    .filter(|v| policy_problem(&v["Document"], false).is_some())
                    .map(move |v| (p["Arn"].as_str().unwrap().to_string(), v))
            })
            .collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(bad_documents(&d).len(), 1);
        let (arn, version) = &problems[0];
        assert_eq!(version["IsDefaultVersion"], true);
        assert!(
            !arn.starts_with("arn:aws:iam::aws:"),
            "a customer managed policy"
        );
        let users_and_roles = list(&d, "UserDetailList")
            .iter()
            .chain(list(&d, "RoleDetailList"));
        let users_of_it = users_and_roles
            .filter(|e| {
                list(e, "AttachedManagedPolicies")
                    .iter()
                    .any(|p| p["PolicyArn"] == arn.as_str())
            })
            .count();
        assert!(users_of_it >= 1);
        // Nothing else changed.
        assert_eq!(good.credential_report, bad.credential_report);
        assert_eq!(good.last_accessed, bad.last_accessed);
        assert!(bad_documents(&details(&good)).is_empty());
        let g = details(&good);
        for key in ["UserDetailList", "GroupDetailList", "RoleDetailList"] {
            assert_eq!(g[key], d[key]);
        }
        let changed = list(&g, "Policies")
            .iter()
            .zip(list(&d, "Policies"))
            .filter(|(x, y)| x != y)
            .count();
        assert_eq!(changed, 1);
    }
}

/// Generation time of the largest bundled account (printed; run with `--nocapture`).
#[test]
fn largest_bundled_account_generates_quickly() {
    let largest = bundled_sample()
        .into_iter()
        .flat_map(|c| c.accounts)
        .max_by_key(|a| a.principals)
        .unwrap();
    let start = Instant::now();
    let g = generate_account(&largest);
    let took = start.elapsed();
    println!(
        "generated {} principals ({} bytes of authorization details, {} last-accessed entries) in {:?}",
        largest.principals,
        g.authorization_details.len(),
        g.last_accessed.len(),
        took
    );
    assert!(took.as_secs_f64() < 10.0, "took {took:?}");
}

#[test]
fn extra_policies_add_valid_attached_customer_policies_and_zero_changes_nothing() {
    let s = spec(120, 99);
    assert_eq!(
        generate_account_with_policies(&s, 0),
        generate_account(&s),
        "no extra policies: the same bytes as generate_account"
    );
    let customer = |d: &Value| {
        list(d, "Policies")
            .iter()
            .filter(|p| {
                p["Arn"]
                    .as_str()
                    .is_some_and(|a| !a.contains(":aws:policy/"))
            })
            .count()
    };
    let base = details(&generate_account(&s));
    let more = details(&generate_account_with_policies(&s, 40));
    assert_eq!(customer(&more), customer(&base) + 40);
    assert_eq!(count_principals(&more), count_principals(&base));
    assert_eq!(bad_documents(&more), Vec::<String>::new());
    let attached: usize = list(&more, "RoleDetailList")
        .iter()
        .flat_map(|r| {
            r["AttachedManagedPolicies"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|p| {
            p["PolicyArn"]
                .as_str()
                .is_some_and(|a| a.contains(":policy/load/"))
        })
        .count();
    assert!(
        attached >= 40,
        "every extra policy is attached to a role ({attached})"
    );
}
