//! Fuzzes the account parser and everything downstream of it: parse, analyse every
//! principal, build and render the report. Nothing may panic.
#![no_main]

use std::sync::LazyLock;

use accessflow_analysis::{build_report, AccountModel, Engine, ReportContext};
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));

fuzz_target!(|data: &[u8]| {
    let Ok(model) = AccountModel::parse(data) else { return };
    let mut results = Vec::new();
    for p in model.principals() {
        if let Ok(r) = ENGINE.analyze_principal(&model, &p.arn, None) {
            results.push(r);
        }
        let _ = ENGINE.check(&model, &p.arn, "s3:GetObject", "arn:aws:s3:::b/k", &[], &Default::default());
    }
    let ctx = ReportContext {
        customer: "fuzz",
        account: model.account_id(),
        run_id: "fuzz",
        analysis_time: "2026-01-01T00:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    let report = build_report(&ENGINE, &model, &results, &[], &ctx, None);
    let _ = report.render_files();
});
