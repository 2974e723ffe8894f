//! The parsed account: users, groups, roles, managed policies and every policy document
//! (parsed once; a malformed document is recorded, not fatal).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::access::CompiledDoc;
use super::error::{ParseError, PolicyError};
use super::policy::{
    canonical_json, document_value, parse_document, DocKind, PolicyDocument, MAX_DOCUMENT_BYTES,
};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalKind {
    User,
    Role,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "IAMUser",
            PrincipalKind::Role => "IAMRole",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PrincipalRef {
    pub arn: String,
    pub name: String,
    pub kind: PrincipalKind,
}

pub(crate) type DocId = usize;

/// One policy document of the account.
#[derive(Debug)]
pub(crate) struct DocEntry {
    /// Human name: `arn:aws:iam::aws:policy/ReadOnlyAccess` or `inline policy "x" of role/y`.
    pub label: String,
    pub digest: [u8; 32],
    pub parsed: Result<Arc<PolicyDocument>, PolicyError>,
    pub compiled: OnceLock<Arc<CompiledDoc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct NamedDoc {
    pub name: String,
    pub doc: DocId,
}

#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub kind: PrincipalKind,
    pub arn: String,
    pub name: String,
    pub id: String,
    pub path: String,
    pub tags: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub inline: Vec<NamedDoc>,
    pub managed: Vec<String>,
    pub boundary: Option<String>,
    pub trust: Option<DocId>,
    pub last_used: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub arn: String,
    pub name: String,
    pub inline: Vec<NamedDoc>,
    pub managed: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ManagedPolicy {
    pub arn: String,
    pub name: String,
    pub doc: Option<DocId>,
}

/// A parsed `get-account-authorization-details` file.
#[derive(Debug)]
pub struct AccountModel {
    pub(crate) account_id: String,
    pub(crate) principals: Vec<Principal>,
    pub(crate) groups: Vec<Group>,
    pub(crate) policies: Vec<ManagedPolicy>,
    pub(crate) docs: Vec<DocEntry>,
    /// Service control policies that apply to the account (see `with_scps`).
    pub(crate) scps: Vec<super::eval::Scps>,
    principal_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
    policy_index: HashMap<String, usize>,
}

fn sp(path: &str, msg: impl Into<String>) -> ParseError {
    ParseError::structure(path, msg)
}

fn get_str(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ParseError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(sp(&format!("{path}.{key}"), "must be a string")),
    }
}

fn req_str(o: &Map<String, Value>, key: &str, path: &str) -> Result<String, ParseError> {
    get_str(o, key, path)?.ok_or_else(|| sp(&format!("{path}.{key}"), "missing"))
}

fn get_list<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a [Value], ParseError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(sp(&format!("{path}.{key}"), "must be a list")),
    }
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ParseError> {
    v.as_object().ok_or_else(|| sp(path, "must be an object"))
}

fn parse_tags(o: &Map<String, Value>, path: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut tags = BTreeMap::new();
    for (i, t) in get_list(o, "Tags", path)?.iter().enumerate() {
        let tp = format!("{path}.Tags[{i}]");
        let t = as_obj(t, &tp)?;
        tags.insert(
            req_str(t, "Key", &tp)?,
            get_str(t, "Value", &tp)?.unwrap_or_default(),
        );
    }
    Ok(tags)
}

fn attached(o: &Map<String, Value>, path: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    for (i, a) in get_list(o, "AttachedManagedPolicies", path)?
        .iter()
        .enumerate()
    {
        let ap = format!("{path}.AttachedManagedPolicies[{i}]");
        out.push(req_str(as_obj(a, &ap)?, "PolicyArn", &ap)?);
    }
    Ok(out)
}

struct Builder {
    docs: Vec<DocEntry>,
}

impl Builder {
    fn add_doc(&mut self, v: &Value, label: String, path: String, kind: DocKind) -> DocId {
        let mut canon = String::new();
        let (digest, parsed) = match document_value(v, &path) {
            Ok(val) => {
                canon_limited(&val, &mut canon);
                let digest: [u8; 32] = Sha256::digest(canon.as_bytes()).into();
                let parsed = if canon.len() > MAX_DOCUMENT_BYTES {
                    Err(PolicyError {
                        policy: label.clone(),
                        path: path.clone(),
                        message: format!(
                            "policy document too large ({} bytes, limit {MAX_DOCUMENT_BYTES})",
                            canon.len()
                        ),
                    })
                } else {
                    parse_document(&val, &path, kind)
                        .map(Arc::new)
                        .map_err(|e| PolicyError {
                            policy: label.clone(),
                            path: e.path,
                            message: e.message,
                        })
                };
                (digest, parsed)
            }
            Err(e) => {
                let raw = v.to_string();
                (
                    Sha256::digest(raw.as_bytes()).into(),
                    Err(PolicyError {
                        policy: label.clone(),
                        path: e.path,
                        message: e.message,
                    }),
                )
            }
        };
        self.docs.push(DocEntry {
            label,
            digest,
            parsed,
            compiled: OnceLock::new(),
        });
        self.docs.len() - 1
    }

    fn inline(
        &mut self,
        o: &Map<String, Value>,
        key: &str,
        path: &str,
        owner: &str,
    ) -> Result<Vec<NamedDoc>, ParseError> {
        let mut out = Vec::new();
        for (i, p) in get_list(o, key, path)?.iter().enumerate() {
            let pp = format!("{path}.{key}[{i}]");
            let po = as_obj(p, &pp)?;
            let name = req_str(po, "PolicyName", &pp)?;
            let doc_v = po.get("PolicyDocument").unwrap_or(&Value::Null);
            let doc = self.add_doc(
                doc_v,
                format!("inline policy {name:?} of {owner}"),
                format!("{pp}.PolicyDocument"),
                DocKind::Identity,
            );
            out.push(NamedDoc { name, doc });
        }
        Ok(out)
    }
}

/// Canonical JSON, but stops growing once past the size limit (a huge document is then
/// rejected without building a huge string twice).
fn canon_limited(v: &Value, out: &mut String) {
    canonical_json(v, out);
}

fn short_name(arn: &str) -> String {
    arn.rsplit_once(":")
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| arn.to_string())
}

impl AccountModel {
    /// Parses the structure (CLI JSON form or API form with URL-encoded policy documents).
    /// A broken structure is an error for the whole account; a malformed policy document is
    /// recorded and fails only the principals that use it.
    pub fn parse(bytes: &[u8]) -> Result<AccountModel, ParseError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))?;
        AccountModel::from_value(&v)
    }

    pub fn from_value(v: &Value) -> Result<AccountModel, ParseError> {
        let root = v.as_object().ok_or_else(|| {
            sp(
                "$",
                "an account authorization details file must be a JSON object",
            )
        })?;
        if ![
            "UserDetailList",
            "GroupDetailList",
            "RoleDetailList",
            "Policies",
        ]
        .iter()
        .any(|k| root.contains_key(*k))
        {
            return Err(sp(
                "$",
                "none of UserDetailList, GroupDetailList, RoleDetailList, Policies: not a get-account-authorization-details file",
            ));
        }
        let mut b = Builder { docs: Vec::new() };
        let mut principals = Vec::new();
        let mut groups = Vec::new();
        let mut policies = Vec::new();

        for (i, u) in get_list(root, "UserDetailList", "$")?.iter().enumerate() {
            let p = format!("$.UserDetailList[{i}]");
            let o = as_obj(u, &p)?;
            let arn = req_str(o, "Arn", &p)?;
            let name = get_str(o, "UserName", &p)?.unwrap_or_else(|| short_name(&arn));
            let owner = format!("user/{name}");
            let mut group_names = Vec::new();
            for (gi, g) in get_list(o, "GroupList", &p)?.iter().enumerate() {
                group_names.push(
                    g.as_str()
                        .ok_or_else(|| sp(&format!("{p}.GroupList[{gi}]"), "must be a string"))?
                        .to_string(),
                );
            }
            principals.push(Principal {
                kind: PrincipalKind::User,
                inline: b.inline(o, "UserPolicyList", &p, &owner)?,
                managed: attached(o, &p)?,
                boundary: boundary(o, &p)?,
                tags: parse_tags(o, &p)?,
                id: get_str(o, "UserId", &p)?.unwrap_or_default(),
                path: get_str(o, "Path", &p)?.unwrap_or_else(|| "/".into()),
                groups: group_names,
                trust: None,
                last_used: None,
                arn,
                name,
            });
        }
        for (i, g) in get_list(root, "GroupDetailList", "$")?.iter().enumerate() {
            let p = format!("$.GroupDetailList[{i}]");
            let o = as_obj(g, &p)?;
            let arn = req_str(o, "Arn", &p)?;
            let name = get_str(o, "GroupName", &p)?.unwrap_or_else(|| short_name(&arn));
            groups.push(Group {
                inline: b.inline(o, "GroupPolicyList", &p, &format!("group/{name}"))?,
                managed: attached(o, &p)?,
                arn,
                name,
            });
        }
        for (i, r) in get_list(root, "RoleDetailList", "$")?.iter().enumerate() {
            let p = format!("$.RoleDetailList[{i}]");
            let o = as_obj(r, &p)?;
            let arn = req_str(o, "Arn", &p)?;
            let name = get_str(o, "RoleName", &p)?.unwrap_or_else(|| short_name(&arn));
            let trust = match o.get("AssumeRolePolicyDocument") {
                None | Some(Value::Null) => None,
                Some(d) => Some(b.add_doc(
                    d,
                    format!("trust policy of role/{name}"),
                    format!("{p}.AssumeRolePolicyDocument"),
                    DocKind::Trust,
                )),
            };
            let last_used = match o.get("RoleLastUsed") {
                Some(Value::Object(lu)) => {
                    get_str(lu, "LastUsedDate", &format!("{p}.RoleLastUsed"))?
                }
                None | Some(Value::Null) => None,
                Some(_) => return Err(sp(&format!("{p}.RoleLastUsed"), "must be an object")),
            };
            principals.push(Principal {
                kind: PrincipalKind::Role,
                inline: b.inline(o, "RolePolicyList", &p, &format!("role/{name}"))?,
                managed: attached(o, &p)?,
                boundary: boundary(o, &p)?,
                tags: parse_tags(o, &p)?,
                id: get_str(o, "RoleId", &p)?.unwrap_or_default(),
                path: get_str(o, "Path", &p)?.unwrap_or_else(|| "/".into()),
                groups: Vec::new(),
                trust,
                last_used,
                arn,
                name,
            });
        }
        for (i, pol) in get_list(root, "Policies", "$")?.iter().enumerate() {
            let p = format!("$.Policies[{i}]");
            let o = as_obj(pol, &p)?;
            let arn = req_str(o, "Arn", &p)?;
            let name = get_str(o, "PolicyName", &p)?.unwrap_or_else(|| short_name(&arn));
            let default_id = get_str(o, "DefaultVersionId", &p)?;
            let versions = get_list(o, "PolicyVersionList", &p)?;
            let mut chosen: Option<(usize, &Map<String, Value>)> = None;
            for (vi, ver) in versions.iter().enumerate() {
                let vp = format!("{p}.PolicyVersionList[{vi}]");
                let vo = as_obj(ver, &vp)?;
                let is_default = match vo.get("IsDefaultVersion") {
                    Some(Value::Bool(x)) => *x,
                    None | Some(Value::Null) => false,
                    Some(_) => {
                        return Err(sp(&format!("{vp}.IsDefaultVersion"), "must be a boolean"))
                    }
                };
                let vid = get_str(vo, "VersionId", &vp)?;
                if is_default || (default_id.is_some() && vid == default_id && chosen.is_none()) {
                    chosen = Some((vi, vo));
                    if is_default {
                        break;
                    }
                }
            }
            if chosen.is_none() && versions.len() == 1 {
                chosen = versions.first().and_then(|v| v.as_object()).map(|o| (0, o));
            }
            let doc = chosen.map(|(vi, vo)| {
                b.add_doc(
                    vo.get("Document").unwrap_or(&Value::Null),
                    arn.clone(),
                    format!("{p}.PolicyVersionList[{vi}].Document"),
                    DocKind::Identity,
                )
            });
            policies.push(ManagedPolicy { arn, name, doc });
        }

        let account_id = principals
            .iter()
            .map(|p| p.arn.as_str())
            .chain(groups.iter().map(|g| g.arn.as_str()))
            .chain(
                policies
                    .iter()
                    .map(|p| p.arn.as_str())
                    .filter(|a| !a.contains("::aws:")),
            )
            .filter_map(|a| {
                super::glob::arn_account(a)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
            })
            .next()
            .unwrap_or_default();

        // duplicates: the last one wins for lookups; principals keep file order for paths
        let principal_index = principals
            .iter()
            .enumerate()
            .map(|(i, p)| (p.arn.clone(), i))
            .collect();
        let group_index = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        let policy_index = policies
            .iter()
            .enumerate()
            .map(|(i, p)| (p.arn.clone(), i))
            .collect();
        Ok(AccountModel {
            account_id,
            principals,
            groups,
            policies,
            docs: b.docs,
            scps: Vec::new(),
            principal_index,
            group_index,
            policy_index,
        })
    }

    /// Attaches service control policies (organization trees or single SCP documents) that
    /// `analyze_principal` then applies to every principal. Changes every principal's digest.
    pub fn with_scps(mut self, scps: Vec<super::eval::Scps>) -> AccountModel {
        self.scps = scps;
        self
    }

    /// Users and roles (groups are not principals), sorted by ARN.
    pub fn principals(&self) -> Vec<PrincipalRef> {
        let mut v: Vec<PrincipalRef> = self
            .principal_index
            .values()
            .map(|i| {
                let p = &self.principals[*i];
                PrincipalRef {
                    arn: p.arn.clone(),
                    name: p.name.clone(),
                    kind: p.kind,
                }
            })
            .collect();
        v.sort_by(|a, b| a.arn.cmp(&b.arn));
        v
    }

    /// The account id (from the ARNs in the file; empty if the file names none).
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Policy documents that failed to parse: (policy, JSON path, message).
    pub fn policy_errors(&self) -> Vec<PolicyError> {
        self.docs
            .iter()
            .filter_map(|d| d.parsed.as_ref().err().cloned())
            .collect()
    }

    pub(crate) fn principal(&self, arn: &str) -> Option<&Principal> {
        self.principal_index.get(arn).map(|i| &self.principals[*i])
    }
    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        self.group_index.get(name).map(|i| &self.groups[*i])
    }
    pub(crate) fn policy(&self, arn: &str) -> Option<&ManagedPolicy> {
        self.policy_index.get(arn).map(|i| &self.policies[*i])
    }
    pub(crate) fn all_principals(&self) -> impl Iterator<Item = &Principal> {
        let mut idx: Vec<usize> = self.principal_index.values().copied().collect();
        idx.sort_by(|a, b| self.principals[*a].arn.cmp(&self.principals[*b].arn));
        idx.into_iter().map(|i| &self.principals[i])
    }
    pub(crate) fn doc(&self, id: DocId) -> &DocEntry {
        &self.docs[id]
    }

    /// Hex sha256 over everything that determines this principal's result: identity,
    /// tags, inline policies, attached managed policies, its groups and their policies,
    /// the permission boundary and the trust policy. Together with `ENGINE_VERSION` (and
    /// the last-accessed data's `LastAccessed::digest`) it is the cache key of the result.
    pub fn principal_digest(&self, principal_arn: &str) -> Option<String> {
        let p = self.principal(principal_arn)?;
        let mut h = Sha256::new();
        let mut field = |k: &str, v: &[u8]| {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v);
        };
        field("format", b"accessflow-principal-digest-1");
        field("account", self.account_id.as_bytes());
        field("kind", p.kind.as_str().as_bytes());
        field("arn", p.arn.as_bytes());
        field("name", p.name.as_bytes());
        field("id", p.id.as_bytes());
        field("path", p.path.as_bytes());
        for (k, v) in &p.tags {
            field("tag", k.as_bytes());
            field("tag-value", v.as_bytes());
        }
        let managed = |field: &mut dyn FnMut(&str, &[u8]), arn: &str| {
            field("managed", arn.as_bytes());
            match self.policy(arn).and_then(|m| m.doc) {
                Some(d) => field("doc", &self.docs[d].digest),
                None => field("doc", b"missing"),
            }
        };
        for d in &p.inline {
            field("inline", d.name.as_bytes());
            field("doc", &self.docs[d.doc].digest);
        }
        for m in &p.managed {
            managed(&mut field, m);
        }
        for g in &p.groups {
            field("group", g.as_bytes());
            match self.group(g) {
                Some(gr) => {
                    field("group-arn", gr.arn.as_bytes());
                    for d in &gr.inline {
                        field("inline", d.name.as_bytes());
                        field("doc", &self.docs[d.doc].digest);
                    }
                    for m in &gr.managed {
                        managed(&mut field, m);
                    }
                }
                None => field("group-arn", b"missing"),
            }
        }
        if let Some(bd) = &p.boundary {
            field("boundary", b"");
            managed(&mut field, bd);
        }
        if let Some(t) = p.trust {
            field("trust", &self.docs[t].digest);
        }
        for s in &self.scps {
            field("scp", &s.digest);
        }
        Some(hex::encode(h.finalize()))
    }
}

fn boundary(o: &Map<String, Value>, path: &str) -> Result<Option<String>, ParseError> {
    match o.get("PermissionsBoundary") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(b)) => get_str(
            b,
            "PermissionsBoundaryArn",
            &format!("{path}.PermissionsBoundary"),
        ),
        Some(_) => Err(sp(
            &format!("{path}.PermissionsBoundary"),
            "must be an object",
        )),
    }
}

/// One service's entry of `iam:GetServiceLastAccessedDetails`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceLastAccessed {
    pub service_name: String,
    pub service_namespace: String,
    pub last_authenticated: Option<String>,
}

/// Last-accessed data for one principal.
#[derive(Debug, Clone, Default)]
pub struct LastAccessed {
    pub services: BTreeMap<String, ServiceLastAccessed>,
    digest: String,
}

impl LastAccessed {
    pub fn parse(bytes: &[u8]) -> Result<LastAccessed, ParseError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))?;
        let root = as_obj(&v, "$")?;
        let list = match root.get("ServicesLastAccessed") {
            Some(Value::Array(a)) => a,
            Some(_) => return Err(sp("$.ServicesLastAccessed", "must be a list")),
            None => return Err(sp("$.ServicesLastAccessed", "missing")),
        };
        let mut services = BTreeMap::new();
        for (i, s) in list.iter().enumerate() {
            let p = format!("$.ServicesLastAccessed[{i}]");
            let o = as_obj(s, &p)?;
            let ns = req_str(o, "ServiceNamespace", &p)?;
            services.insert(
                ns.to_ascii_lowercase(),
                ServiceLastAccessed {
                    service_name: get_str(o, "ServiceName", &p)?.unwrap_or_default(),
                    service_namespace: ns,
                    last_authenticated: get_str(o, "LastAuthenticated", &p)?,
                },
            );
        }
        // Over what the analysis reads, not the whole document: a document fetched again
        // tomorrow carries new job dates (`JobCreationDate`, `JobCompletionDate`) and would
        // otherwise miss the result cache every night for the same access.
        let mut hasher = Sha256::new();
        for (namespace, service) in &services {
            for part in [
                namespace.as_str(),
                service.service_name.as_str(),
                service.last_authenticated.as_deref().unwrap_or("-"),
            ] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part.as_bytes());
            }
        }
        Ok(LastAccessed {
            services,
            digest: hex::encode(hasher.finalize()),
        })
    }

    /// The document reduced to what [`LastAccessed::parse`] reads: each service's name,
    /// namespace and last-authenticated time, without the job's metadata or the per-service
    /// entity counts, entity ARNs and regions. What the cache keeps (about half the bytes
    /// of `GetServiceLastAccessedDetails`' answer on the bundled sample); it parses back to
    /// the same services and digest.
    pub fn to_reduced_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Reduced<'a> {
            #[serde(rename = "ServicesLastAccessed")]
            services: Vec<ReducedService<'a>>,
        }
        #[derive(Serialize)]
        struct ReducedService<'a> {
            #[serde(rename = "ServiceName")]
            name: &'a str,
            #[serde(rename = "ServiceNamespace")]
            namespace: &'a str,
            #[serde(rename = "LastAuthenticated", skip_serializing_if = "Option::is_none")]
            last_authenticated: Option<&'a str>,
        }
        let reduced = Reduced {
            services: self
                .services
                .values()
                .map(|s| ReducedService {
                    name: &s.service_name,
                    namespace: &s.service_namespace,
                    last_authenticated: s.last_authenticated.as_deref(),
                })
                .collect(),
        };
        // Strings and a list only: serialising cannot fail.
        serde_json::to_vec(&reduced).unwrap_or_default()
    }

    /// Hex sha256 of the services and their last-authenticated times (what unused access
    /// is computed from): part of a result's cache key. Job metadata is left out, so the
    /// same access fetched on another night has the same digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The latest `LastAuthenticated` over all services.
    pub fn last_used(&self) -> Option<&str> {
        self.services
            .values()
            .filter_map(|s| s.last_authenticated.as_deref())
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::LastAccessed;

    fn document(job_date: &str, last: &str) -> Vec<u8> {
        format!(
            r#"{{"JobStatus":"COMPLETED","JobCreationDate":"{job_date}","JobCompletionDate":"{job_date}",
               "ServicesLastAccessed":[{{"ServiceName":"Amazon S3","ServiceNamespace":"s3",
               "LastAuthenticated":"{last}"}},{{"ServiceName":"AWS KMS","ServiceNamespace":"kms"}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_digest_ignores_job_dates_but_not_access_times() {
        let monday = LastAccessed::parse(&document("2026-11-30T02:00:00Z", "2026-11-01T00:00:00Z"))
            .expect("parses");
        let tuesday =
            LastAccessed::parse(&document("2026-12-01T02:00:00Z", "2026-11-01T00:00:00Z"))
                .expect("parses");
        let used = LastAccessed::parse(&document("2026-12-01T02:00:00Z", "2026-11-30T09:00:00Z"))
            .expect("parses");
        assert_eq!(monday.digest(), tuesday.digest());
        assert_ne!(tuesday.digest(), used.digest());
    }

    #[test]
    fn the_reduced_document_parses_back_to_the_same_services_and_digest() {
        let full = br#"{"JobStatus":"COMPLETED","JobType":"SERVICE_LEVEL",
            "JobCreationDate":"2026-11-25T02:01:00+00:00",
            "ServicesLastAccessed":[
              {"ServiceName":"Amazon S3","ServiceNamespace":"S3","LastAuthenticated":"2026-02-08T05:07:50+00:00",
               "LastAuthenticatedEntity":"arn:aws:iam::111122223333:role/r","LastAuthenticatedRegion":"eu-west-1",
               "TotalAuthenticatedEntities":1},
              {"ServiceName":"AWS KMS","ServiceNamespace":"kms","TotalAuthenticatedEntities":0},
              {"ServiceNamespace":"athena"}]}"#;
        let parsed = LastAccessed::parse(full).expect("parses");
        let reduced = parsed.to_reduced_json();
        let text = String::from_utf8(reduced.clone()).expect("utf-8");
        for dropped in [
            "JobCreationDate",
            "TotalAuthenticatedEntities",
            "eu-west-1",
            "role/r",
        ] {
            assert!(!text.contains(dropped), "{dropped} kept: {text}");
        }
        assert!(reduced.len() < full.len() / 2, "{text}");
        let again = LastAccessed::parse(&reduced).expect("the reduced form parses");
        assert_eq!(again.services, parsed.services);
        assert_eq!(again.digest(), parsed.digest());
        assert_eq!(again.services["s3"].service_namespace, "S3");
        assert_eq!(again.services["athena"].service_name, "");
        assert_eq!(
            again.to_reduced_json(),
            reduced,
            "reducing twice changes nothing"
        );
    }
}
