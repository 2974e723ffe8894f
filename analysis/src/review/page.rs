//! `index.html`: a customer's run on one page, in the order a morning review reads it:
//! the totals with last night's deltas, what changed (most important first), every
//! account with its status and report link, then the trends of the last thirty runs as
//! inline SVG charts. No script and nothing loaded: the Content-Security-Policy allows
//! inline styles and nothing else.

use std::fmt::Write as _;

use super::{esc, Change, CustomerIndex, ReviewTotals, TrendPoint};
use crate::report::{DiffChange, DiffKind};

/// Changes listed per kind on the page; `index.json` and the account reports have all.
const MAX_LISTED: usize = 300;

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2b45;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px 0;font-size:22px}
header .meta{opacity:.85;font-size:13px}
main{padding:12px 28px 40px 28px;max-width:1280px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0 8px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:24px}
.card .delta{font-size:13px;color:#5b6475}
.card .delta.up{color:#b3261e;font-weight:600}
.card .delta.down{color:#1e7a3c}
.card.na b{color:#8a93a3;font-size:16px}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:6px 16px 14px 16px;margin:14px 0}
h2{font-size:17px;margin:10px 0}
h3{font-size:14px;margin:12px 0 6px 0}
.count{background:#e8ebf1;border-radius:10px;padding:1px 9px;font-size:13px;font-weight:normal}
table{border-collapse:collapse;width:100%;font-size:13px}
th{background:#eef1f6;text-align:left}
th,td{border-bottom:1px solid #e4e7ec;padding:5px 8px;vertical-align:top;word-break:break-word}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;word-break:normal}
td.acct{white-space:nowrap;word-break:normal}
thead th{word-break:normal}
td.status{max-width:520px}
.badge{border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
.complete{background:#e3f4e8;color:#1e7a3c}
.partial{background:#fff4e5;color:#9a5b00}
.failed{background:#fde8e7;color:#b3261e}
.unfinished{background:#e8ebf1;color:#3d4657}
.sev0,.sev1,.sev2{color:#b3261e}
.note,.empty,.reason{color:#5b6475;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.chart{border:1px solid #e4e7ec;border-radius:6px;padding:6px 8px}
.chart h3{margin:2px 0 4px 0}
svg text{font-size:10px;fill:#5b6475}
"#;

pub(super) fn render(ix: &CustomerIndex) -> String {
    let mut o = String::with_capacity(32 * 1024);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = writeln!(
        o,
        "<title>Accessflow - {} - morning review {}</title><style>{STYLE}</style></head><body>",
        esc(&ix.customer),
        esc(&ix.analysis_time)
    );
    let _ = writeln!(
        o,
        "<header><h1>Morning review: {}</h1><div class=\"meta\">run {} &middot; analysed {} &middot; {} account(s): {} complete, {} partial, {} failed{}</div></header><main>",
        esc(&ix.customer),
        esc(&ix.run_id),
        esc(&ix.analysis_time),
        ix.accounts.len(),
        ix.accounts_complete,
        ix.accounts_partial,
        ix.accounts_failed,
        if ix.accounts_unfinished > 0 {
            format!(", {} unfinished", ix.accounts_unfinished)
        } else {
            String::new()
        }
    );
    cards(&mut o, ix);
    changes(&mut o, ix);
    accounts(&mut o, ix);
    trends(&mut o, ix);
    o.push_str("</main></body></html>\n");
    o
}

/// The previous run's point, if the trend has one.
fn previous(ix: &CustomerIndex) -> Option<&TrendPoint> {
    let n = ix.trend.len();
    (n >= 2).then(|| &ix.trend[n - 2])
}

fn cards(o: &mut String, ix: &CustomerIndex) {
    let prev = previous(ix).map(|p| p.totals);
    o.push_str("<div class=\"cards\">");
    let mut card = |label: &str, value: usize, before: Option<usize>, worse_up: bool| {
        let delta = match before {
            Some(b) if value > b => format!(
                "<span class=\"delta{}\">+{} since the previous run</span>",
                if worse_up { " up" } else { "" },
                value - b
            ),
            Some(b) if value < b => format!(
                "<span class=\"delta{}\">&minus;{} since the previous run</span>",
                if worse_up { " down" } else { "" },
                b - value
            ),
            Some(_) => "<span class=\"delta\">unchanged</span>".to_string(),
            None => "<span class=\"delta\">no earlier run</span>".to_string(),
        };
        let _ = write!(
            o,
            "<div class=\"card\"><b>{value}</b>{}<br>{delta}</div>",
            esc(label)
        );
    };
    let t = &ix.totals;
    let p = |f: fn(&ReviewTotals) -> usize| prev.as_ref().map(f);
    card("IAM admins", t.admins, p(|t| t.admins), true);
    card(
        "Roles assumable from outside",
        t.externally_assumable_roles,
        p(|t| t.externally_assumable_roles),
        true,
    );
    card(
        "Escalation paths",
        t.escalation_paths,
        p(|t| t.escalation_paths),
        true,
    );
    card(
        "Principals with unused access",
        t.principals_with_unused_access,
        p(|t| t.principals_with_unused_access),
        true,
    );
    card("Principals", t.principals, p(|t| t.principals), false);
    match ix.public_resources {
        Some(_) => {
            card(
                "Public resources",
                t.public_resources,
                p(|t| t.public_resources),
                true,
            );
            card(
                "Resources shared with other accounts",
                t.cross_account_resources,
                p(|t| t.cross_account_resources),
                true,
            );
        }
        None => {
            let _ = write!(
                o,
                "<div class=\"card na\" title=\"{}\"><b>not analysed</b>Public resources<br><span class=\"delta\">no resource policies collected</span></div>",
                esc(&ix.public_resources_note)
            );
        }
    }
    o.push_str("</div>\n");
    let _ = writeln!(
        o,
        "<p class=\"note\">{}</p>",
        esc(&ix.public_resources_note)
    );
}

fn changes(o: &mut String, ix: &CustomerIndex) {
    let listed = ix.changes.len();
    let _ = write!(
        o,
        "<section id=\"changes\"><h2>What changed since the previous night <span class=\"count\">{listed}</span></h2>"
    );
    let compared = ix.accounts.iter().any(|a| a.diff_base_run.is_some());
    if !compared {
        o.push_str("<p class=\"empty\">Nothing to compare: no account has an earlier report.</p></section>\n");
        return;
    }
    let granted = ix.count(DiffChange::Added, DiffKind::Access);
    let removed = ix.count(DiffChange::Removed, DiffKind::Access);
    let _ = write!(
        o,
        "<p class=\"note\">Most important first. Access rows (principal, service, capability, resource): {granted} granted, {removed} removed; each account's <code>diff.csv</code> lists them.</p>"
    );
    if ix.changes.is_empty() {
        o.push_str("<p class=\"empty\">No new or removed admins, external access, escalation paths or principals.</p>");
    }
    let mut i = 0;
    while i < ix.changes.len() {
        let first = &ix.changes[i].change;
        let (change, kind) = (first.change, first.kind);
        let group: Vec<_> = ix.changes[i..]
            .iter()
            .take_while(|c| c.change.change == change && c.change.kind == kind)
            .collect();
        i += group.len();
        let rank = Change::rank(change, kind).unwrap_or(9);
        let total = ix.count(change, kind);
        let _ = write!(
            o,
            "<h3 class=\"sev{rank}\">{} <span class=\"count\">{total}</span></h3><table><thead><tr><th>Account</th><th>Principal</th><th>Detail</th></tr></thead><tbody>",
            esc(&capitalize(Change::label(change, kind)))
        );
        // One line per (account, principal): a new admin's twenty escalation paths are
        // one line, their names joined.
        let shown = &group[..group.len().min(MAX_LISTED)];
        let mut j = 0;
        while j < shown.len() {
            let (account, principal) = (&shown[j].account, &shown[j].change.principal_arn);
            let same: Vec<&str> = shown[j..]
                .iter()
                .take_while(|c| &c.account == account && &c.change.principal_arn == principal)
                .map(|c| c.change.detail.as_str())
                .collect();
            j += same.len();
            let details: Vec<&str> = same.into_iter().filter(|d| !d.is_empty()).collect();
            let _ = write!(
                o,
                "<tr><td class=\"acct\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(account),
                esc(principal),
                esc(&details.join(", "))
            );
        }
        o.push_str("</tbody></table>");
        if total > group.len().min(MAX_LISTED) {
            let _ = write!(
                o,
                "<p class=\"note\">Showing {} of {total}; the accounts' <code>diff.csv</code> files have all.</p>",
                group.len().min(MAX_LISTED)
            );
        }
    }
    o.push_str("</section>\n");
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn accounts(o: &mut String, ix: &CustomerIndex) {
    let _ = write!(
        o,
        "<section id=\"accounts\"><h2>Accounts <span class=\"count\">{}</span></h2>",
        ix.accounts.len()
    );
    o.push_str("<table><thead><tr><th>Account</th><th>Status</th><th class=\"n\">IAM admins</th><th class=\"n\">Assumable from outside</th><th class=\"n\">Escalation paths</th><th class=\"n\">Unused access</th><th class=\"n\">Principals</th><th class=\"n\">Notable changes</th><th>Report</th></tr></thead><tbody>\n");
    for a in &ix.accounts {
        let status = a.status.as_str();
        let mut why = String::new();
        if let Some(r) = &a.reason {
            let _ = write!(why, "<div class=\"reason\">{}</div>", esc(r));
        }
        for f in &a.failures {
            let _ = write!(
                why,
                "<div class=\"reason\">{}: {}</div>",
                esc(&f.principal_arn),
                esc(&f.reason)
            );
        }
        let nums = match &a.totals {
            Some(t) => format!(
                "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                t.admins,
                t.externally_assumable_roles,
                t.escalation_paths,
                t.principals_with_unused_access,
                t.principals
            ),
            None => "<td class=\"n\" colspan=\"5\">no report tonight</td>".to_string(),
        };
        let notable: usize = a
            .change_counts
            .iter()
            .filter(|c| Change::rank(c.change, c.kind).is_some())
            .map(|c| c.count)
            .sum();
        let notable = if a.diff_base_run.is_some() {
            notable.to_string()
        } else if a.totals.is_some() {
            "first report".to_string()
        } else {
            String::new()
        };
        let link = match &a.report {
            Some(href) => format!("<a href=\"{}\">report</a>", esc(href)),
            None => String::new(),
        };
        let _ = writeln!(
        o,
        "<tr><td class=\"acct\">{}</td><td class=\"status\"><span class=\"badge {status}\">{status}</span>{why}</td>{nums}<td class=\"n\">{notable}</td><td class=\"acct\">{link}</td></tr>",
            esc(&a.account)
        );
    }
    o.push_str("</tbody></table></section>\n");
}

fn trends(o: &mut String, ix: &CustomerIndex) {
    let _ = write!(
        o,
        "<section id=\"trends\"><h2>Trends <span class=\"count\">{} run(s)</span></h2><p class=\"note\">The last {} runs, oldest on the left, the latest in red; each axis spans its own lowest to highest value; hover a point for its run and value. A gap is a run without a report for that account.</p><div class=\"charts\">",
        ix.trend.len(),
        super::TREND_RUNS
    );
    let labels: Vec<&str> = ix.trend.iter().map(|p| p.run_id.as_str()).collect();
    for (i, (_, label, _)) in ReviewTotals::default().measures().iter().enumerate() {
        let values: Vec<Option<usize>> = ix
            .trend
            .iter()
            .map(|p| Some(p.totals.measures()[i].2))
            .collect();
        let _ = write!(
            o,
            "<div class=\"chart\"><h3>{} (all accounts)</h3>{}</div>",
            esc(label),
            chart(&labels, &values, 300, 120, true)
        );
    }
    o.push_str("</div><h3>Per account</h3><table><thead><tr><th>Account</th>");
    for (_, label, _) in ReviewTotals::default().measures() {
        let _ = write!(o, "<th>{}</th>", esc(label));
    }
    o.push_str("</tr></thead><tbody>\n");
    for a in &ix.accounts {
        let _ = write!(o, "<tr><td>{}</td>", esc(&a.account));
        for i in 0..4 {
            let values: Vec<Option<usize>> = ix
                .trend
                .iter()
                .map(|p| p.accounts.get(&a.account).map(|t| t.measures()[i].2))
                .collect();
            let last = values
                .last()
                .copied()
                .flatten()
                .map_or("&ndash;".to_string(), |v| v.to_string());
            let _ = write!(
                o,
                "<td>{} <b>{last}</b></td>",
                chart(&labels, &values, 140, 30, false)
            );
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></section>\n");
}

/// A line chart of `values` (one per run, `None`: no value, a gap), with axes when `axes`.
fn chart(labels: &[&str], values: &[Option<usize>], w: u32, h: u32, axes: bool) -> String {
    let (left, right, top, bottom) = if axes {
        (30.0, 8.0, 8.0, 18.0)
    } else {
        (2.0, 2.0, 3.0, 3.0)
    };
    // The axis spans the values' own range (not from zero), so that one more admin among
    // fifty shows; a flat series sits in the middle.
    let hi = values.iter().flatten().copied().max().unwrap_or(0);
    let lo = values.iter().flatten().copied().min().unwrap_or(0);
    let (lo_f, span) = if hi == lo {
        (lo as f64 - 1.0, 2.0)
    } else {
        (lo as f64, (hi - lo) as f64)
    };
    let n = values.len().max(1);
    let pw = w as f64 - left - right;
    let ph = h as f64 - top - bottom;
    let x = |i: usize| {
        if n == 1 {
            left + pw / 2.0
        } else {
            left + pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: usize| top + ph - ph * (v as f64 - lo_f) / span;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">"
    );
    if axes {
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"#c8ced8\"/><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c8ced8\"/>",
            top + ph,
            top + ph,
            left + pw,
            top + ph
        );
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{hi}</text>",
            left - 4.0,
            y(hi) + 3.0,
        );
        if lo != hi {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{lo}</text>",
                left - 4.0,
                y(lo) + 3.0,
            );
        }
        if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
            let _ = write!(
                s,
                "<text x=\"{left}\" y=\"{}\">{}</text>",
                h - 4,
                esc(first)
            );
            if labels.len() > 1 {
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                    left + pw,
                    h - 4,
                    esc(last)
                );
            }
        }
    }
    // one polyline per run of consecutive values
    let mut segment: Vec<String> = Vec::new();
    let flush = |segment: &mut Vec<String>, s: &mut String| {
        if segment.len() > 1 {
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"#2f5fb3\" stroke-width=\"{}\" points=\"{}\"/>",
                if axes { "2" } else { "1.5" },
                segment.join(" ")
            );
        }
        segment.clear();
    };
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => segment.push(format!("{:.1},{:.1}", x(i), y(*v))),
            None => flush(&mut segment, &mut s),
        }
    }
    flush(&mut segment, &mut s);
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let last = i + 1 == values.len();
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\" fill=\"{}\"><title>{}: {v}</title></circle>",
                x(i),
                y(*v),
                if axes { 3 } else { 2 },
                if last { "#b3261e" } else { "#2f5fb3" },
                esc(labels.get(i).copied().unwrap_or(""))
            );
        }
    }
    s.push_str("</svg>");
    s
}
