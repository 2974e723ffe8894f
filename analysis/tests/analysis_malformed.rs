//! Malformed input: invalid JSON, wrong types, unknown keys, huge policies: errors that name
//! the principal/policy and JSON path, never a panic. Also the API form (URL-encoded policy
//! documents) against the CLI form.

use std::sync::LazyLock;

use accessflow_analysis::{
    AccountModel, AccountReport, AnalysisError, Engine, LastAccessed, ParseError, PolicyError,
};
use serde_json::{json, Value};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));

fn data(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn role(name: &str, doc: Value) -> Value {
    json!({"RoleName": name, "Arn": format!("arn:aws:iam::123456789012:role/{name}"),
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": doc}]})
}

fn account(roles: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": roles, "Policies": []}))
        .expect("ser")
}

fn ok_doc() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
}

#[test]
fn invalid_json_is_an_error() {
    for bad in [
        &b""[..],
        b"{",
        b"not json",
        b"\xff\xfe",
        b"{\"UserDetailList\": [}",
        b"[1,2",
    ] {
        match AccountModel::parse(bad) {
            Err(ParseError::Json { .. }) => {}
            other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

#[test]
fn wrong_structure_types_name_the_path() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "$"),
        (json!({"UserDetailList": "x"}), "$.UserDetailList"),
        (json!({"RoleDetailList": [3]}), "$.RoleDetailList[0]"),
        (
            json!({"RoleDetailList": [{"RoleName": "r"}]}),
            "$.RoleDetailList[0].Arn",
        ),
        (
            json!({"RoleDetailList": [{"RoleName": "r", "Arn": 5}]}),
            "$.RoleDetailList[0].Arn",
        ),
        (
            json!({"UserDetailList": [{"Arn": "arn:aws:iam::1:user/u", "GroupList": [1]}]}),
            "$.UserDetailList[0].GroupList[0]",
        ),
        (
            json!({"Policies": [{"Arn": "a", "PolicyVersionList": {}}]}),
            "$.Policies[0].PolicyVersionList",
        ),
        (
            json!({"Policies": [{"Arn": "a", "PolicyVersionList": [{"IsDefaultVersion": "yes"}]}]}),
            "$.Policies[0].PolicyVersionList[0].IsDefaultVersion",
        ),
        (
            json!({"RoleDetailList": [{"Arn": "arn:aws:iam::1:role/r", "Tags": [{"Value": "v"}]}]}),
            "$.RoleDetailList[0].Tags[0].Key",
        ),
        (json!({"Something": 1}), "$"),
    ];
    for (v, path) in cases {
        match AccountModel::parse(&serde_json::to_vec(&v).expect("ser")) {
            Err(ParseError::Structure { path: p, .. }) => assert_eq!(p, path, "{v}"),
            other => panic!("{v} -> {other:?}"),
        }
    }
}

fn malformed(doc: Value) -> PolicyError {
    let bytes = account(vec![role("good", ok_doc()), role("bad", doc)]);
    let model = AccountModel::parse(&bytes).expect("structure is fine");
    // the good principal is unaffected
    let good = ENGINE
        .analyze_principal(&model, "arn:aws:iam::123456789012:role/good", None)
        .expect("good principal analyses");
    assert!(!good.grants.is_empty());
    match ENGINE.analyze_principal(&model, "arn:aws:iam::123456789012:role/bad", None) {
        Err(AnalysisError::MalformedPolicy { principal, error }) => {
            assert_eq!(principal, "arn:aws:iam::123456789012:role/bad");
            assert_eq!(error.policy, "inline policy \"p\" of role/bad");
            assert_eq!(model.policy_errors().len(), 1);
            error
        }
        other => panic!("expected MalformedPolicy, got {other:?}"),
    }
}

#[test]
fn malformed_policy_fails_only_its_principals() {
    let base = "$.RoleDetailList[1].RolePolicyList[0].PolicyDocument";
    let e = malformed(json!({"Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]}));
    assert_eq!(e.path, format!("{base}.Statement[0].Action"));
    let e = malformed(
        json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Sneaky": 1}]}),
    );
    assert_eq!(e.path, format!("{base}.Statement[0].Sneaky"));
    let e =
        malformed(json!({"Statement": [{"Effect": "Permit", "Action": "s3:*", "Resource": "*"}]}));
    assert_eq!(e.path, format!("{base}.Statement[0].Effect"));
    let e = malformed(json!({"Statement": [{"Effect": "Allow", "Action": "s3:*"}]}));
    assert_eq!(e.path, format!("{base}.Statement[0]"));
    let e = malformed(
        json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringFuzzy": {"a": "b"}}}]}),
    );
    assert_eq!(e.path, format!("{base}.Statement[0].Condition.StringFuzzy"));
    let e = malformed(json!({"Statement": "everything"}));
    assert_eq!(e.path, format!("{base}.Statement"));
    let e = malformed(json!("%7Bnot json"));
    assert_eq!(e.path, base);
    let e = malformed(json!(42));
    assert_eq!(e.path, base);
    let e = malformed(
        json!({"Statement": [{"Effect": "Allow", "Action": ["s3:*", {"x": 1}], "Resource": "*"}]}),
    );
    assert_eq!(e.path, format!("{base}.Statement[0].Action[1]"));
}

#[test]
fn ten_megabyte_policy_is_an_error_not_a_crash() {
    // 10 MB of statements in an object document
    let st = json!({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::some-bucket-name-that-is-long/prefix/*"});
    let one = serde_json::to_vec(&st).expect("ser").len();
    let n = 10 * 1024 * 1024 / one + 1;
    let big = json!({"Version": "2012-10-17", "Statement": vec![st; n]});
    let e = malformed(big);
    assert!(e.message.contains("too large"), "{}", e.message);
    // and as a 10 MB URL-encoded string (API form)
    let s = format!(
        "%7B%22Statement%22%3A%5B{}%5D%7D",
        "%7B%7D%2C".repeat(10 * 1024 * 1024 / 9)
    );
    let e = malformed(Value::String(s));
    assert!(e.message.contains("too large"), "{}", e.message);
}

#[test]
fn deeply_nested_json_is_an_error() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(AccountModel::parse(deep.as_bytes()).is_err());
    let deep_doc = format!(
        "{{\"RoleDetailList\": [{{\"Arn\": \"arn:aws:iam::1:role/r\", \"RolePolicyList\": [{{\"PolicyName\": \"p\", \"PolicyDocument\": {}1{}}}]}}]}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    assert!(AccountModel::parse(deep_doc.as_bytes()).is_err());
}

#[test]
fn truncated_and_mutated_files_never_panic() {
    let base = data("cloudsplaining/example-authz-details.json");
    let engine = &*ENGINE;
    let mut parsed = 0;
    for cut in (0..base.len()).step_by(997) {
        if let Ok(m) = AccountModel::parse(&base[..cut]) {
            parsed += 1;
            for p in m.principals() {
                let _ = engine.analyze_principal(&m, &p.arn, None);
            }
        }
    }
    assert_eq!(parsed, 0, "a truncated JSON file never parses");
    // flip bytes at deterministic positions; whatever parses must analyse without panicking
    let mut x: u64 = 12345;
    for _ in 0..300 {
        let mut b = base.clone();
        for _ in 0..4 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let i = (x >> 33) as usize % b.len();
            b[i] = b" \"{}[],:0aZ*?%$"[(x >> 20) as usize % 15];
        }
        if let Ok(m) = AccountModel::parse(&b) {
            for p in m.principals() {
                let _ = engine.analyze_principal(&m, &p.arn, None);
            }
        }
    }
}

#[test]
fn api_form_with_url_encoded_documents_matches_cli_form() {
    fn encode(s: &str) -> String {
        let mut o = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                o.push(b as char);
            } else {
                o.push_str(&format!("%{b:02X}"));
            }
        }
        o
    }
    fn api_form(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "PolicyDocument" | "AssumeRolePolicyDocument" | "Document"
                    ) && x.is_object()
                    {
                        *x = Value::String(encode(&x.to_string()));
                    } else {
                        api_form(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(api_form),
            _ => {}
        }
    }
    let cli = data("cloudsplaining/example-authz-details.json");
    let mut v: Value = serde_json::from_slice(&cli).expect("json");
    api_form(&mut v);
    let api = serde_json::to_vec(&v).expect("ser");
    assert!(String::from_utf8_lossy(&api).contains("%7B%22"));
    let m1 = AccountModel::parse(&cli).expect("cli");
    let m2 = AccountModel::parse(&api).expect("api");
    assert_eq!(m1.principals(), m2.principals());
    for p in m1.principals() {
        let a = ENGINE
            .analyze_principal(&m1, &p.arn, None)
            .expect("cli analysis");
        let b = ENGINE
            .analyze_principal(&m2, &p.arn, None)
            .expect("api analysis");
        assert_eq!(a, b, "{}", p.arn);
        assert_eq!(m1.principal_digest(&p.arn), m2.principal_digest(&p.arn));
    }
}

#[test]
fn string_or_list_and_missing_optional_fields() {
    let v = json!({"RoleDetailList": [{"Arn": "arn:aws:iam::123456789012:role/minimal",
        "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": {"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}}]}]});
    let m = AccountModel::parse(&serde_json::to_vec(&v).expect("ser")).expect("parses");
    let r = ENGINE
        .analyze_principal(&m, "arn:aws:iam::123456789012:role/minimal", None)
        .expect("analyses");
    assert_eq!(r.grants.len(), 1);
    assert_eq!(r.grants[0].resource, "arn:aws:s3:::b/*");
    assert!(r.trust.is_empty());
}

#[test]
fn other_inputs_reject_garbage() {
    assert!(LastAccessed::parse(b"{}").is_err());
    assert!(LastAccessed::parse(br#"{"ServicesLastAccessed": 1}"#).is_err());
    assert!(LastAccessed::parse(br#"{"ServicesLastAccessed": [{"ServiceName": "x"}]}"#).is_err());
    assert!(LastAccessed::parse(b"\x00").is_err());
    assert!(AccountReport::from_files(b"{}", None).is_err());
    assert!(AccountReport::from_files(b"[", None).is_err());
    assert!(accessflow_analysis::Scps::parse(br#"{"Policies": 3}"#).is_err());
    assert!(accessflow_analysis::parse_resource_policies(br#"[{"Resource": 1}]"#).is_err());
    assert!(matches!(
        ENGINE.analyze_principal(
            &AccountModel::parse(b"{\"RoleDetailList\": []}").expect("empty"),
            "arn:x",
            None
        ),
        Err(AnalysisError::UnknownPrincipal(_))
    ));
}
