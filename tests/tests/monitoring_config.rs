//! The monitoring configuration under `deploy/` is consistent with the code:
//! - `promtool check rules` and `promtool test rules` pass for every alert rule;
//! - the dashboards are valid JSON with unique uids, every panel has a title and a
//!   description, and every datasource they reference is the provisioned one;
//! - every metric a dashboard or rule uses is in the code's catalog
//!   (`accessflow_shared::metrics::CATALOG`), and every catalog metric is used by one, or
//!   says why not;
//! - the Alertmanager configuration renders from the environment, passes `amtool
//!   check-config`, and a missing SMTP setting is named.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use accessflow_shared::metrics::catalog::{lookup, CATALOG};
use accessflow_tests::monitoring::{
    dashboards, metric_names, panel_queries, panels, prometheus_dir, rule_exprs, tool,
};
use accessflow_tests::repo_root;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_and_tests_every_rule() {
    let dir = prometheus_dir();
    let (ok, out) = run(Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(dir.join("alerts.yml")));
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(Command::new(tool("promtool"))
        .args(["test", "rules"])
        .arg(dir.join("alerts_test.yml")));
    assert!(ok, "promtool test rules:\n{out}");
    // Every alert has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            let name = name.trim();
            assert!(
                tests.contains(&format!("alertname: {name}")),
                "alert {name} has no promtool test"
            );
        }
    }
}

#[test]
fn every_alert_has_a_summary_and_a_runbook() {
    let rules = std::fs::read_to_string(prometheus_dir().join("alerts.yml")).unwrap();
    let blocks: Vec<&str> = rules.split("- alert:").skip(1).collect();
    assert!(blocks.len() >= 7, "the issue's seven alerts at least");
    for block in blocks {
        let name = block.lines().next().unwrap_or("").trim();
        assert!(block.contains("summary:"), "{name} has no summary");
        assert!(block.contains("runbook:"), "{name} has no runbook");
        assert!(block.contains("severity:"), "{name} has no severity");
    }
    for alert in [
        "AccessflowNightPastDeadline",
        "AccessflowRunStalled",
        "AccessflowDlqNotEmpty",
        "AccessflowAccountFailed",
        "AccessflowThrottlingHigh",
        "AccessflowNoWorkerWhilePending",
        "AccessflowErrorRate",
    ] {
        assert!(
            rules.contains(&format!("- alert: {alert}")),
            "{alert} is missing"
        );
    }
}

#[test]
fn dashboards_are_valid_unique_and_described() {
    let provisioned = std::fs::read_to_string(
        repo_root().join("deploy/grafana/provisioning/datasources/prometheus.yaml"),
    )
    .unwrap();
    assert!(provisioned.contains("uid: prometheus"), "{provisioned}");
    let all = dashboards();
    assert!(all.len() >= 5, "five dashboards at least: {}", all.len());
    let mut uids = BTreeSet::new();
    for (name, dashboard) in &all {
        let uid = dashboard["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no uid"));
        assert!(uids.insert(uid.to_string()), "uid {uid} twice ({name})");
        assert!(dashboard["title"].is_string(), "{name} has no title");
        let mut panel_ids = BTreeSet::new();
        for panel in panels(dashboard) {
            let title = panel["title"].as_str().unwrap_or("");
            assert!(
                !title.is_empty(),
                "{name}: a panel without a title: {panel}"
            );
            if panel["type"] == "row" {
                continue;
            }
            if let Some(id) = panel["id"].as_u64() {
                assert!(panel_ids.insert(id), "{name}: panel id {id} twice");
            }
            let description = panel["description"].as_str().unwrap_or("");
            assert!(
                description.len() > 20,
                "{name}: panel {title:?} does not say what to look for"
            );
            let mut sources = vec![&panel["datasource"]];
            sources.extend(
                panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| &t["datasource"]),
            );
            for source in sources {
                if source.is_null() {
                    continue;
                }
                assert_eq!(
                    source["uid"], "prometheus",
                    "{name}: panel {title:?} references a datasource that is not provisioned: {source}"
                );
            }
            let targets = panel["targets"].as_array().map_or(0, |t| t.len());
            assert!(targets > 0, "{name}: panel {title:?} has no query");
        }
    }
    for expected in [
        "accessflow-night",
        "accessflow-queues",
        "accessflow-workers",
        "accessflow-aws",
        "accessflow-analysis",
    ] {
        assert!(
            uids.contains(expected),
            "dashboard {expected} is missing: {uids:?}"
        );
    }
}

#[test]
fn dashboards_rules_and_the_code_name_the_same_metrics() {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for q in panel_queries() {
        for name in metric_names(&q.expr) {
            used.entry(name)
                .or_default()
                .push(format!("{} / {}", q.dashboard, q.panel));
        }
    }
    let rules = rule_exprs();
    let alerts = std::fs::read_to_string(prometheus_dir().join("alerts.yml"))
        .unwrap()
        .matches("- alert:")
        .count();
    assert_eq!(rules.len(), alerts, "one expression per alert: {rules:?}");
    for (alert, expr) in &rules {
        for name in metric_names(expr) {
            used.entry(name).or_default().push(format!("alert {alert}"));
        }
    }
    // Every metric used exists in the code (Prometheus's own `up` aside).
    for (name, users) in &used {
        if name == "up" {
            continue;
        }
        assert!(
            lookup(name).is_some(),
            "{name} (used by {users:?}) is not a metric the code exports (shared/src/metrics/catalog.rs)"
        );
    }
    // Every metric the code exports is used, or says why not.
    for def in CATALOG {
        let is_used = used
            .keys()
            .any(|n| lookup(n).is_some_and(|d| d.name == def.name));
        assert!(
            is_used || def.unused_because.is_some(),
            "{} is exported but no dashboard or alert uses it; use it, or say why not in the catalog",
            def.name
        );
    }
}

#[test]
fn alertmanager_config_renders_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alertmanager.yml");
    let script = prometheus_dir().join("render-alertmanager-config");
    let (ok, text) = run(Command::new(&script)
        .arg(&out)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALERT_EMAIL_TO", "oncall@example.com")
        .env("SMTP_FROM", "accessflow@example.com"));
    assert!(!ok, "rendered without SMTP_SMARTHOST");
    assert!(
        text.contains("SMTP_SMARTHOST"),
        "names the missing setting: {text}"
    );
    let (ok, text) = run(Command::new(&script)
        .arg(&out)
        .env("ALERT_EMAIL_TO", "oncall@example.com")
        .env("SMTP_FROM", "accessflow@example.com")
        .env("SMTP_SMARTHOST", "smtp.example.com:587")
        .env("SMTP_AUTH_USERNAME", "accessflow")
        .env("SMTP_AUTH_PASSWORD", "s3cret"));
    assert!(ok, "{text}");
    let rendered = std::fs::read_to_string(&out).unwrap();
    assert!(rendered.contains("smtp.example.com:587") && rendered.contains("oncall@example.com"));
    let (ok, text) = run(Command::new(tool("amtool"))
        .args(["check-config"])
        .arg(&out));
    assert!(ok, "amtool check-config:\n{text}\n{rendered}");
}

#[test]
fn the_example_prometheus_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let source = prometheus_dir();
    for file in ["prometheus.example.yml", "alerts.yml"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::create_dir(dir.path().join("targets")).unwrap();
    for (example, target) in [
        ("workers.example.json", "workers.json"),
        ("exporter.example.json", "exporter.json"),
    ] {
        std::fs::copy(
            source.join("targets").join(example),
            dir.path().join("targets").join(target),
        )
        .unwrap();
    }
    let (ok, text) = run(Command::new(tool("promtool"))
        .current_dir(dir.path())
        .args(["check", "config", "prometheus.example.yml"]));
    assert!(ok, "promtool check config:\n{text}");
}
