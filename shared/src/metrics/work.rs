//! What a worker process counts while it works: messages and steps, items, the lease
//! heartbeat, shutdown releases, panics, cache lookups and the analysis itself.
//!
//! One process-wide set, [`work()`]: the consumer, the pipeline and the caches count into
//! it. The cache series that dashboards need before the first lookup are created at 0 when
//! the set is first used.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};

use super::catalog::{self as c, counter, counter_vec, gauge, histogram, histogram_vec};

/// The cache kinds, the values of `accessflow_cache_lookups_total`'s `kind` label.
pub const CACHE_KINDS: &[&str] = &["snapshot", "result", "last_accessed"];

/// The worker's metrics.
pub struct WorkMetrics {
    pub messages: IntCounterVec,
    pub items: IntCounterVec,
    pub step_duration: HistogramVec,
    pub heartbeat_extensions: IntCounter,
    pub released_on_shutdown: IntCounter,
    pub panics: IntCounter,
    pub dead_lettered: IntCounterVec,
    pub busy_queues: IntGauge,
    pub receives: IntCounterVec,
    pub concurrency: IntGauge,
    pub cache_lookups: IntCounterVec,
    pub analysis_duration: Histogram,
}

/// Buckets for steps: a principal takes milliseconds, a large account's collect minutes.
const STEP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Buckets for one principal's evaluation.
const ANALYSIS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static WORK: LazyLock<WorkMetrics> = LazyLock::new(|| {
    let m = WorkMetrics {
        messages: counter_vec(&c::MESSAGES_PROCESSED),
        items: counter_vec(&c::ITEMS_PROCESSED),
        step_duration: histogram_vec(&c::STEP_DURATION, STEP_BUCKETS.to_vec()),
        heartbeat_extensions: counter(&c::HEARTBEAT_EXTENSIONS),
        released_on_shutdown: counter(&c::RELEASED_ON_SHUTDOWN),
        panics: counter(&c::PANICS),
        dead_lettered: counter_vec(&c::DEAD_LETTERED),
        busy_queues: gauge(&c::BUSY_QUEUES),
        receives: counter_vec(&c::RECEIVES),
        concurrency: gauge(&c::CONCURRENCY),
        cache_lookups: counter_vec(&c::CACHE_LOOKUPS),
        analysis_duration: histogram(&c::ANALYSIS_DURATION, ANALYSIS_BUCKETS.to_vec()),
    };
    for result in ["messages", "empty"] {
        m.receives.with_label_values(&[result]);
    }
    for kind in CACHE_KINDS {
        for result in ["hit", "miss"] {
            m.cache_lookups.with_label_values(&[kind, result]);
        }
    }
    m
});

/// The process's work metrics (registered on first use).
pub fn work() -> &'static WorkMetrics {
    &WORK
}

impl WorkMetrics {
    /// Counts one cache lookup of `kind` (one of [`CACHE_KINDS`]).
    pub fn cache_lookup(&self, kind: &str, hit: bool) {
        self.cache_lookups
            .with_label_values(&[kind, if hit { "hit" } else { "miss" }])
            .inc();
    }
}
