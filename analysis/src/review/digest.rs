//! The morning digest: a short summary of a customer's night, as plain text and as HTML
//! (the two parts of one e-mail), built from the run's [`CustomerIndex`]. It names the
//! accounts that failed or are partial, the night's totals, and the notable changes, most
//! important first, up to [`MAX_DIGEST_CHANGES`]; the index page has the rest.

use std::fmt::Write as _;

use super::{esc, AccountReviewStatus, Change, CustomerIndex, ReviewTotals};

/// Changes named in a digest; the index lists them all.
pub const MAX_DIGEST_CHANGES: usize = 25;

/// A digest ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The digest of a customer's run. `index_location` (where `index.html` is) is named in it
/// when given.
pub fn digest(ix: &CustomerIndex, index_location: Option<&str>) -> Digest {
    let notable = ix.changes.len();
    let subject = format!(
        "Accessflow {}: {} - {}",
        ix.customer,
        ix.run_id,
        if notable == 0 {
            "no notable changes".to_string()
        } else {
            format!("{notable} notable change(s)")
        }
    );
    let mut text = String::new();
    let mut html = String::new();
    let _ = writeln!(
        text,
        "Accessflow morning review for {}, run {} (analysed {})",
        ix.customer, ix.run_id, ix.analysis_time
    );
    let _ = write!(
        html,
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif;color:#1d2330\"><h2>Accessflow morning review for {}</h2><p>Run {} (analysed {})</p>",
        esc(&ix.customer),
        esc(&ix.run_id),
        esc(&ix.analysis_time)
    );

    let status = format!(
        "{} account(s): {} complete, {} partial, {} failed{}",
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
    let _ = writeln!(text, "{status}");
    let _ = write!(html, "<p>{}</p>", esc(&status));
    let troubled: Vec<_> = ix
        .accounts
        .iter()
        .filter(|a| a.status != AccountReviewStatus::Complete)
        .collect();
    if !troubled.is_empty() {
        html.push_str("<ul>");
        for a in troubled {
            let line = format!(
                "{} {}: {}",
                a.account,
                a.status.as_str(),
                a.reason.as_deref().unwrap_or("no reason recorded")
            );
            let _ = writeln!(text, "  - {line}");
            let _ = write!(html, "<li>{}</li>", esc(&line));
        }
        html.push_str("</ul>");
    }

    let t: &ReviewTotals = &ix.totals;
    let prev = (ix.trend.len() >= 2).then(|| ix.trend[ix.trend.len() - 2].totals);
    let _ = writeln!(text, "\nTotals (change since the previous run):");
    html.push_str("<table cellpadding=\"4\" style=\"border-collapse:collapse\">");
    for (i, (_, label, value)) in t.measures().iter().enumerate() {
        let delta = match prev.map(|p| p.measures()[i].2) {
            Some(b) if *value > b => format!("+{}", value - b),
            Some(b) if *value < b => format!("-{}", b - value),
            Some(_) => "unchanged".to_string(),
            None => "no earlier run".to_string(),
        };
        let _ = writeln!(text, "  {label}: {value} ({delta})");
        let _ = write!(
            html,
            "<tr><td>{}</td><td style=\"text-align:right\"><b>{value}</b></td><td>{}</td></tr>",
            esc(label),
            esc(&delta)
        );
    }
    let public = match ix.public_resources {
        Some(n) => format!(
            "{n} public, {} shared with other accounts ({})",
            t.cross_account_resources, ix.public_resources_note
        ),
        None => "not analysed (no resource policies collected)".to_string(),
    };
    let _ = writeln!(
        text,
        "  Principals: {}\n  Resources: {public}",
        t.principals
    );
    let _ = write!(
        html,
        "<tr><td>Principals</td><td style=\"text-align:right\"><b>{}</b></td><td></td></tr></table><p style=\"color:#5b6475\">Resources: {}.</p>",
        t.principals,
        esc(&public)
    );

    if !ix.accounts.iter().any(|a| a.diff_base_run.is_some()) {
        let _ = writeln!(text, "\nNo earlier report to compare with: first night.");
        html.push_str("<p>No earlier report to compare with: first night.</p>");
    } else if ix.changes.is_empty() {
        let _ = writeln!(
            text,
            "\nNo new or removed admins, external access, escalation paths or principals since the previous run."
        );
        html.push_str("<p>No new or removed admins, external access, escalation paths or principals since the previous run.</p>");
    } else {
        let _ = writeln!(text, "\nWhat changed, most important first:");
        html.push_str("<h3>What changed, most important first</h3><ul>");
        for c in ix.changes.iter().take(MAX_DIGEST_CHANGES) {
            let what = Change::label(c.change.change, c.change.kind);
            let detail = if c.change.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.change.detail)
            };
            let line = format!(
                "{what}: {}{detail} in account {}",
                c.change.principal_arn, c.account
            );
            let _ = writeln!(text, "  - {line}");
            let _ = write!(html, "<li>{}</li>", esc(&line));
        }
        html.push_str("</ul>");
        if ix.changes.len() > MAX_DIGEST_CHANGES {
            let more = ix.changes.len() - MAX_DIGEST_CHANGES;
            let _ = writeln!(text, "  ... and {more} more on the index page");
            let _ = write!(html, "<p>... and {more} more on the index page.</p>");
        }
    }
    if let Some(location) = index_location {
        let _ = writeln!(text, "\nThe whole review: {location}");
        let _ = write!(html, "<p>The whole review: {}</p>", esc(location));
    }
    html.push_str("</body></html>\n");
    Digest {
        subject,
        text,
        html,
    }
}
