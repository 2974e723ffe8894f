//! The HTML report in headless Chromium (Debian's `chromium`): a screenshot is taken, the
//! rendered DOM shows the admins table first, and the page makes no network request: every
//! request has to go through a proxy this test runs on 127.0.0.1, which records them. The
//! browser's own background traffic (component updater, network time, sign-in: hosts of
//! `CHROMIUM_OWN_HOSTS`) is told apart and ignored; anything else fails the test. The page
//! also carries a Content-Security-Policy of `default-src 'none'`, and the HTML is checked
//! statically for any URL to load.
//!
//! Skips ONLY when no chromium binary is installed, and says so loudly. CI installs it:
//! `apt-get install -y chromium`.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accessflow_analysis::{build_report, AccountModel, Engine, ReportContext};

/// Hosts Chromium itself talks to in the background (not requests of the page).
const CHROMIUM_OWN_HOSTS: &[&str] = &[
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "clientservices.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
    "redirector.gvt1.com",
    "edgedl.me.gvt1.com",
    "www.google.com",
];

fn request_host(req: &str) -> String {
    let first = req.lines().next().unwrap_or_default();
    let target = first.split_whitespace().nth(1).unwrap_or_default();
    let t = target
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let host = t.split(['/', ':']).next().unwrap_or_default();
    host.to_string()
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn report_html(dir: &std::path::Path) -> PathBuf {
    let engine = Engine::new().expect("the embedded catalog loads");
    let bytes = std::fs::read(format!(
        "{}/tests/data/cloudsplaining/example-authz-details.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("data");
    let model = AccountModel::parse(&bytes).expect("parse");
    let results: Vec<_> = model
        .principals()
        .iter()
        .map(|p| {
            engine
                .analyze_principal(&model, &p.arn, None)
                .expect("analyze")
        })
        .collect();
    let ctx = ReportContext {
        customer: "acme",
        account: "012345678901",
        run_id: "run-1",
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    let report = build_report(&engine, &model, &results, &[], &ctx, None);
    let mut path = dir.join("report.html");
    for (name, data) in report.render_files().expect("render") {
        let p = dir.join(&name);
        std::fs::write(&p, data).expect("write");
        if name == "report.html" {
            path = p;
        }
    }
    path
}

fn run_chromium(
    bin: &PathBuf,
    profile: &std::path::Path,
    proxy_port: u16,
    extra: &[String],
    url: &str,
) -> std::process::Output {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--metrics-recording-only",
        "--hide-scrollbars",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
        "--window-size=1400,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--proxy-server=http://127.0.0.1:{proxy_port}"))
    .arg("--proxy-bypass-list=<-loopback>")
    .args(extra)
    .arg(url);
    cmd.output().expect("run chromium")
}

#[test]
fn html_report_in_headless_chromium() {
    let Some(bin) = chromium() else {
        eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! SKIPPED html_report_in_headless_chromium: no chromium installed     !!!");
        eprintln!("!!! install it with: apt-get install -y chromium                         !!!");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let html = report_html(dir.path());
    let text = std::fs::read_to_string(&html).expect("html");
    // statically: nothing to load from anywhere
    for needle in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "<link ",
        "<iframe",
        "src=\"//",
    ] {
        assert!(!text.contains(needle), "report.html contains {needle}");
    }
    assert!(text.contains("default-src 'none'"));

    // a proxy that counts connections: every network request of the page would come here
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let hits: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicUsize::new(0));
    let (h2, s2) = (hits.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        while s2.load(Ordering::SeqCst) == 0 {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let mut buf = [0u8; 2048];
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    let n = s.read(&mut buf).unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    if let Ok(mut h) = h2.lock() {
                        h.push(req);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });

    let url = format!("file://{}", html.display());
    let shot = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let out = run_chromium(
        &bin,
        &profile,
        port,
        &[format!("--screenshot={}", shot.display())],
        &url,
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("png");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "screenshot suspiciously small ({} bytes)",
        png.len()
    );
    if let Some(keep) = std::env::var_os("ACCESSFLOW_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("copy screenshot");
    }

    let out = run_chromium(&bin, &profile, port, &["--dump-dom".to_string()], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    let admins = dom
        .find("<table id=\"admins\"")
        .expect("admins table in the rendered DOM");
    let first_table = dom.find("<table").expect("a table");
    assert_eq!(admins, first_table, "the admins table comes first");
    let admins_html = &dom[admins..admins + dom[admins..].find("</table>").expect("end")];
    assert!(admins_html.contains("obama") && admins_html.contains("userwithlotsofpermissions"));
    // the script ran (sorting handlers) without errors breaking the page
    assert!(dom.contains("sec-external"));

    stop.store(1, Ordering::SeqCst);
    t.join().expect("proxy thread");
    let reqs = hits.lock().map(|h| h.clone()).unwrap_or_default();
    let mut own = 0;
    let mut page = Vec::new();
    for r in &reqs {
        let host = request_host(r);
        if CHROMIUM_OWN_HOSTS.contains(&host.as_str()) {
            own += 1;
        } else {
            page.push(r.lines().next().unwrap_or_default().to_string());
        }
    }
    eprintln!(
        "proxy saw {} connections: {own} of Chromium's own background traffic, {} other",
        reqs.len(),
        page.len()
    );
    assert!(page.is_empty(), "the page made network requests: {page:?}");
}

/// A generated account big enough that its tables span many pages.
fn large_report(dir: &std::path::Path) -> (PathBuf, accessflow_analysis::AccountReport) {
    let engine = Engine::new().expect("the embedded catalog loads");
    let account = accessflow_samples::generate_account(&accessflow_samples::SampleAccountSpec {
        account_id: "210987654321".into(),
        principals: 300,
        seed: 7,
        malformed_policy: false,
        resources: false,
    });
    let model = AccountModel::parse(&account.authorization_details).expect("parse");
    let results: Vec<_> = model
        .principals()
        .iter()
        .map(|p| {
            engine
                .analyze_principal(&model, &p.arn, None)
                .expect("analyze")
        })
        .collect();
    let ctx = ReportContext {
        customer: "acme",
        account: "210987654321",
        run_id: "run-1",
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    let report = build_report(&engine, &model, &results, &[], &ctx, None);
    let mut path = dir.join("report.html");
    for (name, data) in report.render_files().expect("render") {
        let p = dir.join(&name);
        std::fs::write(&p, data).expect("write");
        if name == "report.html" {
            path = p;
        }
    }
    (path, report)
}

/// The `<tbody>` rows of table `id` in a dumped DOM, each as its cells' texts.
fn dom_rows(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in the DOM"));
    let table = &dom[start..start + dom[start..].find("</table>").expect("end of table")];
    let body = &table[table.find("<tbody>").expect("tbody")..];
    body.split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td>")
                .skip(1)
                .map(|td| {
                    td.split("</td>")
                        .next()
                        .unwrap_or_default()
                        .replace("&amp;", "&")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                })
                .collect()
        })
        .collect()
}

/// The text of the pager under table `id` in a dumped DOM.
fn pager_text(dom: &str, id: &str) -> String {
    let needle = format!("<div class=\"pager\" data-table=\"{id}\">");
    let start = dom.find(&needle).expect("pager") + needle.len();
    let pager = &dom[start..start + dom[start..].find("</div>").expect("end of pager")];
    let shown = pager
        .find("<span class=\"shown\">")
        .expect("the pager's count");
    let text = &pager[shown + "<span class=\"shown\">".len()..];
    text[..text.find("</span>").expect("end")].to_string()
}

/// The access table of a 300-principal account (thousands of rows) is paged in the
/// browser: the first page is in the HTML, and a view kept in the address (filter, page,
/// sort) is applied over all the rows, not only the ones rendered. The rows the page shows
/// are checked against the report's own rows, filtered and sorted here.
#[test]
fn large_report_pages_filters_and_sorts_every_row_in_headless_chromium() {
    let Some(bin) = chromium() else {
        eprintln!("!!! SKIPPED large_report_pages_filters_and_sorts_every_row_in_headless_chromium: no chromium installed (apt-get install -y chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let (html, report) = large_report(dir.path());
    let rows: Vec<[String; 5]> = report
        .principal_access
        .iter()
        .map(|r| {
            [
                r.principal_name.clone(),
                r.service_name.clone(),
                r.access_capability.as_str().to_string(),
                r.resource_arn.clone(),
                if r.conditional { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    assert!(rows.len() > 1000, "only {} access rows", rows.len());
    let profile = dir.path().join("profile");
    let url = format!("file://{}", html.display());

    // As served: the first 100 rows, in the report's order, and the count of all.
    let out = run_chromium(&bin, &profile, 9, &["--dump-dom".to_string()], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-ready-ms=\""),
        "the page's script did not finish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = dom_rows(&dom, "access");
    let want: Vec<Vec<String>> = rows.iter().take(100).map(|r| r.to_vec()).collect();
    assert_eq!(shown, want, "the first page is the report's first 100 rows");
    assert_eq!(
        pager_text(&dom, "access"),
        format!(
            "Rows 1–100 of {} · page 1 of {}",
            thousands(rows.len()),
            rows.len().div_ceil(100)
        )
    );

    // A filter that matches rows beyond the first page, on its second page.
    let query = "s3";
    let matching: Vec<&[String; 5]> = rows
        .iter()
        .filter(|r| r.join("\u{1}").to_lowercase().contains(query))
        .collect();
    assert!(
        matching.len() > 100,
        "the filter should span pages: {} rows",
        matching.len()
    );
    let out = run_chromium(
        &bin,
        &profile,
        9,
        &["--dump-dom".to_string()],
        &format!("{url}#access?q={query}&page=2"),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let shown = dom_rows(&dom, "access");
    let want: Vec<Vec<String>> = matching
        .iter()
        .skip(100)
        .take(100)
        .map(|r| r.to_vec())
        .collect();
    assert_eq!(shown, want, "page 2 of the rows matching {query:?}");
    let pages = matching.len().div_ceil(100);
    assert_eq!(
        pager_text(&dom, "access"),
        format!(
            "Rows 101–{} of {} (filtered from {}) · page 2 of {pages}",
            thousands(matching.len().min(200)),
            thousands(matching.len()),
            thousands(rows.len())
        )
    );

    // Sorted by resource, descending: the first page holds the largest ARNs.
    let out = run_chromium(
        &bin,
        &profile,
        9,
        &["--dump-dom".to_string()],
        &format!("{url}#access?sort=3&order=desc"),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let shown = dom_rows(&dom, "access");
    let mut sorted: Vec<(usize, &[String; 5])> = rows.iter().enumerate().collect();
    // Descending by the resource column, ties in the report's order (as the page does).
    sorted.sort_by(|(ia, a), (ib, b)| b[3].cmp(&a[3]).then(ia.cmp(ib)));
    let want: Vec<Vec<String>> = sorted.iter().take(100).map(|(_, r)| r.to_vec()).collect();
    assert_eq!(shown, want, "the first page sorted by resource, descending");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Uncaught"),
        "script errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` with thousands separators, as the page prints counts.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
