//! Shared by the report tests and the report benchmark (`#[path]` there): a generated
//! account analysed as the worker analyses it.

use accessflow_analysis::{
    AccountModel, Engine, LastAccessed, PrincipalAnalysis, PrincipalFailure,
};
use accessflow_samples::GeneratedAccount;

/// Every principal of `account` (parsed as `model`) analysed with its last-accessed data,
/// in the model's order. A principal whose analysis fails (the malformed policy's holders)
/// is a failure, as in the pipeline; so is the one at position `fail_at`, whose failure is
/// simulated.
pub fn analyse(
    engine: &Engine,
    account: &GeneratedAccount,
    model: &AccountModel,
    fail_at: Option<usize>,
) -> (Vec<PrincipalAnalysis>, Vec<PrincipalFailure>) {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (i, p) in model.principals().iter().enumerate() {
        if fail_at == Some(i) {
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
        match engine.analyze_principal(model, &p.arn, la.as_ref()) {
            Ok(r) => results.push(r),
            Err(e) => failures.push(PrincipalFailure {
                principal_arn: p.arn.clone(),
                reason: e.to_string(),
            }),
        }
    }
    (results, failures)
}
