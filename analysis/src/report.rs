//! The account report: aggregation of all principals' results into its sections (one
//! function each: role assumers, admins, escalation paths, external access, unused access,
//! principals, access by principal, resources, access by resource, warnings, the diff
//! against the previous run), written as JSON and k9-style CSVs (cells from `table`) and
//! HTML (`html`). Everything is sorted: same inputs, same bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::access::{PrincipalAnalysis, TrustKind};
use super::catalog::Capability;
use super::error::{ParseError, PolicyError, ReportError};
use super::glob::{arn_service, has_wildcard, wildcard_match};
use super::model::{AccountModel, PrincipalKind};
use super::table::{parse_tags, projection, Cell, TableRow};
use super::Engine;

pub const REPORT_FORMAT: &str = "accessflow-account-report/1";

pub struct ReportContext<'a> {
    pub customer: &'a str,
    pub account: &'a str,
    pub run_id: &'a str,
    /// RFC 3339 from the run, never the clock.
    pub analysis_time: &'a str,
    /// CSV of `iam get-credential-report`, decoded.
    pub credential_report: Option<&'a str>,
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
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Access => "access",
            DiffKind::Admin => "admin",
            DiffKind::Escalation => "escalation",
            DiffKind::ExternalAccess => "external-access",
            DiffKind::Principal => "principal",
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessRow {
    pub principal_arn: String,
    pub principal_name: String,
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
    pub role_assumers: Vec<RoleAssumer>,
    pub escalations: Vec<EscalationRow>,
    pub unused_access: Vec<UnusedRow>,
    pub principals: Vec<PrincipalRow>,
    pub resources: Vec<ResourceRow>,
    pub principal_access: Vec<AccessRow>,
    pub resource_access: Vec<ResourceAccessRow>,
    pub policy_errors: Vec<PolicyError>,
    pub warnings: Vec<String>,
    /// Run id of the previous report the diff is against (None: first run, empty diff).
    pub diff_base_run: Option<String>,
    pub diff: Vec<DiffRow>,
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
    let resources = resource_rows(engine, model, &named);
    let resource_access = resource_access_rows(engine, &by_arn, &named);
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
    };
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
        role_assumers: assumption.role_assumers,
        escalations,
        unused_access,
        principals,
        resources,
        principal_access,
        resource_access,
        policy_errors: model.policy_errors(),
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
fn principal_access_rows(by_arn: &BTreeMap<&str, &PrincipalAnalysis>) -> Vec<AccessRow> {
    let mut principal_access: Vec<AccessRow> = Vec::new();
    for r in by_arn.values() {
        let ptype = principal_type(r.principal.kind);
        for g in &r.grants {
            principal_access.push(AccessRow {
                principal_arn: r.principal.arn.clone(),
                principal_name: r.principal.name.clone(),
                principal_type: ptype.clone(),
                service_name: g.service_name.clone(),
                access_capability: g.capability,
                resource_arn: g.resource.clone(),
                conditional: g.conditional,
            });
        }
    }
    principal_access.sort_unstable();
    principal_access.dedup();
    // an unconditional row makes the same conditional row redundant (sorted: it comes first)
    principal_access.dedup_by(|later, earlier| {
        later.conditional
            && !earlier.conditional
            && later.principal_arn == earlier.principal_arn
            && later.service_name == earlier.service_name
            && later.access_capability == earlier.access_capability
            && later.resource_arn == earlier.resource_arn
    });
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

/// `resource-access-summaries.csv`: the concrete resources named in policies, and who can
/// do what on them (only actions that take that resource type count); access to every
/// resource of a service is listed once, with resource `*`.
fn resource_access_rows(
    engine: &Engine,
    by_arn: &BTreeMap<&str, &PrincipalAnalysis>,
    named: &BTreeSet<String>,
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
    let mut resource_access: Vec<ResourceAccessRow> = Vec::new();
    for r in by_arn.values() {
        for g in r.grants.iter().filter(|g| g.resource == "*") {
            resource_access.push(ResourceAccessRow {
                resource_arn: "*".into(),
                resource_name: "*".into(),
                service_name: g.service_name.clone(),
                access_capability: g.capability,
                principal_type: principal_type(r.principal.kind),
                principal_name: r.principal.name.clone(),
                principal_arn: r.principal.arn.clone(),
                conditional: g.conditional,
            });
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
            resource_access.push(ResourceAccessRow {
                resource_arn: arn.clone(),
                resource_name: name_of(arn),
                service_name: g.service_name.clone(),
                access_capability: g.capability,
                principal_type: principal_type(p.principal.kind),
                principal_name: p.principal.name.clone(),
                principal_arn: p.principal.arn.clone(),
                conditional: g.conditional,
            });
        }
    }
    resource_access.sort_unstable();
    resource_access.dedup();
    resource_access.dedup_by(|later, earlier| {
        later.conditional
            && !earlier.conditional
            && later.resource_arn == earlier.resource_arn
            && later.service_name == earlier.service_name
            && later.access_capability == earlier.access_capability
            && later.principal_arn == earlier.principal_arn
    });
    resource_access
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

/// What the diff compares: (kind, principal, service, capability, resource, detail).
type DiffKey = (DiffKind, String, String, String, String, String);

fn diff_keys(r: &AccountReport) -> BTreeSet<DiffKey> {
    let mut s = BTreeSet::new();
    let key = |kind: DiffKind, p: &str, svc: &str, cap: &str, res: &str, detail: &str| {
        (
            kind,
            p.to_string(),
            svc.to_string(),
            cap.to_string(),
            res.to_string(),
            detail.to_string(),
        )
    };
    for a in &r.principal_access {
        s.insert(key(
            DiffKind::Access,
            &a.principal_arn,
            &a.service_name,
            a.access_capability.as_str(),
            &a.resource_arn,
            if a.conditional { "conditional" } else { "" },
        ));
    }
    for a in &r.admins {
        s.insert(key(DiffKind::Admin, &a.principal_arn, "", "", "", ""));
    }
    for e in &r.external_access {
        s.insert(key(
            DiffKind::ExternalAccess,
            &e.role_arn,
            "",
            "",
            "",
            &e.trusted_principal,
        ));
    }
    for e in &r.escalations {
        s.insert(key(
            DiffKind::Escalation,
            &e.principal_arn,
            "",
            "",
            "",
            &e.path,
        ));
    }
    for p in &r.principals {
        s.insert(key(
            DiffKind::Principal,
            &p.principal_arn,
            "",
            "",
            "",
            &p.principal_type,
        ));
    }
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
    let known = |keys: BTreeSet<DiffKey>| -> BTreeSet<DiffKey> {
        keys.into_iter()
            .filter(|k| k.0 == DiffKind::Principal || !unknown.contains(k.1.as_str()))
            .collect()
    };
    let old = known(diff_keys(previous));
    let new = known(diff_keys(current));
    let row = |change: DiffChange, k: &DiffKey| DiffRow {
        change,
        kind: k.0,
        principal_arn: k.1.clone(),
        service_name: k.2.clone(),
        access_capability: k.3.clone(),
        resource_arn: k.4.clone(),
        detail: k.5.clone(),
    };
    let mut out: Vec<DiffRow> = Vec::new();
    for k in new.difference(&old) {
        out.push(row(DiffChange::Added, k));
    }
    for k in old.difference(&new) {
        out.push(row(DiffChange::Removed, k));
    }
    out.sort_by(|a, b| {
        (&a.kind, &a.principal_arn, &a.change, a).cmp(&(&b.kind, &b.principal_arn, &b.change, b))
    });
    out
}

/// A CSV file of `rows` with the given header: `analysis_time` is the report's, the other
/// columns are the rows' cells of that name, or else `extra(row, column)` (columns joined
/// from other tables).
fn csv_table<R: TableRow>(
    file: &str,
    analysis_time: &str,
    header: &[&str],
    rows: &[R],
    extra: impl Fn(&R, &str) -> Option<String>,
) -> Result<Vec<u8>, ReportError> {
    let sources = projection::<R>(header);
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header)
        .map_err(|e| ReportError::render(file, e))?;
    let mut record: Vec<String> = Vec::with_capacity(header.len());
    for row in rows {
        let mut cells: Vec<Option<Cell>> = row.cells().into_iter().map(Some).collect();
        record.clear();
        for (column, source) in header.iter().zip(&sources) {
            let value = match source {
                _ if *column == "analysis_time" => Some(analysis_time.to_string()),
                Some(i) => cells[*i].take().map(Cell::into_csv),
                None => extra(row, column),
            };
            record.push(value.ok_or_else(|| {
                ReportError::render(file, format!("no value for column {column}"))
            })?);
        }
        w.write_record(&record)
            .map_err(|e| ReportError::render(file, e))?;
    }
    w.into_inner().map_err(|e| ReportError::render(file, e))
}

fn no_extra<R>(_: &R, _: &str) -> Option<String> {
    None
}

impl AccountReport {
    /// Byte-for-byte deterministic files, sorted by name.
    pub fn render_files(&self) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
        let t = self.analysis_time.as_str();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut json =
            serde_json::to_vec_pretty(self).map_err(|e| ReportError::render("report.json", e))?;
        json.push(b'\n');
        files.push(("report.json".into(), json));
        let mut principals_header = vec!["analysis_time"];
        principals_header.extend_from_slice(PrincipalRow::COLUMNS);
        files.push((
            "principals.csv".into(),
            csv_table(
                "principals.csv",
                t,
                &principals_header,
                &self.principals,
                no_extra,
            )?,
        ));
        let mut resources_header = vec!["analysis_time"];
        resources_header.extend_from_slice(ResourceRow::COLUMNS);
        files.push((
            "resources.csv".into(),
            csv_table(
                "resources.csv",
                t,
                &resources_header,
                &self.resources,
                no_extra,
            )?,
        ));
        let ptags: HashMap<&str, &str> = self
            .principals
            .iter()
            .map(|p| (p.principal_arn.as_str(), p.principal_tags.as_str()))
            .collect();
        files.push((
            "principal-access-summaries.csv".into(),
            csv_table(
                "principal-access-summaries.csv",
                t,
                &[
                    "analysis_time",
                    "principal_name",
                    "principal_arn",
                    "principal_type",
                    "principal_tags",
                    "service_name",
                    "access_capability",
                    "resource_arn",
                    "conditional",
                ],
                &self.principal_access,
                |a: &AccessRow, column| {
                    (column == "principal_tags").then(|| {
                        ptags
                            .get(a.principal_arn.as_str())
                            .copied()
                            .unwrap_or_default()
                            .to_string()
                    })
                },
            )?,
        ));
        let rtags: HashMap<&str, &str> = self
            .resources
            .iter()
            .map(|r| (r.resource_arn.as_str(), r.resource_tags.as_str()))
            .collect();
        files.push((
            "resource-access-summaries.csv".into(),
            csv_table(
                "resource-access-summaries.csv",
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
                        let tags = parse_tags(
                            rtags
                                .get(a.resource_arn.as_str())
                                .copied()
                                .unwrap_or_default(),
                        );
                        tag_lookup(&tags, "confidentiality")
                    })
                },
            )?,
        ));
        let mut diff_header = vec!["analysis_time"];
        diff_header.extend_from_slice(DiffRow::COLUMNS);
        files.push((
            "diff.csv".into(),
            csv_table("diff.csv", t, &diff_header, &self.diff, no_extra)?,
        ));
        files.push(("report.html".into(), super::html::render(self).into_bytes()));
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Loads a previous run's `report.json` (for the diff).
    pub fn from_json(bytes: &[u8]) -> Result<AccountReport, ParseError> {
        let r: AccountReport = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ParseError::structure(
                    format!("line {} column {}", e.line(), e.column()),
                    e.to_string(),
                )
            } else {
                ParseError::from_json(&e)
            }
        })?;
        if r.format != REPORT_FORMAT {
            return Err(ParseError::structure(
                "$.format",
                format!("unsupported report format {:?}", r.format),
            ));
        }
        Ok(r)
    }
}
