//! Self-contained HTML report: no external resource (a Content-Security-Policy forbids any
//! network request). The summary comes first (cards, then a list of the sections with their
//! counts), then the findings that matter in the morning (admins, external access,
//! escalation paths, what changed since the previous run, failures), then the large
//! reference tables. Each table's first page is rendered server-side (readable without
//! JavaScript); all its rows travel as data in the page, and a small inline script pages,
//! sorts (click a header) and filters (type in the box) them, so a 100,000-row account
//! renders as fast as a small one. Each table shows columns of its rows' cells
//! (`table::TableRow::cells`, shared with the CSV files) under its own labels.

use super::report::{AccountReport, DiffRow};
use super::table::{projection, TableRow};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    esc_into(&mut o, s);
    o
}

/// Appends `s` to `o`, escaped for HTML text and attribute values.
fn esc_into(o: &mut String, s: &str) {
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
}

/// Rows of a table rendered into the page itself: its first page, readable without
/// JavaScript. All rows travel as data beside it, and the script pages, sorts and filters
/// them, so the page's first render costs the same for 100 rows or 100,000.
const PAGE_ROWS: usize = 100;

/// `n` with thousands separators (`12,345`), as the script's `toLocaleString("en-US")`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Appends `s` as a JSON string that is safe inside a `<script>` element (no `<`).
fn json_string_into(o: &mut String, s: &str) {
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    o.push_str(&quoted.replace('<', "\\u003c"));
}

/// One section with a table of `rows`: each `(label, column)` shows the row's cell of that
/// column (see [`TableRow::cells`]) under that label. The first [`PAGE_ROWS`] rows are
/// rendered as HTML; every row is also written as data (`<script type="application/json"
/// id="rows-ID">`: a list of the table's distinct strings and the rows as indices into
/// it, since names and ARNs repeat across rows), which the script pages through.
fn table<R: TableRow>(
    out: &mut String,
    toc: &mut Vec<(String, String, usize)>,
    id: &str,
    title: &str,
    note: &str,
    columns: &[(&str, &str)],
    rows: &[R],
) {
    toc.push((id.to_string(), title.to_string(), rows.len()));
    out.push_str(&format!(
        "<section id=\"sec-{id}\"><h2>{} <span class=\"count\">{}</span></h2>",
        esc(title),
        thousands(rows.len())
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
    out.push_str(&format!("<table id=\"{id}\" class=\"paged\"><thead><tr>"));
    for (label, _) in columns {
        out.push_str(&format!("<th>{}</th>", esc(label)));
    }
    out.push_str("</tr></thead><tbody>\n");
    let names: Vec<&str> = columns.iter().map(|(_, c)| *c).collect();
    let sources = projection::<R>(&names);
    let mut strings: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut data = String::with_capacity(rows.len() * 8 * columns.len());
    let mut dictionary = String::new();
    for (index, r) in rows.iter().enumerate() {
        let cells = r.cells();
        if index < PAGE_ROWS {
            out.push_str("<tr>");
            for source in &sources {
                let text = source.map_or("", |i| cells[i].as_html());
                out.push_str("<td>");
                esc_into(out, text);
                out.push_str("</td>");
            }
            out.push_str("</tr>\n");
        }
        data.push(if index == 0 { '[' } else { ',' });
        for (column, source) in sources.iter().enumerate() {
            let text = source.map_or("", |i| cells[i].as_html());
            let n = match strings.get(text) {
                Some(n) => *n,
                None => {
                    let n = strings.len();
                    dictionary.push(if n == 0 { '[' } else { ',' });
                    json_string_into(&mut dictionary, text);
                    strings.insert(text.to_string(), n);
                    n
                }
            };
            data.push(if column == 0 { '[' } else { ',' });
            data.push_str(&n.to_string());
        }
        data.push(']');
    }
    data.push(']');
    if dictionary.is_empty() {
        dictionary.push('[');
    }
    dictionary.push(']');
    out.push_str("</tbody></table>");
    // The same words the script writes when it turns a page.
    out.push_str(&format!(
        "<div class=\"pager\" data-table=\"{id}\"><span class=\"shown\">Rows 1–{} of {} · page 1 of {}</span></div>",
        thousands(rows.len().min(PAGE_ROWS)),
        thousands(rows.len()),
        thousands(rows.len().div_ceil(PAGE_ROWS))
    ));
    out.push_str(&format!(
        "<script type=\"application/json\" id=\"rows-{id}\">{{\"strings\":{dictionary},\"rows\":{data}}}</script>"
    ));
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
.pager{display:flex;gap:10px;align-items:center;margin:8px 0 0 0;font-size:13px;color:#5b6475}
.pager button{padding:3px 10px;border:1px solid #c8ced8;border-radius:6px;background:#fff;cursor:pointer}
.pager button:disabled{opacity:.45;cursor:default}
nav.toc{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:13px;margin:6px 0 4px 0}
nav.toc a{color:#1d4ed8;text-decoration:none}
.note,.empty{color:#5b6475;font-size:13px}
"#;

/// The page's script: pages, sorts (click a header) and filters (the box) each table over
/// all its rows, from the table's data, read only once the table is first touched (the
/// first render costs nothing for big tables). A table's view is kept in the address
/// (`#access?q=s3&page=2&sort=1&order=desc`), so a filtered view can be linked and
/// reloaded. When done, it notes on `<html>` how long the page took (`data-ready-ms`, and
/// `data-load-ms` when the load event fires), for the render benchmark.
const SCRIPT: &str = r##"
(function(){
  var PAGE=100;
  var tables={};
  function text(n){return n.toLocaleString("en-US");}
  function setup(t){
    var id=t.id,sec=t.parentNode,pager=sec.querySelector(".pager"),
        filter=sec.querySelector("input.filter"),shown=pager.querySelector(".shown");
    var st={id:id,q:"",sort:-1,asc:true,page:0,rows:null,low:null,view:null};
    var prev=document.createElement("button"),next=document.createElement("button");
    prev.type=next.type="button";prev.textContent="\u2039 Previous";next.textContent="Next \u203A";
    pager.insertBefore(prev,shown);pager.appendChild(next);
    function load(){
      if(st.rows)return;
      var d=JSON.parse(document.getElementById("rows-"+id).textContent),s=d.strings;
      st.rows=d.rows.map(function(r){return r.map(function(i){return s[i];});});
      st.low=st.rows.map(function(r){return r.join("\u0001").toLowerCase();});
    }
    function select(){
      load();
      var v=[],q=st.q.toLowerCase();
      for(var i=0;i<st.rows.length;i++){if(!q||st.low[i].indexOf(q)>=0)v.push(i);}
      if(st.sort>=0){
        var c=st.sort,rows=st.rows,dir=st.asc?1:-1;
        v.sort(function(a,b){var x=rows[a][c],y=rows[b][c],nx=Number(x),ny=Number(y),r;
          if(x!==""&&y!==""&&!isNaN(nx)&&!isNaN(ny))r=nx-ny;else r=x<y?-1:(x>y?1:0);
          return r*dir||a-b;});
      }
      st.view=v;
    }
    function draw(){
      var v=st.view,n=v.length,pages=Math.max(1,Math.ceil(n/PAGE));
      if(st.page>=pages)st.page=pages-1;if(st.page<0)st.page=0;
      var from=st.page*PAGE,to=Math.min(n,from+PAGE),tb=document.createElement("tbody");
      for(var i=from;i<to;i++){var tr=document.createElement("tr"),r=st.rows[v[i]];
        for(var j=0;j<r.length;j++){var td=document.createElement("td");td.textContent=r[j];tr.appendChild(td);}
        tb.appendChild(tr);}
      t.replaceChild(tb,t.tBodies[0]);
      shown.textContent=(n?"Rows "+text(from+1)+"\u2013"+text(to)+" of "+text(n):"No rows match")+
        (n<st.rows.length?" (filtered from "+text(st.rows.length)+")":"")+
        " \u00b7 page "+text(st.page+1)+" of "+text(pages);
      prev.disabled=st.page===0;next.disabled=st.page>=pages-1;
      t.querySelectorAll("th").forEach(function(h,i){h.classList.remove("asc","desc");
        if(i===st.sort)h.classList.add(st.asc?"asc":"desc");});
    }
    function remember(){
      var p=[];if(st.q)p.push("q="+encodeURIComponent(st.q));if(st.page)p.push("page="+(st.page+1));
      if(st.sort>=0){p.push("sort="+st.sort);if(!st.asc)p.push("order=desc");}
      history.replaceState(null,"","#"+id+(p.length?"?"+p.join("&"):""));
    }
    filter.addEventListener("input",function(){st.q=filter.value;st.page=0;select();draw();remember();});
    prev.addEventListener("click",function(){if(!st.view)select();st.page--;draw();remember();});
    next.addEventListener("click",function(){if(!st.view)select();st.page++;draw();remember();});
    t.querySelectorAll("th").forEach(function(th,i){th.addEventListener("click",function(){
      st.asc=st.sort===i?!st.asc:true;st.sort=i;select();draw();remember();});});
    prev.disabled=true;next.disabled=t.tBodies[0].rows.length<PAGE;
    st.restore=function(params){
      st.q=params.get("q")||"";filter.value=st.q;
      var s=parseInt(params.get("sort"),10);st.sort=isNaN(s)?-1:s;st.asc=params.get("order")!=="desc";
      var p=parseInt(params.get("page"),10);st.page=isNaN(p)?0:p-1;select();draw();
      sec.scrollIntoView();
    };
    tables[id]=st;
  }
  document.querySelectorAll("table.paged").forEach(setup);
  var h=decodeURIComponent(location.hash.slice(1)),at=h.indexOf("?");
  var target=tables[at<0?h:h.slice(0,at)];
  if(target)target.restore(new URLSearchParams(at<0?"":h.slice(at+1)));
  var root=document.documentElement;
  root.setAttribute("data-ready-ms",String(Math.round(performance.now())));
  window.addEventListener("load",function(){
    root.setAttribute("data-load-ms",String(Math.round(performance.now())));
  });
})();
"##;

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
    ]
    .into_iter()
    .chain(t.inventoried_resources.map(|_| {
        (
            "Public resources",
            t.public_resources,
            t.public_resources > 0,
        )
    }))
    .chain(t.inventoried_resources.map(|_| {
        (
            "Resources shared with other accounts",
            t.cross_account_resources,
            t.untrusted_account_resources > 0,
        )
    })) {
        o.push_str(&format!(
            "<div class=\"card{}\"><b>{}</b>{}</div>",
            if alert { " alert" } else { "" },
            thousands(v),
            esc(label)
        ));
    }
    o.push_str("</div>\n");

    let mut body = String::with_capacity(64 * 1024);
    let mut toc = Vec::new();
    table(
        &mut body,
        &mut toc,
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
        &mut body,
        &mut toc,
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
    if let Some(n) = t.inventoried_resources {
        table(
            &mut body,
            &mut toc,
            "exposure",
            "Public and cross-account",
            &format!(
                "What the resource policies, bucket ACLs and KMS grants of the account's {} inventoried resources allow everyone (public) or other accounts. Open: in force; conditional: only under the conditions shown; blocked: granted, but overridden by S3 Block Public Access. Another account also needs its own policies to allow it. Trusted: a partner the customer listed.",
                thousands(n)
            ),
            &[
                ("Resource", "resource_arn"),
                ("Type", "resource_type"),
                ("Exposure", "exposure"),
                ("Principal", "principal"),
                ("Trusted", "trusted_account"),
                ("Capability", "access_capability"),
                ("Status", "status"),
                ("Via", "via"),
                ("Condition", "condition"),
            ],
            &r.resource_exposure,
        );
    }
    if let Some(n) = t.inventoried_resources {
        table(
            &mut body,
            &mut toc,
            "data-access",
            "Data access",
            &format!(
                "Who in the account can reach each of its {} inventoried resources, identity and resource policies evaluated together: a resource policy naming a user or role grants on its own; a KMS key's policy must allow or delegate to the account before IAM policies count; a deny in the resource policy removes access. Via: the side that allows it. Principals whose access comes only from grants on every resource (*) are listed once, with resource *, in resource-access-summaries.csv.",
                thousands(n)
            ),
            &[
                ("Resource", "resource_arn"),
                ("Type", "resource_type"),
                ("Principal", "principal_name"),
                ("Principal type", "principal_type"),
                ("Capability", "access_capability"),
                ("Conditional", "conditional"),
                ("Via", "via"),
                ("Principal ARN", "principal_arn"),
            ],
            &r.data_access,
        );
    }
    table(
        &mut body,
        &mut toc,
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
    diff_section(&mut body, &mut toc, r.diff_base_run.as_deref(), &r.diff);
    table(
        &mut body,
        &mut toc,
        "failures",
        "Failures",
        "",
        &[("Principal", "principal_arn"), ("Reason", "reason")],
        &r.failures,
    );
    table(
        &mut body,
        &mut toc,
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
        &mut body,
        &mut toc,
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
        &mut body,
        &mut toc,
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
        &mut body,
        &mut toc,
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
        &mut body,
        &mut toc,
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
    table(
        &mut body,
        &mut toc,
        "warnings",
        "Warnings",
        "",
        &[("Warning", "warning")],
        &r.warnings,
    );

    o.push_str("<nav class=\"toc\" aria-label=\"Sections\">");
    for (id, title, count) in &toc {
        o.push_str(&toc_entry(id, title, *count));
    }
    o.push_str("</nav>\n");
    o.push_str(&body);
    o.push_str("</main><script>");
    o.push_str(SCRIPT);
    o.push_str("</script></body></html>\n");
    o
}

/// One section's entry in the list of sections, with its count.
fn toc_entry(id: &str, title: &str, count: usize) -> String {
    format!(
        "<a href=\"#sec-{id}\">{} <span class=\"count\">{}</span></a>",
        esc(title),
        thousands(count)
    )
}

const DIFF_ID: &str = "diff";
const DIFF_TITLE: &str = "Changes since the previous run";

/// The section of the diff against the run `base`.
fn diff_section(
    out: &mut String,
    toc: &mut Vec<(String, String, usize)>,
    base: Option<&str>,
    diff: &[DiffRow],
) {
    let note = match base {
        Some(run) => format!("Against run {run}."),
        None => "No previous run: nothing to compare.".to_string(),
    };
    table(
        out,
        toc,
        DIFF_ID,
        DIFF_TITLE,
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
        diff,
    );
}

/// `report.html` of run `from_run` at `from_time`, as [`render`] writes it for the report
/// carried to run `to_run` at `to_time` (`AccountReport::carried_to`): the time in the
/// title, the run and time under the heading, and the diff section and its entry in the
/// list of sections (now an empty diff against `from_run`) replaced; every other byte kept.
/// Each part is found where `render` puts it, or it is an error.
pub(crate) fn restamp(
    html: &str,
    (from_run, from_time): (&str, &str),
    (to_run, to_time): (&str, &str),
) -> Result<String, String> {
    let find = |pattern: &str, after: usize, what: &str| {
        html[after..]
            .find(pattern)
            .map(|at| after + at)
            .ok_or_else(|| format!("the previous report.html has no {what}"))
    };
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let title = format!(" - {}</title>", esc(from_time));
    let at = find(&title, 0, "title with its analysis time")?;
    edits.push((at, at + title.len(), format!(" - {}</title>", esc(to_time))));
    let meta = format!(
        " &middot; run {} &middot; analysed {} &middot; ",
        esc(from_run),
        esc(from_time)
    );
    let at = find(&meta, at, "run and analysis time under its heading")?;
    edits.push((
        at,
        at + meta.len(),
        format!(
            " &middot; run {} &middot; analysed {} &middot; ",
            esc(to_run),
            esc(to_time)
        ),
    ));
    let entry = format!("<a href=\"#sec-{DIFF_ID}\">");
    let at = find(&entry, at, "diff entry in its list of sections")?;
    let end = find("</a>", at, "end of its diff entry")? + "</a>".len();
    edits.push((at, end, toc_entry(DIFF_ID, DIFF_TITLE, 0)));
    let section = format!("<section id=\"sec-{DIFF_ID}\">");
    let at = find(&section, end, "diff section")?;
    let end = find("</section>\n", at, "end of its diff section")? + "</section>\n".len();
    let mut fresh = String::new();
    diff_section(&mut fresh, &mut Vec::new(), Some(from_run), &[]);
    edits.push((at, end, fresh));

    let mut out = String::with_capacity(html.len());
    let mut kept = 0;
    for (start, end, replacement) in edits {
        out.push_str(&html[kept..start]);
        out.push_str(&replacement);
        kept = end;
    }
    out.push_str(&html[kept..]);
    Ok(out)
}
