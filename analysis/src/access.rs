//! Effective access of one principal, in bulk: every catalog action per resource pattern,
//! after boundaries and denies, grouped per service and capability; IAM admin status,
//! privilege-escalation paths, trust (who can assume a role) and unused access.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::catalog::{ActionSet, Capability, Catalog};
use super::condition::{evaluate_all, Condition, RequestContext, Tri};
use super::error::AnalysisError;
use super::eval::{boundary_doc, identity_docs, principal_context};
use super::glob::{
    arn_account, arn_service, pattern_covers, pattern_intersect, substitute_variables,
    wildcard_match,
};
use super::model::{AccountModel, LastAccessed, Principal, PrincipalKind, PrincipalRef};
use super::policy::{ActionMatch, Effect, PolicyDocument, PrincipalMatch, ResourceMatch};
use super::Engine;

/// A statement compiled against the catalog.
#[derive(Debug)]
pub struct CompiledStatement {
    pub effect: Effect,
    pub actions: ActionSet,
    pub resources: Vec<String>,
    pub not_resource: bool,
    pub conditions: Vec<Condition>,
}

#[derive(Debug)]
pub struct CompiledDoc {
    pub statements: Vec<CompiledStatement>,
}

pub(crate) fn compile(cat: &Catalog, doc: &PolicyDocument) -> CompiledDoc {
    let n = cat.len();
    let statements = doc
        .statements
        .iter()
        .map(|st| {
            let (list, not) = match &st.actions {
                ActionMatch::Action(l) => (l, false),
                ActionMatch::NotAction(l) => (l, true),
            };
            let mut set = ActionSet::empty(n);
            for p in list {
                set.union_with(&cat.expand(p));
            }
            if not {
                set = set.complement(n);
            }
            let (resources, not_resource) = match &st.resources {
                ResourceMatch::Resource(l) => (l.clone(), false),
                ResourceMatch::NotResource(l) => (l.clone(), true),
                ResourceMatch::Absent => (vec!["*".to_string()], false),
            };
            CompiledStatement {
                effect: st.effect,
                actions: set,
                resources,
                not_resource,
                conditions: st.conditions.clone(),
            }
        })
        .collect();
    CompiledDoc { statements }
}

/// Access granted to one principal for one service, capability and resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub service: String,
    pub service_name: String,
    pub capability: Capability,
    /// Resource ARN pattern (`*` = all resources).
    pub resource: String,
    /// Only under conditions not decided without a request context.
    pub conditional: bool,
    pub action_count: usize,
    /// The actions; empty when it is every action of the service in this capability.
    pub actions: Vec<String>,
    /// Resources excepted by NotResource, or narrower explicit denies that carve out part
    /// of `resource`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationPath {
    /// Stable id, e.g. `passrole-lambda-invoke`.
    pub id: String,
    pub description: String,
    pub actions: Vec<String>,
    /// Lets the principal grant itself more (makes it an IAM admin).
    pub self_escalation: bool,
    pub conditional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustKind {
    /// The account root: any principal of the account whose own policies allow it.
    SameAccount,
    /// A named principal of the same account.
    SameAccountPrincipal,
    CrossAccount,
    Service,
    Federated,
    /// `*`: anyone (subject to conditions).
    Public,
}

impl TrustKind {
    /// The serialized name (kebab-case).
    pub fn as_str(self) -> &'static str {
        match self {
            TrustKind::SameAccount => "same-account",
            TrustKind::SameAccountPrincipal => "same-account-principal",
            TrustKind::CrossAccount => "cross-account",
            TrustKind::Service => "service",
            TrustKind::Federated => "federated",
            TrustKind::Public => "public",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    pub kind: TrustKind,
    /// ARN, account id, service or provider as written.
    pub principal: String,
    pub account: Option<String>,
    pub actions: Vec<String>,
    /// Conditions of the trust statement (e.g. `StringEquals sts:ExternalId`).
    pub conditions: Vec<String>,
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssumePattern {
    pub resource: String,
    pub conditional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedService {
    pub service: String,
    pub service_name: String,
    pub capabilities: Vec<Capability>,
}

/// The result of evaluating one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalAnalysis {
    pub principal: PrincipalRef,
    pub account_id: String,
    pub engine_version: String,
    pub digest: String,
    /// Every catalog action on every resource, unconditionally.
    pub full_access: bool,
    /// Full access, or able to grant itself more (see `escalations` with `self_escalation`).
    pub is_admin: bool,
    pub admin_reasons: Vec<String>,
    pub grants: Vec<Grant>,
    pub escalations: Vec<EscalationPath>,
    /// Resource patterns on which the principal's own policies allow `sts:AssumeRole`.
    pub assume_role_patterns: Vec<AssumePattern>,
    /// For roles: who may assume it, from the trust policy.
    pub trust: Vec<TrustEntry>,
    pub externally_assumable: bool,
    pub last_accessed_available: bool,
    pub unused_services: Vec<UnusedService>,
    pub tags: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct Piece {
    actions: ActionSet,
    resource: String,
    except: Vec<String>,
    cond: Tri,
}

#[derive(Debug, Clone)]
struct DenyPiece {
    actions: ActionSet,
    resources: Vec<String>,
    not_resource: bool,
    cond: Tri,
}

impl DenyPiece {
    /// Does the deny cover every resource of `pattern`? (`Maybe`-free: structural.)
    fn covers(&self, pattern: &str) -> bool {
        if self.not_resource {
            !self.resources.iter().any(|nr| {
                pattern_intersect(nr, pattern).is_some() || wildcard_match(pattern, nr, false)
            })
        } else {
            self.resources.iter().any(|r| pattern_covers(r, pattern))
        }
    }
    fn touches(&self, pattern: &str) -> bool {
        if self.not_resource {
            true
        } else {
            self.resources.iter().any(|r| {
                pattern_intersect(r, pattern).is_some() || wildcard_match(pattern, r, false)
            })
        }
    }
}

/// The effective access of one principal, before grouping.
pub(crate) struct Effective {
    pieces: Vec<Piece>,
    denies: Vec<DenyPiece>,
}

impl Effective {
    /// May the principal do catalog action `a` on some resource matching `target`?
    pub(crate) fn allows_on(&self, a: u32, target: &str) -> Tri {
        let mut r = Tri::No;
        for p in &self.pieces {
            if p.actions.contains(a)
                && (pattern_intersect(&p.resource, target).is_some()
                    || wildcard_match(&p.resource, target, false))
                && !p.except.iter().any(|e| pattern_covers(e, target))
            {
                r = r.or(p.cond);
            }
        }
        if r == Tri::No {
            return r;
        }
        for d in &self.denies {
            if d.actions.contains(a) && d.covers(target) {
                r = r.and(d.cond.negate());
            }
        }
        r
    }
}

/// The allowed pieces, limited by another policy's allowed pieces (boundary, SCP level).
fn limit(allows: &[Piece], limits: &[Piece]) -> Vec<Piece> {
    let mut limited = Vec::new();
    for a in allows {
        for b in limits {
            if !a.actions.intersects(&b.actions) {
                continue;
            }
            if let Some(r) = pattern_intersect(&a.resource, &b.resource) {
                let mut actions = a.actions.clone();
                actions.intersect_with(&b.actions);
                let mut except = a.except.clone();
                except.extend(b.except.iter().cloned());
                limited.push(Piece {
                    actions,
                    resource: r.to_string(),
                    except,
                    cond: a.cond.and(b.cond),
                });
            }
        }
    }
    limited
}

fn resource_service_filter<'c>(cat: &'c Catalog, pattern: &str) -> Option<Option<&'c ActionSet>> {
    if pattern == "*" {
        return None;
    }
    arn_service(pattern).map(|s| cat.actions_for_arn_service(s))
}

impl Engine {
    fn compiled(&self, model: &AccountModel, id: usize) -> Option<Arc<CompiledDoc>> {
        let d = model.doc(id);
        let doc = d.parsed.as_ref().ok()?;
        Some(
            d.compiled
                .get_or_init(|| Arc::new(compile(&self.catalog, doc)))
                .clone(),
        )
    }

    pub(crate) fn effective(
        &self,
        model: &AccountModel,
        p: &Principal,
        warnings: &mut Vec<String>,
    ) -> Result<Effective, AnalysisError> {
        let cat = &self.catalog;
        let account = arn_account(&p.arn).unwrap_or_default().to_string();
        let mut ctx = RequestContext::open();
        principal_context(p, &account, &mut ctx);
        let look = |k: &str| ctx.first(k);

        let mut allows: Vec<Piece> = Vec::new();
        let mut denies: Vec<DenyPiece> = Vec::new();
        let collect = |doc: &CompiledDoc, allows: &mut Vec<Piece>, denies: &mut Vec<DenyPiece>| {
            for st in &doc.statements {
                let c = evaluate_all(&st.conditions, &ctx);
                if c == Tri::No || st.actions.is_empty() {
                    continue;
                }
                let mut res: Vec<(String, Tri)> = Vec::new();
                for r in &st.resources {
                    if let Some((s, unknown)) = substitute_variables(r, &look, true) {
                        res.push((s, if unknown { c.and(Tri::Maybe) } else { c }));
                    }
                }
                match st.effect {
                    Effect::Deny => {
                        let cond = res.iter().fold(c, |a, (_, t)| a.and(*t));
                        denies.push(DenyPiece {
                            actions: st.actions.clone(),
                            resources: res.into_iter().map(|(s, _)| s).collect(),
                            not_resource: st.not_resource,
                            cond,
                        });
                    }
                    Effect::Allow if st.not_resource => allows.push(Piece {
                        actions: st.actions.clone(),
                        resource: "*".into(),
                        except: res.into_iter().map(|(s, _)| s).collect(),
                        cond: c,
                    }),
                    Effect::Allow => {
                        for (r, t) in res {
                            let mut actions = st.actions.clone();
                            match resource_service_filter(cat, &r) {
                                None => {}
                                Some(Some(f)) => actions.intersect_with(f),
                                Some(None) => continue,
                            }
                            if !actions.is_empty() {
                                allows.push(Piece {
                                    actions,
                                    resource: r,
                                    except: Vec::new(),
                                    cond: t,
                                });
                            }
                        }
                    }
                }
            }
        };
        for (id, _) in identity_docs(model, p, warnings)? {
            if let Some(doc) = self.compiled(model, id) {
                collect(&doc, &mut allows, &mut denies);
            }
        }
        if let Some(b) = boundary_doc(model, p, warnings)? {
            if let Some(doc) = self.compiled(model, b) {
                let mut b_allows = Vec::new();
                collect(&doc, &mut b_allows, &mut denies);
                allows = limit(&allows, &b_allows);
            }
        }
        // service control policies attached to the model: every level (root, OUs, account)
        // must allow, like a boundary per level; their denies apply like any deny
        for tree in &model.scps {
            if let Some(levels) = tree.levels(&account) {
                for level in levels {
                    let mut l_allows = Vec::new();
                    for (_, doc) in level {
                        collect(&compile(cat, doc), &mut l_allows, &mut denies);
                    }
                    allows = limit(&allows, &l_allows);
                }
            }
        }
        // explicit denies, one after the other, split the pieces: the actions a deny does
        // not name stay as they are; the denied actions are removed where the deny covers
        // the piece's resources, or excepted where it covers only part of them. A
        // conditional deny leaves the overlap allowed conditionally.
        let mut out: Vec<Piece> = allows;
        for d in &denies {
            let mut next: Vec<Piece> = Vec::with_capacity(out.len());
            for a in out {
                if !d.actions.intersects(&a.actions) {
                    next.push(a);
                    continue;
                }
                let covers = d.covers(&a.resource);
                let partial = !covers && !d.not_resource && d.touches(&a.resource);
                if !covers && !partial {
                    next.push(a);
                    continue;
                }
                let mut overlap = a.actions.clone();
                overlap.intersect_with(&d.actions);
                let mut rest = a.actions.clone();
                rest.subtract(&d.actions);
                let maybe = a.cond.and(Tri::Maybe);
                if covers {
                    if d.cond == Tri::Maybe {
                        next.push(Piece {
                            actions: overlap,
                            resource: a.resource.clone(),
                            except: a.except.clone(),
                            cond: maybe,
                        });
                    }
                } else {
                    if d.cond == Tri::Maybe {
                        for r in &d.resources {
                            if let Some(i) = pattern_intersect(&a.resource, r) {
                                next.push(Piece {
                                    actions: overlap.clone(),
                                    resource: i.to_string(),
                                    except: a.except.clone(),
                                    cond: maybe,
                                });
                            }
                        }
                    }
                    let mut except = a.except.clone();
                    for r in &d.resources {
                        if !except.contains(r) {
                            except.push(r.clone());
                        }
                    }
                    next.push(Piece {
                        actions: overlap,
                        resource: a.resource.clone(),
                        except,
                        cond: a.cond,
                    });
                }
                if !rest.is_empty() {
                    next.push(Piece { actions: rest, ..a });
                }
            }
            out = next;
        }
        out.retain(|p| !p.actions.is_empty());
        Ok(Effective {
            pieces: out,
            denies,
        })
    }

    /// Evaluates one principal. Deterministic.
    pub fn analyze_principal(
        &self,
        model: &AccountModel,
        principal_arn: &str,
        last_accessed: Option<&LastAccessed>,
    ) -> Result<PrincipalAnalysis, AnalysisError> {
        let cat = &self.catalog;
        let p = model
            .principal(principal_arn)
            .ok_or_else(|| AnalysisError::UnknownPrincipal(principal_arn.to_string()))?;
        let mut warnings = Vec::new();
        let eff = self.effective(model, p, &mut warnings)?;
        let account = model.account_id().to_string();

        // group pieces: (resource, conditional, except) -> actions
        let mut groups: BTreeMap<(String, bool, Vec<String>), ActionSet> = BTreeMap::new();
        for pc in &eff.pieces {
            let mut ex = pc.except.clone();
            ex.sort();
            ex.dedup();
            groups
                .entry((pc.resource.clone(), pc.cond == Tri::Maybe, ex))
                .or_insert_with(|| ActionSet::empty(cat.len()))
                .union_with(&pc.actions);
        }
        // conditional access that is also unconditional (same resource, no exceptions) is dropped
        let uncond: BTreeMap<String, ActionSet> = groups
            .iter()
            .filter(|((_, c, ex), _)| !c && ex.is_empty())
            .map(|((r, _, _), s)| (r.clone(), s.clone()))
            .collect();
        for ((r, c, _), set) in groups.iter_mut() {
            if *c {
                if let Some(u) = uncond.get(r) {
                    set.subtract(u);
                }
            }
        }
        let full = ActionSet::full(cat.len());
        let full_access = uncond.get("*").is_some_and(|s| s.is_superset(&full));

        let mut grants = Vec::new();
        for ((resource, conditional, except), set) in &groups {
            if set.is_empty() {
                continue;
            }
            // per service, per capability
            let mut cur_service: Option<u32> = None;
            let mut buckets: [Vec<u32>; 6] = Default::default();
            let flush = |svc: u32, buckets: &mut [Vec<u32>; 6], grants: &mut Vec<Grant>| {
                let s = &cat.services[svc as usize];
                for cap in Capability::ALL {
                    let b = &mut buckets[cap as usize];
                    if b.is_empty() {
                        continue;
                    }
                    let all = b.len() as u32 == s.capability_counts[cap as usize];
                    grants.push(Grant {
                        service: s.prefix.to_string(),
                        service_name: s.name.to_string(),
                        capability: cap,
                        resource: resource.clone(),
                        conditional: *conditional,
                        action_count: b.len(),
                        actions: if all {
                            Vec::new()
                        } else {
                            b.iter()
                                .map(|i| cat.actions[*i as usize].full_name.to_string())
                                .collect()
                        },
                        except: except.clone(),
                    });
                    b.clear();
                }
            };
            for i in set.iter() {
                let a = &cat.actions[i as usize];
                if cur_service != Some(a.service) {
                    if let Some(s) = cur_service {
                        flush(s, &mut buckets, &mut grants);
                    }
                    cur_service = Some(a.service);
                }
                buckets[a.capability as usize].push(i);
            }
            if let Some(s) = cur_service {
                flush(s, &mut buckets, &mut grants);
            }
        }
        grants.sort_by(|a, b| {
            (
                &a.service,
                a.capability,
                &a.resource,
                a.conditional,
                &a.except,
            )
                .cmp(&(
                    &b.service,
                    b.capability,
                    &b.resource,
                    b.conditional,
                    &b.except,
                ))
        });

        // sts:AssumeRole patterns
        let mut assume_role_patterns = Vec::new();
        if let Some(ar) = cat.action("sts:AssumeRole") {
            for ((r, c, _), set) in &groups {
                if set.contains(ar) {
                    assume_role_patterns.push(AssumePattern {
                        resource: r.clone(),
                        conditional: *c,
                    });
                }
            }
        }

        let escalations = self.escalations(model, p, &eff, &account);
        let mut admin_reasons = Vec::new();
        if full_access {
            admin_reasons.push("full access: every action on every resource".to_string());
        }
        for e in escalations
            .iter()
            .filter(|e| e.self_escalation && !e.conditional)
        {
            admin_reasons.push(format!("can grant itself more: {}", e.description));
        }
        let trust = if p.kind == PrincipalKind::Role {
            trust_entries(model, p, &account, &mut warnings)?
        } else {
            Vec::new()
        };
        let externally_assumable = trust.iter().any(|t| t.external);

        let mut unused_services = Vec::new();
        if let Some(la) = last_accessed {
            let mut by_service: BTreeMap<&str, (&str, Vec<Capability>)> = BTreeMap::new();
            for g in &grants {
                let e = by_service
                    .entry(&g.service)
                    .or_insert((&g.service_name, Vec::new()));
                if !e.1.contains(&g.capability) {
                    e.1.push(g.capability);
                }
            }
            for (svc, (name, mut caps)) in by_service {
                let used = la
                    .services
                    .get(&svc.to_ascii_lowercase())
                    .is_some_and(|s| s.last_authenticated.is_some());
                if !used {
                    caps.sort();
                    unused_services.push(UnusedService {
                        service: svc.to_string(),
                        service_name: name.to_string(),
                        capabilities: caps,
                    });
                }
            }
        }
        warnings.sort();
        warnings.dedup();
        Ok(PrincipalAnalysis {
            principal: PrincipalRef {
                arn: p.arn.clone(),
                name: p.name.clone(),
                kind: p.kind,
            },
            account_id: account,
            engine_version: super::ENGINE_VERSION.to_string(),
            digest: model.principal_digest(&p.arn).unwrap_or_default(),
            full_access,
            is_admin: !admin_reasons.is_empty(),
            admin_reasons,
            grants,
            escalations,
            assume_role_patterns,
            trust,
            externally_assumable,
            last_accessed_available: last_accessed.is_some(),
            unused_services,
            tags: p.tags.clone(),
            warnings,
        })
    }

    fn escalations(
        &self,
        model: &AccountModel,
        p: &Principal,
        eff: &Effective,
        account: &str,
    ) -> Vec<EscalationPath> {
        let cat = &self.catalog;
        let any_user = format!("arn:aws:iam::{account}:user/*");
        let any_role = format!("arn:aws:iam::{account}:role/*");
        let any_group = format!("arn:aws:iam::{account}:group/*");
        let any_policy = format!("arn:aws:iam::{account}:policy/*");
        // AWS's own rules come first: a service-linked or AWS-reserved role cannot be
        // changed by its own policies, whatever they allow.
        let allow = |action: &str, target: &str| -> Tri {
            if let Some((allowed, _)) = super::eval::aws_fixed_rule(cat, action, target) {
                return Tri::from_bool(allowed);
            }
            match cat.action(action) {
                Some(a) => eff.allows_on(a, target),
                None => Tri::No,
            }
        };
        let all = |reqs: &[(&str, &str)]| -> Tri {
            reqs.iter()
                .fold(Tri::Yes, |acc, (a, t)| acc.and(allow(a, t)))
        };
        let mut out = Vec::new();
        let mut push = |id: &str, desc: &str, reqs: &[(&str, &str)], self_esc: bool| {
            let t = all(reqs);
            if t != Tri::No {
                out.push(EscalationPath {
                    id: id.to_string(),
                    description: desc.to_string(),
                    actions: reqs.iter().map(|(a, _)| a.to_string()).collect(),
                    self_escalation: self_esc,
                    conditional: t == Tri::Maybe,
                });
            }
        };
        // policies attached to the principal or its groups that it could rewrite
        let mut own_policies: Vec<String> = p.managed.clone();
        for g in &p.groups {
            if let Some(gr) = model.group(g) {
                own_policies.extend(gr.managed.iter().cloned());
            }
        }
        own_policies.retain(|a| !a.contains(":aws:policy/"));
        let own_policy_target = own_policies
            .iter()
            .find(|a| allow("iam:CreatePolicyVersion", a) == Tri::Yes)
            .cloned();
        match &own_policy_target {
            Some(t) => push(
                "create-policy-version",
                "iam:CreatePolicyVersion on a policy attached to itself: can rewrite its own permissions",
                &[("iam:CreatePolicyVersion", t)],
                true,
            ),
            None => push(
                "create-policy-version",
                "iam:CreatePolicyVersion: can rewrite customer managed policies (of others, or its own)",
                &[("iam:CreatePolicyVersion", &any_policy)],
                allow("iam:CreatePolicyVersion", "*") == Tri::Yes,
            ),
        }
        push(
            "set-default-policy-version",
            "iam:SetDefaultPolicyVersion: can activate an older, broader version of a policy",
            &[("iam:SetDefaultPolicyVersion", &any_policy)],
            false,
        );
        let own_groups: Vec<String> = p
            .groups
            .iter()
            .filter_map(|g| model.group(g).map(|gr| gr.arn.clone()))
            .collect();
        match p.kind {
            PrincipalKind::User => {
                push(
                    "attach-user-policy-self",
                    "iam:AttachUserPolicy on itself: can attach AdministratorAccess to itself",
                    &[("iam:AttachUserPolicy", &p.arn)],
                    true,
                );
                push(
                    "put-user-policy-self",
                    "iam:PutUserPolicy on itself: can write itself any inline policy",
                    &[("iam:PutUserPolicy", &p.arn)],
                    true,
                );
                push(
                    "add-user-to-group",
                    "iam:AddUserToGroup: can add itself to a more privileged group",
                    &[("iam:AddUserToGroup", &any_group)],
                    true,
                );
                for g in &own_groups {
                    push(
                        "attach-group-policy-own-group",
                        "iam:AttachGroupPolicy on its own group: can attach any policy to itself",
                        &[("iam:AttachGroupPolicy", g)],
                        true,
                    );
                    push(
                        "put-group-policy-own-group",
                        "iam:PutGroupPolicy on its own group: can write itself any inline policy",
                        &[("iam:PutGroupPolicy", g)],
                        true,
                    );
                }
            }
            PrincipalKind::Role => {
                push(
                    "attach-role-policy-self",
                    "iam:AttachRolePolicy on itself: can attach AdministratorAccess to itself",
                    &[("iam:AttachRolePolicy", &p.arn)],
                    true,
                );
                push(
                    "put-role-policy-self",
                    "iam:PutRolePolicy on itself: can write itself any inline policy",
                    &[("iam:PutRolePolicy", &p.arn)],
                    true,
                );
            }
        }
        push(
            "create-access-key",
            "iam:CreateAccessKey on other users: can act as any user",
            &[("iam:CreateAccessKey", &any_user)],
            false,
        );
        push(
            "create-login-profile",
            "iam:CreateLoginProfile: can set a console password for users without one",
            &[("iam:CreateLoginProfile", &any_user)],
            false,
        );
        push(
            "update-login-profile",
            "iam:UpdateLoginProfile: can change other users' console passwords",
            &[("iam:UpdateLoginProfile", &any_user)],
            false,
        );
        push(
            "attach-role-policy-assume",
            "iam:AttachRolePolicy and sts:AssumeRole: can make a role admin and assume it",
            &[
                ("iam:AttachRolePolicy", &any_role),
                ("sts:AssumeRole", &any_role),
            ],
            false,
        );
        push(
            "update-assume-role-policy",
            "iam:UpdateAssumeRolePolicy and sts:AssumeRole: can make any role trust itself and assume it",
            &[("iam:UpdateAssumeRolePolicy", &any_role), ("sts:AssumeRole", &any_role)],
            false,
        );
        push(
            "passrole-lambda-invoke",
            "iam:PassRole, lambda:CreateFunction and lambda:InvokeFunction: can run code as any passable role",
            &[
                ("iam:PassRole", &any_role),
                ("lambda:CreateFunction", "*"),
                ("lambda:InvokeFunction", "*"),
            ],
            false,
        );
        push(
            "passrole-lambda-event-source",
            "iam:PassRole, lambda:CreateFunction and lambda:CreateEventSourceMapping: can run code as a passable role",
            &[
                ("iam:PassRole", &any_role),
                ("lambda:CreateFunction", "*"),
                ("lambda:CreateEventSourceMapping", "*"),
            ],
            false,
        );
        push(
            "lambda-update-function-code",
            "lambda:UpdateFunctionCode: can run code as the roles of existing functions",
            &[("lambda:UpdateFunctionCode", "*")],
            false,
        );
        push(
            "passrole-ec2",
            "iam:PassRole and ec2:RunInstances: can start an instance with any passable role",
            &[("iam:PassRole", &any_role), ("ec2:RunInstances", "*")],
            false,
        );
        push(
            "passrole-ec2-associate-instance-profile",
            "iam:PassRole and ec2:AssociateIamInstanceProfile: can give a running instance any passable role",
            &[("iam:PassRole", &any_role), ("ec2:AssociateIamInstanceProfile", "*")],
            false,
        );
        push(
            "passrole-cloudformation",
            "iam:PassRole and cloudformation:CreateStack: can create resources as a passable role",
            &[
                ("iam:PassRole", &any_role),
                ("cloudformation:CreateStack", "*"),
            ],
            false,
        );
        push(
            "passrole-glue-dev-endpoint",
            "iam:PassRole and glue:CreateDevEndpoint: can get a shell with a passable role",
            &[("iam:PassRole", &any_role), ("glue:CreateDevEndpoint", "*")],
            false,
        );
        push(
            "glue-update-dev-endpoint",
            "glue:UpdateDevEndpoint: can get a shell on existing dev endpoints and their roles",
            &[("glue:UpdateDevEndpoint", "*")],
            false,
        );
        push(
            "passrole-datapipeline",
            "iam:PassRole, datapipeline:CreatePipeline and datapipeline:PutPipelineDefinition: can run commands as a passable role",
            &[
                ("iam:PassRole", &any_role),
                ("datapipeline:CreatePipeline", "*"),
                ("datapipeline:PutPipelineDefinition", "*"),
            ],
            false,
        );
        push(
            "passrole-sagemaker-notebook",
            "iam:PassRole, sagemaker:CreateNotebookInstance and sagemaker:CreatePresignedNotebookInstanceUrl: can run a notebook as a passable role",
            &[
                ("iam:PassRole", &any_role),
                ("sagemaker:CreateNotebookInstance", "*"),
                ("sagemaker:CreatePresignedNotebookInstanceUrl", "*"),
            ],
            false,
        );
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        out
    }
}

fn trust_entries(
    model: &AccountModel,
    p: &Principal,
    account: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<TrustEntry>, AnalysisError> {
    let Some(t) = p.trust else {
        return Ok(Vec::new());
    };
    let d = model.doc(t);
    let doc = match &d.parsed {
        Ok(doc) => doc,
        Err(e) => {
            return Err(AnalysisError::MalformedPolicy {
                principal: p.arn.clone(),
                error: e.clone(),
            })
        }
    };
    let mut out = Vec::new();
    for st in &doc.statements {
        let actions: Vec<String> = match &st.actions {
            ActionMatch::Action(l) => l
                .iter()
                .filter(|a| {
                    [
                        "sts:AssumeRole",
                        "sts:AssumeRoleWithSAML",
                        "sts:AssumeRoleWithWebIdentity",
                    ]
                    .iter()
                    .any(|x| wildcard_match(a, x, true))
                })
                .cloned()
                .collect(),
            ActionMatch::NotAction(_) => vec!["NotAction".into()],
        };
        if actions.is_empty() {
            continue;
        }
        if st.effect == Effect::Deny {
            warnings.push(format!(
                "trust policy of {} has a Deny statement (#{}); trust entries are listed without it",
                p.arn, st.index
            ));
            continue;
        }
        let conditions: Vec<String> = st
            .conditions
            .iter()
            .map(|c| format!("{} {}", c.operator, c.key))
            .collect();
        let (ps, not) = match &st.principals {
            Some(PrincipalMatch::Principal(ps)) => (ps, false),
            Some(PrincipalMatch::NotPrincipal(ps)) => (ps, true),
            None => continue,
        };
        let mut add = |kind: TrustKind, principal: &str, acct: Option<String>, external: bool| {
            out.push(TrustEntry {
                kind,
                principal: principal.to_string(),
                account: acct,
                actions: actions.clone(),
                conditions: conditions.clone(),
                external,
            });
        };
        if not || ps.any || ps.aws.iter().any(|a| a == "*") {
            add(TrustKind::Public, "*", None, true);
            if !not {
                continue;
            }
        }
        for a in &ps.aws {
            if a == "*" {
                continue;
            }
            let acct = if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) {
                a.clone()
            } else {
                arn_account(a).unwrap_or_default().to_string()
            };
            let is_root = a.len() == 12 || a.ends_with(":root");
            if acct == account {
                add(
                    if is_root {
                        TrustKind::SameAccount
                    } else {
                        TrustKind::SameAccountPrincipal
                    },
                    a,
                    Some(acct),
                    false,
                );
            } else {
                add(TrustKind::CrossAccount, a, Some(acct), true);
            }
        }
        for s in &ps.service {
            add(TrustKind::Service, s, None, false);
        }
        for f in &ps.federated {
            add(
                TrustKind::Federated,
                f,
                arn_account(f).map(str::to_string),
                true,
            );
        }
        for c in &ps.canonical_user {
            add(TrustKind::CrossAccount, c, None, true);
        }
    }
    out.sort_by(|a, b| (a.kind, &a.principal).cmp(&(b.kind, &b.principal)));
    out.dedup();
    Ok(out)
}
