//! The morning review (issue 13), black-box: three embedded nights with known changes to
//! one account of a customer of two accounts, each run with `coordinator run`:
//!
//! - night 2: a user is given `AdministratorAccess` (an admin added), a role's trust
//!   policy is opened to another AWS account (a role made externally assumable), and an
//!   organisation-only bucket is made public (its resource inventory, `resources.json`);
//! - night 3: a role is deleted.
//!
//! The customer's `index.json` of each night must show exactly those changes (and nothing
//! for the unchanged account), its trends the matching series over the three runs, and
//! the account's `diff.csv` the same rows. `coordinator notify` then sends the digest to
//! an aiosmtpd sink started here, and the mail must name the changes. Headless Chromium
//! (Debian's `chromium`) renders `index.html` with no network request and no console
//! message, and takes a screenshot (`ACCESSFLOW_INDEX_SCREENSHOT_DIR=DIR` keeps them).

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accessflow_tests::monitoring::{free_port, smtp_python};
use accessflow_tests::{spec, Deployment};
use serde_json::{json, Value};

const CUSTOMER: &str = "acme";
const CHANGED: &str = "111122223333";
const UNCHANGED: &str = "444455556666";
/// An account with a policy that cannot be parsed: partial every night, never changed.
const BROKEN: &str = "777788889999";
const OUTSIDER: &str = "arn:aws:iam::999988887777:root";
const RECIPIENT: &str = "secops@acme.example";
/// The bucket of the changed account that night 2 makes public (organisation-only before).
const MADE_PUBLIC: &str = "arn:aws:s3:::111122223333-reports";

fn run_night(d: &Deployment, tenants: &Path, run: &str, as_of: &str) -> String {
    let out = d.coordinator_unchecked(&[
        "run",
        "--tenants",
        tenants.to_str().expect("utf-8 path"),
        "--workers",
        "2",
        "--no-progress",
        "--run-id",
        run,
        "--as-of",
        as_of,
    ]);
    // 3: the night finished and a report is partial (the broken account's).
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn run_dir(d: &Deployment, run: &str) -> PathBuf {
    d.data_dir()
        .join("blobs")
        .join(CUSTOMER)
        .join("reports")
        .join(run)
}

fn read_json(path: &Path) -> Value {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The notable changes of an index as (change, kind, account, principal), sorted.
fn changes(index: &Value) -> BTreeSet<(String, String, String, String)> {
    index["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap_or_default().to_string(),
                c["kind"].as_str().unwrap_or_default().to_string(),
                c["account"].as_str().unwrap_or_default().to_string(),
                c["principal_arn"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn change(c: &str, kind: &str, principal: &str) -> (String, String, String, String) {
    (c.into(), kind.into(), CHANGED.into(), principal.into())
}

/// The trend series of a measure, customer-wide or for one account (`None` where the
/// account had no report).
fn series(index: &Value, account: Option<&str>, measure: &str) -> Vec<Option<u64>> {
    index["trend"]
        .as_array()
        .expect("trend")
        .iter()
        .map(|p| match account {
            None => p["totals"][measure].as_u64(),
            Some(a) => p["accounts"][a][measure].as_u64(),
        })
        .collect()
}

/// The diff rows of an account's `diff.csv` other than access rows, as (change, kind,
/// principal).
fn notable_diff(path: &Path) -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(path).expect("diff.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (c, k, p, r) = (
        col("change"),
        col("kind"),
        col("principal_arn"),
        col("resource_arn"),
    );
    lines
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            // the index names a resource's change by the resource
            let who = if cells[k] == "resource-exposure" {
                cells[r]
            } else {
                cells[p]
            };
            (cells[k] != "access").then(|| (cells[c].into(), cells[k].into(), who.into()))
        })
        .collect()
}

struct Sink(Child);
impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn three_nights_index_trends_digest_and_page() {
    let d = Deployment::new(30);
    let mut broken = spec(BROKEN, 20, 9);
    broken.malformed_policy = true;
    let tenants = d.write_tenants(&[
        (CUSTOMER, spec(CHANGED, 60, 7)),
        (CUSTOMER, spec(UNCHANGED, 30, 8)),
        (CUSTOMER, broken),
    ]);
    // The digest's recipients, per customer in the tenants file.
    let text = std::fs::read_to_string(&tenants).expect("tenants");
    let text = text.replacen(
        &format!("id = \"{CUSTOMER}\"\n"),
        &format!("id = \"{CUSTOMER}\"\ndigest_recipients = [\"{RECIPIENT}\"]\n"),
        1,
    );
    std::fs::write(&tenants, text).expect("tenants");
    let fixture = d
        .dir
        .path()
        .join("fixtures")
        .join(CUSTOMER)
        .join(CHANGED)
        .join("authorization-details.json");
    // Only the changed account has a resource inventory (buckets, keys with policies).
    let resources = fixture.with_file_name("resources.json");
    std::fs::write(
        &resources,
        accessflow_samples::generate_resources_night(CHANGED, false),
    )
    .expect("resources.json");

    // Night 1: nothing to compare with.
    let out = run_night(&d, &tenants, "n1", "2026-11-24T02:00:00Z");
    assert!(out.contains("morning review of acme"), "{out}");
    let n1 = read_json(&run_dir(&d, "n1").join("index.json"));
    assert_eq!(n1["accounts"].as_array().map(Vec::len), Some(3), "{n1:#}");
    assert_eq!(n1["accounts_partial"], 1, "{n1:#}");
    assert_eq!(n1["accounts_complete"], 2, "{n1:#}");
    // The partial account comes first, with its reason and the failed principals.
    let partial = &n1["accounts"][0];
    assert_eq!(partial["account"], BROKEN, "{n1:#}");
    assert_eq!(partial["status"], "partial", "{partial:#}");
    assert!(
        partial["reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed")),
        "{partial:#}"
    );
    let failures = partial["failures"].as_array().expect("failures");
    assert!(!failures.is_empty(), "{partial:#}");
    assert!(failures
        .iter()
        .all(|f| f["reason"].as_str().is_some_and(|r| !r.is_empty())));
    assert!(changes(&n1).is_empty(), "{n1:#}");
    // the changed account's public-assets bucket (its legacy site is blocked by Block
    // Public Access, its reports bucket organisation-only)
    assert_eq!(n1["public_resources"], 1, "{n1:#}");
    assert_eq!(
        n1["public_resources_note"], "Resource policies analysed for 1 of 3 accounts.",
        "{n1:#}"
    );
    // the account's report shows its cross-account key and secret with who they are
    // shared with
    let exposure = std::fs::read_to_string(
        run_dir(&d, "n1")
            .join(CHANGED)
            .join("public-and-cross-account.csv"),
    )
    .expect("public-and-cross-account.csv");
    let shared = |arn_part: &str, account: &str| {
        exposure
            .lines()
            .any(|l| l.contains(arn_part) && l.contains(account) && l.contains(",cross-account,"))
    };
    assert!(
        shared(
            ":key/0b5e7d1a-0000-4000-8000-00000000da7a",
            accessflow_samples::UNKNOWN_ACCOUNT
        ),
        "the data key shared with an unknown account:\n{exposure}"
    );
    assert!(
        shared(
            ":secret:111122223333-partner-api-key",
            accessflow_samples::PARTNER_ACCOUNT
        ),
        "the partner's secret:\n{exposure}"
    );
    for a in n1["accounts"].as_array().expect("accounts") {
        let status = if a["account"] == BROKEN {
            "partial"
        } else {
            "complete"
        };
        assert_eq!(a["status"], status, "{a:#}");
        assert_eq!(a["diff_base_run"], Value::Null, "{a:#}");
        let link = a["report"].as_str().expect("report link");
        assert!(run_dir(&d, "n1").join(link).is_file(), "{link} exists");
    }

    // Pick the principals to change from night 1's report of the account.
    let report = read_json(&run_dir(&d, "n1").join(CHANGED).join("report.json"));
    let arns = |section: &str, field: &str| -> BTreeSet<String> {
        report[section]
            .as_array()
            .expect(section)
            .iter()
            .filter_map(|r| r[field].as_str().map(str::to_string))
            .collect()
    };
    let admins = arns("admins", "principal_arn");
    let external = arns("external_access", "role_arn");
    let escalating = arns("escalations", "principal_arn");
    let escalation_text: String = report["escalations"]
        .as_array()
        .expect("escalations")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let mut details = read_json(&fixture);
    let user = details["UserDetailList"]
        .as_array()
        .expect("users")
        .iter()
        // (a permissions boundary or a group's deny would cap what AdministratorAccess gives)
        .filter(|u| {
            u.get("PermissionsBoundary").is_none()
                && u["GroupList"].as_array().is_some_and(Vec::is_empty)
        })
        .filter_map(|u| u["Arn"].as_str())
        .find(|arn| !admins.contains(*arn) && !escalating.contains(*arn))
        .expect("a user without a boundary that is neither admin nor escalating")
        .to_string();
    let quiet_roles: Vec<String> = details["RoleDetailList"]
        .as_array()
        .expect("roles")
        .iter()
        .filter(|r| {
            // trusted by an AWS service only
            r["AssumeRolePolicyDocument"]["Statement"]
                .as_array()
                .is_some_and(|s| s.iter().all(|st| st["Principal"].get("Service").is_some()))
        })
        .filter_map(|r| r["Arn"].as_str())
        .filter(|arn| {
            !admins.contains(*arn)
                && !external.contains(*arn)
                && !escalating.contains(*arn)
                && !escalation_text.contains(*arn)
        })
        .map(str::to_string)
        .collect();
    assert!(
        quiet_roles.len() >= 2,
        "the sample account has two service roles without findings"
    );
    let (opened, removed) = (quiet_roles[0].clone(), quiet_roles[1].clone());
    eprintln!("admin added: {user}; opened: {opened}; removed: {removed}");

    // Night 2: the user becomes an admin, the role trusts another account.
    for u in details["UserDetailList"].as_array_mut().expect("users") {
        if u["Arn"] == user.as_str() {
            u["AttachedManagedPolicies"]
                .as_array_mut()
                .expect("attached")
                .push(json!({"PolicyName": "AdministratorAccess", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}));
        }
    }
    for r in details["RoleDetailList"].as_array_mut().expect("roles") {
        if r["Arn"] == opened.as_str() {
            r["AssumeRolePolicyDocument"]["Statement"]
                .as_array_mut()
                .expect("statements")
                .push(json!({"Effect": "Allow", "Principal": {"AWS": OUTSIDER}, "Action": "sts:AssumeRole"}));
        }
    }
    std::fs::write(&fixture, serde_json::to_vec(&details).expect("json")).expect("fixture");
    // ... and the reports bucket, organisation-only, is made public.
    std::fs::write(
        &resources,
        accessflow_samples::generate_resources_night(CHANGED, true),
    )
    .expect("resources.json");
    run_night(&d, &tenants, "n2", "2026-11-25T02:00:00Z");
    let n2 = read_json(&run_dir(&d, "n2").join("index.json"));
    let got = changes(&n2);
    let mut expected = BTreeSet::from([
        change("added", "admin", &user),
        change("added", "external-access", &opened),
        change("added", "resource-exposure", MADE_PUBLIC),
    ]);
    // An admin's own escalation paths come with its new rights: the only other changes
    // allowed are escalation paths added for that user.
    let escalations: BTreeSet<_> = got
        .iter()
        .filter(|c| c.1 == "escalation")
        .cloned()
        .collect();
    for e in &escalations {
        assert_eq!(e, &change("added", "escalation", &user), "{got:#?}");
    }
    expected.extend(escalations);
    assert_eq!(got, expected, "night 2's changes");
    // most important first: the new admin, then the new external access
    let order: Vec<&str> = n2["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert_eq!(&order[..2], ["admin", "external-access"], "{order:?}");
    let ext = n2["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["kind"] == "external-access")
        .expect("external access change");
    assert_eq!(ext["detail"], OUTSIDER);
    let diff2 = notable_diff(&run_dir(&d, "n2").join(CHANGED).join("diff.csv"));
    let from_index: BTreeSet<_> = got
        .iter()
        .map(|(c, k, _, p)| (c.clone(), k.clone(), p.clone()))
        .collect();
    assert_eq!(diff2, from_index, "diff.csv and the index agree");
    for account in [UNCHANGED, BROKEN] {
        assert!(
            notable_diff(&run_dir(&d, "n2").join(account).join("diff.csv")).is_empty(),
            "account {account} did not change"
        );
    }

    // Night 3: the removed role is deleted.
    details["RoleDetailList"]
        .as_array_mut()
        .expect("roles")
        .retain(|r| r["Arn"] != removed.as_str());
    std::fs::write(&fixture, serde_json::to_vec(&details).expect("json")).expect("fixture");
    run_night(&d, &tenants, "n3", "2026-11-26T02:00:00Z");
    let n3 = read_json(&run_dir(&d, "n3").join("index.json"));
    assert_eq!(
        changes(&n3),
        BTreeSet::from([change("removed", "principal", &removed)]),
        "night 3's changes"
    );
    assert_eq!(
        notable_diff(&run_dir(&d, "n3").join(CHANGED).join("diff.csv")),
        BTreeSet::from([("removed".into(), "principal".into(), removed.clone())])
    );

    // The trends over the three runs: exactly one more admin and one more externally
    // assumable role from night 2, one principal fewer on night 3; the other account flat.
    let runs: Vec<&str> = n3["trend"]
        .as_array()
        .expect("trend")
        .iter()
        .filter_map(|p| p["run_id"].as_str())
        .collect();
    assert_eq!(runs, ["n1", "n2", "n3"]);
    let s = |account, measure| series(&n3, account, measure);
    let first = |v: &[Option<u64>]| v[0].expect("night 1 value");
    let admins_a = s(Some(CHANGED), "admins");
    let a0 = first(&admins_a);
    assert_eq!(admins_a, [Some(a0), Some(a0 + 1), Some(a0 + 1)]);
    let ext_a = s(Some(CHANGED), "externally_assumable_roles");
    let e0 = first(&ext_a);
    assert_eq!(ext_a, [Some(e0), Some(e0 + 1), Some(e0 + 1)]);
    // the bucket made public on night 2 (its public-assets bucket was public from night 1)
    let public_a = s(Some(CHANGED), "public_resources");
    assert_eq!(public_a, [Some(1), Some(2), Some(2)]);
    let principals_a = s(Some(CHANGED), "principals");
    let p0 = first(&principals_a);
    assert_eq!(principals_a, [Some(p0), Some(p0), Some(p0 - 1)]);
    for measure in [
        "admins",
        "externally_assumable_roles",
        "escalation_paths",
        "principals_with_unused_access",
        "principals",
    ] {
        let b = s(Some(UNCHANGED), measure);
        assert!(
            b.iter().all(|v| *v == b[0] && v.is_some()),
            "{measure}: {b:?}"
        );
        let c = s(Some(BROKEN), measure);
        assert!(
            c.iter().all(|v| *v == c[0] && v.is_some()),
            "{measure}: {c:?}"
        );
        // the customer's series is the sum of its accounts'
        let total = s(None, measure);
        let a = s(Some(CHANGED), measure);
        for i in 0..3 {
            let sum = [a[i], b[i], c[i]].iter().flatten().sum::<u64>();
            assert_eq!(total[i], Some(sum), "{measure}");
        }
    }
    // `coordinator index` rebuilds the same index (deterministic, from the stored data).
    let before = std::fs::read(run_dir(&d, "n3").join("index.html")).expect("index.html");
    d.coordinator(&["index", "--run", "n3"]);
    let after = std::fs::read(run_dir(&d, "n3").join("index.html")).expect("index.html");
    assert!(before == after, "index.html rebuilt identically");
    // Trends come from the earlier runs' trend-point.json, or, without them, from those
    // runs' summaries: the same index either way.
    let index_before = std::fs::read(run_dir(&d, "n3").join("index.json")).expect("index.json");
    for run in ["n1", "n2"] {
        std::fs::remove_file(run_dir(&d, run).join("trend-point.json")).expect("trend point");
    }
    d.coordinator(&["index", "--run", "n3"]);
    let index_after = std::fs::read(run_dir(&d, "n3").join("index.json")).expect("index.json");
    assert!(
        index_before == index_after,
        "trends rebuilt from the summaries"
    );

    // The digest of night 2 and of night 3, mailed to an SMTP sink.
    let smtp_port = free_port();
    let maildir = d.dir.path().join("maildir");
    let _sink = Sink(
        Command::new(smtp_python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{smtp_port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .spawn()
            .expect("start aiosmtpd"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = smtp_port.to_string();
    let tenants_arg = tenants.to_str().expect("utf-8 path");
    let notify = |run: &str| {
        d.coordinator(&[
            "notify",
            "--run",
            run,
            "--tenants",
            tenants_arg,
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &port,
            "--smtp-tls",
            "none",
            "--mail-from",
            "accessflow@example.com",
        ])
    };
    // Without a server the error says what to set.
    let no_server = d.coordinator_unchecked(&["notify", "--run", "n2", "--tenants", tenants_arg]);
    assert!(!no_server.status.success());
    let err = String::from_utf8_lossy(&no_server.stderr);
    assert!(err.contains("ACCESSFLOW_SMTP_HOST"), "{err}");

    notify("n2");
    notify("n3");
    let mails = wait_for_mails(&maildir, 2);
    let night2 = mails
        .iter()
        .find(|m| m.contains("run n2"))
        .expect("night 2's digest");
    assert!(night2.contains(&format!("To: {RECIPIENT}")), "{night2}");
    assert!(night2.contains(&format!("new admin: {user}")), "{night2}");
    assert!(
        night2.contains(&format!("new external access: {opened} ({OUTSIDER})")),
        "{night2}"
    );
    assert!(night2.contains("IAM admins: "), "{night2}");
    assert!(
        night2.contains(&format!(
            "new public or cross-account access: {MADE_PUBLIC}"
        )),
        "{night2}"
    );
    let night3 = mails
        .iter()
        .find(|m| m.contains("run n3"))
        .expect("night 3's digest");
    assert!(
        night3.contains(&format!("principal removed: {removed}")),
        "{night3}"
    );
    assert!(!night3.contains("new admin"), "{night3}");

    // index.html in headless Chromium.
    let html = run_dir(&d, "n3").join("index.html");
    let page = std::fs::read_to_string(&html).expect("index.html");
    assert!(page.contains("default-src 'none'"));
    for needle in [
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
        "<link ",
        "<script",
    ] {
        assert!(!page.contains(needle), "index.html contains {needle}");
    }
    assert!(page.contains("<svg"), "trend charts");
    assert!(page.contains(&removed), "the change is on the page");
    assert!(
        page.contains("Public resources") && !page.contains("not analysed"),
        "public resources are counted"
    );
    let Some(bin) = chromium() else {
        eprintln!("\n!!! SKIPPED the Chromium part: no chromium installed (apt-get install -y chromium) !!!\n");
        return;
    };
    for run in ["n2", "n3"] {
        let (console, requests) = render(&bin, &d, &run_dir(&d, run).join("index.html"), run);
        assert!(console.is_empty(), "{run}: console messages: {console:#?}");
        assert!(requests.is_empty(), "{run}: network requests: {requests:?}");
    }
    // The checks can fail: the same page with an image to load from the network is caught.
    let bad = d.dir.path().join("bad-index.html");
    std::fs::write(
        &bad,
        page.replacen(
            "<main>",
            "<main><img src=\"http://example.invalid/x.png\">",
            1,
        ),
    )
    .expect("bad page");
    let (console, requests) = render(&bin, &d, &bad, "bad");
    assert!(
        !console.is_empty() || !requests.is_empty(),
        "a page loading an image must be caught"
    );
}

/// The mails the sink stored (quoted-printable soft breaks undone), once `n` arrived.
fn wait_for_mails(maildir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mails: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .replace("=\r\n", "")
                    .replace("=\n", "")
            })
            .collect();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} mails arrived",
            mails.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

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

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Renders a page through a recording proxy (every request of the page would reach it),
/// with the console logged, and takes a screenshot (`ACCESSFLOW_INDEX_SCREENSHOT_DIR`
/// keeps it as `index-<name>.png`). Returns the console messages and the page's requests.
fn render(bin: &Path, d: &Deployment, html: &Path, name: &str) -> (Vec<String>, Vec<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let hits: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (h2, s2) = (hits.clone(), stop.clone());
    let proxy = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let mut buf = [0u8; 2048];
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    let n = s.read(&mut buf).unwrap_or(0);
                    if let Ok(mut h) = h2.lock() {
                        h.push(String::from_utf8_lossy(&buf[..n]).to_string());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    let shot = d.dir.path().join(format!("index-{name}.png"));
    let out = Command::new(bin)
        .args([
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
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1300,1500",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
        ])
        .arg(format!(
            "--user-data-dir={}",
            d.dir.path().join("chromium-profile").display()
        ))
        .arg(format!("--proxy-server=http://127.0.0.1:{proxy_port}"))
        .arg("--proxy-bypass-list=<-loopback>")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    stop.store(true, Ordering::SeqCst);
    proxy.join().expect("proxy thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {stderr}"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "screenshot too small: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("ACCESSFLOW_INDEX_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&keep).join(format!("index-{name}.png")))
            .expect("copy the screenshot");
    }
    // Console messages (errors, CSP violations) are logged as CONSOLE lines.
    let console: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Content Security Policy"))
        .map(str::to_string)
        .collect();
    let reqs = hits.lock().map(|h| h.clone()).unwrap_or_default();
    let requests: Vec<String> = reqs
        .iter()
        .filter(|r| {
            let first = r.lines().next().unwrap_or_default();
            // A connection that sent nothing carried no request: Chromium sometimes opens
            // a spare connection to its proxy ahead of need and never uses it (CI once
            // failed on such an empty "request"). A page's request has a request line.
            if first.trim().is_empty() {
                return false;
            }
            let target = first.split_whitespace().nth(1).unwrap_or_default();
            let host = target
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .split(['/', ':'])
                .next()
                .unwrap_or_default();
            !CHROMIUM_OWN_HOSTS.contains(&host)
        })
        .map(|r| r.lines().next().unwrap_or_default().to_string())
        .collect();
    (console, requests)
}
