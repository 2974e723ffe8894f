//! Wildcard matching as IAM does it: `*` matches any sequence (also empty), `?` exactly one
//! character. Actions compare case-insensitively, ARNs case-sensitively.

/// Matches `text` against `pattern` with `*` and `?`: greedy with one backtrack point,
/// O(len(pattern) x len(text)) in the worst case, never exponential; no allocation for ASCII.
pub fn wildcard_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.is_ascii() && text.is_ascii() {
        return match_units(
            pattern.as_bytes(),
            text.as_bytes(),
            |a, b| {
                if case_insensitive {
                    a.eq_ignore_ascii_case(&b)
                } else {
                    a == b
                }
            },
            b'*',
            b'?',
        );
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    match_units(
        &p,
        &t,
        |a, b| {
            if case_insensitive {
                a == b || a.to_lowercase().eq(b.to_lowercase())
            } else {
                a == b
            }
        },
        '*',
        '?',
    )
}

fn match_units<T: Copy + PartialEq>(
    p: &[T],
    t: &[T],
    eq: impl Fn(T, T) -> bool,
    star_c: T,
    any_c: T,
) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut mark = 0usize;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_c || (p[pi] != star_c && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_c {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == star_c {
        pi += 1;
    }
    pi == p.len()
}

/// True when the pattern has a wildcard.
pub fn has_wildcard(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

/// Does pattern `general` match every string that pattern `specific` matches? Exact for the
/// common cases (`*`, equal patterns, literal `specific`, `specific` that is `general`'s
/// prefix followed by more); conservative (false) otherwise.
pub fn pattern_covers(general: &str, specific: &str) -> bool {
    if general == "*" || general == specific {
        return true;
    }
    if !has_wildcard(specific) {
        return wildcard_match(general, specific, false);
    }
    // `specific` has wildcards: treat them as literal characters of a sample; if general
    // matches the sample where wildcards are literal and general ends in `*` after a literal
    // prefix of specific, it covers it.
    if let Some(prefix) = general.strip_suffix('*') {
        if !has_wildcard(prefix) {
            return specific.starts_with(prefix);
        }
    }
    false
}

/// Intersection of two resource patterns, when one covers the other; `None` when they
/// are disjoint or the intersection is not itself one of the two patterns (rare shapes such
/// as `a*` and `*b`, which are treated as disjoint).
pub fn pattern_intersect<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    if pattern_covers(a, b) {
        Some(b)
    } else if pattern_covers(b, a) {
        Some(a)
    } else {
        None
    }
}

/// The ARN's service segment (`arn:aws:s3:::b` -> `s3`) when it is literal.
pub fn arn_service(arn: &str) -> Option<&str> {
    let mut it = arn.splitn(4, ':');
    if it.next()? != "arn" {
        return None;
    }
    let _partition = it.next()?;
    let svc = it.next()?;
    if has_wildcard(svc) {
        None
    } else {
        Some(svc)
    }
}

/// The ARN's account segment (5th), empty for S3 buckets and objects.
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    it.next()?;
    it.next()?;
    it.next()?;
    it.next()
}

/// Substitutes IAM policy variables (`${aws:username}`, `${*}`, `${?}`, `${$}`, and
/// `${key, 'default'}`) in a Resource element. `lookup` gives the value of a key (keys are
/// compared case-insensitively by the caller). Returns the substituted pattern and whether
/// some variable was unknown (then it is replaced by `*` and the caller marks the result
/// conditional).
pub fn substitute_variables(
    pattern: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unknown_as_wildcard: bool,
) -> Option<(String, bool)> {
    if !pattern.contains("${") {
        return Some((pattern.to_string(), false));
    }
    let mut out = String::with_capacity(pattern.len());
    let mut unknown = false;
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = after[..end].trim();
        rest = &after[end + 1..];
        match inner {
            "*" => out.push('*'),
            "?" => out.push('?'),
            "$" => out.push('$'),
            _ => {
                let (key, default) = match inner.split_once(',') {
                    Some((k, d)) => {
                        let d = d.trim();
                        let d = d
                            .strip_prefix('\'')
                            .and_then(|d| d.strip_suffix('\''))
                            .unwrap_or(d);
                        (k.trim(), Some(d.to_string()))
                    }
                    None => (inner, None),
                };
                match lookup(key).or(default) {
                    Some(v) => out.push_str(&v),
                    None if unknown_as_wildcard => {
                        unknown = true;
                        out.push('*');
                    }
                    None => return None,
                }
            }
        }
    }
    out.push_str(rest);
    Some((out, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("s3:Get*", "s3:GetObject", false));
        assert!(wildcard_match("S3:get*", "s3:GetObject", true));
        assert!(!wildcard_match("S3:get*", "s3:GetObject", false));
        assert!(wildcard_match(
            "arn:aws:s3:::b/?",
            "arn:aws:s3:::b/x",
            false
        ));
        assert!(!wildcard_match(
            "arn:aws:s3:::b/?",
            "arn:aws:s3:::b/xy",
            false
        ));
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("a*b*c", "aXXbYYc", false));
        assert!(!wildcard_match("a*b*c", "aXXbYY", false));
    }

    #[test]
    fn covers() {
        assert!(pattern_covers("*", "arn:x"));
        assert!(pattern_covers("arn:aws:s3:::b/*", "arn:aws:s3:::b/k/*"));
        assert!(!pattern_covers("arn:aws:s3:::b/k/*", "arn:aws:s3:::b/*"));
        assert_eq!(pattern_intersect("*", "arn:a"), Some("arn:a"));
    }

    #[test]
    fn variables() {
        let look = |k: &str| (k == "aws:username").then(|| "bob".to_string());
        assert_eq!(
            substitute_variables("arn:aws:iam::1:user/${aws:username}", &look, true),
            Some(("arn:aws:iam::1:user/bob".into(), false))
        );
        assert_eq!(
            substitute_variables("a/${s3:prefix}/${*}", &look, true),
            Some(("a/*/*".into(), true))
        );
        assert_eq!(
            substitute_variables("a/${x, 'def'}", &look, true),
            Some(("a/def".into(), false))
        );
        assert_eq!(substitute_variables("a/${x}", &look, false), None);
    }
}
