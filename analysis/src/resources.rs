//! The account's data stores and their resource-based policies: who outside the account
//! can reach them.
//!
//! The IAM source collects a **resource inventory** beside the authorization details
//! (`resources.json`, [`ResourceInventory::parse`]): for each S3 bucket, KMS key, SQS queue,
//! SNS topic, ... its policy, tags, and for buckets Block Public Access and the ACL grants
//! to everyone; for keys, their grants. [`external_access`] reads it as IAM Access Analyzer
//! reads an account: for every principal a resource policy (or ACL, or grant) names outside
//! the account, and for everyone (`*`), which capabilities the resource side allows, on the
//! same statement evaluation as [`crate::Engine::check`] (explicit deny wins, conditions
//! that the request does not decide make access *conditional*, shown with the condition).
//!
//! What it decides and what it cannot:
//! - **Public** means anyone, or any AWS account; **cross-account** names another account
//!   (or a principal in it). Cross-account access also needs the other account's own
//!   policies to allow it; those are not visible from here, so a row says what this
//!   account's resource allows (as Access Analyzer does).
//! - A bucket whose **Object Ownership** is `BucketOwnerEnforced` has its ACLs disabled:
//!   its ACL grants are kept, with status `blocked`.
//! - **Block Public Access** (the account's or the bucket's) `RestrictPublicBuckets` blocks
//!   every non-owner access through a public bucket policy, and `IgnorePublicAcls` the ACL
//!   grants to everyone: such rows are kept, with status `blocked`.
//! - Object-level grants are read per resource pattern the policy names inside the bucket
//!   (`arn:aws:s3:::b/public/*`); a deny on a narrower prefix does not remove a wider grant.
//! - Principals inside the account are not rows here: for them the resource policy adds to
//!   the IAM analysis (not done yet: the bulk analysis reads identity policies only).
//! - Canonical-user grantees other than everyone are not resolved to accounts (skipped).
//! - The organisation's **resource control policies**, when given
//!   ([`ResourceInventory::with_rcps`]), apply on top: access they deny is `blocked` (the
//!   RCP named in `condition`), access they deny under undecided conditions (the usual
//!   data perimeter: `aws:PrincipalOrgID` is not the organisation's) `conditional`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::Capability;
use crate::condition::{RequestContext, Tri};
use crate::error::{ParseError, PolicyError};
use crate::eval::{eval_resource_doc, rcp_verdict, Rcps, ResourceLayer};
use crate::glob::arn_account;
use crate::policy::{parse_document, DocKind, Effect, PolicyDocument, PrincipalMatch};
use crate::Engine;

/// The S3 Block Public Access settings (account or bucket), as `GetPublicAccessBlock` names
/// them. Absent settings are off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BlockPublicAccess {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// An S3 ACL grant as `GetBucketAcl` returns it, reduced to what the analysis reads:
/// `Grantee` is `AllUsers`, `AuthenticatedUsers` (the two groups AWS calls public) or a
/// canonical user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclGrant {
    pub grantee: String,
    /// `READ`, `WRITE`, `READ_ACP`, `WRITE_ACP` or `FULL_CONTROL`.
    pub permission: String,
}

/// A KMS grant (`ListGrants`): who may use the key for which operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KmsGrant {
    pub grantee_principal: String,
    /// `Decrypt`, `Encrypt`, `GenerateDataKey`, ... (without the `kms:` prefix).
    pub operations: Vec<String>,
}

/// One resource of the inventory, as collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawResource {
    arn: String,
    /// CloudFormation's type name: `AWS::S3::Bucket`, `AWS::KMS::Key`, ...
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    region: String,
    /// The policy document (an object, or the JSON text the service returns); null or
    /// absent when the resource has none.
    #[serde(default)]
    policy: Value,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    block_public_access: Option<BlockPublicAccess>,
    #[serde(default)]
    acl_grants: Vec<AclGrant>,
    /// S3 Object Ownership (`BucketOwnerEnforced`, `BucketOwnerPreferred`, `ObjectWriter`).
    #[serde(default)]
    object_ownership: Option<String>,
    #[serde(default)]
    grants: Vec<KmsGrant>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInventory {
    #[serde(default)]
    account_block_public_access: Option<BlockPublicAccess>,
    #[serde(default)]
    resources: Vec<RawResource>,
    /// What the collector could not read (access denied on one resource, a region that
    /// failed): carried into the account's report.
    #[serde(default)]
    warnings: Vec<String>,
}

/// One inventoried resource, its policy parsed.
#[derive(Debug, Clone)]
pub struct InventoriedResource {
    pub arn: String,
    /// `AWS::S3::Bucket`, `AWS::KMS::Key`, ...
    pub kind: String,
    pub region: String,
    /// `None`: no policy. `Some(Err)`: malformed, named in the report's policy errors and
    /// not evaluated.
    pub policy: Option<Result<PolicyDocument, PolicyError>>,
    pub tags: BTreeMap<String, String>,
    pub block_public_access: Option<BlockPublicAccess>,
    pub acl_grants: Vec<AclGrant>,
    /// S3 Object Ownership: `BucketOwnerEnforced` disables ACLs (their grants then give
    /// nothing).
    pub object_ownership: Option<String>,
    pub grants: Vec<KmsGrant>,
}

/// The account's resource inventory (`resources.json`).
#[derive(Debug, Clone, Default)]
pub struct ResourceInventory {
    pub account_block_public_access: Option<BlockPublicAccess>,
    pub resources: Vec<InventoriedResource>,
    pub warnings: Vec<String>,
    /// The organisation's resource control policies, when given (`worker analyze --rcp`):
    /// an access they deny is shown `blocked`, one they deny under undecided conditions
    /// `conditional`.
    pub rcps: Vec<Rcps>,
}

/// The file name of the inventory in a fixture directory and in the snapshot.
pub const RESOURCES_FILE: &str = "resources.json";

impl ResourceInventory {
    /// Reads `resources.json`. A file that is not the inventory's shape is an error naming
    /// where; a malformed policy of one resource is not (it becomes that resource's
    /// [`PolicyError`], and the report lists it).
    pub fn parse(bytes: &[u8]) -> Result<ResourceInventory, ParseError> {
        let raw: RawInventory = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ParseError::structure(
                    format!("$ (line {} column {})", e.line(), e.column()),
                    format!("not a resource inventory: {e}"),
                )
            } else {
                ParseError::from_json(&e)
            }
        })?;
        let mut resources = Vec::with_capacity(raw.resources.len());
        for (i, r) in raw.resources.into_iter().enumerate() {
            if !r.arn.starts_with("arn:") {
                return Err(ParseError::structure(
                    format!("$.Resources[{i}].Arn"),
                    format!("{:?} is not an ARN", r.arn),
                ));
            }
            let path = format!("$.Resources[{i}].Policy");
            let policy = match &r.policy {
                Value::Null => None,
                Value::String(s) if s.trim().is_empty() => None,
                v => Some(parse_policy(v, &path, &r.arn)),
            };
            resources.push(InventoriedResource {
                arn: r.arn,
                kind: r.kind,
                region: r.region,
                policy,
                tags: r.tags,
                block_public_access: r.block_public_access,
                acl_grants: r.acl_grants,
                object_ownership: r.object_ownership,
                grants: r.grants,
            });
        }
        resources.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(ResourceInventory {
            account_block_public_access: raw.account_block_public_access,
            resources,
            warnings: raw.warnings,
            rcps: Vec::new(),
        })
    }

    /// Attaches the organisation's resource control policies.
    pub fn with_rcps(mut self, rcps: Vec<Rcps>) -> ResourceInventory {
        self.rcps = rcps;
        self
    }

    /// The policy errors of the inventory's resources.
    pub fn policy_errors(&self) -> Vec<PolicyError> {
        self.resources
            .iter()
            .filter_map(|r| match &r.policy {
                Some(Err(e)) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }
}

fn parse_policy(v: &Value, path: &str, arn: &str) -> Result<PolicyDocument, PolicyError> {
    let err = |path: String, message: String| PolicyError {
        policy: format!("resource policy of {arn}"),
        path,
        message,
    };
    let doc = match v {
        // The services return the policy as JSON text (never URL-encoded, unlike IAM's).
        Value::String(s) => serde_json::from_str::<Value>(s).map_err(|e| {
            err(
                path.to_string(),
                format!("policy document is not valid JSON: {e}"),
            )
        })?,
        Value::Object(_) => v.clone(),
        _ => {
            return Err(err(
                path.to_string(),
                "must be a policy document (object or JSON text)".into(),
            ))
        }
    };
    parse_document(&doc, path, DocKind::Resource).map_err(|e| err(e.path, e.message))
}

/// Who outside the account a row is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureKind {
    /// Anyone, or any AWS account.
    Public,
    /// A named account other than this one, or a principal in it.
    CrossAccount,
}

impl ExposureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureKind::Public => "public",
            ExposureKind::CrossAccount => "cross-account",
        }
    }
}

/// Whether the access in a row is in force.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureStatus {
    /// Allowed without conditions.
    Open,
    /// Allowed only under conditions the analysis cannot decide (shown in `condition`).
    Conditional,
    /// Granted by the policy or ACL, but S3 Block Public Access overrides it.
    Blocked,
}

impl ExposureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureStatus::Open => "open",
            ExposureStatus::Conditional => "conditional",
            ExposureStatus::Blocked => "blocked",
        }
    }
}

/// A row of `public-and-cross-account.csv`: one capability on one resource for one
/// external principal (or everyone), through one mechanism.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExposureRow {
    pub resource_arn: String,
    pub resource_type: String,
    pub kind: ExposureKind,
    /// `*` for everyone; otherwise the account id or principal ARN the policy names.
    pub principal: String,
    /// `*` for public rows; the 12-digit account otherwise.
    pub external_account: String,
    /// The customer lists the account as a known partner (`trusted_accounts`).
    pub trusted: bool,
    pub access_capability: Capability,
    pub status: ExposureStatus,
    /// `bucket policy`, `bucket ACL`, `key policy`, `KMS grant`, or `resource policy`.
    pub via: String,
    /// The resources within (object prefixes of a bucket) the access reaches, `;`-joined.
    pub scope: String,
    /// The undecided conditions (status `conditional`) or what blocks it (`blocked`).
    pub condition: String,
    /// Stable across nights: a digest of resource, principal, capability and mechanism.
    pub finding_id: String,
}

/// Totals of [`external_access`] for the report and the morning review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExposureTotals {
    /// Resources with open public access.
    pub public_resources: usize,
    /// Resources with open access from another account (not public).
    pub cross_account_resources: usize,
    /// Of those, resources open to an account the customer does not list as trusted.
    pub untrusted_account_resources: usize,
}

impl ExposureTotals {
    pub fn of(rows: &[ExposureRow]) -> ExposureTotals {
        let mut public = BTreeSet::new();
        let mut cross = BTreeSet::new();
        let mut untrusted = BTreeSet::new();
        for r in rows.iter().filter(|r| r.status == ExposureStatus::Open) {
            match r.kind {
                ExposureKind::Public => {
                    public.insert(r.resource_arn.as_str());
                }
                ExposureKind::CrossAccount => {
                    cross.insert(r.resource_arn.as_str());
                    if !r.trusted {
                        untrusted.insert(r.resource_arn.as_str());
                    }
                }
            }
        }
        ExposureTotals {
            public_resources: public.len(),
            cross_account_resources: cross.len(),
            untrusted_account_resources: untrusted.len(),
        }
    }
}

/// An external principal a resource names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct External {
    kind: ExposureKind,
    /// As written (`*`, an account id, an ARN).
    principal: String,
    account: String,
}

/// The principal ARN the public candidate is evaluated as: no policy names it, so only
/// statements for everyone (`*`, or `NotPrincipal` lists) apply to it.
const ANYONE: &str = "arn:aws:iam::anonymous:anyone";

fn account_of_principal(p: &str) -> Option<String> {
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Some(p.to_string());
    }
    arn_account(p).filter(|a| !a.is_empty()).map(str::to_string)
}

/// The external principals a resource policy's Allow statements name.
fn externals_of(doc: &PolicyDocument, own_account: &str) -> BTreeSet<External> {
    let mut out = BTreeSet::new();
    for st in doc.statements.iter().filter(|s| s.effect == Effect::Allow) {
        match &st.principals {
            None | Some(PrincipalMatch::NotPrincipal(_)) => {
                out.insert(public());
            }
            Some(PrincipalMatch::Principal(ps)) => {
                if ps.any || ps.aws.iter().any(|a| a == "*") {
                    out.insert(public());
                }
                for a in ps.aws.iter().filter(|a| *a != "*") {
                    match account_of_principal(a) {
                        Some(acct) if acct != own_account => {
                            out.insert(External {
                                kind: ExposureKind::CrossAccount,
                                principal: a.clone(),
                                account: acct,
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

fn public() -> External {
    External {
        kind: ExposureKind::Public,
        principal: "*".into(),
        account: "*".into(),
    }
}

/// The resources a policy of `arn` can grant on: the resource itself and, for a bucket,
/// each object pattern its statements name inside it.
fn scopes_of(doc: &PolicyDocument, arn: &str) -> Vec<String> {
    use crate::policy::ResourceMatch;
    let mut out = BTreeSet::new();
    out.insert(arn.to_string());
    if arn.starts_with("arn:aws:s3:::") && !arn.contains('/') {
        let inside = format!("{arn}/");
        for st in &doc.statements {
            if let ResourceMatch::Resource(l) = &st.resources {
                for p in l.iter().filter(|p| p.starts_with(&inside)) {
                    out.insert(p.clone());
                }
            }
            if matches!(st.resources, ResourceMatch::Resource(ref l) if l.iter().any(|p| p == "*"))
            {
                out.insert(format!("{arn}/*"));
            }
        }
    }
    out.into_iter().collect()
}

/// One (capability, scope) outcome being folded into a row.
#[derive(Default)]
struct Fold {
    open: bool,
    conditional: bool,
    scopes: BTreeSet<String>,
    conditions: BTreeSet<String>,
    /// Granted, but the organisation's RCPs deny it: why.
    rcp_blocked: BTreeSet<String>,
}

impl Fold {
    /// Folds in one action the resource side allows (`conditional`: only under undecided
    /// conditions, `conditions` says which), passed through the organisation's RCPs.
    fn add(
        &mut self,
        scope: &str,
        conditional: bool,
        conditions: Vec<String>,
        rcp: &crate::eval::RcpVerdict,
    ) {
        self.scopes.insert(scope.to_string());
        match rcp.deny.negate() {
            Tri::No => {
                self.rcp_blocked.extend(rcp.reasons.iter().cloned());
            }
            Tri::Maybe => {
                self.conditional = true;
                self.conditions.extend(conditions);
                self.conditions.extend(rcp.reasons.iter().cloned());
            }
            Tri::Yes if conditional => {
                self.conditional = true;
                self.conditions.extend(conditions);
            }
            Tri::Yes => self.open = true,
        }
    }
}

fn describe_conditions(doc: &PolicyDocument, indices: &[(usize, Effect)]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, effect) in indices {
        if let Some(st) = doc.statements.iter().find(|s| s.index == *i) {
            for c in &st.conditions {
                let text = format!("{} {} = {}", c.operator, c.key, c.values.join(","));
                out.push(match effect {
                    Effect::Allow => text,
                    Effect::Deny => format!("denied if {text}"),
                });
            }
        }
    }
    out
}

/// The external access of every inventoried resource (rows sorted, one per resource,
/// principal, capability and mechanism). `trusted` lists the customer's known partners.
pub fn external_access(
    engine: &Engine,
    inventory: &ResourceInventory,
    own_account: &str,
    trusted: &[String],
) -> Vec<ExposureRow> {
    let mut rows = Vec::new();
    for r in &inventory.resources {
        let bpa_restrict = r.kind == "AWS::S3::Bucket"
            && (inventory
                .account_block_public_access
                .is_some_and(|b| b.restrict_public_buckets)
                || r.block_public_access
                    .is_some_and(|b| b.restrict_public_buckets));
        let bpa_ignore_acls = r.kind == "AWS::S3::Bucket"
            && (inventory
                .account_block_public_access
                .is_some_and(|b| b.ignore_public_acls)
                || r.block_public_access.is_some_and(|b| b.ignore_public_acls));
        let acls_disabled = r.object_ownership.as_deref() == Some("BucketOwnerEnforced");
        let mut per: BTreeMap<(External, Capability, &'static str), Fold> = BTreeMap::new();
        if let Some(Ok(doc)) = &r.policy {
            policy_access(engine, inventory, r, doc, own_account, &mut per);
        }
        acl_access(engine, inventory, own_account, r, &mut per);
        grant_access(engine, inventory, r, own_account, &mut per);

        // S3 calls a bucket policy public when it grants everyone without a condition
        // that fixes who may call; RestrictPublicBuckets then blocks all non-owner access
        // through that policy.
        let policy_public = per
            .iter()
            .any(|((e, _, via), f)| e.kind == ExposureKind::Public && *via == POLICY && f.open);
        let resource_type = r.kind.clone();
        for ((ext, capability, via), fold) in per {
            let (status, condition) = if via == POLICY && bpa_restrict && policy_public {
                (
                    ExposureStatus::Blocked,
                    "Block Public Access: RestrictPublicBuckets".to_string(),
                )
            } else if via == ACL && acls_disabled {
                (
                    ExposureStatus::Blocked,
                    "Object Ownership: BucketOwnerEnforced (ACLs disabled)".to_string(),
                )
            } else if via == ACL && bpa_ignore_acls {
                (
                    ExposureStatus::Blocked,
                    "Block Public Access: IgnorePublicAcls".to_string(),
                )
            } else if fold.open {
                (ExposureStatus::Open, String::new())
            } else if fold.conditional {
                (
                    ExposureStatus::Conditional,
                    fold.conditions.into_iter().collect::<Vec<_>>().join("; "),
                )
            } else if !fold.rcp_blocked.is_empty() {
                (
                    ExposureStatus::Blocked,
                    fold.rcp_blocked.into_iter().collect::<Vec<_>>().join("; "),
                )
            } else {
                continue;
            };
            let via_name = via_label(via, &r.kind);
            rows.push(ExposureRow {
                finding_id: finding_id(&r.arn, &ext.principal, capability, &via_name),
                resource_arn: r.arn.clone(),
                resource_type: resource_type.clone(),
                kind: ext.kind,
                trusted: ext.kind == ExposureKind::CrossAccount && trusted.contains(&ext.account),
                principal: ext.principal,
                external_account: ext.account,
                access_capability: capability,
                status,
                via: via_name,
                scope: fold.scopes.into_iter().collect::<Vec<_>>().join(";"),
                condition,
            });
        }
    }
    rows.sort();
    rows
}

const POLICY: &str = "policy";
const ACL: &str = "acl";
const GRANT: &str = "grant";

fn via_label(via: &str, kind: &str) -> String {
    match (via, kind) {
        (POLICY, "AWS::S3::Bucket") => "bucket policy".into(),
        (POLICY, "AWS::KMS::Key") => "key policy".into(),
        (POLICY, _) => "resource policy".into(),
        (ACL, _) => "bucket ACL".into(),
        _ => "KMS grant".into(),
    }
}

fn finding_id(resource: &str, principal: &str, capability: Capability, via: &str) -> String {
    let mut h = Sha256::new();
    for part in [resource, principal, capability.as_str(), via] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("ex-{}", &hex::encode(h.finalize())[..16])
}

fn policy_access(
    engine: &Engine,
    inventory: &ResourceInventory,
    r: &InventoriedResource,
    doc: &PolicyDocument,
    own_account: &str,
    per: &mut BTreeMap<(External, Capability, &'static str), Fold>,
) {
    let catalog = &engine.catalog;
    for ext in externals_of(doc, own_account) {
        let mut ctx = RequestContext::open();
        // The account the request comes from, as the source-owner keys name it: a
        // statement limited to the own account's sources (the default SNS topic policy:
        // everyone, if `AWS:SourceOwner` is the account) grants outsiders nothing.
        let source = match ext.kind {
            ExposureKind::Public => "anonymous".to_string(),
            ExposureKind::CrossAccount => ext.account.clone(),
        };
        ctx.set("aws:SourceOwner", source.clone());
        ctx.set("aws:SourceAccount", source);
        let (arn, account) = match ext.kind {
            ExposureKind::Public => (ANYONE.to_string(), String::new()),
            ExposureKind::CrossAccount => {
                ctx.set("aws:PrincipalAccount", ext.account.clone());
                let arn = if ext.principal.starts_with("arn:") {
                    ext.principal.clone()
                } else {
                    format!("arn:aws:iam::{}:root", ext.account)
                };
                if !arn.ends_with(":root") {
                    ctx.set("aws:PrincipalArn", arn.clone());
                }
                (arn, ext.account.clone())
            }
        };
        for scope in scopes_of(doc, &r.arn) {
            let Some((_, actions)) = catalog.resource_type_of(&scope) else {
                continue;
            };
            for action in actions.iter() {
                let info = &catalog.actions[action as usize];
                let mut layer = ResourceLayer::default();
                eval_resource_doc(
                    doc,
                    &r.arn,
                    &info.full_name,
                    &scope,
                    (&arn, &account),
                    &ctx,
                    &mut layer,
                );
                let (allowed, conditional) = layer.outcome();
                if !allowed {
                    continue;
                }
                let rcp = rcp_verdict(
                    &inventory.rcps,
                    own_account,
                    &info.full_name,
                    &scope,
                    (&arn, &account),
                    &ctx,
                );
                let conditions = if conditional {
                    describe_conditions(doc, &layer.conditional_statements())
                } else {
                    Vec::new()
                };
                per.entry((ext.clone(), info.capability, POLICY))
                    .or_default()
                    .add(&scope, conditional, conditions, &rcp);
            }
        }
    }
}

/// Bucket ACL grants to everyone (`AllUsers`) or to any AWS account (`AuthenticatedUsers`).
fn acl_access(
    engine: &Engine,
    inventory: &ResourceInventory,
    own_account: &str,
    r: &InventoriedResource,
    per: &mut BTreeMap<(External, Capability, &'static str), Fold>,
) {
    let ctx = RequestContext::open();
    for g in &r.acl_grants {
        let everyone = g.grantee.ends_with("AllUsers") || g.grantee.ends_with("AuthenticatedUsers");
        if !everyone {
            continue;
        }
        // What each ACL permission allows, as the S3 documentation maps them to actions.
        let actions: &[&str] = match g.permission.as_str() {
            "READ" => &["s3:ListBucket", "s3:GetObject"],
            "WRITE" => &["s3:PutObject", "s3:DeleteObject"],
            "READ_ACP" => &["s3:GetBucketAcl"],
            "WRITE_ACP" => &["s3:PutBucketAcl"],
            "FULL_CONTROL" => &[
                "s3:ListBucket",
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:GetBucketAcl",
                "s3:PutBucketAcl",
            ],
            _ => &[],
        };
        for a in actions {
            if let Some(i) = engine.catalog.action(a) {
                let cap = engine.catalog.actions[i as usize].capability;
                let rcp = rcp_verdict(&inventory.rcps, own_account, a, &r.arn, (ANYONE, ""), &ctx);
                per.entry((public(), cap, ACL))
                    .or_default()
                    .add(&r.arn, false, Vec::new(), &rcp);
            }
        }
    }
}

/// KMS grants to principals of other accounts.
fn grant_access(
    engine: &Engine,
    inventory: &ResourceInventory,
    r: &InventoriedResource,
    own_account: &str,
    per: &mut BTreeMap<(External, Capability, &'static str), Fold>,
) {
    let ctx = RequestContext::open();
    for g in &r.grants {
        let Some(account) = account_of_principal(&g.grantee_principal) else {
            continue;
        };
        if account == own_account {
            continue;
        }
        let ext = External {
            kind: ExposureKind::CrossAccount,
            principal: g.grantee_principal.clone(),
            account,
        };
        for op in &g.operations {
            let action = format!("kms:{op}");
            if let Some(i) = engine.catalog.action(&action) {
                let cap = engine.catalog.actions[i as usize].capability;
                let rcp = rcp_verdict(
                    &inventory.rcps,
                    own_account,
                    &action,
                    &r.arn,
                    (&g.grantee_principal, &ext.account),
                    &ctx,
                );
                per.entry((ext.clone(), cap, GRANT)).or_default().add(
                    &r.arn,
                    false,
                    Vec::new(),
                    &rcp,
                );
            }
        }
    }
}
