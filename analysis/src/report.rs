//! The account report: aggregation of all principals' results into its sections (one
//! function each: role assumers, admins, escalation paths, external access, unused access,
//! principals, access by principal, resources, access by resource, warnings, the diff
//! against the previous run), written as JSON and k9-style CSVs (cells from `table`) and
//! HTML (`html`), one file at a time (`AccountReport::write_files`); `report.json` leaves out
//! the rows the CSV files hold (format 3; `from_files` reads it back with
//! `principal-access-summaries.csv`, and also reads formats 1 and 2). Everything is sorted:
//! same inputs, same bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::access::{PrincipalAnalysis, TrustKind};
use super::catalog::Capability;
use super::data_access::{self, DataAccessRow};
use super::error::{ParseError, PolicyError, ReportError};
use super::glob::{arn_service, has_wildcard, wildcard_match};
use super::model::{AccountModel, PrincipalKind};
use super::resources::{self, ExposureRow, ExposureTotals, ResourceInventory};
use super::table::{parse_tags, projection, TableRow};
use super::Engine;

/// The `format` of the `report.json` this version writes. Format 2 (against 1): no
/// `resource_access` (the rows of `resource-access-summaries.csv`, which has them), the rows
/// of `principal_access` without `principal_name` and `principal_type` (in `principals`), and
/// one row per line instead of one field per line. Format 3 (against 2): no
/// `principal_access` either: its rows are those of [`ACCESS_FILE`], which a reader of the
/// report takes from there ([`AccountReport::from_files`]). It was a third of the bytes of a
/// night's reports, written and read again every night.
pub const REPORT_FORMAT: &str = "accessflow-account-report/3";

/// The report file that holds the rows of `principal_access` (format 3 leaves them out of
/// `report.json`).
pub const ACCESS_FILE: &str = "principal-access-summaries.csv";

/// The columns of [`ACCESS_FILE`], in order.
const ACCESS_COLUMNS: [&str; 9] = [
    "analysis_time",
    "principal_name",
    "principal_arn",
    "principal_type",
    "principal_tags",
    "service_name",
    "access_capability",
    "resource_arn",
    "conditional",
];

// `REPORT_CODE_DIGEST`: the digest of this crate's sources, from build.rs. A report is
// carried forward to a later night (`carry_forward_files`) only when it was built by the
// same code.
include!(concat!(env!("OUT_DIR"), "/report_code.rs"));

/// The formats [`AccountReport::from_files`] reads: this one and the previous ones, so that
/// the first night after an upgrade still diffs against the night before.
pub const READABLE_REPORT_FORMATS: &[&str] = &[
    "accessflow-account-report/1",
    "accessflow-account-report/2",
    REPORT_FORMAT,
];

/// The files of a report, sorted by name: the order [`AccountReport::write_files`] writes
/// them in.
pub const REPORT_FILES: [&str; 8] = [
    "diff.csv",
    "principal-access-summaries.csv",
    "principals.csv",
    "public-and-cross-account.csv",
    "report.html",
    "report.json",
    "resource-access-summaries.csv",
    "resources.csv",
];

pub struct ReportContext<'a> {
    pub customer: &'a str,
    pub account: &'a str,
    pub run_id: &'a str,
    /// RFC 3339 from the run, never the clock.
    pub analysis_time: &'a str,
    /// CSV of `iam get-credential-report`, decoded.
    pub credential_report: Option<&'a str>,
    /// The account's resource inventory (`resources.json`), when the source collected one:
    /// its resources go into `resources.csv`, their external access into
    /// `public-and-cross-account.csv`.
    pub resources: Option<&'a ResourceInventory>,
    /// The customer's known partner accounts (the tenants file's `trusted_accounts`).
    pub trusted_accounts: &'a [String],
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrincipalFailure {
    pub principal_arn: String,
    pub reason: String,
}

/// How a principal may assume a role (`RoleAssumer::how`). Variants are in the order of
/// their names, so sorting rows sorts as the names did.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum AssumeHow {
    /// The role trusts the account and the principal's own policies allow assuming it.
    AccountTrustAndIdentityPolicy,
    /// The principal may assume every role (`*`, `role/*`) and some roles trust the account.
    AnyRoleTrustingTheAccount,
    CrossAccount,
    Federated,
    Public,
    Service,
    /// The role's trust policy names the principal.
    TrustNamesPrincipal,
}

impl AssumeHow {
    /// A trust entry of a principal outside the account (the same-account kinds have their
    /// own variants).
    fn from_outside(kind: TrustKind) -> AssumeHow {
        match kind {
            TrustKind::CrossAccount => AssumeHow::CrossAccount,
            TrustKind::Service => AssumeHow::Service,
            TrustKind::Federated => AssumeHow::Federated,
            TrustKind::Public => AssumeHow::Public,
            TrustKind::SameAccount => AssumeHow::AccountTrustAndIdentityPolicy,
            TrustKind::SameAccountPrincipal => AssumeHow::TrustNamesPrincipal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AssumeHow::AccountTrustAndIdentityPolicy => "account-trust-and-identity-policy",
            AssumeHow::AnyRoleTrustingTheAccount => "any-role-trusting-the-account",
            AssumeHow::CrossAccount => "cross-account",
            AssumeHow::Federated => "federated",
            AssumeHow::Public => "public",
            AssumeHow::Service => "service",
            AssumeHow::TrustNamesPrincipal => "trust-names-principal",
        }
    }
}

/// `principal_is_iam_admin`: `unknown` when the principal's analysis failed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
#[serde(rename_all = "lowercase")]
pub enum IamAdmin {
    #[default]
    False,
    True,
    Unknown,
}

impl IamAdmin {
    pub fn as_str(self) -> &'static str {
        match self {
            IamAdmin::False => "false",
            IamAdmin::True => "true",
            IamAdmin::Unknown => "unknown",
        }
    }
}

/// A diff row's `change`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DiffChange {
    Added,
    Removed,
}

impl DiffChange {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffChange::Added => "added",
            DiffChange::Removed => "removed",
        }
    }
}

/// What a diff row is about. Variants are in the order of their names, so sorting rows
/// sorts as the names did.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum DiffKind {
    Access,
    Admin,
    Escalation,
    ExternalAccess,
    Principal,
    /// Public or cross-account access to an inventoried resource: `principal_arn` is the
    /// external principal (`*`: everyone), `service_name` says `public` or `cross-account`,
    /// `detail` the status (`open`, `conditional`, `blocked`).
    ResourceExposure,
    /// An inventoried resource's capability for a principal of the account (identity and
    /// resource policy together): `detail` says `conditional` or nothing.
    DataAccess,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Access => "access",
            DiffKind::Admin => "admin",
            DiffKind::Escalation => "escalation",
            DiffKind::ExternalAccess => "external-access",
            DiffKind::Principal => "principal",
            DiffKind::ResourceExposure => "resource-exposure",
            DiffKind::DataAccess => "data-access",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AdminEntry {
    pub principal_arn: String,
    pub principal_name: String,
    pub principal_type: String,
    pub reasons: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternalAccessRow {
    pub role_arn: String,
    pub role_name: String,
    pub trust_kind: TrustKind,
    pub trusted_principal: String,
    pub trusted_account: Option<String>,
    pub actions: Vec<String>,
    pub conditions: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleAssumer {
    pub role_arn: String,
    pub principal_arn: String,
    pub how: AssumeHow,
    pub conditional: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EscalationRow {
    pub principal_arn: String,
    pub principal_name: String,
    pub principal_type: String,
    pub path: String,
    pub description: String,
    pub actions: Vec<String>,
    pub conditional: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnusedRow {
    pub principal_arn: String,
    pub principal_name: String,
    pub service_name: String,
    pub service: String,
    pub capabilities: Vec<Capability>,
}

/// `principals.csv` (k9 columns; `analysis_time` comes from the report).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PrincipalRow {
    pub principal_arn: String,
    pub principal_name: String,
    pub principal_type: String,
    pub principal_is_iam_admin: IamAdmin,
    pub principal_last_used: String,
    pub principal_tag_business_unit: String,
    pub principal_tag_environment: String,
    pub principal_tag_used_by: String,
    pub principal_tags: String,
    pub password_last_used: String,
    pub password_last_rotated: String,
    pub password_state: String,
    pub access_key_1_last_used: String,
    pub access_key_1_last_rotated: String,
    pub access_key_1_state: String,
    pub access_key_2_last_used: String,
    pub access_key_2_last_rotated: String,
    pub access_key_2_state: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceRow {
    pub resource_arn: String,
    pub resource_name: String,
    pub resource_type: String,
    pub resource_tags: String,
}

/// A row of `principal-access-summaries.csv`. Not in `report.json` since format 3; format 2
/// had it without `principal_name` and `principal_type`, which `principals` has, and
/// [`AccountReport::from_files`] fills them in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessRow {
    pub principal_arn: String,
    #[serde(default, skip_serializing)]
    pub principal_name: String,
    #[serde(default, skip_serializing)]
    pub principal_type: String,
    pub service_name: String,
    pub access_capability: Capability,
    pub resource_arn: String,
    pub conditional: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceAccessRow {
    pub resource_arn: String,
    pub resource_name: String,
    pub service_name: String,
    pub access_capability: Capability,
    pub principal_type: String,
    pub principal_name: String,
    pub principal_arn: String,
    pub conditional: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DiffRow {
    pub change: DiffChange,
    pub kind: DiffKind,
    pub principal_arn: String,
    pub service_name: String,
    pub access_capability: String,
    pub resource_arn: String,
    pub detail: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Totals {
    pub principals: usize,
    pub users: usize,
    pub roles: usize,
    pub analyzed: usize,
    pub failed: usize,
    pub admins: usize,
    pub externally_assumable_roles: usize,
    pub escalation_paths: usize,
    pub principals_with_unused_services: usize,
    pub access_rows: usize,
    /// Resources in the account's resource inventory; `None`: no inventory was collected
    /// (public and cross-account access to data stores was not analysed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventoried_resources: Option<usize>,
    /// Resources open to everyone (anyone, or any AWS account).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub public_resources: usize,
    /// Resources open to another account (not public).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cross_account_resources: usize,
    /// Of those, resources open to an account not listed in `trusted_accounts`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untrusted_account_resources: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AccountReport {
    pub format: String,
    pub engine_version: String,
    pub customer: String,
    pub account: String,
    pub run_id: String,
    pub analysis_time: String,
    pub partial: bool,
    pub failures: Vec<PrincipalFailure>,
    pub principal_count: usize,
    pub totals: Totals,
    pub admins: Vec<AdminEntry>,
    pub external_access: Vec<ExternalAccessRow>,
    /// Public and cross-account access to the inventoried resources (older reports: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_exposure: Vec<ExposureRow>,
    /// Who in the account can reach each inventoried resource, identity and resource
    /// policies together (older reports, and accounts without an inventory: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_access: Vec<DataAccessRow>,
    pub role_assumers: Vec<RoleAssumer>,
    pub escalations: Vec<EscalationRow>,
    pub unused_access: Vec<UnusedRow>,
    pub principals: Vec<PrincipalRow>,
    pub resources: Vec<ResourceRow>,
    /// The rows of [`ACCESS_FILE`]: not in `report.json` since format 3 (formats 1 and 2
    /// have them, and still read).
    #[serde(default, skip_serializing)]
    pub principal_access: Vec<AccessRow>,
    /// The rows of `resource-access-summaries.csv`: not in `report.json` (since format 2),
    /// so a report read back with [`AccountReport::from_files`] has none.
    #[serde(skip)]
    pub resource_access: Vec<ResourceAccessRow>,
    pub policy_errors: Vec<PolicyError>,
    pub warnings: Vec<String>,
    /// Run id of the previous report the diff is against (None: first run, empty diff).
    pub diff_base_run: Option<String>,
    pub diff: Vec<DiffRow>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub(crate) fn tag_lookup(tags: &BTreeMap<String, String>, want: &str) -> String {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let w = norm(want);
    tags.iter()
        .find(|(k, _)| norm(k) == w)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn tags_json(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return String::new();
    }
    serde_json::to_string(tags).unwrap_or_default()
}

/// Credential report rows by user ARN.
fn parse_credential_report(
    csv_text: &str,
    warnings: &mut Vec<String>,
) -> HashMap<String, HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            warnings.push(format!("credential report: unreadable header: {e}"));
            return out;
        }
    };
    for (i, rec) in rdr.records().enumerate() {
        match rec {
            Ok(r) => {
                let m: HashMap<String, String> = headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect();
                if let Some(arn) = m.get("arn").cloned() {
                    out.insert(arn, m);
                }
            }
            Err(e) => warnings.push(format!("credential report: row {}: {e}", i + 2)),
        }
    }
    out
}

fn date_or_empty(v: Option<&String>) -> String {
    match v.map(String::as_str) {
        None | Some("N/A") | Some("no_information") | Some("not_supported") => String::new(),
        Some(s) => s.to_string(),
    }
}

fn principal_type(k: PrincipalKind) -> String {
    k.as_str().to_string()
}

/// A resource type name for an ARN, from the catalog's ARN templates.
fn resource_type(engine: &Engine, arn: &str) -> String {
    match engine.catalog.resource_type_of(arn) {
        Some((t, _)) => t,
        None => arn_service(arn).unwrap_or_default().to_string(),
    }
}

fn name_of(arn: &str) -> String {
    let tail = arn.rsplit(':').next().unwrap_or(arn);
    tail.rsplit('/').next().unwrap_or(tail).to_string()
}

/// Aggregates everything into the account report: one function per section below, called
/// in the order their inputs need.
pub fn build_report(
    engine: &Engine,
    model: &AccountModel,
    results: &[PrincipalAnalysis],
    failures: &[PrincipalFailure],
    ctx: &ReportContext,
    previous: Option<&AccountReport>,
) -> AccountReport {
    let mut warnings: Vec<String> = Vec::new();
    let by_arn = results_by_arn(results);
    let failures = sorted_failures(failures);
    let assumption = role_assumption(model, &by_arn);
    let (admin_reasons, all_edges) = admin_closure(&by_arn, &assumption);
    let admins = admin_entries(&by_arn, &admin_reasons);
    let escalations = escalation_rows(&by_arn, &admin_reasons, &all_edges);
    let external_access = external_access_rows(&by_arn);
    let unused_access = unused_rows(&by_arn);
    let creds = ctx
        .credential_report
        .map(|c| parse_credential_report(c, &mut warnings))
        .unwrap_or_default();
    let failed: BTreeSet<&str> = failures.iter().map(|f| f.principal_arn.as_str()).collect();
    let principals = principal_rows(model, &by_arn, &failed, &admin_reasons, &creds);
    let principal_access = principal_access_rows(&by_arn);
    let named = named_resources(&principal_access);
    let mut resources = resource_rows(engine, model, &named);
    let resource_exposure = match ctx.resources {
        Some(inv) => {
            inventory_rows(inv, &mut resources);
            warnings.extend(inv.warnings.iter().cloned());
            resources::external_access(engine, inv, ctx.account, ctx.trusted_accounts)
        }
        None => Vec::new(),
    };
    let exposure = ExposureTotals::of(&resource_exposure);
    let data = match ctx.resources {
        Some(inv) => {
            let results: Vec<&PrincipalAnalysis> = by_arn.values().copied().collect();
            data_access::data_access(engine, model, inv, &results, ctx.account)
        }
        None => data_access::DataAccess::default(),
    };
    let mut resource_access = resource_access_rows(engine, &by_arn, &named);
    merge_data_access(&data, &mut resource_access);
    let data_access = data.rows;
    collect_warnings(&by_arn, &mut warnings);
    let principal_count = principals.len();
    let totals = Totals {
        principals: principal_count,
        users: count_kind(model, PrincipalKind::User),
        roles: count_kind(model, PrincipalKind::Role),
        analyzed: by_arn.len(),
        failed: failures.len(),
        admins: admins.len(),
        externally_assumable_roles: external_access
            .iter()
            .map(|e| &e.role_arn)
            .collect::<BTreeSet<_>>()
            .len(),
        escalation_paths: escalations.len(),
        principals_with_unused_services: unused_access
            .iter()
            .map(|u| &u.principal_arn)
            .collect::<BTreeSet<_>>()
            .len(),
        access_rows: principal_access.len(),
        inventoried_resources: ctx.resources.map(|inv| inv.resources.len()),
        public_resources: exposure.public_resources,
        cross_account_resources: exposure.cross_account_resources,
        untrusted_account_resources: exposure.untrusted_account_resources,
    };
    let mut policy_errors = model.policy_errors();
    if let Some(inv) = ctx.resources {
        policy_errors.extend(inv.policy_errors());
    }
    let mut report = AccountReport {
        format: REPORT_FORMAT.into(),
        engine_version: super::ENGINE_VERSION.into(),
        customer: ctx.customer.into(),
        account: ctx.account.into(),
        run_id: ctx.run_id.into(),
        analysis_time: ctx.analysis_time.into(),
        partial: !failures.is_empty(),
        failures,
        principal_count,
        totals,
        admins,
        external_access,
        resource_exposure,
        data_access,
        role_assumers: assumption.role_assumers,
        escalations,
        unused_access,
        principals,
        resources,
        principal_access,
        resource_access,
        policy_errors,
        warnings,
        diff_base_run: previous.map(|p| p.run_id.clone()),
        diff: Vec::new(),
    };
    if let Some(prev) = previous {
        report.diff = diff(prev, &report);
    }
    report
}

/// One result per principal, in ARN order (duplicates: the first wins).
fn results_by_arn(results: &[PrincipalAnalysis]) -> BTreeMap<&str, &PrincipalAnalysis> {
    let mut by_arn: BTreeMap<&str, &PrincipalAnalysis> = BTreeMap::new();
    for r in results {
        by_arn.entry(r.principal.arn.as_str()).or_insert(r);
    }
    by_arn
}

fn sorted_failures(failures: &[PrincipalFailure]) -> Vec<PrincipalFailure> {
    let mut failures: Vec<PrincipalFailure> = failures.to_vec();
    failures.sort();
    failures.dedup();
    failures
}

fn count_kind(model: &AccountModel, kind: PrincipalKind) -> usize {
    model.all_principals().filter(|p| p.kind == kind).count()
}

/// "May assume" edge inside the account: (role ARN, assuming principal ARN, conditional).
type Edge = (String, String, bool);

/// Who can assume which role, from trust policies and the principals' own
/// `sts:AssumeRole` grants.
struct RoleAssumption<'a> {
    /// The "who can assume which role" section, sorted.
    role_assumers: Vec<RoleAssumer>,
    /// Edges inside the account, for the admin closure.
    edges: Vec<Edge>,
    /// Principals whose own policies allow `sts:AssumeRole` on every role (`*`,
    /// `role/*`), with "conditional".
    wildcard_assumers: Vec<(&'a str, bool)>,
    /// Roles whose trust policy trusts the account, with "conditional".
    account_trusting_roles: Vec<(&'a str, bool)>,
}

/// Principals whose own policies allow sts:AssumeRole on every role (`*`, `role/*`) are
/// listed once, with role `*`, instead of once per role that trusts the account (that list
/// would grow with roles x principals).
fn role_assumption<'a>(
    model: &AccountModel,
    by_arn: &BTreeMap<&'a str, &'a PrincipalAnalysis>,
) -> RoleAssumption<'a> {
    let account_id = model.account_id();
    let all_roles_patterns = ["*".to_string(), format!("arn:aws:iam::{account_id}:role/*")];
    let mut wildcard_assumers: Vec<(&str, bool)> = Vec::new();
    let mut specific_patterns: Vec<(&str, &str, bool)> = Vec::new();
    for p in by_arn.values() {
        let mut wild: Option<bool> = None;
        for ap in &p.assume_role_patterns {
            if all_roles_patterns.contains(&ap.resource) {
                wild = Some(wild.map_or(ap.conditional, |c| c && ap.conditional));
            }
        }
        if let Some(c) = wild {
            wildcard_assumers.push((p.principal.arn.as_str(), c));
        }
        for ap in &p.assume_role_patterns {
            if !all_roles_patterns.contains(&ap.resource) && ap.resource.contains(":role/") {
                specific_patterns.push((
                    p.principal.arn.as_str(),
                    ap.resource.as_str(),
                    ap.conditional,
                ));
            }
        }
    }
    let mut role_assumers: Vec<RoleAssumer> = Vec::new();
    let mut edges: Vec<Edge> = Vec::new();
    let mut account_trusting_roles: Vec<(&str, bool)> = Vec::new();
    for r in by_arn
        .values()
        .filter(|r| r.principal.kind == PrincipalKind::Role)
    {
        for t in &r.trust {
            let trust_cond = !t.conditions.is_empty();
            match t.kind {
                TrustKind::SameAccountPrincipal => {
                    role_assumers.push(RoleAssumer {
                        role_arn: r.principal.arn.clone(),
                        principal_arn: t.principal.clone(),
                        how: AssumeHow::TrustNamesPrincipal,
                        conditional: trust_cond,
                    });
                    edges.push((r.principal.arn.clone(), t.principal.clone(), trust_cond));
                }
                TrustKind::SameAccount => {
                    account_trusting_roles.push((r.principal.arn.as_str(), trust_cond));
                    for (who, pat, cond) in &specific_patterns {
                        if *who != r.principal.arn && wildcard_match(pat, &r.principal.arn, false) {
                            role_assumers.push(RoleAssumer {
                                role_arn: r.principal.arn.clone(),
                                principal_arn: who.to_string(),
                                how: AssumeHow::AccountTrustAndIdentityPolicy,
                                conditional: *cond || trust_cond,
                            });
                            edges.push((
                                r.principal.arn.clone(),
                                who.to_string(),
                                *cond || trust_cond,
                            ));
                        }
                    }
                }
                other => role_assumers.push(RoleAssumer {
                    role_arn: r.principal.arn.clone(),
                    principal_arn: t.principal.clone(),
                    how: AssumeHow::from_outside(other),
                    conditional: trust_cond,
                }),
            }
        }
    }
    if !account_trusting_roles.is_empty() {
        for (who, cond) in &wildcard_assumers {
            role_assumers.push(RoleAssumer {
                role_arn: "*".into(),
                principal_arn: who.to_string(),
                how: AssumeHow::AnyRoleTrustingTheAccount,
                conditional: *cond,
            });
        }
    }
    role_assumers.sort();
    role_assumers.dedup();
    RoleAssumption {
        role_assumers,
        edges,
        wildcard_assumers,
        account_trusting_roles,
    }
}

/// Admins by ARN with their reasons, closed under "an unconditional assumer of an admin
/// role is an admin"; and every assume edge considered (admin roles that trust the account
/// can be assumed by every wildcard assumer).
fn admin_closure(
    by_arn: &BTreeMap<&str, &PrincipalAnalysis>,
    assumption: &RoleAssumption,
) -> (BTreeMap<String, Vec<String>>, Vec<Edge>) {
    let wildcard_assumers = &assumption.wildcard_assumers;
    let mut admin_reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in by_arn.values().filter(|r| r.is_admin) {
        admin_reasons.insert(r.principal.arn.clone(), r.admin_reasons.clone());
    }
    let trusting: BTreeMap<&str, bool> =
        assumption.account_trusting_roles.iter().copied().collect();
    let mut all_edges = assumption.edges.clone();
    for (role, tcond) in &trusting {
        for (who, cond) in wildcard_assumers {
            if *who != *role && admin_reasons.contains_key(*role) {
                all_edges.push((role.to_string(), who.to_string(), *cond || *tcond));
            }
        }
    }
    // transitive: an unconditional assumer of an admin role is an admin
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds < 64 {
        changed = false;
        rounds += 1;
        let mut newly: Vec<(String, String)> = Vec::new();
        for (role, who, cond) in &all_edges {
            if *cond || !admin_reasons.contains_key(role) || !by_arn.contains_key(who.as_str()) {
                continue;
            }
            let reason = format!("can assume admin role {role}");
            if !admin_reasons.get(who).is_some_and(|v| v.contains(&reason)) {
                newly.push((who.clone(), reason));
            }
        }
        for (who, reason) in newly {
            let became_admin = !admin_reasons.contains_key(&who);
            admin_reasons.entry(who.clone()).or_default().push(reason);
            changed = true;
            if became_admin && trusting.contains_key(who.as_str()) {
                for (w, c) in wildcard_assumers {
                    if *w != who {
                        all_edges.push((who.clone(), w.to_string(), *c || trusting[who.as_str()]));
                    }
                }
            }
        }
    }
    (admin_reasons, all_edges)
}

/// The "IAM admins" section.
fn admin_entries(
    by_arn: &BTreeMap<&str, &PrincipalAnalysis>,
    admin_reasons: &BTreeMap<String, Vec<String>>,
) -> Vec<AdminEntry> {
    admin_reasons
        .iter()
        .filter_map(|(arn, reasons)| {
            by_arn.get(arn.as_str()).map(|p| AdminEntry {
                principal_arn: arn.clone(),
                principal_name: p.principal.name.clone(),
                principal_type: principal_type(p.principal.kind),
                reasons: reasons.clone(),
            })
        })
        .collect()
}

/// The "escalation paths" section: assuming an admin role, then each principal's own paths.
fn escalation_rows(
    by_arn: &BTreeMap<&str, &PrincipalAnalysis>,
    admin_reasons: &BTreeMap<String, Vec<String>>,
    all_edges: &[Edge],
) -> Vec<EscalationRow> {
    let mut escalations: Vec<EscalationRow> = Vec::new();
    for (role, who, cond) in all_edges {
        if admin_reasons.contains_key(role) && role != who {
            if let Some(p) = by_arn.get(who.as_str()) {
                escalations.push(EscalationRow {
                    principal_arn: p.principal.arn.clone(),
                    principal_name: p.principal.name.clone(),
                    principal_type: principal_type(p.principal.kind),
                    path: "assume-admin-role".into(),
                    description: format!("sts:AssumeRole into admin role {role}"),
                    actions: vec!["sts:AssumeRole".into()],
                    conditional: *cond,
                });
            }
        }
    }
    for r in by_arn.values() {
        for e in &r.escalations {
            escalations.push(EscalationRow {
                principal_arn: r.principal.arn.clone(),
                principal_name: r.principal.name.clone(),
                principal_type: principal_type(r.principal.kind),
                path: e.id.clone(),
                description: e.description.clone(),
                actions: e.actions.clone(),
                conditional: e.conditional,
            });
        }
    }
    escalations.sort();
    escalations.dedup();
    escalations
}

/// The "external access" section: roles principals outside the account can assume.
fn external_access_rows(by_arn: &BTreeMap<&str, &PrincipalAnalysis>) -> Vec<ExternalAccessRow> {
    let mut external_access = Vec::new();
    for r in by_arn.values() {
        for t in r.trust.iter().filter(|t| t.external) {
            external_access.push(ExternalAccessRow {
                role_arn: r.principal.arn.clone(),
                role_name: r.principal.name.clone(),
                trust_kind: t.kind,
                trusted_principal: t.principal.clone(),
                trusted_account: t.account.clone(),
                actions: t.actions.clone(),
                conditions: t.conditions.clone(),
            });
        }
    }
    external_access.sort();
    external_access
}

/// The "granted but unused" section.
fn unused_rows(by_arn: &BTreeMap<&str, &PrincipalAnalysis>) -> Vec<UnusedRow> {
    let mut unused_access = Vec::new();
    for r in by_arn.values() {
        for u in &r.unused_services {
            unused_access.push(UnusedRow {
                principal_arn: r.principal.arn.clone(),
                principal_name: r.principal.name.clone(),
                service_name: u.service_name.clone(),
                service: u.service.clone(),
                capabilities: u.capabilities.clone(),
            });
        }
    }
    unused_access.sort();
    unused_access
}

/// `principals.csv`: every user and role of the model, in model order, with the
/// credential report's columns.
fn principal_rows(
    model: &AccountModel,
    by_arn: &BTreeMap<&str, &PrincipalAnalysis>,
    failed: &BTreeSet<&str>,
    admin_reasons: &BTreeMap<String, Vec<String>>,
    creds: &HashMap<String, HashMap<String, String>>,
) -> Vec<PrincipalRow> {
    let mut principals = Vec::new();
    for p in model.all_principals() {
        let mut row = PrincipalRow {
            principal_arn: p.arn.clone(),
            principal_name: p.name.clone(),
            principal_type: principal_type(p.kind),
            principal_is_iam_admin: if failed.contains(p.arn.as_str())
                || !by_arn.contains_key(p.arn.as_str())
            {
                IamAdmin::Unknown
            } else if admin_reasons.contains_key(&p.arn) {
                IamAdmin::True
            } else {
                IamAdmin::False
            },
            principal_tag_business_unit: tag_lookup(&p.tags, "business-unit"),
            principal_tag_environment: tag_lookup(&p.tags, "environment"),
            principal_tag_used_by: tag_lookup(&p.tags, "used-by"),
            principal_tags: tags_json(&p.tags),
            ..Default::default()
        };
        if let Some(c) = creds.get(&p.arn) {
            row.password_last_used = date_or_empty(c.get("password_last_used"));
            row.password_last_rotated = date_or_empty(c.get("password_last_changed"));
            row.password_state = match c.get("password_enabled").map(String::as_str) {
                Some("true") => "enabled".into(),
                Some("false") => "disabled".into(),
                _ => String::new(),
            };
            for k in ["1", "2"] {
                let used = date_or_empty(c.get(&format!("access_key_{k}_last_used_date")));
                let rotated = date_or_empty(c.get(&format!("access_key_{k}_last_rotated")));
                let state = match c.get(&format!("access_key_{k}_active")).map(String::as_str) {
                    Some("true") => "active".to_string(),
                    Some("false") => "inactive".to_string(),
                    _ => String::new(),
                };
                if k == "1" {
                    row.access_key_1_last_used = used;
                    row.access_key_1_last_rotated = rotated;
                    row.access_key_1_state = state;
                } else {
                    row.access_key_2_last_used = used;
                    row.access_key_2_last_rotated = rotated;
                    row.access_key_2_state = state;
                }
            }
        }
        row.principal_last_used = match p.kind {
            PrincipalKind::Role => p.last_used.clone().unwrap_or_default(),
            PrincipalKind::User => [
                &row.password_last_used,
                &row.access_key_1_last_used,
                &row.access_key_2_last_used,
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .max()
            .cloned()
            .unwrap_or_default(),
        };
        principals.push(row);
    }
    principals
}

/// `principal-access-summaries.csv`: per principal, service, capability, resource pattern.
/// Sorted as the rows are (`by_arn` is in ARN order and a principal's rows share its ARN,
/// name and type, so sorting each principal's grants sorts the rows), deduplicated before
/// any string is copied.
fn principal_access_rows(by_arn: &BTreeMap<&str, &PrincipalAnalysis>) -> Vec<AccessRow> {
    let mut principal_access: Vec<AccessRow> = Vec::new();
    let mut grants: Vec<&super::access::Grant> = Vec::new();
    for r in by_arn.values() {
        grants.clear();
        grants.extend(r.grants.iter());
        fn key(g: &super::access::Grant) -> (&str, Capability, &str, bool) {
            (
                g.service_name.as_str(),
                g.capability,
                g.resource.as_str(),
                g.conditional,
            )
        }
        grants.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        grants.dedup_by(|later, earlier| key(later) == key(earlier));
        // an unconditional row makes the same conditional row redundant (sorted: it comes first)
        grants.dedup_by(|later, earlier| {
            later.conditional
                && !earlier.conditional
                && later.service_name == earlier.service_name
                && later.capability == earlier.capability
                && later.resource == earlier.resource
        });
        let ptype = r.principal.kind.as_str();
        principal_access.extend(grants.iter().map(|g| AccessRow {
            principal_arn: r.principal.arn.clone(),
            principal_name: r.principal.name.clone(),
            principal_type: ptype.to_string(),
            service_name: g.service_name.clone(),
            access_capability: g.capability,
            resource_arn: g.resource.clone(),
            conditional: g.conditional,
        }));
    }
    principal_access
}

/// The concrete resources (no wildcard) named in grants.
fn named_resources(principal_access: &[AccessRow]) -> BTreeSet<String> {
    principal_access
        .iter()
        .filter(|a| a.resource_arn.starts_with("arn:") && !has_wildcard(&a.resource_arn))
        .map(|a| a.resource_arn.clone())
        .collect()
}

/// `resources.csv`: the IAM inventory plus the concrete resources named in grants.
fn resource_rows(
    engine: &Engine,
    model: &AccountModel,
    named: &BTreeSet<String>,
) -> Vec<ResourceRow> {
    let mut resources: BTreeMap<String, ResourceRow> = BTreeMap::new();
    for p in model.all_principals() {
        resources.insert(
            p.arn.clone(),
            ResourceRow {
                resource_arn: p.arn.clone(),
                resource_name: p.name.clone(),
                resource_type: match p.kind {
                    PrincipalKind::User => "iam:user".into(),
                    PrincipalKind::Role => "iam:role".into(),
                },
                resource_tags: tags_json(&p.tags),
            },
        );
    }
    for g in &model.groups {
        resources.insert(
            g.arn.clone(),
            ResourceRow {
                resource_arn: g.arn.clone(),
                resource_name: g.name.clone(),
                resource_type: "iam:group".into(),
                resource_tags: String::new(),
            },
        );
    }
    for mp in model
        .policies
        .iter()
        .filter(|m| !m.arn.contains(":aws:policy/"))
    {
        resources.insert(
            mp.arn.clone(),
            ResourceRow {
                resource_arn: mp.arn.clone(),
                resource_name: mp.name.clone(),
                resource_type: "iam:policy".into(),
                resource_tags: String::new(),
            },
        );
    }
    for arn in named {
        if !resources.contains_key(arn) {
            resources.insert(
                arn.clone(),
                ResourceRow {
                    resource_arn: arn.clone(),
                    resource_name: name_of(arn),
                    resource_type: resource_type(engine, arn),
                    resource_tags: String::new(),
                },
            );
        }
    }
    resources.into_values().collect()
}

/// The inventoried resources (buckets, keys, queues, ...) into `resources.csv`, with their
/// tags; a resource already there (named in a grant) gets its type and tags.
fn inventory_rows(inv: &ResourceInventory, resources: &mut Vec<ResourceRow>) {
    let mut by_arn: BTreeMap<String, ResourceRow> = std::mem::take(resources)
        .into_iter()
        .map(|r| (r.resource_arn.clone(), r))
        .collect();
    for r in &inv.resources {
        by_arn.insert(
            r.arn.clone(),
            ResourceRow {
                resource_arn: r.arn.clone(),
                resource_name: name_of(&r.arn),
                resource_type: r.kind.clone(),
                resource_tags: tags_json(&r.tags),
            },
        );
    }
    *resources = by_arn.into_values().collect();
}

/// `resource-access-summaries.csv`: the concrete resources named in policies, and who can
/// do what on them (only actions that take that resource type count); access to every
/// resource of a service is listed once, with resource `*`.
fn resource_access_rows<'a>(
    engine: &Engine,
    by_arn: &BTreeMap<&str, &'a PrincipalAnalysis>,
    named: &'a BTreeSet<String>,
) -> Vec<ResourceAccessRow> {
    let cat = &engine.catalog;
    // index the scoped grants: literal resources by value, wildcard patterns by their
    // literal prefix (a resource can only match patterns whose prefix it starts with)
    type Entry<'r> = (&'r PrincipalAnalysis, &'r super::access::Grant);
    let mut literal: HashMap<&str, Vec<Entry>> = HashMap::new();
    let mut by_prefix: HashMap<&str, Vec<Entry>> = HashMap::new();
    for r in by_arn.values() {
        for g in r.grants.iter().filter(|g| g.resource != "*") {
            match g.resource.find(['*', '?']) {
                None => literal.entry(g.resource.as_str()).or_default().push((r, g)),
                Some(i) => by_prefix.entry(&g.resource[..i]).or_default().push((r, g)),
            }
        }
    }
    // the rows' sort keys, borrowed: (resource ARN, service, capability, principal type,
    // name, ARN, conditional); the resource name is a function of the ARN, so it need not
    // be compared. Strings are copied only for the rows kept.
    type Key<'r> = (
        &'r str,
        &'r str,
        Capability,
        &'static str,
        &'r str,
        &'r str,
        bool,
    );
    let key =
        |resource: &'a str, p: &'a PrincipalAnalysis, g: &'a super::access::Grant| -> Key<'a> {
            (
                resource,
                g.service_name.as_str(),
                g.capability,
                p.principal.kind.as_str(),
                p.principal.name.as_str(),
                p.principal.arn.as_str(),
                g.conditional,
            )
        };
    let mut keys: Vec<Key> = Vec::new();
    for r in by_arn.values() {
        for g in r.grants.iter().filter(|g| g.resource == "*") {
            keys.push(key("*", r, g));
        }
    }
    for arn in named {
        let Some((_, takes)) = cat.resource_type_of(arn) else {
            continue;
        };
        // (service index, capability) pairs of the actions that take this resource type
        let mut takes_caps: BTreeSet<(u32, Capability)> = BTreeSet::new();
        for i in takes.iter() {
            let a = &cat.actions[i as usize];
            takes_caps.insert((a.service, a.capability));
        }
        let mut candidates: Vec<&Entry> = literal
            .get(arn.as_str())
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        for (i, _) in arn.char_indices().chain(std::iter::once((arn.len(), ' '))) {
            if let Some(v) = by_prefix.get(&arn[..i]) {
                candidates.extend(v.iter());
            }
        }
        for (p, g) in candidates {
            if !wildcard_match(&g.resource, arn, false)
                || g.except.iter().any(|e| wildcard_match(e, arn, false))
            {
                continue;
            }
            let applies = if g.actions.is_empty() {
                cat.service(&g.service).is_some_and(|s| {
                    s.first < s.end
                        && takes_caps
                            .contains(&(cat.actions[s.first as usize].service, g.capability))
                })
            } else {
                g.actions
                    .iter()
                    .filter_map(|a| cat.action(a))
                    .any(|i| takes.contains(i))
            };
            if !applies {
                continue;
            }
            keys.push(key(arn, p, g));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    // an unconditional row makes the same conditional row redundant (sorted: it comes first)
    keys.dedup_by(|later, earlier| {
        later.6
            && !earlier.6
            && later.0 == earlier.0
            && later.1 == earlier.1
            && later.2 == earlier.2
            && later.5 == earlier.5
    });
    keys.into_iter()
        .map(
            |(resource, service, capability, ptype, pname, parn, conditional)| ResourceAccessRow {
                resource_arn: resource.to_string(),
                resource_name: name_of(resource),
                service_name: service.to_string(),
                access_capability: capability,
                principal_type: ptype.to_string(),
                principal_name: pname.to_string(),
                principal_arn: parn.to_string(),
                conditional,
            },
        )
        .collect()
}

/// For the (resource, principal) pairs data access evaluated, the rows of
/// `resource-access-summaries.csv` are its rows (identity and resource policies together),
/// not the identity grants alone; other pairs (broad grants) keep their identity rows.
fn merge_data_access(data: &data_access::DataAccess, resource_access: &mut Vec<ResourceAccessRow>) {
    if data.evaluated.is_empty() {
        return;
    }
    let evaluated: HashSet<(&str, &str)> = data
        .evaluated
        .iter()
        .map(|(r, p)| (r.as_str(), p.as_str()))
        .collect();
    resource_access
        .retain(|r| !evaluated.contains(&(r.resource_arn.as_str(), r.principal_arn.as_str())));
    resource_access.extend(data.rows.iter().map(|d| ResourceAccessRow {
        resource_arn: d.resource_arn.clone(),
        resource_name: name_of(&d.resource_arn),
        service_name: d.service_name.clone(),
        access_capability: d.access_capability,
        principal_type: d.principal_type.clone(),
        principal_name: d.principal_name.clone(),
        principal_arn: d.principal_arn.clone(),
        conditional: d.conditional,
    }));
    resource_access.sort();
    resource_access.dedup();
}

/// Every principal's warnings, prefixed with its ARN; then all warnings sorted, deduplicated.
fn collect_warnings(by_arn: &BTreeMap<&str, &PrincipalAnalysis>, warnings: &mut Vec<String>) {
    for r in by_arn.values() {
        for w in &r.warnings {
            warnings.push(format!("{}: {w}", r.principal.arn));
        }
    }
    warnings.sort();
    warnings.dedup();
}

/// What the diff compares: (kind, principal, service, capability, resource, detail),
/// borrowed from the report.
type DiffKey<'a> = (DiffKind, &'a str, &'a str, &'a str, &'a str, &'a str);

/// A report's diff keys, sorted and deduplicated, without those of `unknown` principals
/// (except their existence, `DiffKind::Principal`).
fn diff_keys<'a>(r: &'a AccountReport, unknown: &BTreeSet<&str>) -> Vec<DiffKey<'a>> {
    let mut s: Vec<DiffKey<'a>> = Vec::with_capacity(
        r.principal_access.len()
            + r.admins.len()
            + r.external_access.len()
            + r.resource_exposure.len()
            + r.data_access.len()
            + r.escalations.len()
            + r.principals.len(),
    );
    for a in &r.principal_access {
        s.push((
            DiffKind::Access,
            &a.principal_arn,
            &a.service_name,
            a.access_capability.as_str(),
            &a.resource_arn,
            if a.conditional { "conditional" } else { "" },
        ));
    }
    for a in &r.admins {
        s.push((DiffKind::Admin, &a.principal_arn, "", "", "", ""));
    }
    for e in &r.external_access {
        s.push((
            DiffKind::ExternalAccess,
            &e.role_arn,
            "",
            "",
            "",
            &e.trusted_principal,
        ));
    }
    for e in &r.resource_exposure {
        s.push((
            DiffKind::ResourceExposure,
            &e.principal,
            e.kind.as_str(),
            e.access_capability.as_str(),
            &e.resource_arn,
            e.status.as_str(),
        ));
    }
    for d in &r.data_access {
        s.push((
            DiffKind::DataAccess,
            &d.principal_arn,
            &d.service_name,
            d.access_capability.as_str(),
            &d.resource_arn,
            if d.conditional { "conditional" } else { "" },
        ));
    }
    for e in &r.escalations {
        s.push((DiffKind::Escalation, &e.principal_arn, "", "", "", &e.path));
    }
    for p in &r.principals {
        s.push((
            DiffKind::Principal,
            &p.principal_arn,
            "",
            "",
            "",
            &p.principal_type,
        ));
    }
    if !unknown.is_empty() {
        s.retain(|k| k.0 == DiffKind::Principal || !unknown.contains(k.1));
    }
    s.sort_unstable();
    s.dedup();
    s
}

/// Access, admins, external access, escalation paths and principals added and removed.
///
/// A principal whose analysis failed in either report has unknown access there: its rows
/// are neither "added" nor "removed" (the report's `failures` list says it is unknown).
/// Only its existence, which the snapshot itself shows, is still compared.
pub fn diff(previous: &AccountReport, current: &AccountReport) -> Vec<DiffRow> {
    let unknown: BTreeSet<&str> = previous
        .failures
        .iter()
        .chain(&current.failures)
        .map(|f| f.principal_arn.as_str())
        .collect();
    let old = diff_keys(previous, &unknown);
    let new = diff_keys(current, &unknown);
    let row = |change: DiffChange, k: &DiffKey| DiffRow {
        change,
        kind: k.0,
        principal_arn: k.1.to_string(),
        service_name: k.2.to_string(),
        access_capability: k.3.to_string(),
        resource_arn: k.4.to_string(),
        detail: k.5.to_string(),
    };
    // both sorted: one merge pass finds what only one side has
    let mut out: Vec<DiffRow> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o == n => {
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if o < n => {
                out.push(row(DiffChange::Removed, o));
                i += 1;
            }
            (Some(o), None) => {
                out.push(row(DiffChange::Removed, o));
                i += 1;
            }
            (_, Some(n)) => {
                out.push(row(DiffChange::Added, n));
                j += 1;
            }
            (None, None) => unreachable!("the loop runs while one side has keys"),
        }
    }
    merge_status_changes(&mut out);
    out.sort_by(|a, b| {
        (&a.kind, &a.principal_arn, &a.change, a).cmp(&(&b.kind, &b.principal_arn, &b.change, b))
    });
    out
}

/// A resource's access whose status changed (conditional to open: "the bucket became
/// public") is one added row saying `open (was conditional)`, not a removal and an addition.
fn merge_status_changes(rows: &mut Vec<DiffRow>) {
    let key = |r: &DiffRow| -> (String, String, String, String) {
        (
            r.principal_arn.clone(),
            r.service_name.clone(),
            r.access_capability.clone(),
            r.resource_arn.clone(),
        )
    };
    let mut removed: BTreeMap<(String, String, String, String), Vec<usize>> = BTreeMap::new();
    let mut added: BTreeMap<(String, String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if r.kind != DiffKind::ResourceExposure {
            continue;
        }
        match r.change {
            DiffChange::Removed => removed.entry(key(r)).or_default().push(i),
            DiffChange::Added => added.entry(key(r)).or_default().push(i),
        }
    }
    let mut drop = BTreeSet::new();
    for (k, olds) in &removed {
        if let (Some(news), [old]) = (added.get(k), olds.as_slice()) {
            if let [new] = news.as_slice() {
                let was = rows[*old].detail.clone();
                rows[*new].detail = format!("{} (was {was})", rows[*new].detail);
                drop.insert(*old);
            }
        }
    }
    let mut i = 0;
    rows.retain(|_| {
        let keep = !drop.contains(&i);
        i += 1;
        keep
    });
}

/// Writes a CSV file of `rows` with the given header to `out`: `analysis_time` is the
/// report's, the other columns are the rows' cells of that name, or else `extra(row, column)`
/// (columns joined from other tables). Streams: one row at a time, no string copied.
fn csv_table<'x, R: TableRow>(
    out: &mut dyn Write,
    file: &str,
    analysis_time: &str,
    header: &[&str],
    rows: &[R],
    extra: impl Fn(&R, &str) -> Option<&'x str>,
) -> Result<(), ReportError> {
    let sources = projection::<R>(header);
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .buffer_capacity(64 * 1024)
        .from_writer(out);
    w.write_record(header)
        .map_err(|e| ReportError::render(file, e))?;
    for row in rows {
        let cells = row.cells();
        for (column, source) in header.iter().zip(&sources) {
            let value = match source {
                _ if *column == "analysis_time" => Some(analysis_time),
                Some(i) => Some(cells[*i].as_csv()),
                None => extra(row, column),
            };
            let value = value.ok_or_else(|| {
                ReportError::render(file, format!("no value for column {column}"))
            })?;
            w.write_field(value)
                .map_err(|e| ReportError::render(file, e))?;
        }
        w.write_record(None::<&[u8]>)
            .map_err(|e| ReportError::render(file, e))?;
    }
    w.flush().map_err(|e| ReportError::render(file, e))
}

/// Stores the files of the report of run `from` (run id, analysis time), `previous` (name
/// and bytes of each of [`REPORT_FILES`], as written then), carried to the later run `to`
/// whose inputs are exactly that report's (the same snapshot, results, failures and
/// trusted accounts, built by the same code; the caller vouches for that): what
/// [`build_report`] and [`AccountReport::write_files`] would write then, without building
/// anything. A report depends on its run only through the run's id and time and the diff,
/// and the diff against an identical report is empty. So the CSV files get the new time in
/// each row ([`restamp_csv`]), `report.json` the new run, time and empty diff,
/// `report.html` the same in its header and diff section, and `diff.csv` is rendered empty.
/// An error (a file missing, or not as this module writes it) stops at that file.
pub fn carry_forward_files<E: From<ReportError>>(
    from: (&str, &str),
    to: (&str, &str),
    mut previous: BTreeMap<String, Vec<u8>>,
    mut store: impl FnMut(&str, Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    for name in REPORT_FILES {
        let old = previous
            .remove(name)
            .ok_or_else(|| ReportError::render(name, "the previous report has no such file"))?;
        let bytes = match name {
            "diff.csv" => {
                let mut bytes = Vec::new();
                time_and_columns(&mut bytes, name, to.1, &[] as &[DiffRow])?;
                bytes
            }
            "report.json" => restamp_json(name, &old, from, to)?,
            "report.html" => {
                let html = std::str::from_utf8(&old).map_err(|e| ReportError::render(name, e))?;
                super::html::restamp(html, from, to)
                    .map_err(|e| ReportError::render(name, e))?
                    .into_bytes()
            }
            _ => restamp_csv(name, &old, from.1, to.1)?,
        };
        store(name, bytes)?;
    }
    Ok(())
}

/// `report.json` of run `from` with run `to`'s id and time and an empty diff against
/// `from`: the two header lines and the diff at the end replaced, as [`RowPerLine`] writes
/// them (each top-level entry starts a line indented by two spaces; rows are deeper).
fn restamp_json(
    file: &str,
    bytes: &[u8],
    (from_run, from_time): (&str, &str),
    (to_run, to_time): (&str, &str),
) -> Result<Vec<u8>, ReportError> {
    let json = |value: &str| serde_json::to_string(value).map_err(|e| ReportError::render(file, e));
    let text = std::str::from_utf8(bytes).map_err(|e| ReportError::render(file, e))?;
    let mut out = String::with_capacity(text.len());
    let mut kept = 0;
    for (key, from, to) in [
        ("run_id", from_run, to_run),
        ("analysis_time", from_time, to_time),
    ] {
        let old = format!("\n  \"{key}\": {},", json(from)?);
        let at = text[kept..].find(&old).map(|at| kept + at).ok_or_else(|| {
            ReportError::render(file, format!("the previous report has no {key} {from}"))
        })?;
        out.push_str(&text[kept..at]);
        out.push_str(&format!("\n  \"{key}\": {},", json(to)?));
        kept = at + old.len();
    }
    let tail = text[kept..]
        .rfind("\n  \"diff_base_run\": ")
        .map(|at| kept + at)
        .ok_or_else(|| ReportError::render(file, "the previous report has no diff_base_run"))?;
    out.push_str(&text[kept..tail]);
    out.push_str(&format!(
        "\n  \"diff_base_run\": {},\n  \"diff\": []\n}}\n",
        json(from_run)?
    ));
    Ok(out.into_bytes())
}

/// A CSV file of this module (`analysis_time` first in every row, CRLF after each record)
/// written at `from`, with `to` in that column instead: the other bytes are kept as they
/// are. A record ends at a line feed outside quotes (a quoted cell may hold line breaks;
/// quotes inside cells are doubled, so counting them tells inside from outside). A row
/// that does not start with `from` is an error, not a guess.
pub fn restamp_csv(file: &str, bytes: &[u8], from: &str, to: &str) -> Result<Vec<u8>, ReportError> {
    let header_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|at| at + 2)
        .ok_or_else(|| ReportError::render(file, "the previous file has no header line"))?;
    if !bytes.starts_with(b"analysis_time,") {
        return Err(ReportError::render(
            file,
            "the previous file does not start with the analysis_time column",
        ));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..header_end]);
    let mut at = header_end;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if !(rest.starts_with(from.as_bytes()) && rest.get(from.len()) == Some(&b',')) {
            return Err(ReportError::render(
                file,
                format!("the previous file's row at byte {at} does not start with its analysis time {from}"),
            ));
        }
        let mut quoted = false;
        let mut end = None;
        for (i, byte) in rest.iter().enumerate().skip(from.len()) {
            match byte {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => {
                    end = Some(i + 1);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| {
            ReportError::render(
                file,
                format!("the previous file's row at byte {at} is cut off"),
            )
        })?;
        out.extend_from_slice(to.as_bytes());
        out.extend_from_slice(&rest[from.len()..end]);
        at += end;
    }
    Ok(out)
}

/// A CSV file of `rows`: the analysis time, then the row type's own columns.
fn time_and_columns<R: TableRow>(
    out: &mut dyn Write,
    file: &str,
    analysis_time: &str,
    rows: &[R],
) -> Result<(), ReportError> {
    let mut header = vec!["analysis_time"];
    header.extend_from_slice(R::COLUMNS);
    csv_table(out, file, analysis_time, &header, rows, no_extra)
}

fn no_extra<'x, R>(_: &R, _: &str) -> Option<&'x str> {
    None
}

/// `report.json`'s layout: the top-level object, and the objects and arrays that are its
/// values, one entry per line (indented as `serde_json`'s pretty form); anything deeper is
/// compact, so each row of a section is one line.
struct RowPerLine {
    /// Containers open.
    depth: usize,
    /// Whether the innermost line-per-entry container has an entry.
    has_value: bool,
}

impl RowPerLine {
    /// Containers up to this depth get one entry per line.
    const LINE_DEPTH: usize = 2;

    fn newline_indent<W: ?Sized + Write>(&self, w: &mut W, depth: usize) -> std::io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn begin<W: ?Sized + Write>(&mut self, w: &mut W, open: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        if self.depth <= Self::LINE_DEPTH {
            self.has_value = false;
        }
        w.write_all(open)
    }

    fn end<W: ?Sized + Write>(&mut self, w: &mut W, close: &[u8]) -> std::io::Result<()> {
        if self.depth <= Self::LINE_DEPTH && self.has_value {
            self.newline_indent(w, self.depth - 1)?;
        }
        self.depth -= 1;
        w.write_all(close)
    }

    fn entry<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.depth <= Self::LINE_DEPTH {
            self.newline_indent(w, self.depth)?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for RowPerLine {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.begin(w, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.end(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.entry(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.begin(w, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.end(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.entry(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(if self.depth <= Self::LINE_DEPTH {
            b": "
        } else {
            b":"
        })
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

impl AccountReport {
    /// Writes one report file (a name of [`REPORT_FILES`]) to `out`, streaming: nothing but
    /// the report and `out`'s own buffer is held (`report.html`, a few MB at most, is built
    /// whole first). Byte-for-byte deterministic.
    pub fn write_file(&self, name: &str, out: &mut dyn Write) -> Result<(), ReportError> {
        let t = self.analysis_time.as_str();
        match name {
            "report.json" => {
                let mut w = std::io::BufWriter::with_capacity(64 * 1024, out);
                let mut ser = serde_json::Serializer::with_formatter(
                    &mut w,
                    RowPerLine {
                        depth: 0,
                        has_value: false,
                    },
                );
                self.serialize(&mut ser)
                    .map_err(|e| ReportError::render(name, e))?;
                w.write_all(b"\n")
                    .and_then(|()| w.flush())
                    .map_err(|e| ReportError::render(name, e))
            }
            "principals.csv" => time_and_columns(out, name, t, &self.principals),
            "resources.csv" => time_and_columns(out, name, t, &self.resources),
            ACCESS_FILE => {
                let ptags: HashMap<&str, &str> = self
                    .principals
                    .iter()
                    .map(|p| (p.principal_arn.as_str(), p.principal_tags.as_str()))
                    .collect();
                csv_table(
                    out,
                    name,
                    t,
                    &ACCESS_COLUMNS,
                    &self.principal_access,
                    |a: &AccessRow, column| {
                        (column == "principal_tags").then(|| {
                            ptags
                                .get(a.principal_arn.as_str())
                                .copied()
                                .unwrap_or_default()
                        })
                    },
                )
            }
            "resource-access-summaries.csv" => {
                // each resource's confidentiality tag, read once (not once per row)
                let confidentiality: HashMap<&str, String> = self
                    .resources
                    .iter()
                    .map(|r| {
                        let tags = parse_tags(&r.resource_tags);
                        (
                            r.resource_arn.as_str(),
                            tag_lookup(&tags, "confidentiality"),
                        )
                    })
                    .collect();
                csv_table(
                    out,
                    name,
                    t,
                    &[
                        "analysis_time",
                        "service_name",
                        "resource_name",
                        "resource_arn",
                        "access_capability",
                        "principal_type",
                        "principal_name",
                        "principal_arn",
                        "resource_tag_confidentiality",
                        "conditional",
                    ],
                    &self.resource_access,
                    |a: &ResourceAccessRow, column| {
                        (column == "resource_tag_confidentiality").then(|| {
                            confidentiality
                                .get(a.resource_arn.as_str())
                                .map_or("", String::as_str)
                        })
                    },
                )
            }
            "public-and-cross-account.csv" => {
                time_and_columns(out, name, t, &self.resource_exposure)
            }
            "diff.csv" => time_and_columns(out, name, t, &self.diff),
            "report.html" => out
                .write_all(super::html::render(self).as_bytes())
                .map_err(|e| ReportError::render(name, e)),
            other => Err(ReportError::render(
                other,
                format!(
                    "no such report file (the files are {})",
                    REPORT_FILES.join(", ")
                ),
            )),
        }
    }

    /// Renders the files one at a time, in [`REPORT_FILES`] order, handing each to `store`
    /// (name, bytes) before rendering the next: at most one rendered file is held besides
    /// the report (and whatever `store` keeps). Stops at the first error, rendering's or
    /// `store`'s. Byte-for-byte deterministic.
    pub fn write_files<E: From<ReportError>>(
        &self,
        mut store: impl FnMut(&str, Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        for name in REPORT_FILES {
            let mut bytes = Vec::new();
            self.write_file(name, &mut bytes)?;
            store(name, bytes)?;
        }
        Ok(())
    }

    /// Every file, rendered into memory at once, sorted by name ([`AccountReport::write_files`]
    /// holds one file at a time).
    pub fn render_files(&self) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
        let mut files = Vec::with_capacity(REPORT_FILES.len());
        self.write_files(|name, bytes| {
            files.push((name.to_string(), bytes));
            Ok::<(), ReportError>(())
        })?;
        Ok(files)
    }

    /// Loads a previous run's report (for the diff): its `report.json` and, for format 3,
    /// its [`ACCESS_FILE`] (`principal_access_csv`), which has the rows of
    /// `principal_access`. Formats 1 and 2 ([`READABLE_REPORT_FORMATS`]) have those rows in
    /// the JSON (the CSV is then not needed, and ignored); their rows get their principal's
    /// name and type from `principals` (format 2 leaves them out). `resource_access` stays
    /// empty (format 1's is ignored: the diff does not use it).
    pub fn from_files(
        json: &[u8],
        principal_access_csv: Option<&[u8]>,
    ) -> Result<AccountReport, ParseError> {
        let unsupported = |format: &str| {
            ParseError::structure(
                "$.format",
                format!(
                    "unsupported report format {format:?} (this version reads {})",
                    READABLE_REPORT_FORMATS.join(", ")
                ),
            )
        };
        let mut r: AccountReport = serde_json::from_slice(json).map_err(|e| {
            if e.is_data() {
                // another format's shape: say which format it is, if it says
                #[derive(Deserialize)]
                struct FormatOnly {
                    format: String,
                }
                match serde_json::from_slice::<FormatOnly>(json) {
                    Ok(f) if !READABLE_REPORT_FORMATS.contains(&f.format.as_str()) => {
                        unsupported(&f.format)
                    }
                    _ => ParseError::structure(
                        format!("line {} column {}", e.line(), e.column()),
                        e.to_string(),
                    ),
                }
            } else {
                ParseError::from_json(&e)
            }
        })?;
        if !READABLE_REPORT_FORMATS.contains(&r.format.as_str()) {
            return Err(unsupported(&r.format));
        }
        if r.format == REPORT_FORMAT {
            let csv = principal_access_csv.ok_or_else(|| {
                ParseError::structure(
                    ACCESS_FILE,
                    format!(
                        "a report of format {REPORT_FORMAT} keeps its access rows in \
                         {ACCESS_FILE} next to report.json: read both"
                    ),
                )
            })?;
            r.principal_access = read_access_csv(csv)?;
            return Ok(r);
        }
        let principals = std::mem::take(&mut r.principals);
        let who: HashMap<&str, &PrincipalRow> = principals
            .iter()
            .map(|p| (p.principal_arn.as_str(), p))
            .collect();
        for a in &mut r.principal_access {
            if a.principal_name.is_empty() && a.principal_type.is_empty() {
                if let Some(p) = who.get(a.principal_arn.as_str()) {
                    a.principal_name.clone_from(&p.principal_name);
                    a.principal_type.clone_from(&p.principal_type);
                }
            }
        }
        drop(who);
        r.principals = principals;
        Ok(r)
    }
}

/// The rows of an [`ACCESS_FILE`] as written by [`AccountReport::write_file`], in its order.
/// Errors name the file and line: a header other than [`ACCESS_COLUMNS`], a row of another
/// width, an unknown capability or a `conditional` that is not `true` / `false`.
fn read_access_csv(bytes: &[u8]) -> Result<Vec<AccessRow>, ParseError> {
    // The line from the byte offset: with CRLF the csv crate's own line count is off by one,
    // and a record's offset can be that of the line break before it (skipped here).
    let at_byte = |byte: u64| {
        let start = (byte as usize).min(bytes.len());
        let breaks = bytes[start..]
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let line = bytes[..start + breaks]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("{ACCESS_FILE} line {line}")
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| ParseError::structure(at_byte(0), e.to_string()))?;
    if header.iter().ne(ACCESS_COLUMNS) {
        return Err(ParseError::structure(
            at_byte(0),
            format!(
                "the header is not {} (the file is not one this code writes)",
                ACCESS_COLUMNS.join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let byte = e.position().map_or(bytes.len() as u64, csv::Position::byte);
                return Err(ParseError::structure(at_byte(byte), e.to_string()));
            }
        }
        let at = || at_byte(record.position().map_or(0, csv::Position::byte));
        let cell = |i: usize| record.get(i).unwrap_or_default();
        let access_capability = Capability::parse(cell(6)).ok_or_else(|| {
            ParseError::structure(at(), format!("unknown access_capability {:?}", cell(6)))
        })?;
        let conditional = match cell(8) {
            "true" => true,
            "false" => false,
            other => {
                return Err(ParseError::structure(
                    at(),
                    format!("conditional is {other:?}, not true or false"),
                ))
            }
        };
        rows.push(AccessRow {
            principal_name: cell(1).to_string(),
            principal_arn: cell(2).to_string(),
            principal_type: cell(3).to_string(),
            service_name: cell(5).to_string(),
            access_capability,
            resource_arn: cell(7).to_string(),
            conditional,
        });
    }
    Ok(rows)
}
