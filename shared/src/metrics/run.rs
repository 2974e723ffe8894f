//! The run's state as metrics: what `coordinator exporter` computes from the ledger and the
//! queues ([`RunView`]) and publishes ([`RunMetrics::publish`]).
//!
//! A worker knows only its own process and `coordinator start` exits, so the night's
//! progress, its ETA and the DLQs are exported by this one long-running process. Each
//! refresh replaces every series: an account that left the DLQ or a customer that was
//! removed stops being exported at once.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::catalog::{
    self as c, counter, counter_vec, float_gauge, float_gauge_vec, gauge, gauge_vec,
};

/// The account statuses of `accessflow_run_accounts`.
pub const ACCOUNT_STATUSES: &[&str] = &["published", "analyzing", "finalized", "partial", "failed"];
/// The item states of `accessflow_run_items`.
pub const ITEM_STATES: &[&str] = &["expected", "done", "failed", "reused"];

/// One customer's share of the latest run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerView {
    /// Accounts by status (keys from [`ACCOUNT_STATUSES`]).
    pub accounts: BTreeMap<&'static str, u64>,
    /// Items by state (keys from [`ITEM_STATES`]).
    pub items: BTreeMap<&'static str, u64>,
    pub queue_messages: u64,
    pub queue_oldest_age_seconds: f64,
    pub replayed: u64,
}

/// An account in trouble: failed, or with messages in its DLQ.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountTrouble {
    pub customer: String,
    pub account: String,
    pub reason: String,
    /// Messages in the DLQ (0 for a failed account without dead letters).
    pub dlq_messages: u64,
}

/// Everything the exporter publishes about the latest run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunView {
    pub run_id: String,
    pub customers: BTreeMap<String, CustomerView>,
    pub progress_ratio: f64,
    pub complete: bool,
    pub start_seconds: f64,
    pub deadline_seconds: f64,
    pub eta_seconds: f64,
    pub oldest_pending_age_seconds: f64,
    pub failed_accounts: Vec<AccountTrouble>,
    pub dlqs: Vec<AccountTrouble>,
}

/// The exporter's metrics.
pub struct RunMetrics {
    pub run_info: IntGaugeVec,
    pub accounts: IntGaugeVec,
    pub items: IntGaugeVec,
    pub progress: Gauge,
    pub complete: IntGauge,
    pub start: Gauge,
    pub deadline: Gauge,
    pub eta: Gauge,
    pub oldest_pending: Gauge,
    pub failed_accounts: IntGaugeVec,
    pub queue_messages: IntGaugeVec,
    pub queue_oldest_age: GaugeVec,
    pub dlq_messages: IntGaugeVec,
    /// Follows the ledger's persistent count (see [`RunMetrics::publish`]).
    pub dlq_replayed: IntCounterVec,
    pub last_refresh: Gauge,
    pub refresh_errors: IntCounter,
}

static RUN: LazyLock<RunMetrics> = LazyLock::new(|| RunMetrics {
    run_info: gauge_vec(&c::RUN_INFO),
    accounts: gauge_vec(&c::RUN_ACCOUNTS),
    items: gauge_vec(&c::RUN_ITEMS),
    progress: float_gauge(&c::RUN_PROGRESS),
    complete: gauge(&c::RUN_COMPLETE),
    start: float_gauge(&c::RUN_START),
    deadline: float_gauge(&c::RUN_DEADLINE),
    eta: float_gauge(&c::RUN_ETA),
    oldest_pending: float_gauge(&c::RUN_OLDEST_PENDING),
    failed_accounts: gauge_vec(&c::RUN_FAILED_ACCOUNT),
    queue_messages: gauge_vec(&c::QUEUE_MESSAGES),
    queue_oldest_age: float_gauge_vec(&c::QUEUE_OLDEST_AGE),
    dlq_messages: gauge_vec(&c::DLQ_MESSAGES),
    dlq_replayed: counter_vec(&c::DLQ_REPLAYED),
    last_refresh: float_gauge(&c::EXPORTER_LAST_REFRESH),
    refresh_errors: counter(&c::EXPORTER_REFRESH_ERRORS),
});

/// The exporter's metrics (registered on first use).
pub fn run_metrics() -> &'static RunMetrics {
    &RUN
}

/// Label values are bounded in length: a reason is for a person to read in an alert, and
/// a long one would bloat every sample.
pub const MAX_REASON_CHARS: usize = 160;

/// `text` cut to [`MAX_REASON_CHARS`] characters, on one line.
pub fn short_reason(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_REASON_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(MAX_REASON_CHARS - 1).collect();
    format!("{cut}…")
}

impl RunMetrics {
    /// Replaces every run series with `view`'s, as of `now_seconds` (unix time).
    pub fn publish(&self, view: &RunView, now_seconds: f64) {
        self.run_info.reset();
        self.run_info.with_label_values(&[&view.run_id]).set(1);
        self.accounts.reset();
        self.items.reset();
        self.queue_messages.reset();
        self.queue_oldest_age.reset();
        for (customer, cv) in &view.customers {
            for status in ACCOUNT_STATUSES {
                let n = cv.accounts.get(status).copied().unwrap_or(0);
                self.accounts
                    .with_label_values(&[customer.as_str(), status])
                    .set(n as i64);
            }
            for state in ITEM_STATES {
                let n = cv.items.get(state).copied().unwrap_or(0);
                self.items
                    .with_label_values(&[customer.as_str(), state])
                    .set(n as i64);
            }
            self.queue_messages
                .with_label_values(&[customer])
                .set(cv.queue_messages as i64);
            self.queue_oldest_age
                .with_label_values(&[customer])
                .set(cv.queue_oldest_age_seconds);
            // A counter that follows the ledger's count: it catches up from 0 after the
            // exporter restarts, which Prometheus reads as a counter reset.
            let replayed = self.dlq_replayed.with_label_values(&[customer]);
            replayed.inc_by(cv.replayed.saturating_sub(replayed.get()));
        }
        self.progress.set(view.progress_ratio);
        self.complete.set(view.complete as i64);
        self.start.set(view.start_seconds);
        self.deadline.set(view.deadline_seconds);
        self.eta.set(view.eta_seconds);
        self.oldest_pending.set(view.oldest_pending_age_seconds);
        self.failed_accounts.reset();
        for t in &view.failed_accounts {
            self.failed_accounts
                .with_label_values(&[&t.customer, &t.account, &short_reason(&t.reason)])
                .set(1);
        }
        self.dlq_messages.reset();
        for t in &view.dlqs {
            self.dlq_messages
                .with_label_values(&[&t.customer, &t.account, &short_reason(&t.reason)])
                .set(t.dlq_messages as i64);
        }
        self.last_refresh.set(now_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replaces_the_series_and_follows_the_replay_count() {
        let m = run_metrics();
        let mut view = RunView {
            run_id: "r1".into(),
            ..RunView::default()
        };
        view.customers.insert(
            "acme".into(),
            CustomerView {
                replayed: 3,
                ..CustomerView::default()
            },
        );
        view.dlqs.push(AccountTrouble {
            customer: "acme".into(),
            account: "111111111111".into(),
            reason: "bad\nmessage".into(),
            dlq_messages: 2,
        });
        m.publish(&view, 1.0);
        let text = crate::metrics::render();
        assert!(text.contains("# TYPE accessflow_dlq_replayed_messages_total counter"));
        assert!(text.contains(r#"accessflow_dlq_replayed_messages_total{customer="acme"} 3"#));
        m.publish(&view, 1.5);
        assert!(crate::metrics::render()
            .contains(r#"accessflow_dlq_replayed_messages_total{customer="acme"} 3"#));
        assert!(text.contains(
            r#"accessflow_dlq_messages{account="111111111111",customer="acme",reason="bad message"} 2"#
        ));
        assert!(text.contains(r#"accessflow_run_accounts{customer="acme",status="failed"} 0"#));
        // The next refresh drops what is gone.
        view.dlqs.clear();
        view.run_id = "r2".into();
        m.publish(&view, 2.0);
        let text = crate::metrics::render();
        assert!(!text.contains("accessflow_dlq_messages{"));
        assert!(!text.contains(r#"run="r1""#));
    }

    #[test]
    fn reasons_are_short_and_on_one_line() {
        assert_eq!(short_reason("a\n  b"), "a b");
        let long = "x".repeat(500);
        assert_eq!(short_reason(&long).chars().count(), MAX_REASON_CHARS);
    }
}
