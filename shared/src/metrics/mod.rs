//! Prometheus metrics: what each process exports, and the one list of them all.
//!
//! - [`catalog`]: every metric the code exports (name, type, labels, help), the list the
//!   dashboards and alert rules are checked against (`tests/tests/monitoring_config.rs`);
//! - [`work`]: what a worker process counts while it works (messages, steps, caches,
//!   analysis);
//! - [`aws`]: the AWS requests of any process that talks to AWS, with their estimated cost;
//! - [`run`]: the run's state derived from the ledger and the queues, which only the
//!   long-running `coordinator exporter` exports;
//! - [`server`]: the small HTTP server for `/metrics` and `/healthz`.
//!
//! Metrics live in the process-wide default registry (the `prometheus` crate's convention):
//! code deep in a step counts without a handle being passed down to it, and the process
//! collector (`process_resident_memory_bytes`, `process_cpu_seconds_total`) is registered
//! there by the crate itself.
//!
//! **Label cardinality rule.** `customer` may label any metric (tens of customers). An
//! `account` label is allowed only on gauges whose series are bounded by accounts in
//! trouble: [`run::RunMetrics::dlq_messages`] (one series per account whose DLQ is not empty)
//! and [`run::RunMetrics::failed_accounts`] (one per failed account of the latest run).
//! `operation` labels only the AWS request counter (the SDK operations the code calls,
//! about 40). A run id labels only `accessflow_run_info` (one series, the latest run).

pub mod aws;
pub mod catalog;
pub mod run;
pub mod server;
pub mod work;

use prometheus::{Encoder, TextEncoder};

pub use catalog::{MetricDef, MetricKind, CATALOG};

/// The text exposition of every registered metric (what `/metrics` serves).
pub fn render() -> String {
    let families = prometheus::gather();
    let mut out = Vec::new();
    // Encoding into a Vec fails only on a malformed family, which the registry refuses at
    // registration; an empty page is the fallback.
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(error = %e, "cannot encode the metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Records which program and version this process is (`accessflow_build_info`).
pub fn set_build_info(binary: &str) {
    catalog::BUILD_INFO_GAUGE
        .with_label_values(&[binary, env!("CARGO_PKG_VERSION")])
        .set(1);
}
