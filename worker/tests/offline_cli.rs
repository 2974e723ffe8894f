//! End-to-end: `run_analyze` and `run_check` on the test data.

use accessflow_worker::offline::{run_analyze, run_check, AnalyzeArgs, CheckArgs};

fn data(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../analysis/tests/data")
        .join(p)
}

fn analyze(file: &str, out: &std::path::Path, previous: Option<std::path::PathBuf>) {
    try_analyze(file, out, previous).expect("analyze");
}

fn try_analyze(
    file: &str,
    out: &std::path::Path,
    previous: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    run_analyze(&AnalyzeArgs {
        file: data(file),
        previous,
        out: out.to_path_buf(),
        credential_report: None,
        last_accessed: None,
        analysis_time: Some("2026-11-26T02:00:00.000000+00:00".into()),
        customer: "acme".into(),
        account: None,
        run_id: "run-1".into(),
        scp: vec![],
        rcp: vec![],
        resources: None,
        trusted_accounts: vec![],
    })
}

#[test]
fn analyze_writes_all_files_deterministically() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    analyze("cloudsplaining/example-authz-details.json", a.path(), None);
    analyze(
        "cloudsplaining/example-authz-details.json",
        b.path(),
        Some(a.path().join("report.json")),
    );
    let mut names: Vec<String> = std::fs::read_dir(a.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "diff.csv",
            "principal-access-summaries.csv",
            "principals.csv",
            "public-and-cross-account.csv",
            "report.html",
            "report.json",
            "resource-access-summaries.csv",
            "resources.csv"
        ]
    );
    for n in &names {
        if n == "diff.csv" || n == "report.json" || n == "report.html" {
            continue; // these name the previous run
        }
        assert_eq!(
            std::fs::read(a.path().join(n)).expect("a"),
            std::fs::read(b.path().join(n)).expect("b"),
            "{n} differs between two runs"
        );
    }
    // same input as the previous run: the diff is empty
    let diff = std::fs::read_to_string(b.path().join("diff.csv")).expect("diff");
    assert_eq!(diff.lines().count(), 1, "{diff}");
}

/// `--previous` names a report.json whose access CSV is not beside it: refused, naming
/// both files and what to do, and nothing is written.
#[test]
fn a_previous_report_without_its_access_csv_is_refused_by_name() {
    let first = tempfile::tempdir().expect("tmp");
    analyze(
        "cloudsplaining/example-authz-details.json",
        first.path(),
        None,
    );
    let lonely = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        first.path().join("report.json"),
        lonely.path().join("report.json"),
    )
    .expect("copy report.json alone");
    let out = tempfile::tempdir().expect("tmp");
    let err = try_analyze(
        "cloudsplaining/example-authz-details.json",
        &out.path().join("reports"),
        Some(lonely.path().join("report.json")),
    )
    .expect_err("the access rows are missing");
    let text = format!("{err:#}");
    assert!(
        text.contains(&lonely.path().join("report.json").display().to_string())
            && text.contains("principal-access-summaries.csv")
            && text.contains("read both"),
        "{text}"
    );
    assert!(!out.path().join("reports").exists(), "nothing written");
}

#[test]
fn check_runs() {
    run_check(&CheckArgs {
        file: data("iamspy/basic-allow.json"),
        principal: "arn:aws:iam::123456789012:role/name".into(),
        action: "lambda:InvokeFunction".into(),
        resource: "arn:aws:lambda:eu-west-1:123456789012:function:helloworld".into(),
        context: vec!["aws:SourceIp=10.0.0.1".into()],
        scp: vec![data("iamspy/scp-basic.json")],
        rcp: vec![],
        resource_policies: vec![],
    })
    .expect("check");
}

#[test]
fn resource_control_policies_need_the_inventory() {
    let out = tempfile::tempdir().expect("tmp");
    let err = run_analyze(&AnalyzeArgs {
        file: data("cloudsplaining/example-authz-details.json"),
        previous: None,
        out: out.path().to_path_buf(),
        credential_report: None,
        last_accessed: None,
        analysis_time: Some("2026-11-26T02:00:00.000000+00:00".into()),
        customer: "acme".into(),
        account: None,
        run_id: "run-1".into(),
        scp: vec![],
        rcp: vec![data("iamspy/scp-basic.json")],
        resources: None,
        trusted_accounts: vec![],
    })
    .expect_err("--rcp without --resources");
    assert!(
        err.to_string().contains("--rcp needs --resources"),
        "{err:#}"
    );
}
