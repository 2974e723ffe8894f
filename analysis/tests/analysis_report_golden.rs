//! Golden hashes of the report files: generated sample accounts (with credential reports,
//! last-accessed data, a malformed policy, a failed principal and a previous report so the
//! diff and the partial path are exercised) are analysed and rendered, and every file's
//! sha256 must equal the value recorded from the code before the report refactoring, except
//! the second runs' diffs (`*-r2/diff.csv`, and the diff inside `report.json`/`report.html`),
//! re-recorded when the diff stopped reporting the access of principals that failed as
//! added or removed (their access is unknown), and every `report.json`, re-recorded for
//! report format 2 (no `resource_access`, access rows without the principal's name and type,
//! one row per line): every other file kept its bytes through that change.
//! `public-and-cross-account.csv` (header only: these accounts have no resource inventory)
//! was added later; every other file kept its bytes through that change.
//! Engine 0.3.0 (AWS's fixed rules: an AWS-reserved or service-linked role cannot change
//! itself) re-recorded every `report.json` and `report.html` (engine version, the SSO
//! roles' admin reasons and escalation paths) and the second runs' `diff.csv`; every CSV
//! but the diffs kept its bytes.
//! Report format 3 (no `principal_access` in `report.json`: the access CSV has the rows)
//! re-recorded every `report.json`; every other file kept its bytes.
//! Guards byte-for-byte determinism of `build_report` and `render_files`; also that
//! `report.json` with the access CSV carries everything but the resource-access rows (a
//! report read back renders the same files), and that a format-1 and a format-2
//! `report.json` written by earlier code (`tests/data/report/format-{1,2}-a-r1-report.json.gz`,
//! the `a-r1` report) still read and give the same diff.

use std::collections::BTreeMap;

mod common;

use accessflow_analysis::{
    build_report, AccountModel, AccountReport, DiffChange, DiffKind, Engine, ReportContext,
    ACCESS_FILE, REPORT_FORMAT,
};
use accessflow_samples::{generate_account, SampleAccountSpec};
use sha2::{Digest, Sha256};

fn spec(account_id: &str, principals: usize, seed: u64, malformed: bool) -> SampleAccountSpec {
    SampleAccountSpec {
        account_id: account_id.to_string(),
        principals,
        seed,
        malformed_policy: malformed,
        resources: false,
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
    let (results, failures) = common::analyse(engine, &account, &model, extra_failure);
    let creds = String::from_utf8(account.credential_report.clone()).expect("UTF-8 CSV");
    let ctx = ReportContext {
        customer: "golden",
        account: &spec.account_id,
        run_id,
        analysis_time: "2026-11-25T02:00:00Z",
        credential_report: Some(&creds),
        resources: None,
        trusted_accounts: &[],
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

/// The `a-r1` report: a small account, first run (no previous report), with a malformed
/// policy.
fn a_r1(engine: &Engine) -> AccountReport {
    report_for(engine, &spec("111122223333", 40, 7, true), "r1", None, None)
}

/// The `a-r2` report: the same account id, other content, one principal failed, diffed
/// against `previous`.
fn a_r2(engine: &Engine, previous: &AccountReport) -> AccountReport {
    report_for(
        engine,
        &spec("111122223333", 55, 8, false),
        "r2",
        Some(3),
        Some(previous),
    )
}

fn all_hashes() -> BTreeMap<String, String> {
    let engine = Engine::new().expect("the embedded catalog loads");
    let mut out = BTreeMap::new();

    // a small account, first run (no previous report), with a malformed policy
    let a1 = a_r1(&engine);
    hashes("a-r1", &a1, &mut out);

    // the same account id, other content, diffed against the first report (round-tripped
    // through its files, as the pipeline does), with one principal failed
    let prev = read_back(&a1.render_files().expect("render"));
    let a2 = a_r2(&engine, &prev);
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
        "a-r1/public-and-cross-account.csv",
        "b506814f7dd12ffe3a17afe0a3ab3db61fbe0aa7b1bcd0b43aa4775512cae27a",
    ),
    (
        "a-r1/report.html",
        "81c2f98afe4273f152443a7e5c88c6693d12e0f4da03c2dee983f2a169695cd3",
    ),
    (
        "a-r1/report.json",
        "7247f206bc4ce95f9f2e619c652b4396993a4609b0eb3bc2650d7c17750b0064",
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
        "4f23b584a904274d632bb82d1014893e0b60d6ea48d9a03c579c3d7c05a50003",
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
        "a-r2/public-and-cross-account.csv",
        "b506814f7dd12ffe3a17afe0a3ab3db61fbe0aa7b1bcd0b43aa4775512cae27a",
    ),
    (
        "a-r2/report.html",
        "f0d48cbed2a5b99eacad4cb1503dd039b8a061a952705d4978a172b786234a91",
    ),
    (
        "a-r2/report.json",
        "7f7d36c20dabed4c9b474bb029b19b4301b984ce2c4a43eb9c4435862f027c93",
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
        "b-r1/public-and-cross-account.csv",
        "b506814f7dd12ffe3a17afe0a3ab3db61fbe0aa7b1bcd0b43aa4775512cae27a",
    ),
    (
        "b-r1/report.html",
        "4851608c8ca47a8fae1000f1c9c6345c16224e16b1a207dd2e47db043116f9ae",
    ),
    (
        "b-r1/report.json",
        "bff30724b2479279c9478c6286245c0ae91139f9df7517b61a59af16753c2c02",
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
        "94c1f4f94d9bebe8bd605b37937c29025e0cc95d94dcec2c66d01e03526ae248",
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
        "b-r2/public-and-cross-account.csv",
        "b506814f7dd12ffe3a17afe0a3ab3db61fbe0aa7b1bcd0b43aa4775512cae27a",
    ),
    (
        "b-r2/report.html",
        "1b1aa4657bc976e369ff9a4e2a1a66faf7ce398c433116327f868a670e875781",
    ),
    (
        "b-r2/report.json",
        "e67d5d7e9c0711024a59bc663fbeca1896b0813efdaa0e741c8c1af1e3c2ae3f",
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

fn file<'f>(files: &'f [(String, Vec<u8>)], name: &str) -> &'f [u8] {
    &files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

/// A rendered report read back as the pipeline reads last night's: `report.json` and the
/// access CSV.
fn read_back(files: &[(String, Vec<u8>)]) -> AccountReport {
    AccountReport::from_files(file(files, "report.json"), Some(file(files, ACCESS_FILE)))
        .expect("the report reads back")
}

/// A gzipped file of `tests/data/report/`, unpacked.
fn gunzip_data(name: &str) -> Vec<u8> {
    use std::io::Read;
    let path = format!("{}/tests/data/report/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("open the data file"))
        .read_to_end(&mut bytes)
        .expect("gunzip the data file");
    bytes
}

/// `report.json` and the access CSV hold everything but the resource-access rows: read
/// back, the report equals the one built (without those rows) and renders the same files,
/// but for `resource-access-summaries.csv` (its header only). Without the CSV, a format-3
/// `report.json` is refused, naming the file it needs.
#[test]
fn report_json_reads_back_to_the_same_report_and_files() {
    let engine = Engine::new().expect("the embedded catalog loads");
    let b = spec("444455556666", 260, 0xB0B, false);
    let b1 = report_for(&engine, &b, "r1", Some(17), None);
    let b2 = report_for(
        &engine,
        &spec("444455556666", 240, 0xB0C, true),
        "r2",
        None,
        Some(&b1),
    );
    for built in [&b1, &b2] {
        let files = built.render_files().expect("render");
        let json = file(&files, "report.json");
        let err = AccountReport::from_files(json, None).expect_err("the access rows are missing");
        assert!(err.to_string().contains(ACCESS_FILE), "{err}");
        let back = read_back(&files);
        assert!(back.resource_access.is_empty());
        assert!(!built.resource_access.is_empty());
        let mut without = built.clone();
        without.resource_access.clear();
        assert!(back == without, "{} read back differs", built.run_id);
        let again = back.render_files().expect("render the report read back");
        for (name, body) in &files {
            if name == "resource-access-summaries.csv" {
                continue;
            }
            assert!(
                file(&again, name) == body.as_slice(),
                "{name} differs when rendered from the report read back"
            );
        }
    }
}

/// An access CSV that is not as this code writes it is refused, naming the file and line.
#[test]
fn a_malformed_access_csv_is_refused_naming_the_line() {
    let engine = Engine::new().expect("the embedded catalog loads");
    let r = a_r1(&engine);
    let files = r.render_files().expect("render");
    let json = file(&files, "report.json");
    let csv = std::str::from_utf8(file(&files, ACCESS_FILE)).expect("UTF-8");
    let refused = |csv: &str, what: &str| {
        let err = AccountReport::from_files(json, Some(csv.as_bytes())).expect_err(what);
        err.to_string()
    };
    let header = refused(&csv.replacen("principal_arn", "arn", 1), "a foreign header");
    assert!(
        header.contains(&format!("{ACCESS_FILE} line 1")),
        "{header}"
    );
    // the third line's capability and conditional
    let mut lines: Vec<String> = csv.split("\r\n").map(str::to_string).collect();
    let third = lines[2].clone();
    let cells: Vec<&str> = third.split(',').collect();
    let capability = cells[cells.len() - 3];
    lines[2] = third.replace(&format!(",{capability},"), ",read-everything,");
    let text = refused(&lines.join("\r\n"), "an unknown capability");
    assert!(
        text.contains(&format!("{ACCESS_FILE} line 3")) && text.contains("read-everything"),
        "{text}"
    );
    lines[2] = format!(
        "{}maybe",
        third.trim_end_matches("true").trim_end_matches("false")
    );
    let text = refused(&lines.join("\r\n"), "a conditional that is not a flag");
    assert!(text.contains("line 3") && text.contains("maybe"), "{text}");
    lines[2] = format!("{third},extra");
    let text = refused(&lines.join("\r\n"), "a row of another width");
    assert!(text.contains("line 3"), "{text}");
}

/// The rows are one per line: the top-level keys and each row of a section start a line.
#[test]
fn report_json_has_one_row_per_line() {
    let engine = Engine::new().expect("the embedded catalog loads");
    let r = a_r1(&engine);
    let files = r.render_files().expect("render");
    let json = std::str::from_utf8(file(&files, "report.json")).expect("UTF-8");
    assert!(json.starts_with("{\n  \"format\": \"accessflow-account-report/3\",\n"));
    assert!(json.ends_with("\n}\n"));
    // every row of every section (an object in a top-level array) is one line of its own
    let value: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    let object = value.as_object().expect("an object");
    let rows: usize = object
        .values()
        .filter_map(serde_json::Value::as_array)
        .map(|a| a.iter().filter(|v| v.is_object()).count())
        .sum();
    let row_lines = json.lines().filter(|l| l.starts_with("    {")).count();
    assert!(rows > 100, "the report has rows ({rows})");
    assert_eq!(row_lines, rows);
    assert!(!object.contains_key("resource_access"));
    assert!(!object.contains_key("principal_access"));
    assert!(!r.principal_access.is_empty());
}

/// The first night after the upgrade: last night's `report.json` is format 1 (the file is
/// the `a-r1` report as the code before format 2 wrote it; its sha256 is the one this test
/// file recorded for `a-r1/report.json` then). It still reads, and tonight's report diffs
/// against it exactly as against the report it was written from.
#[test]
fn a_format_1_report_still_reads_and_diffs() {
    let old = gunzip_data("format-1-a-r1-report.json.gz");
    assert_eq!(
        hex::encode(Sha256::digest(&old)),
        "ae75dfa37f39f50141d57f2e695bb85ac3461f3537b7511151ebd33018411f32",
        "the file is the format-1 a-r1 report.json"
    );
    let from_old = AccountReport::from_files(&old, None).expect("a format-1 report.json reads");
    assert_eq!(from_old.format, "accessflow-account-report/1");
    assert!(
        from_old.resource_access.is_empty(),
        "format 1's are ignored"
    );

    let engine = Engine::new().expect("the embedded catalog loads");
    let a1 = a_r1(&engine);
    // what the diff reads is the same as in the report built tonight by this code
    assert_eq!(from_old.principal_access, a1.principal_access);
    assert_eq!(from_old.principals, a1.principals);
    // ... but for AWS's fixed rules, added since: a role of AWS's (`/aws-reserved/`,
    // `/aws-service-role/`) can no longer change itself, so its self-escalation reasons and
    // paths are gone, and nothing else changed
    let aws_owned =
        |arn: &str| arn.contains(":role/aws-reserved/") || arn.contains(":role/aws-service-role/");
    let self_path = |text: &str| text.contains("on itself");
    for (old, new) in from_old.admins.iter().zip(&a1.admins) {
        assert_eq!(old.principal_arn, new.principal_arn);
        if aws_owned(&old.principal_arn) {
            let kept: Vec<&String> = old.reasons.iter().filter(|r| !self_path(r)).collect();
            assert_eq!(kept, new.reasons.iter().collect::<Vec<_>>());
        } else {
            assert_eq!(old, new);
        }
    }
    assert_eq!(from_old.admins.len(), a1.admins.len());
    assert!(
        from_old.admins.iter().any(|a| aws_owned(&a.principal_arn)),
        "the case is there"
    );
    assert_eq!(from_old.external_access, a1.external_access);
    let kept: Vec<_> = from_old
        .escalations
        .iter()
        .filter(|e| !(aws_owned(&e.principal_arn) && e.path.ends_with("-self")))
        .cloned()
        .collect();
    assert_eq!(kept, a1.escalations);
    assert_eq!(from_old.failures, a1.failures);

    let a2 = |previous: &AccountReport| a_r2(&engine, previous);
    let against_old = a2(&from_old);
    let against_new = a2(&a1);
    assert!(!against_old.diff.is_empty());
    // against the old report, the self-escalations of AWS's roles it still had are removed
    let (gone, rest): (Vec<_>, Vec<_>) = against_old.diff.iter().cloned().partition(|d| {
        d.change == DiffChange::Removed
            && d.kind == DiffKind::Escalation
            && aws_owned(&d.principal_arn)
            && d.detail.ends_with("-self")
    });
    assert!(!gone.is_empty(), "the old report had them");
    assert_eq!(rest, against_new.diff);
    let files = against_new.render_files().expect("render");
    let expected = EXPECTED
        .iter()
        .find(|(k, _)| *k == "a-r2/diff.csv")
        .expect("recorded")
        .1;
    assert_eq!(
        hex::encode(Sha256::digest(file(&files, "diff.csv"))),
        expected
    );
}

/// The first night after the upgrade to format 3: last night's `report.json` is format 2
/// (the file is the `a-r1` report as the code before format 3 wrote it; its sha256 is the
/// one this test file recorded for `a-r1/report.json` then), with its access rows inside.
/// It reads without the CSV to the same report as tonight's code's files read back, and
/// tonight's report diffs against it exactly as against those.
#[test]
fn a_format_2_report_still_reads_and_diffs() {
    let old = gunzip_data("format-2-a-r1-report.json.gz");
    assert_eq!(
        hex::encode(Sha256::digest(&old)),
        "740df725e8cd937efbd1357b1c186083dc1b686fe77dc6ad6f33bc9ed6725c1d",
        "the file is the format-2 a-r1 report.json"
    );
    let from_old = AccountReport::from_files(&old, None).expect("a format-2 report.json reads");
    assert_eq!(from_old.format, "accessflow-account-report/2");

    let engine = Engine::new().expect("the embedded catalog loads");
    let a1 = a_r1(&engine);
    let from_new = read_back(&a1.render_files().expect("render"));
    assert_eq!(from_new.format, REPORT_FORMAT);
    assert!(!from_old.principal_access.is_empty());
    let mut as_new = from_old.clone();
    as_new.format = REPORT_FORMAT.to_string();
    assert!(
        as_new == from_new,
        "format 2 reads to the same report as format 3"
    );
    let a2 = |previous: &AccountReport| a_r2(&engine, previous);
    let against_old = a2(&from_old);
    assert!(!against_old.diff.is_empty());
    assert_eq!(against_old.diff, a2(&from_new).diff);
}

/// An unknown format is refused, naming it and the formats that are read.
#[test]
fn an_unknown_report_format_is_refused_by_name() {
    let err = AccountReport::from_files(br#"{"format": "accessflow-account-report/9"}"#, None)
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("accessflow-account-report/9"), "{text}");
}

/// `write_files` hands over the files one at a time, in name order, with the bytes
/// `render_files` returns; `write_file` of an unknown name says which name.
#[test]
fn write_files_streams_the_same_files() {
    let engine = Engine::new().expect("the embedded catalog loads");
    let r = a_r1(&engine);
    let all = r.render_files().expect("render");
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    r.write_files(|name, bytes| {
        seen.push((name.to_string(), bytes));
        Ok::<(), accessflow_analysis::ReportError>(())
    })
    .expect("write_files");
    assert_eq!(seen, all);
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, accessflow_analysis::report::REPORT_FILES);
    for (name, body) in &all {
        let mut out = Vec::new();
        r.write_file(name, &mut out).expect("write_file");
        assert!(&out == body, "{name}");
    }
    let err = r
        .write_file("report.xml", &mut Vec::new())
        .expect_err("no such file");
    assert!(err.to_string().contains("report.xml"), "{err}");
    // a store error stops the writing and comes back
    let mut calls = 0;
    let stopped = r.write_files(|name, _| {
        calls += 1;
        Err(accessflow_analysis::ReportError::Store {
            file: name.to_string(),
            message: "disk full".into(),
        })
    });
    assert_eq!(calls, 1);
    assert!(stopped
        .expect_err("stopped")
        .to_string()
        .contains("disk full"));
}
