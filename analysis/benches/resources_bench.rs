//! Benchmark (not a timed test): `cargo bench -p accessflow-analysis --bench resources_bench`.
//!
//! Issue 12's figure: an account of 6,000 principals (the sample generator's mix of users
//! and roles; it does not split them 5,000/1,000 exactly) and 2,000 buckets with policies,
//! analysed on one thread. Printed side by side, in the same run:
//! - IAM only: parse the authorization details, analyse every principal, build the report;
//! - the same with the resource inventory: parse `resources.json` too, and the report's
//!   public and cross-account section ([`resources::external_access`]);
//!   public and cross-account section ([`resources::external_access`]) and its data access
//!   section ([`data_access::data_access`]: who inside reaches each bucket);
//! - the inventory parts alone: parse + `external_access`, and `data_access`.
//!
//! The buckets are every concrete bucket the generated identity policies name (so that
//! identity grants reach them), then `bench-NNNNN` ones up to 2,000; they cycle through
//! six policy shapes: private (naming one of the account's roles), public read, shared
//! with another account, organisation-only (conditional), public with a VPC-endpoint deny,
//! and a public policy under Block Public Access. Median of 5 runs each.

use std::time::{Duration, Instant};

use accessflow_analysis::data_access;
use accessflow_analysis::resources::{self, ResourceInventory};
use accessflow_analysis::{build_report, AccountModel, Engine, ReportContext};
use accessflow_samples::{generate_account, SampleAccountSpec};
use serde_json::{json, Value};

const ACCOUNT: &str = "318574920163";

fn bucket_policy(i: usize, name: &str, roles: &[String]) -> (Value, Option<Value>) {
    let objects = format!("arn:aws:s3:::{name}/*");
    let allow = |principal: Value| json!({"Effect": "Allow", "Principal": principal, "Action": ["s3:GetObject", "s3:PutObject"], "Resource": objects});
    match i % 6 {
        0 => (
            json!({"Statement": [allow(json!({"AWS": roles[i % roles.len()]}))]}),
            None,
        ),
        1 => (json!({"Statement": [allow(json!("*"))]}), None),
        2 => (
            json!({"Statement": [allow(json!({"AWS": format!("arn:aws:iam::{:012}:root", 200_000_000_000u64 + i as u64)}))]}),
            None,
        ),
        3 => {
            let mut st = allow(json!("*"));
            st["Condition"] = json!({"StringEquals": {"aws:PrincipalOrgID": "o-bench"}});
            (json!({"Statement": [st]}), None)
        }
        4 => (
            json!({"Statement": [allow(json!("*")), {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{name}"), objects.clone()],
                "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}}]}),
            None,
        ),
        _ => (
            json!({"Statement": [allow(json!("*"))]}),
            Some(json!({"RestrictPublicBuckets": true})),
        ),
    }
}

/// The concrete bucket names in the account file's policies (`arn:aws:s3:::NAME`...).
fn named_buckets(authorization_details: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(authorization_details);
    let mut out: Vec<String> = text
        .split("arn:aws:s3:::")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['"', '/', ',', ']']).unwrap_or(rest.len());
            let name = &rest[..end];
            (!name.is_empty() && !name.contains(['*', '?', '$'])).then(|| name.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn inventory_json(buckets: usize, named: &[String], roles: &[String]) -> Vec<u8> {
    let resources: Vec<Value> = (0..buckets)
        .map(|i| {
            let name = named
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("bench-{i:05}"));
            let (policy, bpa) = bucket_policy(i, &name, roles);
            let mut r = json!({"Arn": format!("arn:aws:s3:::{name}"), "Type": "AWS::S3::Bucket",
                "Region": "eu-west-1", "Policy": policy, "Tags": {"confidentiality": "internal"}});
            if let Some(b) = bpa {
                r["BlockPublicAccess"] = b;
            }
            r
        })
        .collect();
    serde_json::to_vec(&json!({"Resources": resources})).expect("json")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let engine = Engine::new().expect("catalog");
    let spec = SampleAccountSpec {
        account_id: ACCOUNT.into(),
        principals: 6000,
        seed: 12,
        malformed_policy: false,
        resources: false,
    };
    let account = generate_account(&spec);
    let named = named_buckets(&account.authorization_details);
    let roles: Vec<String> = AccountModel::parse(&account.authorization_details)
        .expect("parse")
        .principals()
        .into_iter()
        .map(|p| p.arn)
        .filter(|a| a.contains(":role/"))
        .collect();
    let inventory = inventory_json(2000, &named, &roles);
    let mut data_alone = Vec::new();
    let mut data_rows = 0;
    let mut pairs = 0;
    let runs = 5;
    let mut iam_only = Vec::new();
    let mut with_resources = Vec::new();
    let mut inventory_alone = Vec::new();
    let mut rows = 0;
    let mut principals = 0;
    for _ in 0..runs {
        for with in [false, true] {
            let t = Instant::now();
            let model = AccountModel::parse(&account.authorization_details).expect("parse");
            let results: Vec<_> = model
                .principals()
                .iter()
                .map(|p| {
                    engine
                        .analyze_principal(&model, &p.arn, None)
                        .expect("analyze")
                })
                .collect();
            principals = results.len();
            let inv = with.then(|| ResourceInventory::parse(&inventory).expect("inventory"));
            let ctx = ReportContext {
                customer: "bench",
                account: ACCOUNT,
                run_id: "r1",
                analysis_time: "2026-11-25T02:00:00Z",
                credential_report: None,
                resources: inv.as_ref(),
                trusted_accounts: &[],
            };
            let report = build_report(&engine, &model, &results, &[], &ctx, None);
            let took = t.elapsed();
            if with {
                rows = report.resource_exposure.len();
                data_rows = report.data_access.len();
                with_resources.push(took);
                let refs: Vec<_> = results.iter().collect();
                let inv = inv.as_ref().expect("the inventory");
                let t = Instant::now();
                let d = data_access::data_access(&engine, &model, inv, &refs, ACCOUNT);
                data_alone.push(t.elapsed());
                pairs = d.evaluated.len();
                assert_eq!(
                    d.rows.len(),
                    data_rows,
                    "the same rows alone and in the report"
                );
            } else {
                iam_only.push(took);
            }
        }
        let t = Instant::now();
        let inv = ResourceInventory::parse(&inventory).expect("inventory");
        let r = resources::external_access(&engine, &inv, ACCOUNT, &[]);
        inventory_alone.push(t.elapsed());
        assert_eq!(r.len(), rows, "the same rows alone and in the report");
    }
    println!(
        "resources_bench: {principals} principals, 2,000 buckets with policies ({} named by identity policies; {} KB inventory), one thread, median of {runs}:",
        named.len().min(2000),
        inventory.len() / 1024
    );
    println!(
        "   IAM only (parse, analyse, report):          {:>8.0} ms",
        ms(median(iam_only))
    );
    println!(
        "   with the resource inventory:                {:>8.0} ms  ({rows} public/cross-account rows)",
        ms(median(with_resources))
    );
    println!(
        "   inventory alone (parse + external_access):  {:>8.0} ms",
        ms(median(inventory_alone))
    );
    println!(
        "   data access alone (data_access):            {:>8.0} ms  ({data_rows} data access rows, {pairs} principal-resource pairs evaluated)",
        ms(median(data_alone))
    );
}
