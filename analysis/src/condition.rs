//! Condition operators, evaluated in three-valued logic: a condition is `Yes`, `No`, or
//! `Maybe` (it depends on request context that is not known). AWS's rules for missing keys,
//! `...IfExists`, `Null`, and the `ForAllValues` / `ForAnyValue` set operators are followed.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use super::glob::{substitute_variables, wildcard_match};
use super::policy::DocError;

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tri {
    No,
    Maybe,
    Yes,
}

impl Tri {
    pub fn and(self, o: Tri) -> Tri {
        self.min(o)
    }
    pub fn or(self, o: Tri) -> Tri {
        self.max(o)
    }
    pub fn negate(self) -> Tri {
        match self {
            Tri::No => Tri::Yes,
            Tri::Maybe => Tri::Maybe,
            Tri::Yes => Tri::No,
        }
    }
    pub fn from_bool(b: bool) -> Tri {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        use Op::*;
        Some(match s {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "BinaryEquals" => BinaryEquals,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "Null" => Null,
            _ => return None,
        })
    }
    /// Negated operators are true when no context value matches.
    fn negated(self) -> Option<Op> {
        use Op::*;
        Some(match self {
            StringNotEquals => StringEquals,
            StringNotEqualsIgnoreCase => StringEqualsIgnoreCase,
            StringNotLike => StringLike,
            NumericNotEquals => NumericEquals,
            DateNotEquals => DateEquals,
            NotIpAddress => IpAddress,
            ArnNotEquals => ArnEquals,
            ArnNotLike => ArnLike,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    None,
    ForAllValues,
    ForAnyValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Operator as written, e.g. `ForAnyValue:StringLikeIfExists`.
    pub operator: String,
    pub op: Op,
    pub if_exists: bool,
    pub qualifier: SetQualifier,
    pub key: String,
    pub values: Vec<String>,
}

pub(crate) fn parse_conditions(v: &Value, path: &str) -> Result<Vec<Condition>, DocError> {
    let err = |p: &str, m: String| DocError {
        path: p.to_string(),
        message: m,
    };
    let Value::Object(ops) = v else {
        return Err(err(path, "Condition must be an object".into()));
    };
    let mut out = Vec::new();
    for (opname, block) in ops {
        let p = format!("{path}.{opname}");
        let (qualifier, rest) = if let Some(r) = opname.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else if let Some(r) = opname.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else {
            (SetQualifier::None, opname.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) if b != "Null" => (b, true),
            _ => (rest, false),
        };
        let op = Op::parse(base)
            .ok_or_else(|| err(&p, format!("unknown condition operator {opname:?}")))?;
        let Value::Object(keys) = block else {
            return Err(err(&p, "condition block must be an object".into()));
        };
        for (key, val) in keys {
            let kp = format!("{p}.{key}");
            let scalar = |x: &Value, xp: &str| -> Result<String, DocError> {
                match x {
                    Value::String(s) => Ok(s.clone()),
                    Value::Bool(b) => Ok(b.to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(err(
                        xp,
                        "condition value must be a string, number or boolean".into(),
                    )),
                }
            };
            let values = match val {
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| scalar(x, &format!("{kp}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?,
                x => vec![scalar(x, &kp)?],
            };
            out.push(Condition {
                operator: opname.clone(),
                op,
                if_exists,
                qualifier,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

/// Request context: condition keys (compared case-insensitively) with one or more values.
/// `closed` means the context is complete: a key not in it is absent from the request. An
/// open context (no request context given) leaves unknown keys undecided (`Maybe`).
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    values: HashMap<String, Vec<String>>,
    pub closed: bool,
}

impl RequestContext {
    pub fn open() -> Self {
        RequestContext::default()
    }
    pub fn closed() -> Self {
        RequestContext {
            values: HashMap::new(),
            closed: true,
        }
    }
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
    }
    pub fn add(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.into());
    }
    pub fn set_if_absent(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .entry(key.to_ascii_lowercase())
            .or_insert_with(|| vec![value.into()]);
    }
    pub fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.values.get(&key.to_ascii_lowercase())
    }
    pub fn first(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| v.first().cloned())
    }
}

fn parse_date(s: &str) -> Option<i128> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    s.parse::<i64>().ok().map(|e| e as i128 * 1_000_000_000)
}

fn ip_in(cidr: &str, ip: &str) -> bool {
    let Ok(addr) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Does one context value match one policy value under a positive operator?
fn matches(op: Op, policy: &str, ctx: &str) -> bool {
    use Op::*;
    match op {
        StringEquals => policy == ctx,
        StringEqualsIgnoreCase => policy.eq_ignore_ascii_case(ctx),
        StringLike => wildcard_match(policy, ctx, false),
        NumericEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => {
            match (ctx.trim().parse::<f64>(), policy.trim().parse::<f64>()) {
                (Ok(c), Ok(p)) => match op {
                    NumericEquals => c == p,
                    NumericLessThan => c < p,
                    NumericLessThanEquals => c <= p,
                    NumericGreaterThan => c > p,
                    _ => c >= p,
                },
                _ => false,
            }
        }
        DateEquals
        | DateLessThan
        | DateLessThanEquals
        | DateGreaterThan
        | DateGreaterThanEquals => match (parse_date(ctx), parse_date(policy)) {
            (Some(c), Some(p)) => match op {
                DateEquals => c == p,
                DateLessThan => c < p,
                DateLessThanEquals => c <= p,
                DateGreaterThan => c > p,
                _ => c >= p,
            },
            _ => false,
        },
        Bool => policy.eq_ignore_ascii_case(ctx),
        BinaryEquals => policy == ctx,
        IpAddress => ip_in(policy, ctx),
        ArnEquals | ArnLike => wildcard_match(policy, ctx, false),
        // negated and Null operators are handled by the caller
        _ => false,
    }
}

impl Condition {
    /// Evaluates the condition against a context. `Maybe` when a needed key is unknown.
    pub fn evaluate(&self, ctx: &RequestContext) -> Tri {
        // policy values may contain policy variables
        let mut unknown_var = false;
        let mut values: Vec<String> = Vec::with_capacity(self.values.len());
        for v in &self.values {
            let look = |k: &str| ctx.first(k);
            match substitute_variables(v, &look, false) {
                Some((s, _)) => values.push(s),
                None => {
                    if ctx.closed {
                        // a variable whose key is absent makes that value never match
                        continue;
                    }
                    unknown_var = true;
                }
            }
        }
        if unknown_var {
            return Tri::Maybe;
        }
        let present = ctx.get(&self.key);
        if self.op == Op::Null {
            let want_absent = values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return match present {
                Some(_) => Tri::from_bool(!want_absent),
                None if ctx.closed => Tri::from_bool(want_absent),
                None => Tri::Maybe,
            };
        }
        let ctx_vals = match present {
            Some(v) => v,
            None if !ctx.closed => return Tri::Maybe,
            None => {
                // key absent from a complete request context
                if self.if_exists {
                    return Tri::Yes;
                }
                return match self.qualifier {
                    SetQualifier::ForAllValues => Tri::Yes,
                    SetQualifier::ForAnyValue => Tri::No,
                    SetQualifier::None => Tri::from_bool(self.op.negated().is_some()),
                };
            }
        };
        let (pos, negated) = match self.op.negated() {
            Some(p) => (p, true),
            None => (self.op, false),
        };
        let one = |c: &String| -> bool {
            let any = values.iter().any(|p| matches(pos, p, c));
            if negated {
                !any
            } else {
                any
            }
        };
        let r = match self.qualifier {
            SetQualifier::ForAllValues => ctx_vals.iter().all(one),
            SetQualifier::ForAnyValue => ctx_vals.iter().any(one),
            SetQualifier::None => {
                if negated {
                    ctx_vals.iter().all(one)
                } else {
                    ctx_vals.iter().any(one)
                }
            }
        };
        Tri::from_bool(r)
    }
}

/// All conditions of a statement must hold.
pub fn evaluate_all(conds: &[Condition], ctx: &RequestContext) -> Tri {
    let mut r = Tri::Yes;
    for c in conds {
        r = r.and(c.evaluate(ctx));
        if r == Tri::No {
            break;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Vec<Condition> {
        parse_conditions(&v, "$").expect("parses")
    }

    #[test]
    fn operators() {
        let mut ctx = RequestContext::closed();
        ctx.set("aws:SourceIp", "10.1.2.3");
        ctx.set("aws:MultiFactorAuthPresent", "true");
        ctx.set("aws:CurrentTime", "2026-01-01T00:00:00Z");
        ctx.set("s3:max-keys", "10");
        ctx.add("aws:TagKeys", "a");
        ctx.add("aws:TagKeys", "b");
        let yes = |v: Value| assert_eq!(evaluate_all(&cond(v.clone()), &ctx), Tri::Yes, "{v}");
        let no = |v: Value| assert_eq!(evaluate_all(&cond(v.clone()), &ctx), Tri::No, "{v}");
        yes(json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}));
        no(json!({"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}));
        yes(json!({"Bool": {"aws:MultiFactorAuthPresent": true}}));
        yes(json!({"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}}));
        yes(json!({"NumericLessThanEquals": {"s3:max-keys": 10}}));
        yes(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}));
        no(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}));
        yes(json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}));
        yes(json!({"StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"}}));
        no(json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}));
        yes(json!({"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}));
        yes(json!({"Null": {"aws:RequestedRegion": "true"}}));
        no(json!({"Null": {"aws:SourceIp": "true"}}));
        yes(json!({"ForAllValues:StringLike": {"aws:Nothing": "x*"}}));
        no(json!({"ForAnyValue:StringLike": {"aws:Nothing": "x*"}}));
        let open = RequestContext::open();
        assert_eq!(
            evaluate_all(&cond(json!({"StringLike": {"aws:referer": "x"}})), &open),
            Tri::Maybe
        );
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let e = parse_conditions(&json!({"StringSorta": {"a": "b"}}), "$.C").expect_err("bad op");
        assert_eq!(e.path, "$.C.StringSorta");
    }
}
