//! Who inside the account can reach each inventoried data store: identity and resource
//! policies evaluated together, as AWS does for a request within one account.
//!
//! [`crate::resources::external_access`] answers for principals outside the account; this
//! module answers for the account's own users and roles, per inventoried resource (bucket,
//! key, queue, ...) and capability:
//!
//! - **Identity policies** come from the bulk analysis ([`PrincipalAnalysis::grants`],
//!   already after the principal's own denies and boundary). A grant counts on a resource
//!   when its pattern matches the resource, or, for a bucket, reaches objects inside it.
//! - **A resource policy naming the principal** grants on its own (same account). For a
//!   role its permissions boundary still applies; for a user named directly it does not
//!   (AWS's rule for same-account resource policies).
//! - **KMS** is the exception: a key's policy must allow, either by naming the principal or
//!   by naming the account (delegation), and then the identity policies must allow too. A
//!   key whose policy does not delegate gives identity grants nothing.
//! - **An explicit deny** in the resource policy (for the principal, or everyone) removes
//!   what either side allowed; a deny under conditions makes it conditional.
//! - **Resource control policies** of the organisation, when given, apply on top: what
//!   they deny is not a row, what they deny under undecided conditions is conditional.
//! - Each row says **via** which side it was allowed: `identity policy`, the resource's
//!   policy (`bucket policy`, `key policy`, `resource policy`), or both.
//!
//! Not repeated per resource: principals whose identity policies reach a resource only
//! through a grant on every resource of its type ([`is_broad`]: `*`, `arn:aws:s3:::*`,
//! `arn:aws:kms:*:111122223333:key/*`, ...). Listing them for every resource would grow as
//! principals x resources (in the benchmark's account, 650,000 rows for 2,000 buckets);
//! `principal-access-summaries.csv` has their grants once, with the pattern, and
//! `resource-access-summaries.csv` lists `*` once (a deny or a non-delegating key policy of
//! one resource is not applied to those rows). A principal evaluated for a resource for
//! another reason counts its broad grants there too. Statements for everyone (`*`) are public access and are in
//! `public-and-cross-account.csv`, not repeated here for every internal principal.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::access::{Grant, PrincipalAnalysis};
use crate::catalog::{ActionSet, Capability, Catalog};
use crate::condition::{RequestContext, Tri};
use crate::eval::{
    boundary_allows, eval_resource_doc, principal_context, rcp_verdict, Rcps, ResourceLayer,
};
use crate::glob::{arn_account, pattern_covers, pattern_intersect, wildcard_match};
use crate::model::{AccountModel, PrincipalKind};
use crate::policy::{Effect, PolicyDocument, PrincipalMatch};
use crate::resources::{InventoriedResource, ResourceInventory};
use crate::Engine;

/// A row of the report's "Data access" section: one capability of one principal of the
/// account on one inventoried resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DataAccessRow {
    pub resource_arn: String,
    pub resource_type: String,
    pub principal_arn: String,
    pub principal_name: String,
    pub principal_type: String,
    pub service_name: String,
    pub access_capability: Capability,
    /// Only under conditions not decided without a request.
    pub conditional: bool,
    /// `identity policy`, `bucket policy` (`key policy`, `resource policy`), or both
    /// joined by ` + `.
    pub via: String,
}

const IDENTITY: u8 = 1;
const RESOURCE: u8 = 2;

/// One (principal, capability) outcome being folded over the actions and scopes.
#[derive(Default, Clone, Copy)]
struct Fold {
    allowed: Option<Tri>,
    via: u8,
}

/// The scopes of a resource the actions take: the resource itself and, for a bucket, its
/// objects (`arn:aws:s3:::b/*`).
fn scopes_of(r: &InventoriedResource) -> Vec<String> {
    let mut out = vec![r.arn.clone()];
    if r.kind == "AWS::S3::Bucket" && !r.arn.contains('/') {
        out.push(format!("{}/*", r.arn));
    }
    out
}

/// Does `g`'s resource pattern reach `scope`? The resource itself: the pattern must match
/// it. Objects of a bucket (`b/*`): any object pattern inside it reaches some of them.
fn grant_reaches(g: &Grant, scope: &str) -> bool {
    if scope.ends_with("/*") {
        match pattern_intersect(&g.resource, scope) {
            Some(within) => !g.except.iter().any(|e| pattern_covers(e, within)),
            None => false,
        }
    } else {
        wildcard_match(&g.resource, scope, false)
            && !g.except.iter().any(|e| wildcard_match(e, scope, false))
    }
}

/// The actions of a grant, as catalog indices.
fn grant_actions(cat: &Catalog, g: &Grant) -> Vec<u32> {
    if g.actions.is_empty() {
        match cat.service(&g.service) {
            Some(s) => (s.first..s.end)
                .filter(|i| cat.actions[*i as usize].capability == g.capability)
                .collect(),
            None => Vec::new(),
        }
    } else {
        g.actions.iter().filter_map(|a| cat.action(a)).collect()
    }
}

/// The principals of the account that Allow statements of a resource policy name by ARN
/// (not the account itself, which delegates to IAM, and not everyone).
fn named_internal(doc: &PolicyDocument, own_account: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for st in doc.statements.iter().filter(|s| s.effect == Effect::Allow) {
        if let Some(PrincipalMatch::Principal(ps)) = &st.principals {
            for a in &ps.aws {
                if a.starts_with("arn:")
                    && !a.ends_with(":root")
                    && arn_account(a) == Some(own_account)
                {
                    out.insert(a.clone());
                }
            }
        }
    }
    out
}

fn via_name(kind: &str) -> &'static str {
    match kind {
        "AWS::S3::Bucket" => "bucket policy",
        "AWS::KMS::Key" => "key policy",
        _ => "resource policy",
    }
}

/// Does `pattern` reach every resource of its type: `*`, or an ARN whose resource part is
/// a type prefix and then any name (`arn:aws:s3:::*`, `arn:aws:s3:::*/*`,
/// `arn:aws:s3:::*/*aws-glue-*/*`, `arn:aws:kms:eu-west-1:111122223333:key/*`,
/// `arn:aws:sqs:*:*:*`)? `arn:aws:s3:::logs-*` and `arn:aws:s3:::*-logs` name some
/// buckets: not broad.
pub fn is_broad(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let segments: Vec<&str> = pattern.splitn(6, ':').collect();
    let [_, _, service, _, _, resource] = segments.as_slice() else {
        return false;
    };
    // S3's resource part is the bucket name itself (no type prefix): `b/*` names a bucket
    let rest = match resource.find(['/', ':']).filter(|_| *service != "s3") {
        Some(i)
            if resource[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            &resource[i + 1..]
        }
        _ => resource,
    };
    // any name: `*`, `*/*`, `*/*aws-glue-*/*` (some objects of every bucket)
    rest.split('/').next() == Some("*")
}

/// Grants of the analysed principals, indexed so that a resource finds the grants that can
/// reach it without scanning all of them. Broad grants ([`is_broad`]) are left out.
struct GrantIndex<'a> {
    /// Literal resources.
    literal: HashMap<&'a str, Vec<&'a PrincipalAnalysis>>,
    /// Patterns, by the literal text before their first wildcard.
    by_prefix: HashMap<&'a str, Vec<&'a PrincipalAnalysis>>,
    /// Every pattern, sorted: the ones inside a resource (`b/`...) are a range.
    sorted: BTreeMap<&'a str, Vec<&'a PrincipalAnalysis>>,
}

impl<'a> GrantIndex<'a> {
    fn new(results: &[&'a PrincipalAnalysis]) -> GrantIndex<'a> {
        let mut index = GrantIndex {
            literal: HashMap::new(),
            by_prefix: HashMap::new(),
            sorted: BTreeMap::new(),
        };
        for r in results {
            for g in r.grants.iter().filter(|g| !is_broad(&g.resource)) {
                let res = g.resource.as_str();
                match res.find(['*', '?']) {
                    None => index.literal.entry(res).or_default().push(r),
                    Some(i) => index.by_prefix.entry(&res[..i]).or_default().push(r),
                }
                index.sorted.entry(res).or_default().push(r);
            }
        }
        index
    }

    /// The principals with a grant that may reach `arn` or something inside it.
    fn candidates(&self, arn: &str) -> BTreeMap<&'a str, &'a PrincipalAnalysis> {
        let mut out = BTreeMap::new();
        let mut add = |v: Option<&Vec<&'a PrincipalAnalysis>>| {
            for r in v.into_iter().flatten() {
                out.insert(r.principal.arn.as_str(), *r);
            }
        };
        add(self.literal.get(arn));
        let inside = format!("{arn}/");
        for (i, _) in inside
            .char_indices()
            .chain(std::iter::once((inside.len(), ' ')))
        {
            add(self.by_prefix.get(&inside[..i]));
        }
        for (res, v) in self.sorted.range(inside.as_str()..) {
            if !res.starts_with(&inside) {
                break;
            }
            add(Some(v));
        }
        out
    }
}

/// What [`data_access`] found.
#[derive(Debug, Default)]
pub struct DataAccess {
    /// Sorted.
    pub rows: Vec<DataAccessRow>,
    /// Every (resource, principal) evaluated, with rows or not (access removed by a deny or
    /// by a key policy that does not delegate): the identity-only view of a pair not in
    /// here is all there is (broad grants).
    pub evaluated: BTreeSet<(String, String)>,
}

/// The data access of every inventoried resource by the account's principals. `results`
/// are the principals' bulk analyses.
pub fn data_access(
    engine: &Engine,
    model: &AccountModel,
    inventory: &ResourceInventory,
    results: &[&PrincipalAnalysis],
    own_account: &str,
) -> DataAccess {
    let mut evaluated = BTreeSet::new();
    let cat = &engine.catalog;
    let index = GrantIndex::new(results);
    let by_arn: HashMap<&str, &PrincipalAnalysis> = results
        .iter()
        .map(|r| (r.principal.arn.as_str(), *r))
        .collect();
    let mut rows = Vec::new();
    for r in &inventory.resources {
        let doc = match &r.policy {
            Some(Ok(doc)) => Some(doc),
            // malformed: listed in the policy errors, not evaluated (identity side only)
            Some(Err(_)) | None => None,
        };
        let kms = r.kind == "AWS::KMS::Key";
        let mut principals: BTreeMap<String, Option<&PrincipalAnalysis>> = index
            .candidates(&r.arn)
            .into_iter()
            .map(|(arn, pa)| (arn.to_string(), Some(pa)))
            .collect();
        if let Some(doc) = doc {
            for arn in named_internal(doc, own_account) {
                let pa = by_arn.get(arn.as_str()).copied();
                principals.entry(arn).or_insert(pa);
            }
        }
        // per scope: the actions that take it, and of those the ones the resource policy
        // can decide (its statements name them); the rest the policy neither grants nor
        // denies
        let mut in_policy = ActionSet::empty(cat.len());
        if let Some(doc) = doc {
            for st in crate::access::compile(cat, doc).statements {
                in_policy.union_with(&st.actions);
            }
        }
        let scopes: Vec<(String, ActionSet, ActionSet)> = scopes_of(r)
            .into_iter()
            .filter_map(|scope| {
                let (_, takes) = cat.resource_type_of(&scope)?;
                let mut named = in_policy.clone();
                named.intersect_with(&takes);
                Some((scope, takes, named))
            })
            .collect();
        // the services with an action that takes one of the scopes: only their grants count
        let services: HashSet<&str> = scopes
            .iter()
            .flat_map(|(_, takes, _)| takes.iter())
            .map(|a| {
                cat.services[cat.actions[a as usize].service as usize]
                    .prefix
                    .as_ref()
            })
            .collect();
        for (principal_arn, pa) in principals {
            evaluated.insert((r.arn.clone(), principal_arn.clone()));
            // a principal the policy names but the account file does not have (deleted, or
            // not analysed) gets the resource side alone, without its boundary
            let principal = model.principal(&principal_arn);
            let mut ctx = RequestContext::open();
            if let Some(p) = principal {
                principal_context(p, own_account, &mut ctx);
            }
            let mut per: BTreeMap<(u32, Capability), Fold> = BTreeMap::new();
            for (scope, takes, named) in &scopes {
                // identity: the actions of grants reaching this scope
                let mut identity: HashMap<u32, Tri> = HashMap::new();
                for g in pa
                    .into_iter()
                    .flat_map(|pa| pa.grants.iter())
                    .filter(|g| services.contains(g.service.as_str()) && grant_reaches(g, scope))
                {
                    let t = if g.conditional { Tri::Maybe } else { Tri::Yes };
                    for a in grant_actions(cat, g)
                        .into_iter()
                        .filter(|a| takes.contains(*a))
                    {
                        let e = identity.entry(a).or_insert(Tri::No);
                        *e = e.or(t);
                    }
                }
                // the identity side's actions, and those the resource policy names
                let mut actions: Vec<u32> = identity.keys().copied().collect();
                actions.extend(named.iter());
                actions.sort_unstable();
                actions.dedup();
                fold_actions(
                    engine,
                    model,
                    &inventory.rcps,
                    r,
                    doc,
                    kms,
                    scope,
                    (&principal_arn, own_account),
                    &ctx,
                    &actions,
                    &identity,
                    named,
                    &mut per,
                );
            }
            let (name, ptype) = match (principal, pa) {
                (Some(p), _) => (p.name.clone(), p.kind.as_str().to_string()),
                (None, Some(pa)) => (pa.principal.name.clone(), pa.principal.kind.as_str().into()),
                (None, None) => (
                    principal_arn
                        .rsplit('/')
                        .next()
                        .unwrap_or(&principal_arn)
                        .to_string(),
                    if principal_arn.contains(":user/") {
                        PrincipalKind::User.as_str().into()
                    } else {
                        PrincipalKind::Role.as_str().into()
                    },
                ),
            };
            for ((service, capability), fold) in per {
                let Some(allowed) = fold.allowed.filter(|t| *t != Tri::No) else {
                    continue;
                };
                let via = match fold.via {
                    IDENTITY => "identity policy".to_string(),
                    RESOURCE => via_name(&r.kind).to_string(),
                    _ => format!("identity policy + {}", via_name(&r.kind)),
                };
                rows.push(DataAccessRow {
                    resource_arn: r.arn.clone(),
                    resource_type: r.kind.clone(),
                    principal_arn: principal_arn.clone(),
                    principal_name: name.clone(),
                    principal_type: ptype.clone(),
                    service_name: cat.services[service as usize].name.to_string(),
                    access_capability: capability,
                    conditional: allowed == Tri::Maybe,
                    via,
                });
            }
        }
    }
    rows.sort();
    DataAccess { rows, evaluated }
}

/// Decides each action of one scope for one principal and folds it into `per`, keyed by
/// (service, capability).
#[allow(clippy::too_many_arguments)]
fn fold_actions(
    engine: &Engine,
    model: &AccountModel,
    rcps: &[Rcps],
    r: &InventoriedResource,
    doc: Option<&PolicyDocument>,
    kms: bool,
    scope: &str,
    principal: (&str, &str),
    ctx: &RequestContext,
    actions: &[u32],
    identity: &HashMap<u32, Tri>,
    named: &ActionSet,
    per: &mut BTreeMap<(u32, Capability), Fold>,
) {
    let cat = &engine.catalog;
    let p = model.principal(principal.0);
    for &a in actions {
        let info = &cat.actions[a as usize];
        let id = identity.get(&a).copied().unwrap_or(Tri::No);
        let (specific, any, deny) = match doc {
            // an action the policy does not name: neither granted nor denied by it
            Some(_) if !named.contains(a) => (Tri::No, Tri::No, Tri::No),
            Some(doc) => {
                let mut layer = ResourceLayer::default();
                eval_resource_doc(
                    doc,
                    &r.arn,
                    &info.full_name,
                    scope,
                    principal,
                    ctx,
                    &mut layer,
                );
                layer.tris()
            }
            // no policy: a key is taken as having the default one (delegation)
            None => (Tri::No, Tri::from_bool(kms), Tri::No),
        };
        // a resource policy's grant to a role is still bounded by the role's boundary
        let resource_side = if specific == Tri::No {
            Tri::No
        } else {
            match p {
                Some(p) if p.kind == PrincipalKind::Role => {
                    specific.and(boundary_allows(model, p, &info.full_name, scope, ctx))
                }
                _ => specific,
            }
        };
        let identity_side = if kms { id.and(any) } else { id };
        let mut allowed = identity_side.or(resource_side).and(deny.negate());
        if allowed == Tri::No {
            continue;
        }
        allowed = allowed.and(
            rcp_verdict(rcps, principal.1, &info.full_name, scope, principal, ctx)
                .deny
                .negate(),
        );
        if allowed == Tri::No {
            continue;
        }
        let fold = per.entry((info.service, info.capability)).or_default();
        fold.allowed = Some(fold.allowed.unwrap_or(Tri::No).or(allowed));
        if identity_side != Tri::No {
            fold.via |= IDENTITY;
        }
        if resource_side != Tri::No {
            fold.via |= RESOURCE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_broad;

    #[test]
    fn broad_patterns_reach_every_resource_of_their_type() {
        for p in [
            "*",
            "arn:aws:s3:::*",
            "arn:aws:s3:::*/*",
            "arn:aws:s3:::*/*aws-glue-*/*",
            "arn:aws:kms:eu-west-1:111122223333:key/*",
            "arn:aws:sqs:*:*:*",
            "arn:aws:dynamodb:*:111122223333:table/*",
        ] {
            assert!(is_broad(p), "{p}");
        }
        for p in [
            "arn:aws:s3:::data",
            "arn:aws:s3:::data/*",
            "arn:aws:s3:::logs-*",
            "arn:aws:s3:::*-logs",
            "arn:aws:kms:eu-west-1:111122223333:key/1234",
            "arn:aws:sqs:eu-west-1:111122223333:team-*",
            "not an arn",
        ] {
            assert!(!is_broad(p), "{p}");
        }
    }
}
