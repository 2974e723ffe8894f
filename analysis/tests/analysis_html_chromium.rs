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
