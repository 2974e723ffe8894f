//! The tenant configuration: which customers and accounts a run covers, and how to reach
//! each account.
//!
//! A TOML file (see `tenants.example.toml` at the repository root):
//!
//! ```toml
//! [[customers]]
//! id = "acme"
//! name = "Acme Corp"
//!
//! [[customers.accounts]]
//! id = "111122223333"
//! fixture_dir = "fixtures/acme/111122223333"   # embedded backend, relative to this file
//! role_arn = "arn:aws:iam::111122223333:role/AccessflowAudit"   # AWS backend
//! external_id = "acme-7f3a"
//! size_hint = 2000                               # optional: expected principals
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::naming::{validate_account, validate_customer};
use crate::ports::AccountLocator;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    #[serde(default)]
    pub customers: Vec<CustomerConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Who receives the customer's morning digest (`coordinator notify`): e-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digest_recipients: Vec<String>,
    /// The customer's known partner accounts (12-digit ids): the reports tell access from
    /// these apart from access by unknown accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_accounts: Vec<String>,
    /// The AWS regions the customer's accounts use (`eu-west-1`, ...): their resource
    /// policies are collected in each. Empty: the deployment's own region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: String,
    #[serde(default)]
    pub fixture_dir: Option<PathBuf>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub size_hint: u64,
}

/// What is wrong with a tenants file, and where.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("cannot read tenants file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tenants file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("tenants file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// Which backend the accounts must be reachable with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every account needs a `fixture_dir`.
    Fixtures,
    /// Every account needs a `role_arn` (and usually an `external_id`).
    AssumeRole,
}

impl TenantsFile {
    /// Reads and validates a tenants file; relative fixture directories are resolved against
    /// the file's directory.
    pub fn load(path: &Path, reach: Reach) -> Result<TenantsFile, TenantsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file: TenantsFile =
            toml::from_str(&text).map_err(|source| TenantsError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for customer in &mut file.customers {
            for account in &mut customer.accounts {
                if let Some(dir) = &account.fixture_dir {
                    if dir.is_relative() {
                        account.fixture_dir = Some(base.join(dir));
                    }
                }
            }
        }
        file.validate(reach)
            .map_err(|problem| TenantsError::Invalid {
                path: path.to_path_buf(),
                problem,
            })?;
        Ok(file)
    }

    /// Checks ids, duplicates and that every account can be reached with `reach`.
    pub fn validate(&self, reach: Reach) -> Result<(), String> {
        if self.customers.is_empty() {
            return Err("no customers are listed: add at least one [[customers]] entry".into());
        }
        let mut customers = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        for customer in &self.customers {
            validate_customer(&customer.id).map_err(|e| e.to_string())?;
            if !customers.insert(customer.id.as_str()) {
                return Err(format!("customer {:?} is listed twice", customer.id));
            }
            if customer.accounts.is_empty() {
                return Err(format!("customer {:?} has no accounts", customer.id));
            }
            for address in &customer.digest_recipients {
                check_address(address).map_err(|problem| {
                    format!("customer {:?}, digest_recipients: {problem}", customer.id)
                })?;
            }
            for trusted in &customer.trusted_accounts {
                validate_account(trusted)
                    .map_err(|e| format!("customer {:?}, trusted_accounts: {e}", customer.id))?;
            }
            let mut regions = BTreeSet::new();
            for region in &customer.regions {
                check_region(region)
                    .map_err(|problem| format!("customer {:?}, regions: {problem}", customer.id))?;
                if !regions.insert(region.as_str()) {
                    return Err(format!(
                        "customer {:?}, regions: {region:?} is listed twice",
                        customer.id
                    ));
                }
            }
            for account in &customer.accounts {
                validate_account(&account.id)
                    .map_err(|e| format!("customer {:?}: {e}", customer.id))?;
                if !accounts.insert(account.id.as_str()) {
                    return Err(format!(
                        "account {} is listed twice (an account belongs to one customer)",
                        account.id
                    ));
                }
                if let Some(role_arn) = &account.role_arn {
                    check_role_arn(role_arn, &account.id).map_err(|problem| {
                        format!(
                            "customer {:?}, account {}: {problem}",
                            customer.id, account.id
                        )
                    })?;
                }
                match reach {
                    Reach::Fixtures if account.fixture_dir.is_none() => {
                        return Err(format!(
                            "customer {:?}, account {}: the embedded backend needs `fixture_dir` (a directory with authorization-details.json)",
                            customer.id, account.id
                        ))
                    }
                    Reach::AssumeRole if account.role_arn.is_none() => {
                        return Err(format!(
                            "customer {:?}, account {}: the AWS backend needs `role_arn` (the role Accessflow assumes in the account)",
                            customer.id, account.id
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Every account as a locator with its size hint, in file order.
    pub fn accounts(&self) -> Vec<(AccountLocator, u64)> {
        self.customers
            .iter()
            .flat_map(|c| {
                c.accounts.iter().map(|a| {
                    (
                        AccountLocator {
                            customer: c.id.clone(),
                            account: a.id.clone(),
                            role_arn: a.role_arn.clone(),
                            external_id: a.external_id.clone(),
                            fixture_dir: a.fixture_dir.as_ref().map(|d| d.display().to_string()),
                            trusted_accounts: c.trusted_accounts.clone(),
                            regions: c.regions.clone(),
                        },
                        a.size_hint,
                    )
                })
            })
            .collect()
    }
}

/// A region must look like an AWS region name (`us-east-1`, `eu-central-2`,
/// `us-gov-west-1`): lowercase words and a number, joined by `-`.
fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let words = &parts[..parts.len().saturating_sub(1)];
    let ok = parts.len() >= 3
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not an AWS region name (like \"eu-west-1\")"
        ))
    }
}

/// A digest recipient must look like an e-mail address (the SMTP server decides the rest).
fn check_address(address: &str) -> Result<(), String> {
    let ok = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{address:?} is not an e-mail address (name@example.com)"
        ))
    }
}

/// A role ARN must name an IAM role in the account it is listed under: a role of another
/// account (a copy-paste slip in the tenants file) would put that account's data into this
/// account's report, possibly another customer's.
fn check_role_arn(role_arn: &str, account: &str) -> Result<(), String> {
    // arn:<partition>:iam::<account>:role/<path/name>
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let [arn, _partition, service, region, role_account, resource] = parts[..] else {
        return Err(format!(
            "`role_arn` {role_arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    };
    if arn != "arn" || service != "iam" || !region.is_empty() || !resource.starts_with("role/") {
        return Err(format!(
            "`role_arn` {role_arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    }
    if role_account != account {
        return Err(format!(
            "`role_arn` {role_arn:?} is a role of account {role_account}, not of account {account}: \
             a role of another account would report that account's access under this one"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_and_resolves_fixture_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"
[[customers]]
id = "acme"
[[customers.accounts]]
id = "111122223333"
fixture_dir = "fx/a"
size_hint = 20
"#,
        );
        let file = TenantsFile::load(&path, Reach::Fixtures).unwrap();
        let accounts = file.accounts();
        assert_eq!(accounts.len(), 1);
        assert_eq!(
            accounts[0].0.fixture_dir.as_deref(),
            Some(dir.path().join("fx/a").to_str().unwrap())
        );
        assert_eq!(accounts[0].1, 20);
    }

    #[test]
    fn a_role_of_the_account_itself_is_accepted() {
        let file: TenantsFile = toml::from_str(
            r#"
[[customers]]
id = "acme"
[[customers.accounts]]
id = "111122223333"
role_arn = "arn:aws:iam::111122223333:role/audit/AccessflowAudit"
"#,
        )
        .unwrap();
        file.validate(Reach::AssumeRole).unwrap();
        assert!(check_role_arn("arn:aws-us-gov:iam::111122223333:role/x", "111122223333").is_ok());
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(check_region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "eu",
            "eu-west",
            "EU-west-1",
            "eu-west-x",
            "eu--1",
            "eu-west-1 ",
        ] {
            assert!(check_region(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_problem_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[[customers]]\nid = \"Acme\"\n[[customers.accounts]]\nid=\"111122223333\"\nfixture_dir=\"x\"", "customer id \"Acme\""),
            ("[[customers]]\nid = \"acme\"\n[[customers.accounts]]\nid=\"1234\"\nfixture_dir=\"x\"", "exactly 12 digits"),
            ("[[customers]]\nid = \"acme\"\n[[customers.accounts]]\nid=\"111122223333\"", "needs `fixture_dir`"),
            ("[[customers]]\nid = \"acme\"\nregion = 3", "unknown field"),
            ("", "no customers"),
            ("[[customers]]\nid = \"acme\"\n[[customers.accounts]]\nid=\"111122223333\"\nfixture_dir=\"x\"\nrole_arn=\"arn:aws:iam::444455556666:role/AccessflowAudit\"", "is a role of account 444455556666, not of account 111122223333"),
            ("[[customers]]\nid = \"acme\"\n[[customers.accounts]]\nid=\"111122223333\"\nfixture_dir=\"x\"\nrole_arn=\"arn:aws:s3:::111122223333\"", "is not an IAM role ARN"),
            ("[[customers]]\nid = \"acme\"\ndigest_recipients = [\"ops@acme.example\", \"not an address\"]\n[[customers.accounts]]\nid=\"111122223333\"\nfixture_dir=\"x\"", "customer \"acme\", digest_recipients: \"not an address\" is not an e-mail address"),
            ("[[customers]]\nid = \"acme\"\nregions = [\"eu-west-1\", \"Frankfurt\"]\n[[customers.accounts]]\nid=\"111122223333\"\nfixture_dir=\"x\"", "customer \"acme\", regions: \"Frankfurt\" is not an AWS region name"),
            ("[[customers]]\nid = \"acme\"\nregions = [\"eu-west-1\", \"eu-west-1\"]\n[[customers.accounts]]\nid=\"111122223333\"\nfixture_dir=\"x\"", "\"eu-west-1\" is listed twice"),
        ];
        for (text, expected) in cases {
            let path = write(dir.path(), text);
            let err = TenantsFile::load(&path, Reach::Fixtures)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
            assert!(err.contains("tenants.toml"), "{err:?} should name the file");
        }
    }
}
