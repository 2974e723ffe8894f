//! IAM policy documents: parsed once, with every element normalised (string-or-list) and
//! every error located by a JSON path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::condition::Condition;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Action` or `NotAction` (patterns as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionMatch {
    Action(Vec<String>),
    NotAction(Vec<String>),
}

/// `Resource`, `NotResource`, or absent (trust policies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceMatch {
    Resource(Vec<String>),
    NotResource(Vec<String>),
    Absent,
}

/// The principals named in a `Principal` / `NotPrincipal` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principals {
    /// `"Principal": "*"`
    pub any: bool,
    pub aws: Vec<String>,
    pub service: Vec<String>,
    pub federated: Vec<String>,
    pub canonical_user: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalMatch {
    Principal(Principals),
    NotPrincipal(Principals),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub index: usize,
    pub sid: Option<String>,
    pub effect: Effect,
    pub actions: ActionMatch,
    pub resources: ResourceMatch,
    pub principals: Option<PrincipalMatch>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub statements: Vec<Statement>,
}

/// A located error inside one document (path relative to the account file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    pub path: String,
    pub message: String,
}

fn derr(path: &str, message: impl Into<String>) -> DocError {
    DocError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Which policy kind is parsed: identity policies need Action + Resource; resource and trust
/// policies need a Principal; SCPs need Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Identity,
    Resource,
    Trust,
    Scp,
}

/// Largest accepted policy document (AWS's own limits are far smaller: 6,144 characters for
/// managed policies, 10,240 for a role's inline policies together).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Decodes `%XX` escapes (the API form of the account file URL-encodes policy documents).
pub fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            let hs = std::str::from_utf8(hex).map_err(|_| "bad %-escape")?;
            let v = u8::from_str_radix(hs, 16).map_err(|_| format!("bad %-escape %{hs}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL-decoded document is not UTF-8".to_string())
}

/// Turns the value found at a policy-document position into a JSON object: an object as
/// is (CLI form), or a string holding URL-encoded (API form) or plain JSON.
pub fn document_value(v: &Value, path: &str) -> Result<Value, DocError> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        Value::String(s) => {
            if s.len() > MAX_DOCUMENT_BYTES * 3 {
                return Err(derr(
                    path,
                    format!("policy document too large ({} bytes)", s.len()),
                ));
            }
            let decoded = percent_decode(s).map_err(|m| derr(path, m))?;
            if decoded.len() > MAX_DOCUMENT_BYTES {
                return Err(derr(
                    path,
                    format!("policy document too large ({} bytes)", decoded.len()),
                ));
            }
            serde_json::from_str::<Value>(&decoded)
                .map_err(|e| derr(path, format!("policy document is not valid JSON: {e}")))
        }
        _ => Err(derr(path, "policy document must be an object or a string")),
    }
}

fn string_or_list(v: &Value, path: &str, allow_empty: bool) -> Result<Vec<String>, DocError> {
    let out = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                match x {
                    Value::String(s) => out.push(s.clone()),
                    _ => return Err(derr(&format!("{path}[{i}]"), "must be a string")),
                }
            }
            out
        }
        _ => return Err(derr(path, "must be a string or a list of strings")),
    };
    if out.is_empty() && !allow_empty {
        return Err(derr(path, "must not be empty"));
    }
    Ok(out)
}

fn parse_principals(v: &Value, path: &str) -> Result<Principals, DocError> {
    let mut p = Principals::default();
    match v {
        Value::String(s) if s == "*" => p.any = true,
        // IAMSpy's resource policy files use a bare ARN string; accept it as AWS principal
        Value::String(s) => p.aws.push(s.clone()),
        Value::Object(m) => {
            for (k, val) in m {
                let sub = format!("{path}.{k}");
                let list = string_or_list(val, &sub, true)?;
                match k.as_str() {
                    "AWS" => p.aws.extend(list),
                    "Service" => p.service.extend(list),
                    "Federated" => p.federated.extend(list),
                    "CanonicalUser" => p.canonical_user.extend(list),
                    _ => return Err(derr(&sub, format!("unknown principal type {k:?}"))),
                }
            }
        }
        _ => return Err(derr(path, "must be \"*\" or an object")),
    }
    Ok(p)
}

/// Parses one policy document (already a JSON value) located at `path`.
pub fn parse_document(v: &Value, path: &str, kind: DocKind) -> Result<PolicyDocument, DocError> {
    let Value::Object(m) = v else {
        return Err(derr(path, "policy document must be a JSON object"));
    };
    let mut doc = PolicyDocument::default();
    let mut statements: Option<&Value> = None;
    for (k, val) in m {
        match k.as_str() {
            "Version" => match val {
                Value::String(s) => doc.version = Some(s.clone()),
                _ => return Err(derr(&format!("{path}.Version"), "must be a string")),
            },
            "Id" => {
                if !val.is_string() {
                    return Err(derr(&format!("{path}.Id"), "must be a string"));
                }
            }
            "Statement" => statements = Some(val),
            _ => return Err(derr(&format!("{path}.{k}"), format!("unknown key {k:?}"))),
        }
    }
    let spath = format!("{path}.Statement");
    let list: Vec<(String, &Value)> = match statements {
        None => return Err(derr(path, "missing Statement")),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{spath}[{i}]"), s))
            .collect(),
        Some(o @ Value::Object(_)) => vec![(spath.clone(), o)],
        Some(_) => return Err(derr(&spath, "must be an object or a list of objects")),
    };
    for (index, (p, s)) in list.into_iter().enumerate() {
        doc.statements.push(parse_statement(s, &p, index, kind)?);
    }
    Ok(doc)
}

fn parse_statement(
    v: &Value,
    path: &str,
    index: usize,
    kind: DocKind,
) -> Result<Statement, DocError> {
    let Value::Object(m) = v else {
        return Err(derr(path, "statement must be an object"));
    };
    let mut sid = None;
    let mut effect = None;
    let mut actions = None;
    let mut resources = ResourceMatch::Absent;
    let mut principals = None;
    let mut conditions = Vec::new();
    for (k, val) in m {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "Sid" => match val {
                Value::String(s) => sid = Some(s.clone()),
                _ => return Err(derr(&p, "must be a string")),
            },
            "Effect" => match val.as_str() {
                Some("Allow") => effect = Some(Effect::Allow),
                Some("Deny") => effect = Some(Effect::Deny),
                _ => return Err(derr(&p, "must be \"Allow\" or \"Deny\"")),
            },
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return Err(derr(&p, "both Action and NotAction"));
                }
                let list = string_or_list(val, &p, false)?;
                for (i, a) in list.iter().enumerate() {
                    if a != "*" && !a.contains(':') {
                        return Err(derr(
                            &format!("{p}[{i}]"),
                            format!("action {a:?} has no service prefix"),
                        ));
                    }
                }
                actions = Some(if k == "Action" {
                    ActionMatch::Action(list)
                } else {
                    ActionMatch::NotAction(list)
                });
            }
            "Resource" | "NotResource" => {
                if resources != ResourceMatch::Absent {
                    return Err(derr(&p, "both Resource and NotResource"));
                }
                let list = string_or_list(val, &p, false)?;
                resources = if k == "Resource" {
                    ResourceMatch::Resource(list)
                } else {
                    ResourceMatch::NotResource(list)
                };
            }
            "Principal" | "NotPrincipal" => {
                if principals.is_some() {
                    return Err(derr(&p, "both Principal and NotPrincipal"));
                }
                let ps = parse_principals(val, &p)?;
                principals = Some(if k == "Principal" {
                    PrincipalMatch::Principal(ps)
                } else {
                    PrincipalMatch::NotPrincipal(ps)
                });
            }
            "Condition" => conditions = super::condition::parse_conditions(val, &p)?,
            _ => return Err(derr(&p, format!("unknown key {k:?}"))),
        }
    }
    let effect = effect.ok_or_else(|| derr(path, "missing Effect"))?;
    let actions = actions.ok_or_else(|| derr(path, "missing Action or NotAction"))?;
    match kind {
        DocKind::Identity => {
            if resources == ResourceMatch::Absent {
                return Err(derr(path, "missing Resource or NotResource"));
            }
            if principals.is_some() {
                return Err(derr(
                    path,
                    "identity policy statements must not have a Principal",
                ));
            }
        }
        DocKind::Resource | DocKind::Trust => {
            if principals.is_none() {
                return Err(derr(path, "missing Principal or NotPrincipal"));
            }
        }
        DocKind::Scp => {}
    }
    Ok(Statement {
        index,
        sid,
        effect,
        actions,
        resources,
        principals,
        conditions,
    })
}

/// Canonical JSON (object keys sorted, no whitespace), for digests.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(*k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        _ => out.push_str(&v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_or_list_forms() {
        let d = parse_document(
            &json!({"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":["a","b"]}}),
            "$",
            DocKind::Identity,
        )
        .expect("parses");
        assert_eq!(d.statements.len(), 1);
        assert_eq!(
            d.statements[0].actions,
            ActionMatch::Action(vec!["s3:*".into()])
        );
    }

    #[test]
    fn errors_have_paths() {
        let e = parse_document(
            &json!({"Statement":[{"Effect":"Allow","Action":["s3:*", 3],"Resource":"*"}]}),
            "$.P",
            DocKind::Identity,
        )
        .expect_err("bad");
        assert_eq!(e.path, "$.P.Statement[0].Action[1]");
        let e = parse_document(
            &json!({"Statement":[{"Effect":"Maybe"}]}),
            "$",
            DocKind::Identity,
        )
        .expect_err("bad");
        assert_eq!(e.path, "$.Statement[0].Effect");
    }

    #[test]
    fn url_encoded() {
        let v = Value::String("%7B%22Statement%22%3A%5B%5D%7D".into());
        let d = document_value(&v, "$").expect("decodes");
        assert_eq!(d, json!({"Statement": []}));
    }
}
