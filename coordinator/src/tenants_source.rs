//! Where the coordinator's tenants come from: a tenants file, or — when none is given on the
//! embedded backend — the bundled sample, whose fixture accounts are generated
//! deterministically into the data directory on first use.

use std::path::{Path, PathBuf};

use accessflow_samples::{bundled_sample, generate_account, write_fixture_dir};
use accessflow_shared::config::{BackendKind, Settings};
use accessflow_shared::tenants::{AccountConfig, CustomerConfig, Reach, TenantsFile};
use anyhow::Context;

/// Loads the tenants for this run.
pub fn load(settings: &Settings, tenants: Option<&Path>) -> anyhow::Result<TenantsFile> {
    let reach = match settings.backend {
        BackendKind::Embedded => Reach::Fixtures,
        BackendKind::Aws => Reach::AssumeRole,
    };
    match tenants {
        Some(path) => Ok(TenantsFile::load(path, reach)?),
        None if settings.backend == BackendKind::Embedded => bundled(&settings.data_dir.join("fixtures")),
        None => anyhow::bail!("--tenants FILE is required with the AWS backend (the bundled sample exists only as local fixtures)"),
    }
}

/// The bundled sample, its fixture directories generated under `root` when missing.
pub fn bundled(root: &Path) -> anyhow::Result<TenantsFile> {
    let mut customers = Vec::new();
    for customer in bundled_sample() {
        let mut accounts = Vec::new();
        for spec in &customer.accounts {
            let dir: PathBuf = root.join(&customer.customer_id).join(&spec.account_id);
            if !dir.join("authorization-details.json").exists() {
                let generated = generate_account(spec);
                write_fixture_dir(&generated, &dir).with_context(|| {
                    format!("cannot write the sample fixtures to {}", dir.display())
                })?;
            }
            accounts.push(AccountConfig {
                id: spec.account_id.clone(),
                fixture_dir: Some(dir),
                role_arn: None,
                external_id: None,
                size_hint: spec.principals as u64,
            });
        }
        customers.push(CustomerConfig {
            id: customer.customer_id.clone(),
            name: customer.name.clone(),
            accounts,
        });
    }
    let file = TenantsFile { customers };
    file.validate(Reach::Fixtures)
        .map_err(|e| anyhow::anyhow!("the bundled sample is invalid: {e}"))?;
    Ok(file)
}
