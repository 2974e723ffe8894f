//! The monitoring configuration under `deploy/` as the tests read it (dashboards, alert
//! rules, Alertmanager's template), and the real Prometheus, Alertmanager and SMTP sink the
//! live test starts: Debian's `prometheus` and `prometheus-alertmanager` (`.ci/run`
//! installs them), aiosmtpd from PyPI in a venv under the target directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::repo_root;

/// One query of one dashboard panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
}

/// The dashboards' folder.
pub fn dashboards_dir() -> PathBuf {
    repo_root().join("deploy/grafana/dashboards")
}

/// The Prometheus folder (rules, their tests, Alertmanager's template).
pub fn prometheus_dir() -> PathBuf {
    repo_root().join("deploy/prometheus")
}

/// Every dashboard file, parsed, by file name.
pub fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .expect("deploy/grafana/dashboards exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        out.push((name, json));
    }
    out
}

/// Every panel of a dashboard, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(nested) = panel.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every panel query of every dashboard.
pub fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (name, dashboard) in dashboards() {
        let title = dashboard["title"].as_str().unwrap_or(&name).to_string();
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(PanelQuery {
                        dashboard: title.clone(),
                        panel: panel["title"].as_str().unwrap_or("(untitled)").to_string(),
                        expr: expr.to_string(),
                    });
                }
            }
        }
    }
    out
}

/// A query with Grafana's variables replaced as the tests evaluate it: every customer,
/// one-minute rates, a one-hour range.
pub fn substitute(expr: &str) -> String {
    expr.replace("${customer:regex}", ".*")
        .replace("${customer}", ".*")
        .replace("$customer", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
}

/// The metric names a PromQL expression (or rule) uses: identifiers that start with
/// `accessflow_` or `process_`, and `up`. Label values and strings are skipped.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    let mut in_string: Option<char> = None;
    let mut in_braces = false;
    while let Some((i, c)) = chars.next() {
        if let Some(q) = in_string {
            if c == '\\' {
                chars.next();
            } else if c == q {
                in_string = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            '{' => in_braces = true,
            '}' => in_braces = false,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[i..end];
                let metric =
                    word.starts_with("accessflow_") || word.starts_with("process_") || word == "up";
                if metric && !in_braces {
                    names.insert(word.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

/// The expressions of every rule in `deploy/prometheus/alerts.yml`, by alert name, read
/// with promtool's own parser would need Go; the file's `expr:` entries are plain YAML
/// scalars (single line, or a `|` block), which this reads.
pub fn rule_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(prometheus_dir().join("alerts.yml")).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed
            .strip_prefix("- alert:")
            .or_else(|| trimmed.strip_prefix("alert:"))
        {
            name = rest.trim().to_string();
        } else if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('|') || rest.starts_with('>') {
                let indent = line.len() - trimmed.len();
                let mut body = String::new();
                while let Some(next) = lines.peek() {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    body.push_str(next.trim());
                    body.push('\n');
                    lines.next();
                }
                out.push((name.clone(), body));
            } else {
                out.push((name.clone(), rest.trim_matches('\'').to_string()));
            }
        }
    }
    out
}

/// A TCP port free now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Debian tool's path, or a panic saying how to get it.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: `apt-get install prometheus prometheus-alertmanager` (.ci/run does)"
    );
}

/// A server process the test started, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Spawns `cmd` logging to `log`, and waits until `ready_url` answers 200.
pub fn start_server(mut cmd: Command, log: PathBuf, url: String, ready_path: &str) -> Server {
    let file = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut server = Server { child, url, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_get(&format!("{}{ready_path}", server.url)).is_ok_and(|(s, _)| s == 200) {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{:?} exited with {status}:\n{}", cmd, server.log_tail());
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} not ready:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (status, body): enough for the local servers' APIs.
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other(format!("not an http URL: {url}")))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query parameter.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An instant query against Prometheus's HTTP API: the result vector.
pub fn instant_query(prometheus: &str, expr: &str) -> Result<Vec<Value>, String> {
    let url = format!("{prometheus}/api/v1/query?query={}", encode(expr));
    let (status, body) = http_get(&url).map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_str(&body).map_err(|e| format!("{status} ({e}): {body}"))?;
    if json["status"] != "success" {
        return Err(format!("{status}: {body}"));
    }
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The aiosmtpd venv's Python (made once under the target directory).
pub fn smtp_python() -> PathBuf {
    let dir = accessflow_testkit::python_venv::target_dir().join("smtp-venv");
    accessflow_testkit::python_venv::ensure(&accessflow_testkit::python_venv::VenvSpec {
        dir,
        install: &["aiosmtpd==1.4.6"],
        probe: "import aiosmtpd.handlers",
    })
    .unwrap_or_else(|e| panic!("cannot make the aiosmtpd venv: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_labels_and_strings() {
        let names = metric_names(
            r#"sum by (customer) (rate(accessflow_messages_processed_total{outcome="accessflow_x"}[1m])) / on() group_left up{job="a"}"#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["accessflow_messages_processed_total", "up"]
        );
    }

    #[test]
    fn substitution_leaves_no_variable() {
        let q = substitute(r#"rate(x{customer=~"$customer"}[$__rate_interval])"#);
        assert_eq!(q, r#"rate(x{customer=~".*"}[1m])"#);
    }
}
