//! Sample tenants: a deterministic generator of AWS accounts' IAM data, in AWS's own
//! formats, and the bundled sample of customers the nightly run works on out of the box.
//! This is the workspace's only account generator: the analysis crate's tests and benchmark,
//! the test kit and the end-to-end tests all take their accounts from here.
//!
//! [`generate_account`] turns a [`SampleAccountSpec`] (account id, number of principals,
//! seed) into the three inputs the IAM source reads for an account:
//!
//! - `authorization-details.json`: `aws iam get-account-authorization-details` output
//!   (users, groups, roles, managed policies with every version, documents as JSON objects);
//! - `credential-report.csv`: the decoded `Content` of `aws iam get-credential-report`;
//! - `last-accessed.json`: per principal ARN, the `GetServiceLastAccessedDetails` result.
//!
//! [`generate_account_with_policies`] adds customer managed policies for load tests;
//! [`write_fixture_dir`] writes the three files; [`bundled_sample`] is the bundled sample.
//!
//! Modules: `gen` builds the account model (`model`) from the spec with the PRNG (`rng`)
//! and the catalog of names, AWS managed policies and statement shapes (`catalog`);
//! `emit` writes it out in AWS's formats with a fixed key order (`json`).
//!
//! The same spec always gives the same bytes: a hand-written PRNG (splitmix64) seeded from
//! the spec drives every choice, every date is derived from it (all in 2026, before the
//! fixed snapshot time 2026-11-25T02:00:00Z), and JSON objects keep a fixed key order.
//!
//! Shapes: admins (an `Admins` group, a break-glass user, `OrganizationAccountAccessRole`,
//! an SSO administrator role), read-only users and roles, data-access roles scoped to team
//! buckets, tables and KMS keys, wildcards, explicit denies, `NotAction`/`NotResource`,
//! conditions (`aws:SourceIp`, `aws:MultiFactorAuthPresent`, ...), permissions boundaries on
//! users and roles, trust policies for the same account, other accounts (with and without an
//! external id), AWS services, SAML and OIDC providers and, rarely, `"AWS": "*"`, and a few
//! escalation-prone grants (`iam:PassRole` with `lambda:CreateFunction`,
//! `iam:CreatePolicyVersion`, `iam:AttachUserPolicy`).

mod catalog;
mod emit;
mod gen;
mod json;
mod model;
mod resources;
mod rng;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One account to generate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleAccountSpec {
    /// 12 digits.
    pub account_id: String,
    /// Users + roles. Generated exactly, except that an account never has fewer than
    /// [`MIN_PRINCIPALS`] (its fixed roles and users).
    pub principals: usize,
    pub seed: u64,
    /// Make exactly one customer managed policy's default version malformed (its first
    /// statement has `"Effect": "Permit"`); at least one user or role has it attached.
    #[serde(default)]
    pub malformed_policy: bool,
    /// Also generate the account's resource inventory (`resources.json`, see
    /// [`generate_resources`]): buckets, keys and queues with resource policies.
    #[serde(default)]
    pub resources: bool,
}

/// The fewest principals a generated account has.
pub const MIN_PRINCIPALS: usize = gen::MIN_PRINCIPALS;

/// The snapshot time every generated account is taken at, RFC 3339.
pub const SNAPSHOT_TIME: &str = "2026-11-25T02:00:00Z";

/// One generated account, in AWS's formats.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedAccount {
    /// `aws iam get-account-authorization-details` output (JSON).
    pub authorization_details: Vec<u8>,
    /// `aws iam get-credential-report`, the decoded `Content` (CSV).
    pub credential_report: Vec<u8>,
    /// Principal ARN -> `GetServiceLastAccessedDetails` result (JSON), for every user and role.
    pub last_accessed: BTreeMap<String, Vec<u8>>,
    /// The resource inventory (`resources.json`) when the spec asks for one.
    pub resources: Option<Vec<u8>>,
}

/// Generates one account. Pure and deterministic: the same spec gives identical bytes.
pub fn generate_account(spec: &SampleAccountSpec) -> GeneratedAccount {
    generate_account_with_policies(spec, 0)
}

/// [`generate_account`] plus `extra_customer_policies` more customer managed policies (each
/// on one service's resources, attached to one or two roles), for load tests and benchmarks
/// that need many policies. With 0 it is exactly [`generate_account`].
pub fn generate_account_with_policies(
    spec: &SampleAccountSpec,
    extra_customer_policies: usize,
) -> GeneratedAccount {
    let model = gen::build(spec, extra_customer_policies);
    let malformed = if spec.malformed_policy {
        malformed_target(&model)
    } else {
        None
    };
    GeneratedAccount {
        authorization_details: emit::authorization_details(&model, malformed),
        credential_report: emit::credential_report(&model),
        last_accessed: emit::last_accessed(&model),
        resources: spec
            .resources
            .then(|| resources::inventory(&spec.account_id, false)),
    }
}

/// The customer managed policy to break: among those attached directly to a user or a
/// role, the one with the fewest attachments (then by name), so few principals are hit.
fn malformed_target(m: &model::Model) -> Option<usize> {
    let mut direct = vec![0usize; m.policies.len()];
    let mut total = vec![0usize; m.policies.len()];
    for u in &m.users {
        u.attached.iter().for_each(|&i| direct[i] += 1);
    }
    for r in &m.roles {
        r.attached.iter().for_each(|&i| direct[i] += 1);
    }
    for g in &m.groups {
        g.attached.iter().for_each(|&i| total[i] += 1);
    }
    (0..m.policies.len())
        .filter(|&i| !m.policies[i].aws && direct[i] > 0)
        .min_by_key(|&i| (direct[i] + total[i], m.policies[i].name.clone()))
}

/// Writes the fixture directory the embedded IAM source reads:
/// `DIR/authorization-details.json`, `DIR/credential-report.csv` and `DIR/last-accessed.json`
/// (one JSON object: principal ARN -> its `GetServiceLastAccessedDetails` result).
/// Creates `dir` if needed.
pub fn write_fixture_dir(account: &GeneratedAccount, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("authorization-details.json"),
        &account.authorization_details,
    )?;
    std::fs::write(
        dir.join("credential-report.csv"),
        &account.credential_report,
    )?;
    std::fs::write(
        dir.join("last-accessed.json"),
        last_accessed_file(&account.last_accessed),
    )?;
    if let Some(resources) = &account.resources {
        std::fs::write(dir.join("resources.json"), resources)?;
    }
    Ok(())
}

/// Generates and writes each account's fixture directory ([`write_fixture_dir`]) on all the
/// machine's cores, the largest accounts first. An error names the directory it is about.
pub fn write_fixture_dirs<P: AsRef<Path> + Sync>(
    accounts: &[(&SampleAccountSpec, P)],
) -> std::io::Result<()> {
    let mut order: Vec<&(&SampleAccountSpec, P)> = accounts.iter().collect();
    order.sort_by_key(|(spec, _)| std::cmp::Reverse(spec.principals));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(order.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let write_next = || loop {
        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some((spec, dir)) = order.get(index) else {
            return Ok(());
        };
        let dir = dir.as_ref();
        write_fixture_dir(&generate_account(spec), dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    };
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..threads).map(|_| scope.spawn(write_next)).collect();
        writers.into_iter().try_for_each(|writer| {
            writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// The `last-accessed.json` file: one pretty-printed JSON object, ARNs in sorted order.
pub fn last_accessed_file(last_accessed: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(last_accessed.values().map(|v| v.len() + 100).sum());
    out.extend_from_slice(b"{");
    for (i, (arn, value)) in last_accessed.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"\n    ");
        out.extend_from_slice(
            serde_json::to_string(arn)
                .expect("a string always serializes")
                .as_bytes(),
        );
        out.extend_from_slice(b": ");
        // Indent the (pretty-printed) value one level; JSON strings hold no raw newlines.
        for &byte in value {
            out.push(byte);
            if byte == b'\n' {
                out.extend_from_slice(b"    ");
            }
        }
    }
    out.extend_from_slice(b"\n}\n");
    out
}

/// The account's resource inventory (`resources.json`), the same for every night: the
/// showcase of public and cross-account access (see [`generate_resources_night`]).
pub fn generate_resources(account_id: &str) -> Vec<u8> {
    resources::inventory(account_id, false)
}

/// The inventory of a later night in which the account's `-reports` bucket, shared only
/// with the organisation before, has been made public (a statement for `*` added): what a
/// diff must show as "bucket became public".
pub fn generate_resources_night(account_id: &str, bucket_made_public: bool) -> Vec<u8> {
    resources::inventory(account_id, bucket_made_public)
}

/// The partner account the bundled sample's customers list as trusted, and with which each
/// account's `-partner-exchange` bucket is shared.
pub const PARTNER_ACCOUNT: &str = resources::PARTNER_ACCOUNT;
/// An account no customer lists: each account's `-vendor-drop` bucket and `data` key are
/// shared with it.
pub const UNKNOWN_ACCOUNT: &str = resources::UNKNOWN_ACCOUNT;

/// A customer of the bundled sample and its accounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleCustomer {
    pub customer_id: String,
    pub name: String,
    pub accounts: Vec<SampleAccountSpec>,
    /// Known partner accounts (the tenants file's `trusted_accounts`).
    #[serde(default)]
    pub trusted_accounts: Vec<String>,
}

/// The bundled sample: 3 customers, 12 accounts, from 20 to 2,400 principals.
pub fn bundled_sample() -> Vec<SampleCustomer> {
    fn acct(account_id: &str, principals: usize, seed: u64) -> SampleAccountSpec {
        SampleAccountSpec {
            account_id: account_id.to_string(),
            principals,
            seed,
            malformed_policy: false,
            resources: true,
        }
    }
    vec![
        SampleCustomer {
            customer_id: "acme".into(),
            name: "Acme Corporation".into(),
            accounts: vec![
                acct("318574920163", 2400, 0xAC3E_0001),
                acct("427081356924", 650, 0xAC3E_0002),
                acct("536192047385", 180, 0xAC3E_0003),
                acct("645203158496", 75, 0xAC3E_0004),
                acct("754314269507", 20, 0xAC3E_0005),
            ],
            trusted_accounts: vec![PARTNER_ACCOUNT.to_string()],
        },
        SampleCustomer {
            customer_id: "globex".into(),
            name: "Globex Inc.".into(),
            accounts: vec![
                acct("812947365021", 1250, 0x610B_E001),
                acct("923058476132", 320, 0x610B_E002),
                acct("134169587243", 40, 0x610B_E003),
                acct("245270698354", 25, 0x610B_E004),
            ],
            trusted_accounts: vec![PARTNER_ACCOUNT.to_string()],
        },
        SampleCustomer {
            customer_id: "initech".into(),
            name: "Initech LLC".into(),
            accounts: vec![
                acct("356381709465", 450, 0x1417_EC01),
                acct("467492810576", 110, 0x1417_EC02),
                acct("578503921687", 22, 0x1417_EC03),
            ],
            trusted_accounts: vec![PARTNER_ACCOUNT.to_string()],
        },
    ]
}
