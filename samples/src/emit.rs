//! Writes the model in AWS's formats: `get-account-authorization-details` JSON, the
//! credential report CSV, and GetServiceLastAccessedDetails JSON per principal.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{service_name, BROAD_NAMESPACES};
use super::json::{jobj, pretty, J};
use super::model::*;
use super::rng::Rng;

fn tags(t: &[(String, String)]) -> J {
    J::Arr(
        t.iter()
            .map(|(k, v)| jobj! {"Key" => k, "Value" => v})
            .collect(),
    )
}

fn inline_list(xs: &[Inline]) -> J {
    J::Arr(
        xs.iter()
            .map(|p| jobj! {"PolicyName" => &p.name, "PolicyDocument" => p.doc.clone()})
            .collect(),
    )
}

fn attached(m: &Model, xs: &[usize]) -> J {
    J::Arr(
        xs.iter()
            .map(
                |&i| jobj! {"PolicyName" => &m.policies[i].name, "PolicyArn" => &m.policies[i].arn},
            )
            .collect(),
    )
}

fn boundary(m: &Model, b: Option<usize>) -> Option<(String, J)> {
    b.map(|i| {
        (
            "PermissionsBoundary".to_string(),
            jobj! {
                "PermissionsBoundaryType" => "PermissionsBoundaryPolicy",
                "PermissionsBoundaryArn" => &m.policies[i].arn,
            },
        )
    })
}

/// The document the policy's default version has, made malformed when asked: the first
/// statement's `Effect` becomes `"Permit"`. The file stays valid JSON.
pub(crate) fn malform(doc: &J) -> J {
    let mut d = doc.clone();
    if let Some(J::Arr(sts)) = d.get_mut("Statement") {
        if let Some(J::Obj(kvs)) = sts.first_mut() {
            for (k, v) in kvs.iter_mut() {
                if k == "Effect" {
                    *v = J::Str("Permit".into());
                }
            }
        }
    }
    d
}

pub(crate) fn authorization_details(m: &Model, malformed: Option<usize>) -> Vec<u8> {
    let mut attach_count = vec![0usize; m.policies.len()];
    let mut boundary_count = vec![0usize; m.policies.len()];
    for u in &m.users {
        u.attached.iter().for_each(|&i| attach_count[i] += 1);
        u.boundary.iter().for_each(|&i| boundary_count[i] += 1);
    }
    for g in &m.groups {
        g.attached.iter().for_each(|&i| attach_count[i] += 1);
    }
    for r in &m.roles {
        r.attached.iter().for_each(|&i| attach_count[i] += 1);
        r.boundary.iter().for_each(|&i| boundary_count[i] += 1);
    }

    let users: Vec<J> = m
        .users
        .iter()
        .map(|u| {
            let mut kv = vec![
                ("Path".to_string(), J::from(&u.path)),
                ("UserName".into(), J::from(&u.name)),
                ("UserId".into(), J::from(&u.id)),
                ("Arn".into(), J::from(&u.arn)),
                ("CreateDate".into(), J::from(iso(u.created))),
            ];
            if !u.inline.is_empty() {
                kv.push(("UserPolicyList".into(), inline_list(&u.inline)));
            }
            kv.push((
                "GroupList".into(),
                J::Arr(
                    u.groups
                        .iter()
                        .map(|&g| J::from(&m.groups[g].name))
                        .collect(),
                ),
            ));
            kv.push(("AttachedManagedPolicies".into(), attached(m, &u.attached)));
            kv.extend(boundary(m, u.boundary));
            kv.push(("Tags".into(), tags(&u.tags)));
            J::Obj(kv)
        })
        .collect();

    let groups: Vec<J> = m
        .groups
        .iter()
        .map(|g| {
            jobj! {
                "Path" => &g.path,
                "GroupName" => &g.name,
                "GroupId" => &g.id,
                "Arn" => &g.arn,
                "CreateDate" => iso(g.created),
                "GroupPolicyList" => inline_list(&g.inline),
                "AttachedManagedPolicies" => attached(m, &g.attached),
            }
        })
        .collect();

    let roles: Vec<J> = m
        .roles
        .iter()
        .map(|r| {
            let profiles = match &r.instance_profile {
                None => J::Arr(vec![]),
                Some(p) => J::Arr(vec![jobj! {
                    "Path" => &r.path,
                    "InstanceProfileName" => &p.name,
                    "InstanceProfileId" => &p.id,
                    "Arn" => format!("arn:aws:iam::{}:instance-profile{}{}", m.account_id, r.path, p.name),
                    "CreateDate" => iso(p.created),
                    "Roles" => vec![jobj! {
                        "Path" => &r.path,
                        "RoleName" => &r.name,
                        "RoleId" => &r.id,
                        "Arn" => &r.arn,
                        "CreateDate" => iso(r.created),
                        "AssumeRolePolicyDocument" => r.trust.clone(),
                    }],
                }]),
            };
            let mut kv = vec![
                ("Path".to_string(), J::from(&r.path)),
                ("RoleName".into(), J::from(&r.name)),
                ("RoleId".into(), J::from(&r.id)),
                ("Arn".into(), J::from(&r.arn)),
                ("CreateDate".into(), J::from(iso(r.created))),
                ("AssumeRolePolicyDocument".into(), r.trust.clone()),
                ("InstanceProfileList".into(), profiles),
                ("RolePolicyList".into(), inline_list(&r.inline)),
                ("AttachedManagedPolicies".into(), attached(m, &r.attached)),
            ];
            kv.extend(boundary(m, r.boundary));
            kv.push(("Tags".into(), tags(&r.tags)));
            let last = match r.last_used {
                Some(t) => jobj! {"LastUsedDate" => iso(t), "Region" => &m.region},
                None => J::Obj(vec![]),
            };
            kv.push(("RoleLastUsed".into(), last));
            J::Obj(kv)
        })
        .collect();

    // Customer managed policies first (all of them, attached or not), then the AWS managed
    // ones in use, as the default filter of the API returns them.
    let order: Vec<usize> = (0..m.policies.len())
        .filter(|&i| !m.policies[i].aws)
        .chain((0..m.policies.len()).filter(|&i| m.policies[i].aws))
        .collect();
    let policies: Vec<J> = order
        .into_iter()
        .map(|i| {
            let p = &m.policies[i];
            let versions: Vec<J> = p
                .versions
                .iter()
                .enumerate()
                .rev()
                .map(|(vi, v)| {
                    let d = if vi == p.default && malformed == Some(i) {
                        malform(&v.doc)
                    } else {
                        v.doc.clone()
                    };
                    jobj! {
                        "Document" => d,
                        "VersionId" => &v.id,
                        "IsDefaultVersion" => vi == p.default,
                        "CreateDate" => &v.created,
                    }
                })
                .collect();
            jobj! {
                "PolicyName" => &p.name,
                "PolicyId" => &p.id,
                "Arn" => &p.arn,
                "Path" => &p.path,
                "DefaultVersionId" => &p.versions[p.default].id,
                "AttachmentCount" => attach_count[i],
                "PermissionsBoundaryUsageCount" => boundary_count[i],
                "IsAttachable" => true,
                "CreateDate" => &p.created,
                "UpdateDate" => &p.updated,
                "PolicyVersionList" => versions,
            }
        })
        .collect();

    let mut out = pretty(&jobj! {
        "UserDetailList" => users,
        "GroupDetailList" => groups,
        "RoleDetailList" => roles,
        "Policies" => policies,
    });
    out.push(b'\n');
    out
}

const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

/// The credential report as `aws iam get-credential-report` returns it (Content decoded):
/// a header, `<root_account>`, then one row per user; no trailing newline.
pub(crate) fn credential_report(m: &Model) -> Vec<u8> {
    let mut lines = Vec::with_capacity(m.users.len() + 2);
    lines.push(HEADER.to_string());
    let root_used = m
        .root_password_last_used
        .map(iso)
        .unwrap_or_else(|| "no_information".into());
    lines.push(format!(
        "<root_account>,arn:aws:iam::{}:root,{},not_supported,{root_used},not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
        m.account_id,
        iso(m.account_created)
    ));
    for u in &m.users {
        let c = &u.creds;
        let mut f: Vec<String> = vec![u.name.clone(), u.arn.clone(), iso(u.created)];
        match c.password {
            Some((used, changed)) => {
                f.push("true".into());
                f.push(used.map(iso).unwrap_or_else(|| "no_information".into()));
                f.push(iso(changed));
                f.push(match m.max_password_age_days {
                    Some(d) => iso(changed + d * 86_400),
                    None => "N/A".into(),
                });
            }
            None => f.extend(["false", "N/A", "N/A", "N/A"].map(String::from)),
        }
        f.push(c.mfa.to_string());
        for k in &c.keys {
            match k {
                Some(k) => {
                    f.push(k.active.to_string());
                    f.push(iso(k.rotated));
                    match &k.last_used {
                        Some((t, region, svc)) => {
                            f.push(iso(*t));
                            f.push(region.clone());
                            f.push(svc.clone());
                        }
                        None => f.extend(["N/A", "N/A", "N/A"].map(String::from)),
                    }
                }
                None => f.extend(["false", "N/A", "N/A", "N/A", "N/A"].map(String::from)),
            }
        }
        f.extend(["false", "N/A", "false", "N/A"].map(String::from));
        lines.push(f.join(","));
    }
    lines.join("\n").into_bytes()
}

/// Service namespaces a policy document allows something in (what AWS lists in
/// last-accessed data: the services the principal's policies grant).
fn namespaces(doc: &J, out: &mut BTreeSet<String>) {
    let statements: Vec<&J> = match doc.get("Statement") {
        Some(J::Arr(xs)) => xs.iter().collect(),
        Some(other) => vec![other],
        None => return,
    };
    for s in statements {
        if s.get("Effect") != Some(&J::Str("Allow".into())) {
            continue;
        }
        if let Some(not) = s.get("NotAction") {
            let excluded: BTreeSet<&str> = not
                .strs()
                .iter()
                .filter_map(|a| a.strip_suffix(":*"))
                .collect();
            out.extend(
                BROAD_NAMESPACES
                    .iter()
                    .filter(|ns| !excluded.contains(*ns))
                    .map(|ns| ns.to_string()),
            );
        }
        if let Some(a) = s.get("Action") {
            for a in a.strs() {
                if a == "*" {
                    out.extend(BROAD_NAMESPACES.iter().map(|ns| ns.to_string()));
                } else if let Some((ns, _)) = a.split_once(':') {
                    out.insert(ns.to_string());
                }
            }
        }
    }
}

/// GetServiceLastAccessedDetails JSON for every user and role, keyed by ARN.
pub(crate) fn last_accessed(m: &Model) -> BTreeMap<String, Vec<u8>> {
    let per_policy: Vec<BTreeSet<String>> = m
        .policies
        .iter()
        .map(|p| {
            let mut s = BTreeSet::new();
            namespaces(&p.versions[p.default].doc, &mut s);
            s
        })
        .collect();
    let mut out = BTreeMap::new();
    let job_created = m.now + 60;
    for u in &m.users {
        let mut ns = BTreeSet::new();
        let mut pols: Vec<usize> = u.attached.clone();
        for &g in &u.groups {
            pols.extend(&m.groups[g].attached);
            m.groups[g]
                .inline
                .iter()
                .for_each(|p| namespaces(&p.doc, &mut ns));
        }
        pols.iter()
            .for_each(|&i| ns.extend(per_policy[i].iter().cloned()));
        u.inline.iter().for_each(|p| namespaces(&p.doc, &mut ns));
        let v = one(
            m,
            &u.arn,
            &ns,
            u.activity,
            u.last_used,
            u.created,
            job_created,
        );
        out.insert(u.arn.clone(), v);
    }
    for r in &m.roles {
        let mut ns = BTreeSet::new();
        r.attached
            .iter()
            .for_each(|&i| ns.extend(per_policy[i].iter().cloned()));
        r.inline.iter().for_each(|p| namespaces(&p.doc, &mut ns));
        let v = one(
            m,
            &r.arn,
            &ns,
            r.activity,
            r.last_used,
            r.created,
            job_created,
        );
        out.insert(r.arn.clone(), v);
    }
    out
}

fn one(
    m: &Model,
    arn: &str,
    ns: &BTreeSet<String>,
    activity: Activity,
    last_used: Option<i64>,
    created: i64,
    job_created: i64,
) -> Vec<u8> {
    let mut rng = Rng::derive(m.seed, arn);
    let list: Vec<&String> = ns.iter().collect();
    // Which services were used: the principal's last use is on one of them; others
    // were used a little earlier, or never.
    let mut used: Vec<Option<i64>> = vec![None; list.len()];
    if let (Some(t), false) = (last_used, list.is_empty()) {
        let main = rng.below(list.len() as u64) as usize;
        used[main] = Some(t);
        let p = if activity == Activity::Active {
            0.5
        } else {
            0.3
        };
        for (i, slot) in used.iter_mut().enumerate() {
            if i != main && rng.chance(p) {
                *slot = Some(rng.range((t - 90 * 86_400).max(created + 60), t));
            }
        }
    }
    let services: Vec<J> = list
        .iter()
        .zip(used)
        .map(|(ns, used)| match used {
            Some(t) => jobj! {
                "ServiceName" => service_name(ns),
                "LastAuthenticated" => iso(t),
                "ServiceNamespace" => ns.as_str(),
                "LastAuthenticatedEntity" => arn,
                "LastAuthenticatedRegion" => &m.region,
                "TotalAuthenticatedEntities" => 1usize,
            },
            None => jobj! {
                "ServiceName" => service_name(ns),
                "ServiceNamespace" => ns.as_str(),
                "TotalAuthenticatedEntities" => 0usize,
            },
        })
        .collect();
    pretty(&jobj! {
        "JobStatus" => "COMPLETED",
        "JobType" => "SERVICE_LEVEL",
        "JobCreationDate" => iso(job_created),
        "ServicesLastAccessed" => services,
        "JobCompletionDate" => iso(job_created + 3),
        "IsTruncated" => false,
    })
}
