//! Every metric Accessflow exports, in one list: name, type, labels, help, and whether it
//! needs a dashboard panel or alert rule.
//!
//! The metrics themselves ([`super::work`], [`super::run`]) are built from these
//! definitions, so the list cannot drift from what `/metrics` serves. A test checks the
//! other direction: every metric a dashboard or alert rule uses is here, and every metric
//! here is used by one, or says why it need not be ([`MetricDef::unused_because`]).

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The full name (counters end in `_total`; a histogram's series add `_bucket`, `_sum`
    /// and `_count`).
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Which process exports it: `worker`, `exporter`, or `both`.
    pub exported_by: &'static str,
    /// Why no dashboard or alert uses it, for the few that are for ad-hoc queries only.
    pub unused_because: Option<&'static str>,
}

const fn def(
    name: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    exported_by: &'static str,
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        labels,
        help,
        exported_by,
        unused_because: None,
    }
}

use MetricKind::{Counter, Gauge, Histogram};

// --- Both processes -----------------------------------------------------------------------
pub const BUILD_INFO: MetricDef = def(
    "accessflow_build_info",
    Gauge,
    &["binary", "version"],
    "both",
    "Always 1; the program (worker, coordinator) and version of this process.",
);

// --- Worker processes (super::work) ---------------------------------------------------------
pub const MESSAGES_PROCESSED: MetricDef = def(
    "accessflow_messages_processed_total",
    Counter,
    &["customer", "step", "outcome"],
    "worker",
    "Messages handled, by step (collect, analyze, finalize, undecodable) and outcome (done, retry, dead_letter).",
);
pub const ITEMS_PROCESSED: MetricDef = def(
    "accessflow_items_processed_total",
    Counter,
    &["customer", "outcome"],
    "worker",
    "Principals (items) processed, by outcome: analyzed, reused (result cache hit), failed.",
);
pub const STEP_DURATION: MetricDef = def(
    "accessflow_step_duration_seconds",
    Histogram,
    &["step"],
    "worker",
    "Time to handle one message, by step (collect, analyze, finalize).",
);
pub const HEARTBEAT_EXTENSIONS: MetricDef = def(
    "accessflow_heartbeat_extensions_total",
    Counter,
    &[],
    "worker",
    "Visibility and claim extensions made by the lease heartbeat while a message is worked on.",
);
pub const RELEASED_ON_SHUTDOWN: MetricDef = def(
    "accessflow_released_on_shutdown_total",
    Counter,
    &[],
    "worker",
    "Messages received but given back (visibility 0) because the worker was stopping.",
);
pub const PANICS: MetricDef = def(
    "accessflow_panics_total",
    Counter,
    &[],
    "worker",
    "Batches whose task panicked (their messages return after the visibility timeout).",
);
pub const DEAD_LETTERED: MetricDef = def(
    "accessflow_dead_lettered_messages_total",
    Counter,
    &["customer"],
    "worker",
    "Messages this worker moved to their account's DLQ (a permanent failure, with its reason).",
);
pub const BUSY_QUEUES: MetricDef = def(
    "accessflow_worker_busy_queues",
    Gauge,
    &[],
    "worker",
    "Account queues this worker is working on now.",
);
pub const RECEIVES: MetricDef = def(
    "accessflow_queue_receives_total",
    Counter,
    &["result"],
    "worker",
    "Receives from account queues, by result: `messages`, or `empty` (the account's group is held by another worker, or the account is finished). On SQS each is a billed request.",
);
pub const CONCURRENCY: MetricDef = def(
    "accessflow_worker_concurrency",
    Gauge,
    &[],
    "worker",
    "Account queues this worker may work on at once (--concurrency).",
);
pub const AWS_REQUESTS: MetricDef = def(
    "accessflow_aws_requests_total",
    Counter,
    &["service", "operation"],
    "both",
    "AWS requests sent (every HTTP attempt, retries included), by service and SDK operation.",
);
pub const AWS_THROTTLES: MetricDef = def(
    "accessflow_aws_throttles_total",
    Counter,
    &["service"],
    "both",
    "AWS responses that said the caller was throttled.",
);
pub const AWS_RETRIES: MetricDef = def(
    "accessflow_aws_retries_total",
    Counter,
    &["service"],
    "both",
    "AWS calls tried again after a failed attempt (SDK retries and the IAM/STS backoff).",
);
pub const AWS_ERRORS: MetricDef = def(
    "accessflow_aws_errors_total",
    Counter,
    &["service"],
    "both",
    "AWS responses with an HTTP status of 400 or more (throttles included).",
);
pub const AWS_COST: MetricDef = def(
    "accessflow_aws_estimated_cost_dollars_total",
    Counter,
    &["service"],
    "both",
    "Estimated US dollars of the AWS requests sent, at us-east-1 list prices (shared::aws::prices).",
);
pub const CACHE_LOOKUPS: MetricDef = def(
    "accessflow_cache_lookups_total",
    Counter,
    &["kind", "result"],
    "worker",
    "Cache lookups by kind (snapshot, result, last_accessed) and result (hit, miss).",
);
pub const ANALYSIS_DURATION: MetricDef = def(
    "accessflow_analysis_duration_seconds",
    Histogram,
    &[],
    "worker",
    "Time to evaluate one principal's effective access; its _count rate is principals per second.",
);

// --- The exporter (super::run) ---------------------------------------------------------------
pub const RUN_INFO: MetricDef = def(
    "accessflow_run_info",
    Gauge,
    &["run"],
    "exporter",
    "Always 1; the id of the latest run, which every accessflow_run_* metric describes.",
);
pub const RUN_ACCOUNTS: MetricDef = def(
    "accessflow_run_accounts",
    Gauge,
    &["customer", "status"],
    "exporter",
    "Accounts of the latest run by status: published, analyzing, finalized (complete), partial (finalized with failed items), failed.",
);
pub const RUN_ITEMS: MetricDef = def(
    "accessflow_run_items",
    Gauge,
    &["customer", "state"],
    "exporter",
    "Items (principals) of the latest run: expected, done, failed, reused (from the result cache).",
);
pub const RUN_PROGRESS: MetricDef = def(
    "accessflow_run_progress_ratio",
    Gauge,
    &[],
    "exporter",
    "Share of the latest run's work settled, 0 to 1 (accounts not yet collected count their last size).",
);
pub const RUN_COMPLETE: MetricDef = def(
    "accessflow_run_complete",
    Gauge,
    &[],
    "exporter",
    "1 once every account of the latest run is finalized or failed, else 0.",
);
pub const RUN_START: MetricDef = def(
    "accessflow_run_start_timestamp_seconds",
    Gauge,
    &[],
    "exporter",
    "Unix time the latest run started (its as-of time).",
);
pub const RUN_DEADLINE: MetricDef = def(
    "accessflow_run_deadline_timestamp_seconds",
    Gauge,
    &[],
    "exporter",
    "Unix time the latest run's reports must be delivered by (--deliver-by, the first after the start).",
);
pub const RUN_ETA: MetricDef = def(
    "accessflow_run_eta_timestamp_seconds",
    Gauge,
    &[],
    "exporter",
    "Estimated unix time the latest run finishes at its rate so far; once complete, when it was first seen complete.",
);
pub const RUN_OLDEST_PENDING: MetricDef = def(
    "accessflow_run_oldest_pending_account_age_seconds",
    Gauge,
    &[],
    "exporter",
    "How long the longest-waiting unfinished account of the latest run has waited since the run started (0 when none).",
);
pub const RUN_FAILED_ACCOUNT: MetricDef = def(
    "accessflow_run_failed_account_info",
    Gauge,
    &["customer", "account", "reason"],
    "exporter",
    "Always 1; one series per failed account of the latest run, with why it failed.",
);
pub const QUEUE_MESSAGES: MetricDef = def(
    "accessflow_queue_messages",
    Gauge,
    &["customer"],
    "exporter",
    "Messages in the customer's account queues (visible, in flight and delayed).",
);
pub const QUEUE_OLDEST_AGE: MetricDef = def(
    "accessflow_queue_oldest_message_age_seconds",
    Gauge,
    &["customer"],
    "exporter",
    "Since the run started, for the customer's accounts that still have queued messages (an upper bound of the oldest message's age; 0 when none).",
);
pub const DLQ_MESSAGES: MetricDef = def(
    "accessflow_dlq_messages",
    Gauge,
    &["customer", "account", "reason"],
    "exporter",
    "Messages in an account's DLQ, only for DLQs that are not empty; reason is the latest recorded error of the account's run.",
);
pub const DLQ_REPLAYED: MetricDef = def(
    "accessflow_dlq_replayed_messages_total",
    Counter,
    &["customer"],
    "exporter",
    "Messages sent back from a DLQ by `coordinator dlq replay` (kept in the ledger).",
);
pub const EXPORTER_LAST_REFRESH: MetricDef = def(
    "accessflow_exporter_last_refresh_timestamp_seconds",
    Gauge,
    &[],
    "exporter",
    "Unix time of the exporter's last successful refresh.",
);
pub const EXPORTER_REFRESH_ERRORS: MetricDef = def(
    "accessflow_exporter_refresh_errors_total",
    Counter,
    &[],
    "exporter",
    "Refreshes that failed (the ledger or the queues could not be read).",
);

// --- The process collector (registered by the prometheus crate) -----------------------------
pub const PROCESS_RSS: MetricDef = def(
    "process_resident_memory_bytes",
    Gauge,
    &[],
    "both",
    "Resident memory of the process.",
);
pub const PROCESS_CPU: MetricDef = def(
    "process_cpu_seconds_total",
    Counter,
    &[],
    "both",
    "CPU time (user and system) the process used.",
);

pub const PROCESS_OPEN_FDS: MetricDef = def(
    "process_open_fds",
    Gauge,
    &[],
    "both",
    "Open file descriptors (sockets included) of the process.",
);
/// The process collector's other series: for ad-hoc queries.
const PROCESS_OTHER: &str = "for ad-hoc queries; memory and CPU are on the Workers dashboard";
pub const PROCESS_MAX_FDS: MetricDef = MetricDef {
    unused_because: Some(PROCESS_OTHER),
    ..def(
        "process_max_fds",
        Gauge,
        &[],
        "both",
        "The process's file descriptor limit.",
    )
};
pub const PROCESS_VIRTUAL_MEMORY: MetricDef = MetricDef {
    unused_because: Some(PROCESS_OTHER),
    ..def(
        "process_virtual_memory_bytes",
        Gauge,
        &[],
        "both",
        "Virtual memory of the process.",
    )
};
pub const PROCESS_START_TIME: MetricDef = def(
    "process_start_time_seconds",
    Gauge,
    &[],
    "both",
    "Unix time the process started (its changes count restarts).",
);
pub const PROCESS_THREADS: MetricDef = MetricDef {
    unused_because: Some(PROCESS_OTHER),
    ..def(
        "process_threads",
        Gauge,
        &[],
        "both",
        "Operating-system threads of the process.",
    )
};

/// Every metric, in the order of the README's table.
pub const CATALOG: &[MetricDef] = &[
    BUILD_INFO,
    MESSAGES_PROCESSED,
    ITEMS_PROCESSED,
    STEP_DURATION,
    HEARTBEAT_EXTENSIONS,
    RELEASED_ON_SHUTDOWN,
    PANICS,
    DEAD_LETTERED,
    BUSY_QUEUES,
    RECEIVES,
    CONCURRENCY,
    AWS_REQUESTS,
    AWS_THROTTLES,
    AWS_RETRIES,
    AWS_ERRORS,
    AWS_COST,
    CACHE_LOOKUPS,
    ANALYSIS_DURATION,
    RUN_INFO,
    RUN_ACCOUNTS,
    RUN_ITEMS,
    RUN_PROGRESS,
    RUN_COMPLETE,
    RUN_START,
    RUN_DEADLINE,
    RUN_ETA,
    RUN_OLDEST_PENDING,
    RUN_FAILED_ACCOUNT,
    QUEUE_MESSAGES,
    QUEUE_OLDEST_AGE,
    DLQ_MESSAGES,
    DLQ_REPLAYED,
    EXPORTER_LAST_REFRESH,
    EXPORTER_REFRESH_ERRORS,
    PROCESS_RSS,
    PROCESS_CPU,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_VIRTUAL_MEMORY,
    PROCESS_START_TIME,
    PROCESS_THREADS,
];

/// The catalog entry of a series name (`..._bucket` and friends map to their histogram).
pub fn lookup(series: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|d| {
        d.name == series
            || (d.kind == Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| series.strip_suffix(s) == Some(d.name)))
    })
}

// Builders: a definition turned into a registered metric. Registration fails only when two
// metrics share a name, a programming error the catalog's unit test catches first.

pub(crate) fn counter_vec(d: &MetricDef) -> IntCounterVec {
    assert_eq!(d.kind, Counter, "{} is not a counter", d.name);
    let m = IntCounterVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

/// A counter of fractional amounts (dollars).
pub(crate) fn float_counter_vec(d: &MetricDef) -> prometheus::CounterVec {
    assert_eq!(d.kind, Counter, "{} is not a counter", d.name);
    let m = prometheus::CounterVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

/// A metric without labels.
pub(crate) fn counter(d: &MetricDef) -> prometheus::IntCounter {
    assert!(d.kind == Counter && d.labels.is_empty(), "{}", d.name);
    let m = prometheus::IntCounter::new(d.name, d.help).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) fn gauge(d: &MetricDef) -> prometheus::IntGauge {
    assert!(d.kind == Gauge && d.labels.is_empty(), "{}", d.name);
    let m = prometheus::IntGauge::new(d.name, d.help).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) fn float_gauge(d: &MetricDef) -> prometheus::Gauge {
    assert!(d.kind == Gauge && d.labels.is_empty(), "{}", d.name);
    let m = prometheus::Gauge::new(d.name, d.help).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) fn gauge_vec(d: &MetricDef) -> IntGaugeVec {
    assert_eq!(d.kind, Gauge, "{} is not a gauge", d.name);
    let m = IntGaugeVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) fn float_gauge_vec(d: &MetricDef) -> prometheus::GaugeVec {
    assert_eq!(d.kind, Gauge, "{} is not a gauge", d.name);
    let m = prometheus::GaugeVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) fn histogram_vec(d: &MetricDef, buckets: Vec<f64>) -> HistogramVec {
    assert_eq!(d.kind, Histogram, "{} is not a histogram", d.name);
    let m = HistogramVec::new(
        HistogramOpts::new(d.name, d.help).buckets(buckets),
        d.labels,
    )
    .expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) fn histogram(d: &MetricDef, buckets: Vec<f64>) -> prometheus::Histogram {
    assert!(d.kind == Histogram && d.labels.is_empty(), "{}", d.name);
    let m = prometheus::Histogram::with_opts(HistogramOpts::new(d.name, d.help).buckets(buckets))
        .expect("valid metric");
    prometheus::register(Box::new(m.clone())).expect("metric registered once");
    m
}

pub(crate) static BUILD_INFO_GAUGE: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec(&BUILD_INFO));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_conventional() {
        let mut seen = std::collections::BTreeSet::new();
        for d in CATALOG {
            assert!(seen.insert(d.name), "{} twice in the catalog", d.name);
            assert!(
                d.name.starts_with("accessflow_") || d.name.starts_with("process_"),
                "{} lacks the accessflow_ prefix",
                d.name
            );
            assert_eq!(
                d.kind == Counter,
                d.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                d.name
            );
            assert!(!d.help.is_empty(), "{} has no help", d.name);
            assert!(
                ["worker", "exporter", "both"].contains(&d.exported_by),
                "{}: unknown exporter",
                d.name
            );
        }
    }

    #[test]
    fn account_labels_only_where_the_rule_allows() {
        for d in CATALOG {
            if d.labels.contains(&"account") {
                assert!(
                    [DLQ_MESSAGES.name, RUN_FAILED_ACCOUNT.name].contains(&d.name),
                    "{} has an account label; see the cardinality rule in metrics/mod.rs",
                    d.name
                );
            }
        }
    }

    #[test]
    fn histogram_series_map_to_their_metric() {
        assert_eq!(
            lookup("accessflow_step_duration_seconds_bucket").map(|d| d.name),
            Some(STEP_DURATION.name)
        );
        assert!(lookup("accessflow_run_items_count").is_none());
    }
}
