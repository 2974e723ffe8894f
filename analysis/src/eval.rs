//! One decision: may `principal` do `action` on `resource`? Follows AWS's policy evaluation
//! logic: explicit deny anywhere wins; SCPs must allow (except in the management account),
//! and so must resource control policies for a resource of a service they govern;
//! within one account an identity policy (limited by the permission boundary) or a
//! resource policy naming the principal grants; across accounts both sides must allow.
//! Conditions are evaluated in three-valued logic: without a request context a statement
//! with a condition is *conditional*, never a silent unconditional Allow.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use super::condition::{evaluate_all, RequestContext, Tri};
use super::error::{AnalysisError, ParseError};
use super::glob::{arn_account, substitute_variables, wildcard_match};
use super::model::{AccountModel, Principal, PrincipalKind};
use super::policy::{
    document_value, parse_document, ActionMatch, DocKind, Effect, PolicyDocument, PrincipalMatch,
    Principals, ResourceMatch, Statement,
};
use super::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyType {
    Scp,
    /// A resource control policy of the organisation.
    Rcp,
    ResourceBased,
    Identity,
    PermissionBoundary,
}

/// A statement that took part in the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidingStatement {
    pub policy: String,
    pub policy_type: PolicyType,
    pub statement_index: usize,
    pub sid: Option<String>,
    pub effect: Effect,
    /// The statement's conditions could not be decided with the given context.
    pub conditional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub decision: Decision,
    /// The decision depends on conditions that the given request context does not decide.
    pub conditional: bool,
    pub deciding_statements: Vec<DecidingStatement>,
    /// A rule of AWS's own that decided the request whatever the policies say (an AWS
    /// managed policy cannot be changed, `sts:GetCallerIdentity` is always allowed, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_rule: Option<String>,
    pub warnings: Vec<String>,
}

impl CheckResult {
    /// Allowed, and not only under undecided conditions.
    pub fn definitely_allowed(&self) -> bool {
        self.decision == Decision::Allowed && !self.conditional
    }
}

/// A resource-based policy (S3 bucket policy, Lambda function policy, ...).
#[derive(Debug, Clone)]
pub struct ResourcePolicy {
    pub resource: String,
    pub account: Option<String>,
    pub document: PolicyDocument,
}

/// Parses resource policies in either form: the IAMSpy file form,
/// `[{"Resource": ARN, "Policy": {...}, "Account": "..."}]`, or an account's resource
/// inventory (`resources.json`, an object with `Resources`; its policies belong to the
/// account in each ARN, or to none for S3, whose ARNs carry no account). A malformed
/// policy in an inventory is an error here: a decision must not silently skip it.
pub fn parse_resource_policies(bytes: &[u8]) -> Result<Vec<ResourcePolicy>, ParseError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))?;
    if v.get("Resources").is_some() {
        let inventory = crate::resources::ResourceInventory::parse(bytes)?;
        let mut out = Vec::with_capacity(inventory.resources.len());
        for r in inventory.resources {
            match r.policy {
                None => {}
                Some(Err(e)) => return Err(ParseError::structure(e.path, e.message)),
                Some(Ok(document)) => out.push(ResourcePolicy {
                    account: arn_account(&r.arn)
                        .filter(|a| !a.is_empty())
                        .map(str::to_string),
                    resource: r.arn,
                    document,
                }),
            }
        }
        return Ok(out);
    }
    let list = v.as_array().ok_or_else(|| {
        ParseError::structure("$", "must be a list of {Resource, Policy, Account}")
    })?;
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let p = format!("$[{i}]");
        let o = e
            .as_object()
            .ok_or_else(|| ParseError::structure(&p, "must be an object"))?;
        let resource = o
            .get("Resource")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ParseError::structure(format!("{p}.Resource"), "missing or not a string")
            })?
            .to_string();
        let account = match o.get("Account") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ParseError::structure(
                    format!("{p}.Account"),
                    "must be a string",
                ))
            }
        };
        let pv = o.get("Policy").unwrap_or(&Value::Null);
        let pp = format!("{p}.Policy");
        let doc = document_value(pv, &pp)
            .and_then(|d| parse_document(&d, &pp, DocKind::Resource))
            .map_err(|e| ParseError::structure(e.path, e.message))?;
        out.push(ResourcePolicy {
            resource,
            account,
            document: doc,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct ScpNode {
    id: String,
    policies: Vec<(String, PolicyDocument)>,
    children: Vec<ScpNode>,
}

/// Service control policies: an organization tree (root, OUs, accounts, each with its
/// policies) or a single SCP document (treated as attached directly to the account).
#[derive(Debug, Clone)]
pub struct Scps {
    /// sha256 of the file (part of principal digests when attached to a model)
    pub(crate) digest: [u8; 32],
    management_account: Option<String>,
    root: ScpNode,
    /// Single documents, not a tree.
    flat: bool,
}

fn parse_scp_node(v: &Value, path: &str) -> Result<ScpNode, ParseError> {
    let o = v
        .as_object()
        .ok_or_else(|| ParseError::structure(path, "must be an object"))?;
    let id = o
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut policies = Vec::new();
    if let Some(ps) = o.get("Policies") {
        let ps = ps
            .as_array()
            .ok_or_else(|| ParseError::structure(format!("{path}.Policies"), "must be a list"))?;
        for (i, p) in ps.iter().enumerate() {
            let pp = format!("{path}.Policies[{i}]");
            let po = p
                .as_object()
                .ok_or_else(|| ParseError::structure(&pp, "must be an object"))?;
            let name = po
                .get("Name")
                .or_else(|| po.get("Id"))
                .and_then(Value::as_str)
                .unwrap_or("scp")
                .to_string();
            let cp = format!("{pp}.Content");
            let doc = document_value(po.get("Content").unwrap_or(&Value::Null), &cp)
                .and_then(|d| parse_document(&d, &cp, DocKind::Scp))
                .map_err(|e| ParseError::structure(e.path, e.message))?;
            policies.push((name, doc));
        }
    }
    let mut children = Vec::new();
    if let Some(cs) = o.get("Children") {
        let cs = cs
            .as_array()
            .ok_or_else(|| ParseError::structure(format!("{path}.Children"), "must be a list"))?;
        for (i, c) in cs.iter().enumerate() {
            children.push(parse_scp_node(c, &format!("{path}.Children[{i}]"))?);
        }
    }
    Ok(ScpNode {
        id,
        policies,
        children,
    })
}

impl Scps {
    pub fn parse(bytes: &[u8]) -> Result<Scps, ParseError> {
        let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
        let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))?;
        let o = v
            .as_object()
            .ok_or_else(|| ParseError::structure("$", "must be an object"))?;
        if o.contains_key("Statement") {
            let doc = parse_document(&v, "$", DocKind::Scp)
                .map_err(|e| ParseError::structure(e.path, e.message))?;
            return Ok(Scps {
                digest,
                management_account: None,
                root: ScpNode {
                    id: String::new(),
                    policies: vec![("scp".into(), doc)],
                    children: Vec::new(),
                },
                flat: true,
            });
        }
        let management_account = o
            .get("Arn")
            .and_then(Value::as_str)
            .and_then(arn_account)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        Ok(Scps {
            digest,
            management_account,
            root: parse_scp_node(&v, "$")?,
            flat: false,
        })
    }

    /// Policies per level from the root to the account; None when SCPs do not apply.
    pub(crate) fn levels(&self, account: &str) -> Option<Vec<&[(String, PolicyDocument)]>> {
        if self.flat {
            return Some(vec![&self.root.policies]);
        }
        if self.management_account.as_deref() == Some(account) {
            return None; // SCPs never restrict the management account
        }
        fn find<'a>(n: &'a ScpNode, account: &str, path: &mut Vec<&'a ScpNode>) -> bool {
            path.push(n);
            if n.id == account {
                return true;
            }
            for c in &n.children {
                if find(c, account, path) {
                    return true;
                }
            }
            path.pop();
            false
        }
        let mut path = Vec::new();
        if !find(&self.root, account, &mut path) {
            return None; // the account is not in this organization
        }
        Some(path.into_iter().map(|n| n.policies.as_slice()).collect())
    }
}

/// Resource control policies: the same file formats as [`Scps`] (an organization tree of
/// RCPs, or one RCP document attached to the account). They limit what can be done to the
/// resources of the organisation's accounts, whoever asks, for the resource's account and
/// only for the services RCPs govern ([`RCP_SERVICES`]); the management account's
/// resources are not limited. AWS attaches `RCPFullAWSAccess` to every root, OU and
/// account and it cannot be detached, so only their denies decide (a deny wins).
pub type Rcps = Scps;

/// The services whose resources resource control policies govern (AWS, 2025).
pub const RCP_SERVICES: &[&str] = &[
    "s3",
    "sts",
    "kms",
    "sqs",
    "secretsmanager",
    "ecr",
    "aoss",
    "cognito-idp",
    "logs",
    "dynamodb",
];

/// What the organisation's RCPs say about one request to a resource.
#[derive(Debug)]
pub(crate) struct RcpVerdict {
    /// A statement denies (`Maybe`: under undecided conditions).
    pub deny: Tri,
    pub statements: Vec<DecidingStatement>,
    /// What decides it, for a report's `condition` column: the RCP and, for a statement
    /// under undecided conditions, its conditions (`RCP data-perimeter: denied if
    /// StringNotEquals aws:PrincipalOrgID = o-123`).
    pub reasons: Vec<String>,
}

/// What the organisation's RCPs say about one request to a resource of
/// `resource_account`. RCPs that do not govern the action's service, or trees without the
/// account (or whose management account it is), allow.
pub(crate) fn rcp_verdict(
    rcps: &[Rcps],
    resource_account: &str,
    action: &str,
    resource: &str,
    principal: (&str, &str),
    ctx: &RequestContext,
) -> RcpVerdict {
    let service = action.split(':').next().unwrap_or_default();
    let mut verdict = RcpVerdict {
        deny: Tri::No,
        statements: Vec::new(),
        reasons: Vec::new(),
    };
    // no RCPs (the usual case, on the exposure's per-action path): nothing to evaluate
    if rcps.is_empty() || !RCP_SERVICES.iter().any(|s| s.eq_ignore_ascii_case(service)) {
        return verdict;
    }
    let req = Req {
        action,
        resource,
        principal,
        ctx,
    };
    for tree in rcps {
        if let Some(levels) = tree.levels(resource_account) {
            for level in levels {
                let mut lr = LayerResult::default();
                for (name, doc) in level {
                    eval_doc(doc, name, PolicyType::Rcp, &req, &mut lr);
                }
                for d in lr.statements.iter().filter(|d| d.effect == Effect::Deny) {
                    let conditions = level
                        .iter()
                        .filter(|(name, _)| *name == d.policy)
                        .flat_map(|(_, doc)| doc.statements.iter())
                        .filter(|st| st.index == d.statement_index && d.conditional)
                        .flat_map(|st| st.conditions.iter())
                        .map(|c| format!("{} {} = {}", c.operator, c.key, c.values.join(",")))
                        .collect::<Vec<_>>();
                    verdict.reasons.push(if conditions.is_empty() {
                        format!("RCP {}: denied", d.policy)
                    } else {
                        format!("RCP {}: denied if {}", d.policy, conditions.join(" and "))
                    });
                }
                verdict.deny = verdict.deny.or(tri(lr.deny));
                verdict.statements.extend(lr.statements);
            }
        }
    }
    verdict
}

/// Extra inputs for a check.
#[derive(Debug, Clone, Default)]
pub struct CheckInputs {
    pub scps: Vec<Scps>,
    /// The organisation's resource control policies ([`Rcps`]).
    pub rcps: Vec<Rcps>,
    pub resource_policies: Vec<ResourcePolicy>,
}

fn action_matches(m: &ActionMatch, action: &str) -> bool {
    match m {
        ActionMatch::Action(l) => l.iter().any(|p| wildcard_match(p, action, true)),
        ActionMatch::NotAction(l) => !l.iter().any(|p| wildcard_match(p, action, true)),
    }
}

/// Resource element match, with policy variables substituted from the context. A variable
/// not in a closed context makes that pattern not match; in an open context it makes the
/// match `Maybe`.
fn resource_matches(m: &ResourceMatch, resource: &str, ctx: &RequestContext) -> Tri {
    let one = |p: &str| -> Tri {
        let look = |k: &str| ctx.first(k);
        match substitute_variables(p, &look, !ctx.closed) {
            Some((s, unknown)) => {
                if wildcard_match(&s, resource, false) {
                    if unknown {
                        Tri::Maybe
                    } else {
                        Tri::Yes
                    }
                } else {
                    Tri::No
                }
            }
            None => Tri::No,
        }
    };
    match m {
        ResourceMatch::Absent => Tri::Yes,
        ResourceMatch::Resource(l) => l.iter().fold(Tri::No, |a, p| a.or(one(p))),
        ResourceMatch::NotResource(l) => l.iter().fold(Tri::No, |a, p| a.or(one(p))).negate(),
    }
}

/// How a Principal element matches the requesting principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrincipalHit {
    None,
    /// Names the account (root or id): same account = delegation to IAM.
    Account,
    /// Names the principal itself, or everyone.
    Specific,
}

pub(crate) fn principal_hit(ps: &Principals, arn: &str, account: &str) -> PrincipalHit {
    if ps.any || ps.aws.iter().any(|a| a == "*") {
        return PrincipalHit::Specific;
    }
    let mut hit = PrincipalHit::None;
    for a in &ps.aws {
        if a == arn {
            return PrincipalHit::Specific;
        }
        if a == account || *a == format!("arn:aws:iam::{account}:root") {
            hit = PrincipalHit::Account;
        }
    }
    hit
}

fn statement_principal(st: &Statement, arn: &str, account: &str) -> PrincipalHit {
    match &st.principals {
        None => PrincipalHit::Specific,
        Some(PrincipalMatch::Principal(ps)) => principal_hit(ps, arn, account),
        Some(PrincipalMatch::NotPrincipal(ps)) => match principal_hit(ps, arn, account) {
            PrincipalHit::None => PrincipalHit::Specific,
            _ => PrincipalHit::None,
        },
    }
}

#[derive(Debug, Default)]
struct LayerResult {
    allow: Option<Tri>,
    /// Resource policies: allow through a statement naming the principal (or `*`).
    allow_specific: Option<Tri>,
    deny: Option<Tri>,
    statements: Vec<DecidingStatement>,
}

fn tri(o: Option<Tri>) -> Tri {
    o.unwrap_or(Tri::No)
}

/// The request being decided.
#[derive(Clone, Copy)]
struct Req<'a> {
    action: &'a str,
    resource: &'a str,
    /// (principal ARN, principal account)
    principal: (&'a str, &'a str),
    ctx: &'a RequestContext,
}

fn eval_doc(
    doc: &PolicyDocument,
    label: &str,
    ptype: PolicyType,
    req: &Req,
    out: &mut LayerResult,
) {
    let Req {
        action,
        resource,
        principal,
        ctx,
    } = *req;
    for st in &doc.statements {
        if !action_matches(&st.actions, action) {
            continue;
        }
        let r = resource_matches(&st.resources, resource, ctx);
        if r == Tri::No {
            continue;
        }
        let hit = if matches!(ptype, PolicyType::ResourceBased | PolicyType::Rcp) {
            statement_principal(st, principal.0, principal.1)
        } else {
            PrincipalHit::Specific
        };
        if hit == PrincipalHit::None {
            continue;
        }
        let c = r.and(evaluate_all(&st.conditions, ctx));
        if c == Tri::No {
            continue;
        }
        match st.effect {
            Effect::Allow => {
                out.allow = Some(tri(out.allow).or(c));
                if hit == PrincipalHit::Specific {
                    out.allow_specific = Some(tri(out.allow_specific).or(c));
                }
            }
            Effect::Deny => out.deny = Some(tri(out.deny).or(c)),
        }
        out.statements.push(DecidingStatement {
            policy: label.to_string(),
            policy_type: ptype,
            statement_index: st.index,
            sid: st.sid.clone(),
            effect: st.effect,
            conditional: c == Tri::Maybe,
        });
    }
}

/// The resource-policy layer of one request, alone: what [`crate::resources`] reads to say
/// what a resource allows principals outside the account (whose own policies are not seen).
#[derive(Debug, Default)]
pub(crate) struct ResourceLayer(LayerResult);

impl ResourceLayer {
    /// (allowed at all, only under undecided conditions): an allow and no deny that is
    /// certain; a conditional deny makes the allow conditional.
    pub(crate) fn outcome(&self) -> (bool, bool) {
        let allowed = tri(self.0.allow).and(tri(self.0.deny).negate());
        (allowed != Tri::No, allowed == Tri::Maybe)
    }

    /// The three answers of the layer: (allowed through a statement naming the principal
    /// or everyone, allowed through any statement (the principal's account too), denied).
    pub(crate) fn tris(&self) -> (Tri, Tri, Tri) {
        (
            tri(self.0.allow_specific),
            tri(self.0.allow),
            tri(self.0.deny),
        )
    }

    /// The statements that matched only conditionally: (statement index, effect).
    pub(crate) fn conditional_statements(&self) -> Vec<(usize, Effect)> {
        self.0
            .statements
            .iter()
            .filter(|s| s.conditional)
            .map(|s| (s.statement_index, s.effect))
            .collect()
    }
}

/// Evaluates a resource policy for one request of `principal` (ARN, account).
pub(crate) fn eval_resource_doc(
    doc: &PolicyDocument,
    label: &str,
    action: &str,
    resource: &str,
    principal: (&str, &str),
    ctx: &RequestContext,
    out: &mut ResourceLayer,
) {
    let req = Req {
        action,
        resource,
        principal,
        ctx,
    };
    eval_doc(doc, label, PolicyType::ResourceBased, &req, &mut out.0);
}

/// Does the principal's permissions boundary allow this request? `Yes` without a
/// boundary; `Maybe` when the boundary cannot be read (its principal's analysis reports
/// it).
pub(crate) fn boundary_allows(
    model: &AccountModel,
    p: &Principal,
    action: &str,
    resource: &str,
    ctx: &RequestContext,
) -> Tri {
    let mut warnings = Vec::new();
    match boundary_doc(model, p, &mut warnings) {
        Ok(None) => Tri::Yes,
        Ok(Some(d)) => match &model.doc(d).parsed {
            Ok(doc) => {
                let account = arn_account(&p.arn).unwrap_or_default();
                let req = Req {
                    action,
                    resource,
                    principal: (p.arn.as_str(), account),
                    ctx,
                };
                let mut out = LayerResult::default();
                eval_doc(doc, "", PolicyType::PermissionBoundary, &req, &mut out);
                tri(out.allow).and(tri(out.deny).negate())
            }
            Err(_) => Tri::Maybe,
        },
        Err(_) => Tri::Maybe,
    }
}

/// The keys AWS sets for every request of this principal.
pub(crate) fn principal_context(p: &Principal, account: &str, ctx: &mut RequestContext) {
    ctx.set_if_absent("aws:PrincipalArn", p.arn.clone());
    ctx.set_if_absent("aws:PrincipalAccount", account.to_string());
    match p.kind {
        PrincipalKind::User => {
            ctx.set_if_absent("aws:username", p.name.clone());
            ctx.set_if_absent("aws:PrincipalType", "User");
            if !p.id.is_empty() {
                ctx.set_if_absent("aws:userid", p.id.clone());
            }
        }
        PrincipalKind::Role => {
            ctx.set_if_absent("aws:PrincipalType", "AssumedRole");
        }
    }
    for (k, v) in &p.tags {
        ctx.set_if_absent(&format!("aws:PrincipalTag/{k}"), v.clone());
    }
}

/// The identity documents of a principal (own inline + attached, groups' inline + attached)
/// with their labels. Missing managed policies and groups give warnings.
pub(crate) fn identity_docs<'m>(
    model: &'m AccountModel,
    p: &'m Principal,
    warnings: &mut Vec<String>,
) -> Result<Vec<(usize, &'m str)>, AnalysisError> {
    let mut ids: Vec<usize> = Vec::new();
    let mut managed: Vec<&str> = Vec::new();
    ids.extend(p.inline.iter().map(|d| d.doc));
    managed.extend(p.managed.iter().map(String::as_str));
    for g in &p.groups {
        match model.group(g) {
            Some(gr) => {
                ids.extend(gr.inline.iter().map(|d| d.doc));
                managed.extend(gr.managed.iter().map(String::as_str));
            }
            None => warnings.push(format!(
                "group {g} is not in the account file; its policies are not counted"
            )),
        }
    }
    managed.sort_unstable();
    managed.dedup();
    for m in managed {
        match model.policy(m).and_then(|mp| mp.doc) {
            Some(d) => ids.push(d),
            None => warnings.push(format!(
                "managed policy {m} is attached but its document is not in the account file; its permissions are not counted"
            )),
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let d = model.doc(id);
        if let Err(e) = &d.parsed {
            return Err(AnalysisError::MalformedPolicy {
                principal: p.arn.clone(),
                error: e.clone(),
            });
        }
        out.push((id, d.label.as_str()));
    }
    Ok(out)
}

/// The boundary document, if any. `Ok(None)` = no boundary; a boundary whose document is
/// missing from the file is reported as a warning and treated as absent.
pub(crate) fn boundary_doc(
    model: &AccountModel,
    p: &Principal,
    warnings: &mut Vec<String>,
) -> Result<Option<usize>, AnalysisError> {
    let Some(arn) = &p.boundary else {
        return Ok(None);
    };
    match model.policy(arn).and_then(|m| m.doc) {
        Some(d) => {
            if let Err(e) = &model.doc(d).parsed {
                return Err(AnalysisError::MalformedPolicy {
                    principal: p.arn.clone(),
                    error: e.clone(),
                });
            }
            Ok(Some(d))
        }
        None => {
            warnings.push(format!(
                "permission boundary {arn} is not in the account file; the boundary is not applied"
            ));
            Ok(None)
        }
    }
}

fn resource_policy_applies(rp: &ResourcePolicy, resource: &str) -> bool {
    rp.resource == resource
        || (rp.resource.starts_with("arn:aws:s3:::")
            && !rp.resource.contains('/')
            && resource.len() > rp.resource.len()
            && resource.starts_with(rp.resource.as_str())
            && resource.as_bytes()[rp.resource.len()] == b'/')
}

/// AWS's fixed rules for resources AWS owns, which no policy of the account changes:
/// `Some((allowed, rule))` when one decides the request.
///
/// - `sts:GetCallerIdentity` is always allowed, even under an explicit deny;
/// - AWS managed policies (`arn:aws:iam::aws:policy/...`) can be read and attached, not
///   changed (no write, permissions-management or tagging action on them);
/// - service-linked roles (path `/aws-service-role/`) are changed only by their service:
///   the account may edit the description and request the deletion, nothing else;
/// - AWS-reserved roles (path `/aws-reserved/`, e.g. IAM Identity Center's) are changed
///   only by the service that made them;
/// - `alias/aws/...` KMS aliases belong to AWS managed keys: not created, moved or deleted.
pub(crate) fn aws_fixed_rule(
    catalog: &crate::Catalog,
    action: &str,
    resource: &str,
) -> Option<(bool, &'static str)> {
    use crate::catalog::AccessLevel;
    if action.eq_ignore_ascii_case("sts:GetCallerIdentity") {
        return Some((
            true,
            "sts:GetCallerIdentity needs no permission and cannot be denied",
        ));
    }
    let changes = || {
        catalog.action(action).is_some_and(|i| {
            !matches!(
                catalog.actions[i as usize].level,
                AccessLevel::List | AccessLevel::Read
            )
        })
    };
    let lower = action.to_ascii_lowercase();
    if resource.starts_with("arn:aws:iam::aws:policy/") && lower.starts_with("iam:") && changes() {
        return Some((
            false,
            "AWS managed policies cannot be changed by the account",
        ));
    }
    if let Some(path) = resource
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":role/"))
        .map(|(_, path)| path)
    {
        if lower.starts_with("iam:") && !lower.eq_ignore_ascii_case("iam:PassRole") && changes() {
            if path.starts_with("aws-service-role/")
                && !matches!(
                    lower.as_str(),
                    "iam:updateroledescription" | "iam:deleteservicelinkedrole"
                )
            {
                return Some((
                    false,
                    "service-linked roles are changed only by their service",
                ));
            }
            if path.starts_with("aws-reserved/") {
                return Some((
                    false,
                    "AWS-reserved roles are changed only by the service that made them",
                ));
            }
        }
    }
    if lower.starts_with("kms:")
        && matches!(
            lower.as_str(),
            "kms:createalias" | "kms:deletealias" | "kms:updatealias"
        )
        && resource.starts_with("arn:aws:kms:")
        && resource.contains(":alias/aws/")
    {
        return Some((false, "aws/ KMS aliases belong to AWS managed keys"));
    }
    None
}

/// Is `resource` a KMS key (not an alias)?
fn is_kms_key(resource: &str) -> bool {
    resource.starts_with("arn:aws:kms:") && resource.contains(":key/")
}

impl Engine {
    /// One decision. `context` holds request context keys; an empty context means "not
    /// known" (conditions then make the answer conditional); a non-empty one is taken as
    /// the complete request context (absent keys are absent).
    pub fn check(
        &self,
        model: &AccountModel,
        principal_arn: &str,
        action: &str,
        resource: &str,
        context: &[(String, String)],
        inputs: &CheckInputs,
    ) -> Result<CheckResult, AnalysisError> {
        if !action.contains(':') {
            return Err(AnalysisError::InvalidRequest(format!(
                "action {action:?} has no service prefix"
            )));
        }
        let p = model
            .principal(principal_arn)
            .ok_or_else(|| AnalysisError::UnknownPrincipal(principal_arn.to_string()))?;
        if let Some((allowed, rule)) = aws_fixed_rule(&self.catalog, action, resource) {
            return Ok(CheckResult {
                principal: p.arn.clone(),
                action: action.to_string(),
                resource: resource.to_string(),
                decision: if allowed {
                    Decision::Allowed
                } else {
                    Decision::ExplicitDeny
                },
                conditional: false,
                deciding_statements: Vec::new(),
                aws_rule: Some(rule.to_string()),
                warnings: Vec::new(),
            });
        }
        let account = arn_account(&p.arn).unwrap_or_default().to_string();
        let mut ctx = if context.is_empty() {
            RequestContext::open()
        } else {
            RequestContext::closed()
        };
        for (k, v) in context {
            ctx.add(k, v.clone());
        }
        principal_context(p, &account, &mut ctx);
        let mut warnings = Vec::new();
        let pinfo = (p.arn.as_str(), account.as_str());
        let req = Req {
            action,
            resource,
            principal: pinfo,
            ctx: &ctx,
        };

        // identity
        let mut id = LayerResult::default();
        for (docid, label) in identity_docs(model, p, &mut warnings)? {
            if let Ok(doc) = &model.doc(docid).parsed {
                eval_doc(doc, label, PolicyType::Identity, &req, &mut id);
            }
        }
        // boundary
        let mut bnd = LayerResult::default();
        let has_boundary = match boundary_doc(model, p, &mut warnings)? {
            Some(d) => {
                if let Ok(doc) = &model.doc(d).parsed {
                    let label = model.doc(d).label.clone();
                    eval_doc(doc, &label, PolicyType::PermissionBoundary, &req, &mut bnd);
                }
                true
            }
            None => false,
        };
        // SCPs
        let mut scp_allow = Tri::Yes;
        let mut scp = LayerResult::default();
        for tree in inputs.scps.iter().chain(model.scps.iter()) {
            if let Some(levels) = tree.levels(&account) {
                for level in levels {
                    let mut lr = LayerResult::default();
                    for (name, doc) in level {
                        eval_doc(doc, name, PolicyType::Scp, &req, &mut lr);
                    }
                    scp_allow = scp_allow.and(tri(lr.allow));
                    scp.deny = Some(tri(scp.deny).or(tri(lr.deny)));
                    scp.statements.extend(lr.statements);
                }
            }
        }
        // resource policies
        let mut rp = LayerResult::default();
        let mut resource_policy_given = false;
        // `aws` (AWS managed policies) is no other account: identity policies decide
        let mut resource_account = arn_account(resource)
            .filter(|a| !a.is_empty() && *a != "aws")
            .map(str::to_string);
        for r in inputs
            .resource_policies
            .iter()
            .filter(|r| resource_policy_applies(r, resource))
        {
            resource_policy_given = true;
            if resource_account.is_none() {
                resource_account = r.account.clone();
            }
            eval_doc(
                &r.document,
                &r.resource,
                PolicyType::ResourceBased,
                &req,
                &mut rp,
            );
        }
        let same_account = resource_account.as_deref().is_none_or(|a| a == account);
        // RCPs, for the resource's account
        let rcp = rcp_verdict(
            &inputs.rcps,
            resource_account.as_deref().unwrap_or(&account),
            action,
            resource,
            pinfo,
            &ctx,
        );
        let deny = tri(id.deny)
            .or(tri(bnd.deny))
            .or(tri(scp.deny))
            .or(tri(rp.deny))
            .or(rcp.deny);
        let boundary_ok = if has_boundary {
            tri(bnd.allow)
        } else {
            Tri::Yes
        };
        let identity_ok = tri(id.allow).and(boundary_ok);
        let kms_key = is_kms_key(resource);
        if kms_key && !resource_policy_given {
            warnings.push(format!(
                "no key policy given for {resource}: decided as if it had the default key policy (the account's IAM policies apply)"
            ));
        }
        let grant = if same_account {
            let rp_ok = match p.kind {
                PrincipalKind::User => tri(rp.allow_specific),
                PrincipalKind::Role => tri(rp.allow_specific).and(boundary_ok),
            };
            if kms_key && resource_policy_given {
                // A key's policy must allow: naming the principal grants on its own; naming
                // the account delegates to IAM, whose policies must then allow too.
                rp_ok.or(identity_ok.and(tri(rp.allow)))
            } else {
                identity_ok.or(rp_ok)
            }
        } else {
            identity_ok.and(tri(rp.allow))
        };
        let allowed = scp_allow.and(grant).and(deny.negate());
        let decision = if deny == Tri::Yes {
            Decision::ExplicitDeny
        } else if allowed == Tri::No {
            Decision::ImplicitDeny
        } else {
            Decision::Allowed
        };
        let mut statements = Vec::new();
        for l in [scp, rp, id, bnd] {
            statements.extend(l.statements);
        }
        statements.extend(rcp.statements);
        // on an explicit deny, the deny statements decided it
        if decision == Decision::ExplicitDeny {
            statements.retain(|s| s.effect == Effect::Deny && !s.conditional);
        }
        if decision == Decision::ImplicitDeny {
            statements.retain(|s| s.effect == Effect::Deny || !s.conditional);
        }
        Ok(CheckResult {
            principal: p.arn.clone(),
            action: action.to_string(),
            resource: resource.to_string(),
            decision,
            conditional: decision == Decision::Allowed && allowed == Tri::Maybe,
            deciding_statements: statements,
            aws_rule: None,
            warnings,
        })
    }

    /// All principals that are allowed (possibly conditionally when `strict` is false).
    pub fn who_can(
        &self,
        model: &AccountModel,
        action: &str,
        resource: &str,
        context: &[(String, String)],
        inputs: &CheckInputs,
        strict: bool,
    ) -> Result<Vec<String>, AnalysisError> {
        let mut out = Vec::new();
        for p in model.principals() {
            let r = self.check(model, &p.arn, action, resource, context, inputs)?;
            if r.decision == Decision::Allowed && (!strict || !r.conditional) {
                out.push(p.arn);
            }
        }
        Ok(out)
    }
}
