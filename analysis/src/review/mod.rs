//! The morning review: what a customer reads first (issue 13).
//!
//! - [`AccountSummary`]: a small `summary.json` written beside each account's report (its
//!   totals, status and the notable rows of its diff), so a run's index and thirty nights of
//!   trends are built without reading any `report.json` (32 MB for a large account);
//! - [`CustomerIndex`]: one customer's run, `index.json` and `index.html` beside the account
//!   directories: every account with its totals, status and report link, what changed since
//!   the previous night across all accounts (most important first), and the trends of the
//!   last [`TREND_RUNS`] runs;
//! - [`digest`]: the short text and HTML morning digest of the night's changes.
//!
//! Public resources are counted only for the accounts whose resource inventory was
//! collected (`accounts_with_resources`); when none was, the index says so
//! (`public_resources: null` with a note) rather than show a zero.
//! Pure functions on data: reading and writing the files is the coordinator's job.

pub mod digest;
mod page;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{AccountReport, DiffChange, DiffKind, PrincipalFailure};

/// The file each account's summary is stored as, beside its `report.json`.
pub const SUMMARY_FILE: &str = "summary.json";
/// `summary.json`'s format.
pub const SUMMARY_FORMAT: &str = "accessflow-summary/1";
/// The file a customer run's own trend point is stored as, beside its `index.json`: what
/// later runs read for their trends (a few KB per hundred accounts, where `index.json`
/// carries thirty runs of them).
pub const TREND_POINT_FILE: &str = "trend-point.json";
/// `index.json`'s format.
pub const INDEX_FORMAT: &str = "accessflow-index/1";
/// Runs shown in the trends (this one included).
pub const TREND_RUNS: usize = 30;
/// Notable changes kept per account summary; the counts cover all of them.
pub const MAX_CHANGES_PER_ACCOUNT: usize = 200;
/// Failures (principal and reason) kept per account summary.
pub const MAX_FAILURES_PER_ACCOUNT: usize = 20;
/// Why the index has no public-resources count: no account of the run had its resource
/// inventory collected.
pub const PUBLIC_RESOURCES_NOTE: &str = "Public resources are not analysed for this run: no account's resource policies (S3 bucket policies, KMS key policies and the like) were collected. Roles assumable from outside the account are counted.";

/// A summary or index that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{what} is not valid JSON of its format: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} has format {found:?}, this version reads {expected:?}")]
    Format {
        what: String,
        found: String,
        expected: &'static str,
    },
}

/// The totals the review shows and trends, per account or summed over a customer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReviewTotals {
    pub principals: usize,
    /// IAM admins (full access, or able to grant themselves more).
    pub admins: usize,
    /// Roles that principals outside the account can assume (cross-account access).
    pub externally_assumable_roles: usize,
    pub escalation_paths: usize,
    /// Principals granted services they have not used in the tracking period.
    pub principals_with_unused_access: usize,
    /// Principals whose analysis failed (their access is unknown).
    pub failed_principals: usize,
    /// Accounts whose resource inventory (resource policies) was collected: 0 or 1 for
    /// an account. The resource counts below cover only those accounts.
    #[serde(default)]
    pub accounts_with_resources: usize,
    /// Resources open to everyone (anyone, or any AWS account).
    #[serde(default)]
    pub public_resources: usize,
    /// Resources open to another account (not public).
    #[serde(default)]
    pub cross_account_resources: usize,
}

impl ReviewTotals {
    fn add(&mut self, o: &ReviewTotals) {
        self.principals += o.principals;
        self.admins += o.admins;
        self.externally_assumable_roles += o.externally_assumable_roles;
        self.escalation_paths += o.escalation_paths;
        self.principals_with_unused_access += o.principals_with_unused_access;
        self.failed_principals += o.failed_principals;
        self.accounts_with_resources += o.accounts_with_resources;
        self.public_resources += o.public_resources;
        self.cross_account_resources += o.cross_account_resources;
    }

    /// The trended measures: (key, label, value).
    pub fn measures(&self) -> [(&'static str, &'static str, usize); 5] {
        [
            ("admins", "IAM admins", self.admins),
            (
                "external_resources",
                "Public or shared resources",
                self.public_resources + self.cross_account_resources,
            ),
            (
                "externally_assumable_roles",
                "Roles assumable from outside",
                self.externally_assumable_roles,
            ),
            (
                "escalation_paths",
                "Escalation paths",
                self.escalation_paths,
            ),
            (
                "principals_with_unused_access",
                "Principals with unused access",
                self.principals_with_unused_access,
            ),
        ]
    }
}

/// One notable change of an account's diff (access rows are only counted).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub change: DiffChange,
    pub kind: DiffKind,
    pub principal_arn: String,
    /// The trusted principal (external access), the path (escalation), the type (principal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Change {
    /// Most important first: new admins, new external access, new escalation paths, then
    /// the removed ones, then principals added and removed. `None`: not listed (access rows).
    pub fn rank(change: DiffChange, kind: DiffKind) -> Option<u8> {
        use DiffChange::*;
        use DiffKind::*;
        Some(match (change, kind) {
            (Added, Admin) => 0,
            (Added, ExternalAccess) | (Added, ResourceExposure) => 1,
            (Added, Escalation) => 2,
            (Removed, Admin) => 3,
            (Removed, ExternalAccess) | (Removed, ResourceExposure) => 4,
            (Removed, Escalation) => 5,
            (Added, Principal) => 6,
            (Removed, Principal) => 7,
            (_, Access) | (_, DataAccess) => return None,
        })
    }

    /// What the change is, in words ("new admin", "external access removed", ...).
    pub fn label(change: DiffChange, kind: DiffKind) -> &'static str {
        use DiffChange::*;
        use DiffKind::*;
        match (change, kind) {
            (Added, Admin) => "new admin",
            (Added, ExternalAccess) => "new external access",
            (Added, Escalation) => "new escalation path",
            (Removed, Admin) => "admin removed",
            (Removed, ExternalAccess) => "external access removed",
            (Added, ResourceExposure) => "new public or cross-account access",
            (Removed, ResourceExposure) => "public or cross-account access removed",
            (Removed, Escalation) => "escalation path removed",
            (Added, Principal) => "new principal",
            (Removed, Principal) => "principal removed",
            (Added, Access) => "access granted",
            (Removed, Access) => "access removed",
            (Added, DataAccess) => "data access granted",
            (Removed, DataAccess) => "data access removed",
        }
    }
}

/// How many diff rows of one (change, kind) an account or customer has.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChangeCount {
    pub change: DiffChange,
    pub kind: DiffKind,
    pub count: usize,
}

/// `summary.json`: what the review needs of one account's report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AccountSummary {
    pub format: String,
    pub customer: String,
    pub account: String,
    pub run_id: String,
    pub analysis_time: String,
    pub partial: bool,
    pub totals: ReviewTotals,
    /// The first [`MAX_FAILURES_PER_ACCOUNT`] failures; `totals.failed_principals` and
    /// the report have all of them.
    pub failures: Vec<PrincipalFailure>,
    /// The run the diff is against (`None`: the account's first report, nothing compared).
    pub diff_base_run: Option<String>,
    /// Every (change, kind) of the diff with its count, access rows included.
    pub change_counts: Vec<ChangeCount>,
    /// The notable changes, most important first, at most [`MAX_CHANGES_PER_ACCOUNT`].
    pub changes: Vec<Change>,
}

impl AccountSummary {
    /// The summary of a built report.
    pub fn of(report: &AccountReport) -> AccountSummary {
        let t = &report.totals;
        let mut counts: BTreeMap<(DiffChange, DiffKind), usize> = BTreeMap::new();
        let mut changes: Vec<(u8, Change)> = Vec::new();
        for row in &report.diff {
            *counts.entry((row.change, row.kind)).or_default() += 1;
            if let Some(rank) = Change::rank(row.change, row.kind) {
                let change = if row.kind == DiffKind::ResourceExposure {
                    // the resource is what changed; who it is open to goes in the detail
                    Change {
                        change: row.change,
                        kind: row.kind,
                        principal_arn: row.resource_arn.clone(),
                        detail: format!(
                            "{} {} to {} ({})",
                            row.service_name,
                            row.access_capability,
                            if row.principal_arn == "*" {
                                "everyone"
                            } else {
                                row.principal_arn.as_str()
                            },
                            row.detail
                        ),
                    }
                } else {
                    Change {
                        change: row.change,
                        kind: row.kind,
                        principal_arn: row.principal_arn.clone(),
                        detail: row.detail.clone(),
                    }
                };
                changes.push((rank, change));
            }
        }
        changes.sort_by(|a, b| {
            (a.0, &a.1.principal_arn, &a.1.detail).cmp(&(b.0, &b.1.principal_arn, &b.1.detail))
        });
        changes.truncate(MAX_CHANGES_PER_ACCOUNT);
        AccountSummary {
            format: SUMMARY_FORMAT.to_string(),
            customer: report.customer.clone(),
            account: report.account.clone(),
            run_id: report.run_id.clone(),
            analysis_time: report.analysis_time.clone(),
            partial: report.partial,
            totals: ReviewTotals {
                principals: t.principals,
                admins: t.admins,
                externally_assumable_roles: t.externally_assumable_roles,
                escalation_paths: t.escalation_paths,
                principals_with_unused_access: t.principals_with_unused_services,
                failed_principals: report.failures.len(),
                accounts_with_resources: usize::from(t.inventoried_resources.is_some()),
                public_resources: t.public_resources,
                cross_account_resources: t.cross_account_resources,
            },
            failures: report
                .failures
                .iter()
                .take(MAX_FAILURES_PER_ACCOUNT)
                .cloned()
                .collect(),
            diff_base_run: report.diff_base_run.clone(),
            change_counts: counts
                .into_iter()
                .map(|((change, kind), count)| ChangeCount {
                    change,
                    kind,
                    count,
                })
                .collect(),
            changes: changes.into_iter().map(|(_, c)| c).collect(),
        }
    }

    /// This summary, of the report carried to the later run `run_id` at `analysis_time`
    /// (`report::carry_forward_files`): what [`AccountSummary::of`] gives for that
    /// report, whose diff against this one is empty.
    pub fn carried_to(mut self, run_id: &str, analysis_time: &str) -> AccountSummary {
        self.diff_base_run = Some(std::mem::replace(&mut self.run_id, run_id.to_string()));
        self.analysis_time = analysis_time.to_string();
        self.change_counts = Vec::new();
        self.changes = Vec::new();
        self
    }

    /// `summary.json`'s bytes (pretty JSON, deterministic).
    pub fn to_json(&self) -> Vec<u8> {
        pretty_json(self)
    }

    /// Reads a `summary.json`; `what` names it in the error (its key).
    pub fn from_json(bytes: &[u8], what: &str) -> Result<AccountSummary, ReviewError> {
        let s: AccountSummary = read_json(bytes, what)?;
        check_format(&s.format, SUMMARY_FORMAT, what)?;
        Ok(s)
    }
}

/// The review files' bytes: pretty JSON (deterministic: the types' field order) and a
/// newline.
fn pretty_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Reads a review file; `what` names it in the error (its key).
fn read_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ReviewError> {
    serde_json::from_slice(bytes).map_err(|source| ReviewError::Json {
        what: what.to_string(),
        source,
    })
}

fn check_format(found: &str, expected: &'static str, what: &str) -> Result<(), ReviewError> {
    if found == expected {
        Ok(())
    } else {
        Err(ReviewError::Format {
            what: what.to_string(),
            found: found.to_string(),
            expected,
        })
    }
}

/// An account's state in a run, from the ledger.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum AccountReviewStatus {
    /// No report tonight.
    Failed,
    /// Not finished when the index was built.
    Unfinished,
    /// A report, with principals that could not be analysed.
    Partial,
    Complete,
}

impl AccountReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountReviewStatus::Failed => "failed",
            AccountReviewStatus::Unfinished => "unfinished",
            AccountReviewStatus::Partial => "partial",
            AccountReviewStatus::Complete => "complete",
        }
    }
}

/// What the index builder knows of one account of the run.
#[derive(Clone, Debug)]
pub struct AccountInput {
    pub account: String,
    pub status: AccountReviewStatus,
    /// The ledger's reason (failed, partial).
    pub reason: Option<String>,
    /// Its summary, when it has a report.
    pub summary: Option<AccountSummary>,
}

/// One account's line in the index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IndexAccount {
    pub account: String,
    pub status: AccountReviewStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Failed principals with their reasons (partial reports; the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<PrincipalFailure>,
    /// The account's report page, relative to the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// `None`: no report tonight (its totals are unknown, not zero).
    pub totals: Option<ReviewTotals>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_base_run: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_counts: Vec<ChangeCount>,
}

/// A notable change, with its account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IndexChange {
    pub account: String,
    #[serde(flatten)]
    pub change: Change,
}

/// One run in the trends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TrendPoint {
    pub run_id: String,
    pub analysis_time: String,
    /// Summed over the accounts with a report in that run.
    pub totals: ReviewTotals,
    /// Per account with a report in that run.
    pub accounts: BTreeMap<String, ReviewTotals>,
}

impl TrendPoint {
    /// `trend-point.json`'s bytes.
    pub fn to_json(&self) -> Vec<u8> {
        pretty_json(self)
    }

    /// Reads a `trend-point.json`; `what` names it in the error (its key).
    pub fn from_json(bytes: &[u8], what: &str) -> Result<TrendPoint, ReviewError> {
        read_json(bytes, what)
    }
}

/// `index.json`: one customer's run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CustomerIndex {
    pub format: String,
    pub customer: String,
    pub run_id: String,
    pub analysis_time: String,
    /// Always `null` today, see `public_resources_note`.
    pub public_resources: Option<usize>,
    pub public_resources_note: String,
    /// Summed over the accounts with a report.
    pub totals: ReviewTotals,
    pub accounts_complete: usize,
    pub accounts_partial: usize,
    pub accounts_failed: usize,
    pub accounts_unfinished: usize,
    /// Failed or partial first, then by account id.
    pub accounts: Vec<IndexAccount>,
    /// Every account's (change, kind) counts summed.
    pub change_counts: Vec<ChangeCount>,
    /// Notable changes across all accounts, most important first.
    pub changes: Vec<IndexChange>,
    /// Whether some account had more notable changes than its summary keeps.
    pub changes_truncated: bool,
    /// Up to [`TREND_RUNS`] runs, oldest first, this one last.
    pub trend: Vec<TrendPoint>,
}

impl CustomerIndex {
    /// The index of a customer's run from its accounts, and the trend points of earlier
    /// runs (any order; the last [`TREND_RUNS`] - 1 before this run are kept).
    pub fn build(
        customer: &str,
        run_id: &str,
        analysis_time: &str,
        inputs: Vec<AccountInput>,
        mut earlier: Vec<TrendPoint>,
    ) -> CustomerIndex {
        let mut totals = ReviewTotals::default();
        let mut counts: BTreeMap<(DiffChange, DiffKind), usize> = BTreeMap::new();
        let mut changes: Vec<(u8, IndexChange)> = Vec::new();
        let mut truncated = false;
        let mut accounts = Vec::with_capacity(inputs.len());
        let mut point = TrendPoint {
            run_id: run_id.to_string(),
            analysis_time: analysis_time.to_string(),
            totals: ReviewTotals::default(),
            accounts: BTreeMap::new(),
        };
        for input in inputs {
            let mut line = IndexAccount {
                account: input.account.clone(),
                status: input.status,
                reason: input.reason,
                failures: Vec::new(),
                report: None,
                totals: None,
                diff_base_run: None,
                change_counts: Vec::new(),
            };
            if let Some(s) = input.summary {
                totals.add(&s.totals);
                point.accounts.insert(input.account.clone(), s.totals);
                let listed: usize = s
                    .change_counts
                    .iter()
                    .filter(|c| Change::rank(c.change, c.kind).is_some())
                    .map(|c| c.count)
                    .sum();
                truncated |= listed > s.changes.len();
                for c in &s.change_counts {
                    *counts.entry((c.change, c.kind)).or_default() += c.count;
                }
                for c in s.changes {
                    if let Some(rank) = Change::rank(c.change, c.kind) {
                        changes.push((
                            rank,
                            IndexChange {
                                account: input.account.clone(),
                                change: c,
                            },
                        ));
                    }
                }
                line.failures = s.failures;
                line.report = Some(format!("{}/report.html", input.account));
                line.totals = Some(s.totals);
                line.diff_base_run = s.diff_base_run;
                line.change_counts = s.change_counts;
            }
            accounts.push(line);
        }
        accounts.sort_by(|a, b| (a.status, &a.account).cmp(&(b.status, &b.account)));
        changes.sort_by(|a, b| {
            (
                a.0,
                &a.1.account,
                &a.1.change.principal_arn,
                &a.1.change.detail,
            )
                .cmp(&(
                    b.0,
                    &b.1.account,
                    &b.1.change.principal_arn,
                    &b.1.change.detail,
                ))
        });
        point.totals = totals;
        earlier.retain(|p| (p.analysis_time.as_str(), p.run_id.as_str()) < (analysis_time, run_id));
        earlier.sort_by(|a, b| (&a.analysis_time, &a.run_id).cmp(&(&b.analysis_time, &b.run_id)));
        let skip = earlier.len().saturating_sub(TREND_RUNS - 1);
        let mut trend: Vec<TrendPoint> = earlier.into_iter().skip(skip).collect();
        trend.push(point);
        let count = |s: AccountReviewStatus| accounts.iter().filter(|a| a.status == s).count();
        CustomerIndex {
            format: INDEX_FORMAT.to_string(),
            customer: customer.to_string(),
            run_id: run_id.to_string(),
            analysis_time: analysis_time.to_string(),
            public_resources: (totals.accounts_with_resources > 0)
                .then_some(totals.public_resources),
            public_resources_note: if totals.accounts_with_resources > 0 {
                format!(
                    "Resource policies analysed for {} of {} accounts.",
                    totals.accounts_with_resources,
                    accounts.len()
                )
            } else {
                PUBLIC_RESOURCES_NOTE.to_string()
            },
            totals,
            accounts_complete: count(AccountReviewStatus::Complete),
            accounts_partial: count(AccountReviewStatus::Partial),
            accounts_failed: count(AccountReviewStatus::Failed),
            accounts_unfinished: count(AccountReviewStatus::Unfinished),
            accounts,
            change_counts: counts
                .into_iter()
                .map(|((change, kind), count)| ChangeCount {
                    change,
                    kind,
                    count,
                })
                .collect(),
            changes: changes.into_iter().map(|(_, c)| c).collect(),
            changes_truncated: truncated,
            trend,
        }
    }

    /// This run's trend point (what a later index reads of this one).
    pub fn point(&self) -> Option<&TrendPoint> {
        self.trend.last().filter(|p| p.run_id == self.run_id)
    }

    /// How many diff rows of (change, kind) the night had.
    pub fn count(&self, change: DiffChange, kind: DiffKind) -> usize {
        self.change_counts
            .iter()
            .filter(|c| c.change == change && c.kind == kind)
            .map(|c| c.count)
            .sum()
    }

    /// `index.json`'s bytes (pretty JSON, deterministic).
    pub fn to_json(&self) -> Vec<u8> {
        pretty_json(self)
    }

    /// Reads an `index.json`; `what` names it in the error (its key).
    pub fn from_json(bytes: &[u8], what: &str) -> Result<CustomerIndex, ReviewError> {
        let i: CustomerIndex = read_json(bytes, what)?;
        check_format(&i.format, INDEX_FORMAT, what)?;
        Ok(i)
    }

    /// `index.html`: self-contained, no script, no network (strict Content-Security-Policy).
    pub fn to_html(&self) -> String {
        page::render(self)
    }
}

/// A trend point of a run from its accounts' summaries (a run without an `index.json`).
pub fn trend_point(run_id: &str, analysis_time: &str, summaries: &[AccountSummary]) -> TrendPoint {
    let mut point = TrendPoint {
        run_id: run_id.to_string(),
        analysis_time: analysis_time.to_string(),
        totals: ReviewTotals::default(),
        accounts: BTreeMap::new(),
    };
    for s in summaries {
        point.totals.add(&s.totals);
        point.accounts.insert(s.account.clone(), s.totals);
    }
    point
}

/// Escapes text for HTML text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(account: &str, admins: usize, changes: Vec<Change>) -> AccountSummary {
        let mut counts: BTreeMap<(DiffChange, DiffKind), usize> = BTreeMap::new();
        for c in &changes {
            *counts.entry((c.change, c.kind)).or_default() += 1;
        }
        AccountSummary {
            format: SUMMARY_FORMAT.into(),
            customer: "acme".into(),
            account: account.into(),
            run_id: "r2".into(),
            analysis_time: "2026-11-26T02:00:00Z".into(),
            partial: false,
            totals: ReviewTotals {
                principals: 10,
                admins,
                ..ReviewTotals::default()
            },
            failures: Vec::new(),
            diff_base_run: Some("r1".into()),
            change_counts: counts
                .into_iter()
                .map(|((change, kind), count)| ChangeCount {
                    change,
                    kind,
                    count,
                })
                .collect(),
            changes,
        }
    }

    fn change(change: DiffChange, kind: DiffKind, arn: &str) -> Change {
        Change {
            change,
            kind,
            principal_arn: arn.into(),
            detail: String::new(),
        }
    }

    fn input(
        account: &str,
        status: AccountReviewStatus,
        s: Option<AccountSummary>,
    ) -> AccountInput {
        AccountInput {
            account: account.into(),
            status,
            reason: (status == AccountReviewStatus::Failed).then(|| "AccessDenied".into()),
            summary: s,
        }
    }

    #[test]
    fn index_orders_changes_by_importance_across_accounts_and_keeps_unknowns_unknown() {
        use DiffChange::*;
        use DiffKind::*;
        let a = summary(
            "111111111111",
            2,
            vec![
                change(Removed, Admin, "arn:a:old-admin"),
                change(Added, ExternalAccess, "arn:a:role"),
            ],
        );
        let b = summary(
            "222222222222",
            3,
            vec![change(Added, Admin, "arn:b:new-admin")],
        );
        let ix = CustomerIndex::build(
            "acme",
            "r2",
            "2026-11-26T02:00:00Z",
            vec![
                input("111111111111", AccountReviewStatus::Complete, Some(a)),
                input("222222222222", AccountReviewStatus::Complete, Some(b)),
                input("333333333333", AccountReviewStatus::Failed, None),
            ],
            Vec::new(),
        );
        let order: Vec<(&str, DiffChange, DiffKind)> = ix
            .changes
            .iter()
            .map(|c| (c.account.as_str(), c.change.change, c.change.kind))
            .collect();
        assert_eq!(
            order,
            [
                ("222222222222", Added, Admin),
                ("111111111111", Added, ExternalAccess),
                ("111111111111", Removed, Admin),
            ]
        );
        // the failed account comes first, without totals (unknown, not zero)
        assert_eq!(ix.accounts[0].account, "333333333333");
        assert_eq!(ix.accounts[0].totals, None);
        assert_eq!(ix.accounts[0].reason.as_deref(), Some("AccessDenied"));
        assert_eq!(ix.accounts_failed, 1);
        assert_eq!(ix.totals.admins, 5);
        assert_eq!(ix.public_resources, None);
        assert_eq!(ix.count(Added, Admin), 1);
        assert_eq!(ix.trend.len(), 1);
        assert_eq!(
            ix.trend[0].accounts.len(),
            2,
            "no point for the failed account"
        );
        // round trip
        let back = CustomerIndex::from_json(&ix.to_json(), "index.json").expect("reads back");
        assert_eq!(back, ix);
    }

    #[test]
    fn trend_keeps_the_last_thirty_runs_up_to_this_one() {
        let earlier: Vec<TrendPoint> = (1..=40)
            .map(|i| TrendPoint {
                run_id: format!("r{i:02}"),
                analysis_time: format!("2026-10-{:02}T02:00:00Z", i.min(31)),
                totals: ReviewTotals {
                    admins: i,
                    ..ReviewTotals::default()
                },
                accounts: BTreeMap::new(),
            })
            .collect();
        // this run sorts between r35 and r36: later runs are not its history
        let ix = CustomerIndex::build("acme", "r35x", "2026-10-31T02:00:00Z", Vec::new(), earlier);
        assert_eq!(ix.trend.len(), TREND_RUNS);
        assert_eq!(ix.trend.last().map(|p| p.run_id.as_str()), Some("r35x"));
        assert_eq!(ix.trend[TREND_RUNS - 2].run_id, "r35");
        assert_eq!(ix.trend[0].run_id, "r07");
        assert_eq!(ix.point().map(|p| p.run_id.as_str()), Some("r35x"));
    }

    #[test]
    fn page_and_digest_escape_and_name_the_changes() {
        use DiffChange::*;
        use DiffKind::*;
        let s = summary(
            "111111111111",
            1,
            vec![change(
                Added,
                Admin,
                "arn:aws:iam::111111111111:user/<script>",
            )],
        );
        let ix = CustomerIndex::build(
            "acme",
            "r2",
            "2026-11-26T02:00:00Z",
            vec![
                input("111111111111", AccountReviewStatus::Complete, Some(s)),
                input("333333333333", AccountReviewStatus::Failed, None),
            ],
            Vec::new(),
        );
        let html = ix.to_html();
        assert!(html.contains("default-src 'none'"));
        assert!(
            !html.contains("<script"),
            "no script, and names are escaped"
        );
        assert!(html.contains("user/&lt;script&gt;"));
        assert!(html.contains("<svg"));
        let d = digest::digest(&ix, Some("s3://bucket/acme/reports/r2/index.html"));
        assert!(d.subject.contains("1 notable change"), "{}", d.subject);
        assert!(
            d.text.contains(
                "new admin: arn:aws:iam::111111111111:user/<script> in account 111111111111"
            ),
            "{}",
            d.text
        );
        assert!(
            d.text.contains("333333333333 failed: AccessDenied"),
            "{}",
            d.text
        );
        assert!(d.text.contains("Resources: not analysed"), "{}", d.text);
        assert!(d.html.contains("user/&lt;script&gt;"));
        assert!(d.text.contains("s3://bucket/acme/reports/r2/index.html"));
    }

    #[test]
    fn unreadable_files_say_what_and_where() {
        let err = AccountSummary::from_json(b"{}", "acme/reports/r1/1/summary.json").unwrap_err();
        assert!(
            err.to_string().contains("acme/reports/r1/1/summary.json"),
            "{err}"
        );
        let mut s = summary("1", 0, Vec::new());
        s.format = "accessflow-summary/9".into();
        let err = AccountSummary::from_json(&s.to_json(), "x/summary.json").unwrap_err();
        assert!(err.to_string().contains("accessflow-summary/9"), "{err}");
    }
}
