//! Report rows as table cells, shared by the CSV writer and the HTML renderer: each row
//! type says once how it becomes cells ([`TableRow::cells`]), and each output picks the
//! columns it shows by name. A flag is written `true`/`false` in CSV and `yes`/`no` in HTML.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::data_access::DataAccessRow;
use super::error::PolicyError;
use super::report::{
    tag_lookup, AccessRow, AdminEntry, DiffRow, EscalationRow, ExternalAccessRow, PrincipalFailure,
    PrincipalRow, ResourceAccessRow, ResourceRow, RoleAssumer, UnusedRow,
};
use super::resources::ExposureRow;

/// One cell of a report table, borrowing from its row where it can (rendering a table
/// copies no row's strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell<'a> {
    Text(Cow<'a, str>),
    Flag(bool),
}

impl<'a> Cell<'a> {
    /// As a CSV field: flags are `true` / `false`.
    pub(crate) fn as_csv(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            Cell::Flag(true) => "true",
            Cell::Flag(false) => "false",
        }
    }

    /// As HTML cell text (before escaping): flags are `yes` / `no`.
    pub(crate) fn as_html(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            Cell::Flag(true) => "yes",
            Cell::Flag(false) => "no",
        }
    }
}

impl From<String> for Cell<'_> {
    fn from(s: String) -> Self {
        Cell::Text(Cow::Owned(s))
    }
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(s: &'a str) -> Self {
        Cell::Text(Cow::Borrowed(s))
    }
}

impl From<bool> for Cell<'_> {
    fn from(b: bool) -> Self {
        Cell::Flag(b)
    }
}

/// A row of a report table.
pub(crate) trait TableRow {
    /// The column names, in the order of [`TableRow::cells`] (the k9 CSV names where the
    /// row is written to a CSV file).
    const COLUMNS: &'static [&'static str];

    /// This row's cells, one per entry of [`TableRow::COLUMNS`].
    fn cells(&self) -> Vec<Cell<'_>>;
}

/// Where each wanted column comes from: the row's cells (by index) or elsewhere (`None`).
pub(crate) fn projection<R: TableRow>(columns: &[&str]) -> Vec<Option<usize>> {
    columns
        .iter()
        .map(|c| R::COLUMNS.iter().position(|have| have == c))
        .collect()
}

/// Tags stored as a JSON object in a row (empty: none).
pub(crate) fn parse_tags(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl TableRow for PrincipalRow {
    const COLUMNS: &'static [&'static str] = &[
        "principal_name",
        "principal_arn",
        "principal_type",
        "principal_is_iam_admin",
        "principal_last_used",
        "principal_tag_business_unit",
        "principal_tag_environment",
        "principal_tag_used_by",
        "principal_tags",
        "password_last_used",
        "password_last_rotated",
        "password_state",
        "access_key_1_last_used",
        "access_key_1_last_rotated",
        "access_key_1_state",
        "access_key_2_last_used",
        "access_key_2_last_rotated",
        "access_key_2_state",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.principal_name.as_str().into(),
            self.principal_arn.as_str().into(),
            self.principal_type.as_str().into(),
            self.principal_is_iam_admin.as_str().into(),
            self.principal_last_used.as_str().into(),
            self.principal_tag_business_unit.as_str().into(),
            self.principal_tag_environment.as_str().into(),
            self.principal_tag_used_by.as_str().into(),
            self.principal_tags.as_str().into(),
            self.password_last_used.as_str().into(),
            self.password_last_rotated.as_str().into(),
            self.password_state.as_str().into(),
            self.access_key_1_last_used.as_str().into(),
            self.access_key_1_last_rotated.as_str().into(),
            self.access_key_1_state.as_str().into(),
            self.access_key_2_last_used.as_str().into(),
            self.access_key_2_last_rotated.as_str().into(),
            self.access_key_2_state.as_str().into(),
        ]
    }
}

impl TableRow for ResourceRow {
    const COLUMNS: &'static [&'static str] = &[
        "resource_name",
        "resource_arn",
        "resource_type",
        "resource_tag_business_unit",
        "resource_tag_environment",
        "resource_tag_owner",
        "resource_tag_confidentiality",
        "resource_tag_integrity",
        "resource_tag_availability",
        "resource_tags",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        let tags = parse_tags(&self.resource_tags);
        vec![
            self.resource_name.as_str().into(),
            self.resource_arn.as_str().into(),
            self.resource_type.as_str().into(),
            tag_lookup(&tags, "business-unit").into(),
            tag_lookup(&tags, "environment").into(),
            tag_lookup(&tags, "owner").into(),
            tag_lookup(&tags, "confidentiality").into(),
            tag_lookup(&tags, "integrity").into(),
            tag_lookup(&tags, "availability").into(),
            self.resource_tags.as_str().into(),
        ]
    }
}

impl TableRow for AccessRow {
    const COLUMNS: &'static [&'static str] = &[
        "principal_name",
        "principal_arn",
        "principal_type",
        "service_name",
        "access_capability",
        "resource_arn",
        "conditional",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.principal_name.as_str().into(),
            self.principal_arn.as_str().into(),
            self.principal_type.as_str().into(),
            self.service_name.as_str().into(),
            self.access_capability.as_str().into(),
            self.resource_arn.as_str().into(),
            self.conditional.into(),
        ]
    }
}

impl TableRow for ResourceAccessRow {
    const COLUMNS: &'static [&'static str] = &[
        "service_name",
        "resource_name",
        "resource_arn",
        "access_capability",
        "principal_type",
        "principal_name",
        "principal_arn",
        "conditional",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.service_name.as_str().into(),
            self.resource_name.as_str().into(),
            self.resource_arn.as_str().into(),
            self.access_capability.as_str().into(),
            self.principal_type.as_str().into(),
            self.principal_name.as_str().into(),
            self.principal_arn.as_str().into(),
            self.conditional.into(),
        ]
    }
}

impl TableRow for DiffRow {
    const COLUMNS: &'static [&'static str] = &[
        "change",
        "kind",
        "principal_arn",
        "service_name",
        "access_capability",
        "resource_arn",
        "detail",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.change.as_str().into(),
            self.kind.as_str().into(),
            self.principal_arn.as_str().into(),
            self.service_name.as_str().into(),
            self.access_capability.as_str().into(),
            self.resource_arn.as_str().into(),
            self.detail.as_str().into(),
        ]
    }
}

impl TableRow for AdminEntry {
    const COLUMNS: &'static [&'static str] = &[
        "principal_name",
        "principal_type",
        "principal_arn",
        "reasons",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.principal_name.as_str().into(),
            self.principal_type.as_str().into(),
            self.principal_arn.as_str().into(),
            self.reasons.join("; ").into(),
        ]
    }
}

impl TableRow for ExternalAccessRow {
    const COLUMNS: &'static [&'static str] = &[
        "role_name",
        "trust_kind",
        "trusted_principal",
        "trusted_account",
        "conditions",
        "role_arn",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.role_name.as_str().into(),
            self.trust_kind.as_str().into(),
            self.trusted_principal.as_str().into(),
            self.trusted_account.as_deref().unwrap_or_default().into(),
            self.conditions.join("; ").into(),
            self.role_arn.as_str().into(),
        ]
    }
}

impl TableRow for EscalationRow {
    const COLUMNS: &'static [&'static str] = &[
        "principal_name",
        "principal_type",
        "path",
        "description",
        "conditional",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.principal_name.as_str().into(),
            self.principal_type.as_str().into(),
            self.path.as_str().into(),
            self.description.as_str().into(),
            self.conditional.into(),
        ]
    }
}

impl TableRow for RoleAssumer {
    const COLUMNS: &'static [&'static str] = &["role_arn", "principal_arn", "how", "conditional"];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.role_arn.as_str().into(),
            self.principal_arn.as_str().into(),
            self.how.as_str().into(),
            self.conditional.into(),
        ]
    }
}

impl TableRow for UnusedRow {
    const COLUMNS: &'static [&'static str] = &[
        "principal_name",
        "service_name",
        "capabilities",
        "principal_arn",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.principal_name.as_str().into(),
            self.service_name.as_str().into(),
            self.capabilities
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
                .into(),
            self.principal_arn.as_str().into(),
        ]
    }
}

impl TableRow for PrincipalFailure {
    const COLUMNS: &'static [&'static str] = &["principal_arn", "reason"];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.principal_arn.as_str().into(),
            self.reason.as_str().into(),
        ]
    }
}

impl TableRow for PolicyError {
    const COLUMNS: &'static [&'static str] = &["policy", "path", "message"];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.policy.as_str().into(),
            self.path.as_str().into(),
            self.message.as_str().into(),
        ]
    }
}

/// A report warning.
impl TableRow for String {
    const COLUMNS: &'static [&'static str] = &["warning"];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![self.as_str().into()]
    }
}

impl TableRow for ExposureRow {
    const COLUMNS: &'static [&'static str] = &[
        "resource_arn",
        "resource_type",
        "exposure",
        "principal",
        "external_account",
        "trusted_account",
        "access_capability",
        "status",
        "via",
        "scope",
        "condition",
        "finding_id",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.resource_arn.as_str().into(),
            self.resource_type.as_str().into(),
            self.kind.as_str().into(),
            self.principal.as_str().into(),
            self.external_account.as_str().into(),
            self.trusted.into(),
            self.access_capability.as_str().into(),
            self.status.as_str().into(),
            self.via.as_str().into(),
            self.scope.as_str().into(),
            self.condition.as_str().into(),
            self.finding_id.as_str().into(),
        ]
    }
}

impl TableRow for DataAccessRow {
    const COLUMNS: &'static [&'static str] = &[
        "resource_arn",
        "resource_type",
        "principal_arn",
        "principal_name",
        "principal_type",
        "service_name",
        "access_capability",
        "conditional",
        "via",
    ];
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            self.resource_arn.as_str().into(),
            self.resource_type.as_str().into(),
            self.principal_arn.as_str().into(),
            self.principal_name.as_str().into(),
            self.principal_type.as_str().into(),
            self.service_name.as_str().into(),
            self.access_capability.as_str().into(),
            self.conditional.into(),
            self.via.as_str().into(),
        ]
    }
}
