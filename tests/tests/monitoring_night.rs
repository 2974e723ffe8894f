//! A real Prometheus scrapes a live night, and a dead-lettered message reaches a person's
//! mailbox.
//!
//! On the AWS backend against moto: `coordinator start`, three `worker serve
//! --metrics-addr` processes and `coordinator exporter`, discovered by Prometheus through
//! file-based service discovery; Prometheus evaluates `deploy/prometheus/alerts.yml` and
//! sends to Alertmanager, configured by `deploy/prometheus/render-alertmanager-config` to
//! mail an aiosmtpd sink. The night has three accounts: one with a poison message behind
//! its work, one whose collect message was received (and abandoned) by dead workers until
//! its last receive (so the account fails), and a clean one.
//!
//! Then:
//! - every query of every dashboard panel returns at least one series (a panel whose query
//!   returns nothing fails the test, named);
//! - every metric the processes serve is in the code's catalog, and every catalog metric is
//!   served by the process that should;
//! - `AccessflowDlqNotEmpty` fires and its e-mail names the customer, the account and the
//!   reason.

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use accessflow_shared::metrics::catalog::{lookup, CATALOG};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::OutgoingMessage;
use accessflow_testkit::{moto, seed};
use accessflow_tests::aws::provisioned;
use accessflow_tests::monitoring::{
    free_port, http_get, instant_query, panel_queries, prometheus_dir, smtp_python, start_server,
    substitute, tool, Server,
};
use accessflow_tests::terminate;
use serde_json::Value;

/// Stops the processes it holds when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The metric families a `/metrics` page serves (from its `# TYPE` lines).
fn served_families(url: &str) -> BTreeSet<String> {
    let (status, body) = http_get(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(status, 200, "{url}: {body}");
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn prometheus_scrapes_a_live_night_and_a_dead_letter_is_mailed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (poisoned, failing, clean) = (
        moto::unique_account(),
        moto::unique_account(),
        moto::unique_account(),
    );
    let tenants_text = [&poisoned, &failing, &clean]
        .iter()
        .enumerate()
        .map(|(i, account)| {
            let header = if i == 0 { "[[customers]]\nid = \"acme\"\n" } else { "" };
            format!("{header}[[customers.accounts]]\nid = \"{account}\"\nrole_arn = \"arn:aws:iam::{account}:role/accessflow-reader\"\nexternal_id = \"acme-external-id\"\n")
        })
        .collect::<String>();
    let (d, backend, tenants) = provisioned(&runtime, "mon", &tenants_text);
    runtime.block_on(async {
        seed::seed_fixture(&poisoned, "nightly_account.json")
            .await
            .unwrap();
        seed::seed_fixture(&failing, "iam_source_account.json")
            .await
            .unwrap();
        seed::seed_fixture(&clean, "nightly_account.json")
            .await
            .unwrap();
    });
    let dir = d.dir.path();

    // The mail sink, Alertmanager and Prometheus.
    let smtp_port = free_port();
    let maildir = dir.join("maildir");
    let mut smtp_cmd = Command::new(smtp_python());
    smtp_cmd.args([
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        &format!("127.0.0.1:{smtp_port}"),
        "-c",
        "aiosmtpd.handlers.Mailbox",
    ]);
    smtp_cmd.arg(&maildir);
    let smtp_log = std::fs::File::create(dir.join("smtp.log")).unwrap();
    let smtp = Processes(vec![smtp_cmd
        .stdout(smtp_log.try_clone().unwrap())
        .stderr(smtp_log)
        .spawn()
        .expect("start aiosmtpd")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }

    let am_config = dir.join("alertmanager.yml");
    let rendered = Command::new(prometheus_dir().join("render-alertmanager-config"))
        .arg(&am_config)
        .env("ALERT_EMAIL_TO", "oncall@example.com")
        .env("SMTP_FROM", "accessflow@example.com")
        .env("SMTP_SMARTHOST", format!("127.0.0.1:{smtp_port}"))
        .env("SMTP_REQUIRE_TLS", "false")
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let am_port = free_port();
    let mut am_cmd = Command::new(tool("prometheus-alertmanager"));
    am_cmd
        .arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=");
    let alertmanager: Server = start_server(
        am_cmd,
        dir.join("alertmanager.log"),
        format!("http://127.0.0.1:{am_port}"),
        "/-/ready",
    );

    let targets = dir.join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    let prometheus_config = dir.join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n\
             \x20 - job_name: accessflow-worker\n    file_sd_configs:\n      - files: ['{targets}/workers.json']\n        refresh_interval: 1s\n\
             \x20 - job_name: accessflow-exporter\n    file_sd_configs:\n      - files: ['{targets}/exporter.json']\n        refresh_interval: 1s\n",
            rules = prometheus_dir().join("alerts.yml").display(),
            targets = targets.display(),
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut prom_cmd = Command::new(tool("prometheus"));
    prom_cmd
        .arg(format!("--config.file={}", prometheus_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let prometheus: Server = start_server(
        prom_cmd,
        dir.join("prometheus.log"),
        format!("http://127.0.0.1:{prom_port}"),
        "/-/ready",
    );

    // The night: published, then the poison and the abandoned collect, then the workers.
    let run = "monitored-night";
    d.coordinator(&[
        "start",
        "--tenants",
        tenants.to_str().unwrap(),
        "--run-id",
        run,
    ]);
    let names = Names::new(&d.name_prefix).unwrap();
    let ports = backend.ports();
    runtime.block_on(async {
        let queue = names.account_queue("acme", &poisoned);
        let garbage = OutgoingMessage::new(&poisoned, "poison-1", "{this is not a work message");
        ports.queues.send_batch(&queue, &[garbage]).await.unwrap();
        // Workers that died holding the collect message, until one receive is left.
        let queue = names.account_queue("acme", &failing);
        let mut received = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while received + 1 < d.max_receive_count {
            let got = ports
                .queues
                .receive(&queue, 1, Some(Duration::ZERO), Duration::ZERO)
                .await
                .unwrap();
            received += got.len() as u32;
            assert!(Instant::now() < deadline, "the collect message never came");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let exporter_port = free_port();
    let exporter_log = std::fs::File::create(dir.join("exporter.log")).unwrap();
    let mut processes = Processes(vec![d
        .command("coordinator")
        .args([
            "exporter",
            "--metrics-addr",
            &format!("127.0.0.1:{exporter_port}"),
            "--refresh-secs",
            "1",
        ])
        .stdout(exporter_log.try_clone().unwrap())
        .stderr(exporter_log)
        .spawn()
        .unwrap()]);
    let worker_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for (i, port) in worker_ports.iter().enumerate() {
        let addr = format!("127.0.0.1:{port}");
        processes
            .0
            .push(d.worker_with(i, &["--metrics-addr", &addr, "--log-format", "json"]));
    }
    let target_list = |ports: &[u16]| {
        serde_json::json!([{
            "targets": ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>(),
            "labels": {"deployment": "monitoring-test"},
        }])
        .to_string()
    };
    std::fs::write(targets.join("workers.json"), target_list(&worker_ports)).unwrap();
    std::fs::write(targets.join("exporter.json"), target_list(&[exporter_port])).unwrap();

    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let status = d.status(run);
        if status["complete"] == true {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the night did not complete: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let failed: Vec<&Value> = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{status:#}");
    assert_eq!(failed[0]["account"], failing.as_str(), "{status:#}");

    // Every target is up and scraped after the night (rates need a few samples).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = instant_query(&prometheus.url, "up == 1").unwrap_or_default();
        if up.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every target is up: {up:?}\n{}",
            prometheus.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));

    // Every query of every panel returns at least one series.
    let queries = panel_queries();
    assert!(
        queries.len() > 40,
        "the dashboards' queries: {}",
        queries.len()
    );
    let mut empty: Vec<String> = Vec::new();
    for q in &queries {
        let expr = substitute(&q.expr);
        let mut result = instant_query(&prometheus.url, &expr);
        // A series that appeared late may need one more scrape for a rate.
        for _ in 0..10 {
            if matches!(&result, Ok(r) if !r.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            result = instant_query(&prometheus.url, &expr);
        }
        match result {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => empty.push(format!(
                "{} / {}: no series for {expr}",
                q.dashboard, q.panel
            )),
            Err(e) => empty.push(format!(
                "{} / {}: query failed ({e}): {expr}",
                q.dashboard, q.panel
            )),
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} panel queries returned nothing:\n  {}",
        empty.len(),
        queries.len(),
        empty.join("\n  ")
    );
    eprintln!(
        "{} panel queries each returned at least one series",
        queries.len()
    );

    // What the processes serve is the catalog, no more and no less.
    let mut worker_served = BTreeSet::new();
    for port in &worker_ports {
        worker_served.extend(served_families(&format!("http://127.0.0.1:{port}/metrics")));
    }
    let exporter_served = served_families(&format!("http://127.0.0.1:{exporter_port}/metrics"));
    for name in worker_served.iter().chain(&exporter_served) {
        assert!(
            lookup(name).is_some(),
            "{name} is served but not in the catalog"
        );
    }
    for def in CATALOG {
        let (on_worker, on_exporter) = match def.exported_by {
            "worker" => (true, false),
            "exporter" => (false, true),
            _ => (true, true),
        };
        assert!(
            !on_worker || worker_served.contains(def.name),
            "the workers do not serve {}",
            def.name
        );
        assert!(
            !on_exporter || exporter_served.contains(def.name),
            "the exporter does not serve {}",
            def.name
        );
    }
    let (health, _) = http_get(&format!("http://127.0.0.1:{}/healthz", worker_ports[0])).unwrap();
    assert_eq!(health, 200);

    // The DLQ alert fires, and its e-mail names the customer, the account and the reason.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mail = loop {
        let mut found = None;
        for entry in std::fs::read_dir(maildir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            // Quoted-printable bodies wrap long lines with a trailing `=`.
            let text = text.replace("=\r\n", "").replace("=\n", "");
            if text.contains("AccessflowDlqNotEmpty") && text.contains(poisoned.as_str()) {
                found = Some(text);
            }
        }
        if let Some(text) = found {
            break text;
        }
        let alerts = http_get(&format!("{}/api/v1/alerts", prometheus.url))
            .map(|(_, body)| body)
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no DLQ alert mail arrived.\nPrometheus alerts: {alerts}\nAlertmanager log:\n{}",
            alertmanager.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(mail.contains("Customer: acme"), "{mail}");
    assert!(mail.contains(&format!("Account:  {poisoned}")), "{mail}");
    assert!(
        mail.contains("message body is not a valid work message"),
        "the mail names the reason: {mail}"
    );
    let firing = http_get(&format!("{}/api/v1/alerts", prometheus.url))
        .unwrap()
        .1;
    assert!(
        firing.contains("AccessflowDlqNotEmpty") && firing.contains(failing.as_str()),
        "{firing}"
    );
    assert!(firing.contains("AccessflowAccountFailed"), "{firing}");

    // The workers stop cleanly; their JSON log lines name the account they worked on.
    for child in processes.0.iter_mut().skip(1) {
        assert!(terminate(child, Duration::from_secs(60)).success());
    }
    let log = std::fs::read_to_string(dir.join("worker-0.log")).unwrap()
        + &std::fs::read_to_string(dir.join("worker-1.log")).unwrap()
        + &std::fs::read_to_string(dir.join("worker-2.log")).unwrap();
    let with_account = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["run"] == run
                && l["customer"] == "acme"
                && l["account"].is_string()
                && l["step"].is_string()
        })
        .count();
    assert!(
        with_account > 0,
        "no JSON log line names run, customer, account and step:\n{log}"
    );
    drop(smtp);
}
