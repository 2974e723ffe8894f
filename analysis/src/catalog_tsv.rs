//! The one parser of the catalog TSV (`data/catalog.tsv.gz`, unzipped). Std only: `build.rs`
//! uses it (`#[path]`) to write the embedded catalog's static tables at compile time, and
//! `Catalog::parse` uses it at run time (catalogs other than the embedded one). Everything
//! derived from the TSV (indices, sets, resource type patterns) is computed here, once, so
//! the two forms cannot differ.
//!
//! Records (tab-separated; `#` lines are comments):
//! - `S prefix name`: a service; its actions and resources follow it;
//! - `A prefix Action level capability resource-types`: level one of [`LEVEL_CODES`],
//!   capability one of [`CAPABILITY_NAMES`], resource types comma-separated (may be empty);
//! - `R prefix type arn-template`.

use std::collections::HashMap;

/// Access level codes, in the order of `AccessLevel`'s variants.
pub const LEVEL_CODES: [&str; 5] = ["L", "R", "W", "P", "T"];

/// Capability names, in the order of `Capability::ALL`.
pub const CAPABILITY_NAMES: [&str; 6] = [
    "administer-resource",
    "read-config",
    "use-resource",
    "read-data",
    "write-data",
    "delete-data",
];

pub struct Service<'a> {
    pub prefix: &'a str,
    pub name: &'a str,
    /// Action indices `first..end`.
    pub first: u32,
    pub end: u32,
    /// (resource type, ARN template)
    pub resources: Vec<(&'a str, &'a str)>,
    pub capability_counts: [u32; 6],
}

pub struct Action {
    pub service: u32,
    /// `s3:GetObject`
    pub full_name: String,
    /// Index into [`LEVEL_CODES`].
    pub level: usize,
    /// Index into [`CAPABILITY_NAMES`].
    pub capability: usize,
}

pub struct ResourceType<'a> {
    /// The ARN service segment of the template.
    pub seg: &'a str,
    /// The template as a wildcard pattern: `arn:${Partition}:s3:::${BucketName}` -> `arn:*:s3:::*`.
    pub pattern: String,
    /// Characters of `pattern` other than `*`.
    pub literal: usize,
    /// `prefix:type`
    pub name: String,
    /// The actions that take this resource type, ascending.
    pub actions: Vec<u32>,
}

/// The parsed catalog and everything derived from it.
pub struct Tables<'a> {
    pub services: Vec<Service<'a>>,
    pub actions: Vec<Action>,
    /// (lowercase `prefix:Action`, action index), sorted by name, names unique.
    pub action_index: Vec<(String, u32)>,
    /// (lowercase prefix, service index), sorted by prefix, prefixes unique.
    pub service_index: Vec<(String, u32)>,
    /// Per capability (order of [`CAPABILITY_NAMES`]): bitset of its actions (every bitset
    /// has `actions.len().div_ceil(64)` words).
    pub by_capability: Vec<Vec<u64>>,
    /// Per ARN service segment (sorted, exact case): bitset of the actions that have a
    /// resource type whose ARN names that segment.
    pub by_arn_service: Vec<(&'a str, Vec<u64>)>,
    /// Resource types with an ARN template, in catalog order.
    pub resource_types: Vec<ResourceType<'a>>,
}

#[derive(Debug, Clone)]
pub struct ParseError {
    /// 1-based line of the TSV; 0 when no line is to blame.
    pub line: usize,
    pub message: String,
}

/// `arn:${Partition}:s3:::${BucketName}` -> `arn:*:s3:::*`
pub fn template_pattern(tpl: &str) -> String {
    let mut pat = String::new();
    let mut rest = tpl;
    while let Some(i) = rest.find("${") {
        pat.push_str(&rest[..i]);
        pat.push('*');
        rest = match rest[i..].find('}') {
            Some(j) => &rest[i + j + 1..],
            None => "",
        };
    }
    pat.push_str(rest);
    pat
}

fn set_bit(words: &mut [u64], i: u32) {
    words[(i / 64) as usize] |= 1u64 << (i % 64);
}

pub fn parse(text: &str) -> Result<Tables<'_>, ParseError> {
    let err = |line: usize, m: &str| ParseError {
        line,
        message: m.to_string(),
    };
    let mut services: Vec<Service> = Vec::new();
    let mut service_lines: Vec<usize> = Vec::new();
    let mut actions: Vec<Action> = Vec::new();
    let mut action_lines: Vec<usize> = Vec::new();
    let mut action_rts: Vec<&str> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let ln = n + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "S" if f.len() == 3 => {
                let at = actions.len() as u32;
                services.push(Service {
                    prefix: f[1],
                    name: f[2],
                    first: at,
                    end: at,
                    resources: Vec::new(),
                    capability_counts: [0; 6],
                });
                service_lines.push(ln);
            }
            "A" if f.len() == 6 => {
                let si = services
                    .len()
                    .checked_sub(1)
                    .ok_or_else(|| err(ln, "action before service"))?;
                let svc = &mut services[si];
                if svc.prefix != f[1] {
                    return Err(err(ln, "action outside its service block"));
                }
                let level = LEVEL_CODES
                    .iter()
                    .position(|c| *c == f[3])
                    .ok_or_else(|| err(ln, "bad access level"))?;
                let capability = CAPABILITY_NAMES
                    .iter()
                    .position(|c| *c == f[4])
                    .ok_or_else(|| err(ln, "bad capability"))?;
                svc.end += 1;
                svc.capability_counts[capability] += 1;
                actions.push(Action {
                    service: si as u32,
                    full_name: format!("{}:{}", f[1], f[2]),
                    level,
                    capability,
                });
                action_lines.push(ln);
                action_rts.push(f[5]);
            }
            "R" if f.len() == 4 => {
                let svc = services
                    .last_mut()
                    .ok_or_else(|| err(ln, "resource before service"))?;
                svc.resources.push((f[2], f[3]));
            }
            _ => return Err(err(ln, "unknown record")),
        }
    }
    if actions.is_empty() {
        return Err(err(0, "no actions"));
    }
    let n = actions.len();
    let words = n.div_ceil(64);

    // lookups: sorted, lowercase, unique (a duplicate would make a lookup ambiguous)
    let mut action_index: Vec<(String, u32)> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.full_name.to_ascii_lowercase(), i as u32))
        .collect();
    action_index.sort();
    if let Some(w) = action_index.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(err(
            action_lines[w[1].1 as usize],
            &format!(
                "duplicate action {} (also line {})",
                actions[w[1].1 as usize].full_name, action_lines[w[0].1 as usize]
            ),
        ));
    }
    let mut service_index: Vec<(String, u32)> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.prefix.to_ascii_lowercase(), i as u32))
        .collect();
    service_index.sort();
    if let Some(w) = service_index.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(err(
            service_lines[w[1].1 as usize],
            &format!(
                "duplicate service {} (also line {})",
                services[w[1].1 as usize].prefix, service_lines[w[0].1 as usize]
            ),
        ));
    }

    let mut by_type: HashMap<(u32, &str), Vec<u32>> = HashMap::new();
    // per service: resource type -> ARN service segment of its template
    let type_segs: Vec<HashMap<&str, &str>> = services
        .iter()
        .map(|s| {
            s.resources
                .iter()
                .filter_map(|(t, tpl)| tpl.split(':').nth(2).map(|seg| (*t, seg)))
                .collect()
        })
        .collect();
    let mut seg_sets: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut segs: Vec<&str> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let si = a.service as usize;
        segs.clear();
        for rt in action_rts[i].split(',').filter(|s| !s.is_empty()) {
            by_type.entry((a.service, rt)).or_default().push(i as u32);
            // a resource type without a template of its own service: the service prefix
            let seg = type_segs[si]
                .get(rt)
                .copied()
                .unwrap_or(services[si].prefix);
            if !segs.contains(&seg) {
                set_bit(
                    seg_sets.entry(seg).or_insert_with(|| vec![0; words]),
                    i as u32,
                );
                segs.push(seg);
            }
        }
    }
    let mut by_arn_service: Vec<(&str, Vec<u64>)> = seg_sets.into_iter().collect();
    by_arn_service.sort();
    let mut by_capability = vec![vec![0u64; words]; CAPABILITY_NAMES.len()];
    for (i, a) in actions.iter().enumerate() {
        set_bit(&mut by_capability[a.capability], i as u32);
    }
    let mut resource_types = Vec::new();
    for (si, s) in services.iter().enumerate() {
        for (t, tpl) in &s.resources {
            let Some(seg) = tpl.split(':').nth(2) else {
                continue;
            };
            let pattern = template_pattern(tpl);
            let literal = pattern.chars().filter(|c| *c != '*').count();
            let actions = by_type.remove(&(si as u32, *t)).unwrap_or_default();
            resource_types.push(ResourceType {
                seg,
                pattern,
                literal,
                name: format!("{}:{}", s.prefix, t),
                actions,
            });
        }
    }
    Ok(Tables {
        services,
        actions,
        action_index,
        service_index,
        by_capability,
        by_arn_service,
        resource_types,
    })
}
