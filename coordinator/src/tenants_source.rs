//! Where the coordinator's tenants come from: a tenants file, or — when none is given on the
//! embedded backend — the bundled sample, whose fixture accounts are generated
//! deterministically into the data directory on first use.

use std::path::{Path, PathBuf};

use accessflow_samples::{bundled_sample, write_fixture_dirs, SampleAccountSpec};
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
    let sample = bundled_sample();
    let mut customers = Vec::new();
    let mut missing: Vec<(&SampleAccountSpec, PathBuf)> = Vec::new();
    for customer in &sample {
        let mut accounts = Vec::new();
        for spec in &customer.accounts {
            let dir: PathBuf = root.join(&customer.customer_id).join(&spec.account_id);
            if !dir.join("authorization-details.json").exists() {
                missing.push((spec, dir.clone()));
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
            digest_recipients: Vec::new(),
            trusted_accounts: customer.trusted_accounts.clone(),
            regions: Vec::new(),
        });
    }
    write_fixture_dirs(&missing).context("cannot write the bundled sample's fixtures")?;
    let file = TenantsFile { customers };
    file.validate(Reach::Fixtures)
        .map_err(|e| anyhow::anyhow!("the bundled sample is invalid: {e}"))?;
    Ok(file)
}

/// Rewrites the fixture directories under `base` relative to it: a tenants file written
/// into `base` then reads them back from where they are, wherever it is run from (relative
/// fixture directories are resolved against the tenants file's own directory).
pub fn relative_to(file: &mut TenantsFile, base: &Path) {
    for customer in &mut file.customers {
        for account in &mut customer.accounts {
            if let Some(dir) = &account.fixture_dir {
                if let Ok(relative) = dir.strip_prefix(base) {
                    account.fixture_dir = Some(relative.to_path_buf());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_dirs_become_relative_to_the_tenants_file() {
        let out = tempfile::tempdir().unwrap();
        let base = out.path().join("sub").join("dir");
        let mut file = bundled(&base).unwrap();
        relative_to(&mut file, &base);
        let account = &file.customers[0].accounts[0];
        let dir = account.fixture_dir.as_ref().unwrap();
        assert!(dir.is_relative(), "{}", dir.display());
        assert!(base.join(dir).join("authorization-details.json").exists());
    }
}
