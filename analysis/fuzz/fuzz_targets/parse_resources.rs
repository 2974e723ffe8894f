//! Fuzzes the resource inventory parser (`resources.json`: resource policies, Block Public
//! Access, ACL and KMS grants) and everything downstream of it: the public and
//! cross-account evaluation, and the report with its CSV and HTML. Nothing may panic.
#![no_main]

use std::sync::LazyLock;

use accessflow_analysis::resources::{external_access, ResourceInventory};
use accessflow_analysis::{build_report, AccountModel, Engine, ReportContext};
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new().expect("the embedded catalog loads"));
static EMPTY: LazyLock<AccountModel> = LazyLock::new(|| {
    AccountModel::parse(br#"{"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}"#)
        .expect("an empty account parses")
});

fuzz_target!(|data: &[u8]| {
    let Ok(inventory) = ResourceInventory::parse(data) else { return };
    let trusted = vec!["444455556666".to_string()];
    let rows = external_access(&ENGINE, &inventory, "111122223333", &trusted);
    let ctx = ReportContext {
        customer: "fuzz",
        account: "111122223333",
        run_id: "fuzz",
        analysis_time: "2026-01-01T00:00:00.000000+00:00",
        credential_report: None,
        resources: Some(&inventory),
        trusted_accounts: &trusted,
    };
    let report = build_report(&ENGINE, &EMPTY, &[], &[], &ctx, None);
    assert_eq!(report.resource_exposure, rows, "the report holds exactly the evaluated rows");
    let _ = report.render_files();
});
