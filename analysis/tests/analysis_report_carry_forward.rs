//! A report carried forward to a night whose inputs are unchanged (`carry_forward_files`
//! and `AccountSummary::carried_to`, what the worker's finalize does for an unchanged
//! account) must be byte for byte the report a full build of that night writes: every
//! file and the summary, for a generated account with a resource inventory, a trusted
//! partner, a malformed policy, failed principals and a non-empty diff the night before.
//! Also: restamping refuses a file it did not write, and keeps quoted line breaks.

mod common;

use std::collections::BTreeMap;

use accessflow_analysis::report::restamp_csv;
use accessflow_analysis::resources::ResourceInventory;
use accessflow_analysis::review::AccountSummary;
use accessflow_analysis::{
    build_report, carry_forward_files, AccountModel, AccountReport, Engine, ReportContext,
    REPORT_FILES,
};
use accessflow_samples::{generate_account, SampleAccountSpec};

const ACCOUNT: &str = "111122223333";

struct Night {
    run_id: &'static str,
    time: &'static str,
    principals: usize,
    seed: u64,
}

/// Analyses a generated account (one principal failed) and builds its report.
fn build(engine: &Engine, night: &Night, previous: Option<&AccountReport>) -> AccountReport {
    let account = generate_account(&SampleAccountSpec {
        account_id: ACCOUNT.to_string(),
        principals: night.principals,
        seed: night.seed,
        malformed_policy: true,
        resources: true,
    });
    let model = AccountModel::parse(&account.authorization_details).expect("generated JSON parses");
    let inventory = ResourceInventory::parse(
        account
            .resources
            .as_deref()
            .expect("the spec asks for an inventory"),
    )
    .expect("generated inventory parses");
    let (results, failures) = common::analyse(engine, &account, &model, Some(5));
    let creds = String::from_utf8(account.credential_report.clone()).expect("UTF-8 CSV");
    let trusted = vec!["999988887777".to_string()];
    let ctx = ReportContext {
        customer: "acme",
        account: ACCOUNT,
        run_id: night.run_id,
        analysis_time: night.time,
        credential_report: Some(&creds),
        resources: Some(&inventory),
        trusted_accounts: &trusted,
    };
    build_report(engine, &model, &results, &failures, &ctx, previous)
}

fn files(report: &AccountReport) -> BTreeMap<String, Vec<u8>> {
    report.render_files().expect("render").into_iter().collect()
}

#[test]
fn a_report_carried_forward_is_the_report_a_full_build_writes() {
    let engine = Engine::new().expect("the embedded catalog loads");
    let night = |run_id, time, principals, seed| Night {
        run_id,
        time,
        principals,
        seed,
    };
    // Night 1 and night 2 differ (so night 2's own diff is not empty); night 3 has night
    // 2's inputs.
    let first = build(&engine, &night("r1", "2026-11-24T02:00:00Z", 60, 1), None);
    let second_night = night("r2", "2026-11-25T02:00:00Z", 70, 2);
    let second = build(&engine, &second_night, Some(&first));
    assert!(!second.diff.is_empty(), "night 2 changed things");
    assert!(second.partial && !second.resource_access.is_empty());
    let second_files = files(&second);

    // Night 3, built in full against night 2's report, as the pipeline reads it.
    let previous = AccountReport::from_files(
        &second_files["report.json"],
        Some(&second_files[accessflow_analysis::ACCESS_FILE]),
    )
    .expect("reads back");
    let third_night = night("r3", "2026-11-26T02:00:01Z", 70, 2);
    let full = build(&engine, &third_night, Some(&previous));
    assert!(full.diff.is_empty(), "nothing changed");
    let want = files(&full);

    // Night 3 carried forward from night 2's files, nothing built.
    let mut got = BTreeMap::new();
    carry_forward_files(
        ("r2", "2026-11-25T02:00:00Z"),
        ("r3", "2026-11-26T02:00:01Z"),
        second_files.clone(),
        |name, bytes| {
            got.insert(name.to_string(), bytes);
            Ok::<(), accessflow_analysis::ReportError>(())
        },
    )
    .expect("carried forward");
    assert_eq!(got.len(), REPORT_FILES.len());
    for name in REPORT_FILES {
        assert!(
            got[name] == want[name],
            "{name} differs between the carried-forward and the full build:\n{}",
            first_difference(&got[name], &want[name])
        );
        assert!(
            got[name] != second_files[name] || name == "public-and-cross-account.csv",
            "{name} must carry night 3's run or time, not night 2's"
        );
    }
    let summary = AccountSummary::of(&second).carried_to("r3", "2026-11-26T02:00:01Z");
    assert_eq!(summary.to_json(), AccountSummary::of(&full).to_json());

    // A file that is not as the report writes it, or a missing one, is refused by name.
    let refused = |files: BTreeMap<String, Vec<u8>>, name: &str| {
        let e = carry_forward_files(
            ("r2", "2026-11-25T02:00:00Z"),
            ("r3", "x"),
            files,
            |_, _| Ok::<(), accessflow_analysis::ReportError>(()),
        )
        .expect_err(name);
        assert!(e.to_string().contains(name), "{e}");
    };
    let mut foreign = second_files.clone();
    foreign.insert("report.html".into(), b"<html></html>".to_vec());
    refused(foreign, "report.html");
    let mut missing = second_files.clone();
    missing.remove("resources.csv");
    refused(missing, "resources.csv");
}

/// Where two files first differ, with some context, for the assertion message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let show = |s: &[u8]| {
        String::from_utf8_lossy(&s[at.saturating_sub(80)..(at + 80).min(s.len())]).into_owned()
    };
    format!("at byte {at}: carried {:?}\nbuilt {:?}", show(a), show(b))
}

#[test]
fn restamping_keeps_quoted_line_breaks_and_refuses_rows_of_another_time() {
    let t1 = "2026-11-25T02:00:00Z";
    let t2 = "2026-11-26T02:00:00Z";
    let csv =
        format!("analysis_time,name,tags\r\n{t1},a,\"x\r\n{t1},y\"\r\n{t1},\"b \"\"q\"\"\",\r\n");
    let out = restamp_csv("t.csv", csv.as_bytes(), t1, t2).expect("restamps");
    assert_eq!(
        String::from_utf8(out).expect("UTF-8"),
        format!("analysis_time,name,tags\r\n{t2},a,\"x\r\n{t1},y\"\r\n{t2},\"b \"\"q\"\"\",\r\n"),
        "the time inside a quoted cell is a cell's text, not a row's start"
    );

    let other = format!("analysis_time,name\r\n{t1},a\r\n{t2},b\r\n");
    let e = restamp_csv("t.csv", other.as_bytes(), t1, t2).expect_err("a row of another time");
    assert!(
        e.to_string().contains("t.csv") && e.to_string().contains("byte"),
        "{e}"
    );
    let cut = format!("analysis_time,name\r\n{t1},\"a\r\n");
    let e = restamp_csv("t.csv", cut.as_bytes(), t1, t2).expect_err("a cut-off row");
    assert!(e.to_string().contains("cut off"), "{e}");
    let e = restamp_csv("t.csv", b"name\r\n", t1, t2).expect_err("not a report CSV");
    assert!(e.to_string().contains("analysis_time"), "{e}");
}
