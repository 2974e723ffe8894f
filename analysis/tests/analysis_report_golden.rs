//! Golden hashes of the report files: generated sample accounts (with credential reports,
//! last-accessed data, a malformed policy, a failed principal and a previous report so the
//! diff and the partial path are exercised) are analysed and rendered, and every file's
//! sha256 must equal the value recorded from the code before the report refactoring, except
//! the second runs' diffs (`*-r2/diff.csv`, and the diff inside `report.json`/`report.html`),
//! re-recorded when the diff stopped reporting the access of principals that failed as
//! added or removed (their access is unknown).
//! Guards byte-for-byte determinism of `build_report` and `render_files`.

use std::collections::BTreeMap;

use accessflow_analysis::{
    build_report, AccountModel, AccountReport, Engine, LastAccessed, PrincipalFailure,
    ReportContext,
};
use accessflow_samples::{generate_account, SampleAccountSpec};
use sha2::{Digest, Sha256};

fn spec(account_id: &str, principals: usize, seed: u64, malformed: bool) -> SampleAccountSpec {
    SampleAccountSpec {
        account_id: account_id.to_string(),
        principals,
        seed,
        malformed_policy: malformed,
    }
}

/// Analyses every principal of a generated account and builds its report.
fn report_for(
    engine: &Engine,
    spec: &SampleAccountSpec,
    run_id: &str,
    extra_failure: Option<usize>,
    previous: Option<&AccountReport>,
) -> AccountReport {
    let account = generate_account(spec);
    let model = AccountModel::parse(&account.authorization_details).expect("generated JSON parses");
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (i, p) in model.principals().iter().enumerate() {
        if extra_failure == Some(i) {
            failures.push(PrincipalFailure {
                principal_arn: p.arn.clone(),
                reason: "simulated failure".into(),
            });
            continue;
        }
        let la = account
            .last_accessed
            .get(&p.arn)
            .map(|b| LastAccessed::parse(b).expect("generated last-accessed parses"));
        match engine.analyze_principal(&model, &p.arn, la.as_ref()) {
            Ok(r) => results.push(r),
            Err(e) => failures.push(PrincipalFailure {
                principal_arn: p.arn.clone(),
                reason: e.to_string(),
            }),
        }
    }
    let creds = String::from_utf8(account.credential_report.clone()).expect("UTF-8 CSV");
    let ctx = ReportContext {
        customer: "golden",
        account: &spec.account_id,
        run_id,
        analysis_time: "2026-11-25T02:00:00Z",
        credential_report: Some(&creds),
    };
    build_report(engine, &model, &results, &failures, &ctx, previous)
}

fn hashes(prefix: &str, report: &AccountReport, out: &mut BTreeMap<String, String>) {
    for (name, body) in report.render_files().expect("render") {
        out.insert(
            format!("{prefix}/{name}"),
            hex::encode(Sha256::digest(&body)),
        );
    }
}

fn all_hashes() -> BTreeMap<String, String> {
    let engine = Engine::new().expect("the embedded catalog loads");
    let mut out = BTreeMap::new();

    // a small account, first run (no previous report), with a malformed policy
    let a = spec("111122223333", 40, 7, true);
    let a1 = report_for(&engine, &a, "r1", None, None);
    hashes("a-r1", &a1, &mut out);

    // the same account id, other content, diffed against the first report (round-tripped
    // through its JSON, as the pipeline does), with one principal failed
    let prev =
        AccountReport::from_json(&serde_json::to_vec_pretty(&a1).expect("report serializes"))
            .expect("report.json reads back");
    let a2 = report_for(
        &engine,
        &spec("111122223333", 55, 8, false),
        "r2",
        Some(3),
        Some(&prev),
    );
    assert!(a2.partial, "the failed principal makes the report partial");
    assert!(!a2.diff.is_empty(), "the diff against r1 has rows");
    hashes("a-r2", &a2, &mut out);

    // a larger account, with a failed principal picked by position
    let b = spec("444455556666", 260, 0xB0B, false);
    let b1 = report_for(&engine, &b, "r1", Some(17), None);
    assert!(b1.partial && b1.failures.len() == 1, "one failed principal");
    hashes("b-r1", &b1, &mut out);
    let b2 = report_for(
        &engine,
        &spec("444455556666", 240, 0xB0C, true),
        "r2",
        None,
        Some(&b1),
    );
    assert!(!b2.diff.is_empty() && !b2.policy_errors.is_empty());
    hashes("b-r2", &b2, &mut out);
    out
}

/// sha256 of every file, recorded from the code before the report refactoring.
const EXPECTED: &[(&str, &str)] = &[
    (
        "a-r1/diff.csv",
        "84dbc9a8347633c9d153c4b66cdfb312fa5cec366f0746a6944dcf1c080d668b",
    ),
    (
        "a-r1/principal-access-summaries.csv",
        "8dec0a767240e50ed8fcc3ef90b4e086a154f2b2b9972df0d881416c21e439d7",
    ),
    (
        "a-r1/principals.csv",
        "e3efab1ef14559e6d178d79546a909f4238eb24043b2fcfa2748fae15e964ec6",
    ),
    (
        "a-r1/report.html",
        "afb68a214a772f2fd003db8e65aa28c86c94f0e95e00002b3d01e31cbf82465a",
    ),
    (
        "a-r1/report.json",
        "ae75dfa37f39f50141d57f2e695bb85ac3461f3537b7511151ebd33018411f32",
    ),
    (
        "a-r1/resource-access-summaries.csv",
        "77b7f36792eff29806c2a277204bc73be4ddb54a952548efa6505fc8131d1ccb",
    ),
    (
        "a-r1/resources.csv",
        "381766f96085fa4517cbbfb62138efcaaa168ce68c8f98033a26ed7ad2da946e",
    ),
    (
        "a-r2/diff.csv",
        "0eedc88068ca2373f413aec757e04827a4e1962084bc911a19711ad29ed7faf2",
    ),
    (
        "a-r2/principal-access-summaries.csv",
        "5160cbae701024421e774e8f8e33e6171cdffa97d1da7e816ffb419e15c5f1ae",
    ),
    (
        "a-r2/principals.csv",
        "efdbae7b1e0e36989c78741930e91627e4a4b014b8b21a386c784ec943dd71ea",
    ),
    (
        "a-r2/report.html",
        "9906f9daec5ec2de45058ba754c8db4c9ac123b8ebafeab9079cfd6ebcf776a6",
    ),
    (
        "a-r2/report.json",
        "34cc9a8c08dca6e6408849e39a286a4b214645276099f38ff5037a9ea9908706",
    ),
    (
        "a-r2/resource-access-summaries.csv",
        "0f141b92e793f955c0910bff52ad99d77c46861c9392c072d65897368b581b20",
    ),
    (
        "a-r2/resources.csv",
        "c7951f540d882dbb08f2377be572cb550acf5571ff4ecaaec460a40c9d00e9f1",
    ),
    (
        "b-r1/diff.csv",
        "84dbc9a8347633c9d153c4b66cdfb312fa5cec366f0746a6944dcf1c080d668b",
    ),
    (
        "b-r1/principal-access-summaries.csv",
        "2516e696aeb4c25d8bf54c962513b570a6b040c637d33e257a4be7b88865f187",
    ),
    (
        "b-r1/principals.csv",
        "b2d70f6cf0a88195b051de5fab2f996cf4f7d22d4df7ef3775987d9de01fe6fa",
    ),
    (
        "b-r1/report.html",
        "5c219d7e2bb979d3feb86b7a1be81644e8326177d5e745415591161e5dcf63c7",
    ),
    (
        "b-r1/report.json",
        "f3ff0d15564e0794c346f03c13e670cd0558ba6d36e241a7202d0d351d3cf583",
    ),
    (
        "b-r1/resource-access-summaries.csv",
        "5cd4988370b7d502cccc3f3ae3def8c529ffc46e8c514e3590ba459c8f089c9e",
    ),
    (
        "b-r1/resources.csv",
        "5cde8db4653d23357f0cd70fa7ab2262b52c7fc7f3e1304b69ce64a327df4635",
    ),
    (
        "b-r2/diff.csv",
        "72dc3171d0002d1afdaf45484eb66cdf58f9334a59fbb4c196d95376230b49d9",
    ),
    (
        "b-r2/principal-access-summaries.csv",
        "b53b3ac7f9ba3e8a5eb04723f8a59f925e1f4ea97a57dd26360656235a88e9d2",
    ),
    (
        "b-r2/principals.csv",
        "9229e626fbd60d4a022745bf69f4505c3277b588b80e35bfcb99fb6f9877b177",
    ),
    (
        "b-r2/report.html",
        "c98dc93d34a557e3cecc5e6c81ad6057d4f69b2fdbe7dfc521d030aab24e6b0a",
    ),
    (
        "b-r2/report.json",
        "b2e1b6a4cdf0752c50db78b1a2738f17f184e84b08759eb50a1c4bfdf5084bb9",
    ),
    (
        "b-r2/resource-access-summaries.csv",
        "41c53b50550a641a1d02285dca6fd0ea4931e15919cf2f864b2cedf52caa21f6",
    ),
    (
        "b-r2/resources.csv",
        "e1f1fa0755fca43584eda1ba27006f8c6482f9dbf55b84dcad6aa5672d23c4c0",
    ),
];

#[test]
fn report_files_are_byte_identical_to_the_recorded_ones() {
    let got = all_hashes();
    let listing: String = got
        .iter()
        .map(|(k, v)| format!("    (\"{k}\", \"{v}\"),\n"))
        .collect();
    let expected: BTreeMap<String, String> = EXPECTED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, expected, "report file hashes changed; now:\n{listing}");
}
