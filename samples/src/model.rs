//! The in-memory model of one generated account, before it is written out in AWS's formats.

use super::json::J;

/// An inline policy (on a user, group or role).
#[derive(Debug, Clone)]
pub(crate) struct Inline {
    pub name: String,
    pub doc: J,
}

#[derive(Debug, Clone)]
pub(crate) struct PolicyVersion {
    pub id: String,
    pub doc: J,
    pub created: String,
}

/// A managed policy: customer managed, or AWS managed (`aws == true`).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub id: String,
    pub aws: bool,
    pub versions: Vec<PolicyVersion>,
    /// Index into `versions` of the default version.
    pub default: usize,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    Active,
    Stale,
    Never,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessKey {
    pub active: bool,
    pub rotated: i64,
    /// (date, region, service namespace)
    pub last_used: Option<(i64, String, String)>,
}

/// What the credential report says about a user.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// `Some((last_used, last_changed))` when a console password is set.
    pub password: Option<(Option<i64>, i64)>,
    pub mfa: bool,
    pub keys: [Option<AccessKey>; 2],
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    pub groups: Vec<usize>,
    pub attached: Vec<usize>,
    pub inline: Vec<Inline>,
    pub boundary: Option<usize>,
    pub tags: Vec<(String, String)>,
    pub last_used: Option<i64>,
    pub activity: Activity,
    pub creds: Credentials,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    pub attached: Vec<usize>,
    pub inline: Vec<Inline>,
}

#[derive(Debug, Clone)]
pub(crate) struct InstanceProfile {
    pub name: String,
    pub id: String,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    pub trust: J,
    pub instance_profile: Option<InstanceProfile>,
    pub attached: Vec<usize>,
    pub inline: Vec<Inline>,
    pub boundary: Option<usize>,
    pub tags: Vec<(String, String)>,
    pub last_used: Option<i64>,
    pub activity: Activity,
}

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub account_id: String,
    pub seed: u64,
    pub region: String,
    /// When the snapshot was taken (unix seconds); every date is before it.
    pub now: i64,
    pub account_created: i64,
    pub root_password_last_used: Option<i64>,
    /// Account password policy: maximum password age in days, if any.
    pub max_password_age_days: Option<i64>,
    pub policies: Vec<Policy>,
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
}

/// Unix seconds as `2026-03-14T10:22:31+00:00` (the CLI's and the credential report's form).
pub(crate) fn iso(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
