//! Self-contained HTML report: no external resource (a Content-Security-Policy forbids any
//! network request), tables rendered server-side (readable without JavaScript), with a
//! small inline script for sorting (click a header) and filtering (type in the box).
//! Admins and external access come first. Each table shows columns of its rows' cells
//! (`table::TableRow::cells`, shared with the CSV files) under its own labels.

use super::report::AccountReport;
use super::table::{projection, Cell, TableRow};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Rows shown per table in the HTML; the CSV files have everything.
const MAX_ROWS: usize = 5000;

/// One section with a table of `rows`: each `(label, column)` shows the row's cell of that
/// column (see [`TableRow::cells`]) under that label.
fn table<R: TableRow>(
    out: &mut String,
    id: &str,
    title: &str,
    note: &str,
    columns: &[(&str, &str)],
    rows: &[R],
) {
    out.push_str(&format!(
        "<section id=\"sec-{id}\"><h2>{} <span class=\"count\">{}</span></h2>",
        esc(title),
        rows.len()
    ));
    if !note.is_empty() {
        out.push_str(&format!("<p class=\"note\">{}</p>", esc(note)));
    }
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">None.</p></section>\n");
        return;
    }
    out.push_str(&format!(
        "<input class=\"filter\" type=\"search\" placeholder=\"Filter {}\" data-table=\"{id}\" aria-label=\"Filter {}\">",
        esc(title),
        esc(title)
    ));
    out.push_str(&format!(
        "<table id=\"{id}\" class=\"sortable\"><thead><tr>"
    ));
    for (label, _) in columns {
        out.push_str(&format!("<th>{}</th>", esc(label)));
    }
    out.push_str("</tr></thead><tbody>\n");
    let names: Vec<&str> = columns.iter().map(|(_, c)| *c).collect();
    let sources = projection::<R>(&names);
    for r in rows.iter().take(MAX_ROWS) {
        let mut cells: Vec<Option<Cell>> = r.cells().into_iter().map(Some).collect();
        out.push_str("<tr>");
        for source in &sources {
            let text = source
                .and_then(|i| cells[i].take())
                .map(Cell::into_html)
                .unwrap_or_default();
            out.push_str(&format!("<td>{}</td>", esc(&text)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>");
    if rows.len() > MAX_ROWS {
        out.push_str(&format!(
            "<p class=\"note\">Showing the first {MAX_ROWS} of {} rows; the CSV files have all of them.</p>",
            rows.len()
        ));
    }
    out.push_str("</section>\n");
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2b45;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px 0;font-size:22px}
header .meta{opacity:.85;font-size:13px}
main{padding:12px 28px 40px 28px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0 8px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 16px;min-width:130px}
.card b{display:block;font-size:24px}
.card.alert b{color:#b3261e}
.partial{background:#fff4e5;border:1px solid #f0b35b;border-radius:8px;padding:10px 16px;margin:12px 0}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:6px 16px 14px 16px;margin:14px 0}
h2{font-size:17px;margin:10px 0}
.count{background:#e8ebf1;border-radius:10px;padding:1px 9px;font-size:13px;font-weight:normal}
table{border-collapse:collapse;width:100%;font-size:13px}
th{background:#eef1f6;text-align:left;cursor:pointer;user-select:none;position:sticky;top:0}
th,td{border-bottom:1px solid #e4e7ec;padding:5px 8px;vertical-align:top;word-break:break-word}
th.asc::after{content:" \25B2"} th.desc::after{content:" \25BC"}
tr:hover td{background:#f7f9fc}
.filter{margin:4px 0 8px 0;padding:5px 8px;width:320px;border:1px solid #c8ced8;border-radius:6px}
.note,.empty{color:#5b6475;font-size:13px}
"#;

const SCRIPT: &str = r#"
(function(){
  function cellText(tr,i){var c=tr.children[i];return c?c.textContent:"";}
  document.querySelectorAll("table.sortable").forEach(function(t){
    t.querySelectorAll("th").forEach(function(th,i){
      th.addEventListener("click",function(){
        var asc=!th.classList.contains("asc");
        t.querySelectorAll("th").forEach(function(h){h.classList.remove("asc","desc");});
        th.classList.add(asc?"asc":"desc");
        var tb=t.tBodies[0];var rows=Array.prototype.slice.call(tb.rows);
        rows.sort(function(a,b){var x=cellText(a,i),y=cellText(b,i);
          var nx=parseFloat(x),ny=parseFloat(y);
          var r=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?r:-r;});
        rows.forEach(function(r){tb.appendChild(r);});
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function(inp){
    inp.addEventListener("input",function(){
      var q=inp.value.toLowerCase();var t=document.getElementById(inp.getAttribute("data-table"));
      Array.prototype.forEach.call(t.tBodies[0].rows,function(r){
        r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?"":"none";});
    });
  });
})();
"#;

pub(crate) fn render(r: &AccountReport) -> String {
    let mut o = String::with_capacity(64 * 1024);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    o.push_str(&format!(
        "<title>Accessflow - account {} - {}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.account),
        esc(&r.analysis_time)
    ));
    o.push_str(&format!(
        "<header><h1>Who has access to what: account {}</h1><div class=\"meta\">customer {} &middot; run {} &middot; analysed {} &middot; engine {}</div></header><main>\n",
        esc(&r.account),
        esc(&r.customer),
        esc(&r.run_id),
        esc(&r.analysis_time),
        esc(&r.engine_version)
    ));
    if r.partial {
        o.push_str(&format!(
            "<div class=\"partial\"><b>Partial report:</b> {} principal(s) could not be analysed; see &ldquo;Failures&rdquo; below.</div>",
            r.failures.len()
        ));
    }
    let t = &r.totals;
    o.push_str("<div class=\"cards\">");
    for (label, v, alert) in [
        ("Principals", t.principals, false),
        ("IAM admins", t.admins, t.admins > 0),
        (
            "Roles assumable from outside",
            t.externally_assumable_roles,
            t.externally_assumable_roles > 0,
        ),
        (
            "Escalation paths",
            t.escalation_paths,
            t.escalation_paths > 0,
        ),
        (
            "With unused services",
            t.principals_with_unused_services,
            false,
        ),
        ("Failed", t.failed, t.failed > 0),
    ] {
        o.push_str(&format!(
            "<div class=\"card{}\"><b>{v}</b>{}</div>",
            if alert { " alert" } else { "" },
            esc(label)
        ));
    }
    o.push_str("</div>\n");

    table(
        &mut o,
        "admins",
        "IAM admins",
        "Principals with full access, or able to grant themselves more (directly or by assuming an admin role).",
        &[
            ("Principal", "principal_name"),
            ("Type", "principal_type"),
            ("ARN", "principal_arn"),
            ("Why", "reasons"),
        ],
        &r.admins,
    );
    table(
        &mut o,
        "external",
        "External access",
        "Roles that principals outside the account can assume (other accounts, identity providers, anyone). Conditions such as sts:ExternalId narrow them.",
        &[
            ("Role", "role_name"),
            ("Trust", "trust_kind"),
            ("Trusted principal", "trusted_principal"),
            ("Account", "trusted_account"),
            ("Conditions", "conditions"),
            ("Role ARN", "role_arn"),
        ],
        &r.external_access,
    );
    table(
        &mut o,
        "escalations",
        "Privilege-escalation paths",
        "",
        &[
            ("Principal", "principal_name"),
            ("Type", "principal_type"),
            ("Path", "path"),
            ("How", "description"),
            ("Conditional", "conditional"),
        ],
        &r.escalations,
    );
    table(
        &mut o,
        "assumers",
        "Who can assume which role",
        "",
        &[
            ("Role", "role_arn"),
            ("Principal", "principal_arn"),
            ("How", "how"),
            ("Conditional", "conditional"),
        ],
        &r.role_assumers,
    );
    table(
        &mut o,
        "unused",
        "Granted but unused",
        "Services a principal may use but has not used in the last-accessed tracking period.",
        &[
            ("Principal", "principal_name"),
            ("Service", "service_name"),
            ("Capabilities", "capabilities"),
            ("ARN", "principal_arn"),
        ],
        &r.unused_access,
    );
    table(
        &mut o,
        "principals",
        "Principals",
        "",
        &[
            ("Name", "principal_name"),
            ("Type", "principal_type"),
            ("IAM admin", "principal_is_iam_admin"),
            ("Last used", "principal_last_used"),
            ("Password", "password_state"),
            ("ARN", "principal_arn"),
        ],
        &r.principals,
    );
    table(
        &mut o,
        "access",
        "Access by principal",
        "Conditional: allowed only under policy conditions that depend on the request.",
        &[
            ("Principal", "principal_name"),
            ("Service", "service_name"),
            ("Capability", "access_capability"),
            ("Resource", "resource_arn"),
            ("Conditional", "conditional"),
        ],
        &r.principal_access,
    );
    let note = match &r.diff_base_run {
        Some(run) => format!("Against run {run}."),
        None => "No previous run: nothing to compare.".to_string(),
    };
    table(
        &mut o,
        "diff",
        "Changes since the previous run",
        &note,
        &[
            ("Change", "change"),
            ("Kind", "kind"),
            ("Principal", "principal_arn"),
            ("Service", "service_name"),
            ("Capability", "access_capability"),
            ("Resource", "resource_arn"),
            ("Detail", "detail"),
        ],
        &r.diff,
    );
    table(
        &mut o,
        "failures",
        "Failures",
        "",
        &[("Principal", "principal_arn"), ("Reason", "reason")],
        &r.failures,
    );
    table(
        &mut o,
        "policy-errors",
        "Malformed policies",
        "",
        &[
            ("Policy", "policy"),
            ("JSON path", "path"),
            ("Problem", "message"),
        ],
        &r.policy_errors,
    );
    table(
        &mut o,
        "warnings",
        "Warnings",
        "",
        &[("Warning", "warning")],
        &r.warnings,
    );

    o.push_str("</main><script>");
    o.push_str(SCRIPT);
    o.push_str("</script></body></html>\n");
    o
}
