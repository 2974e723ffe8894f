//! The `AccountsWithWork` metric that the worker service scales on, printed on stdout in
//! CloudWatch's embedded metric format (EMF) by `coordinator start --wait`.
//!
//! Why this metric: an account's messages are one FIFO group, so each account with work
//! pending or in flight can use exactly one worker slot, whatever its message count
//! (`worker/src/autoscaling.rs`). It comes from the run's ledger totals: the run's accounts
//! not yet finished (finalized or failed).
//!
//! Why EMF on stdout: the nightly ECS task's log driver (awslogs) sends stdout to
//! CloudWatch Logs, which extracts the metric from each JSON line itself: no CloudWatch API
//! call, no extra IAM permission, no agent. One line every 30 s (twice per 1-minute alarm
//! period, so no period goes without a datapoint), and one at once when the value reaches
//! 0, so the service scales to zero at the next evaluation.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use accessflow_shared::ledger::RunTotals;

/// The metric's namespace.
pub const NAMESPACE: &str = "Accessflow";
/// The metric's name.
pub const METRIC: &str = "AccountsWithWork";
/// Its one dimension, whose value is the deployment's name prefix.
pub const DIMENSION: &str = "Deployment";
/// How often the metric is printed while the value does not reach 0: twice per alarm
/// period (60 s), so every period has a datapoint despite the watch loop's drift.
pub const EVERY: Duration = Duration::from_secs(30);

/// Accounts of the run with work pending or in flight.
pub fn accounts_with_work(totals: &RunTotals) -> u64 {
    totals.accounts.saturating_sub(totals.accounts_finished) as u64
}

/// One EMF document (one log line): the metric's value for `deployment` at `timestamp_ms`,
/// with the run id as a property (searchable in the logs, not a dimension).
pub fn emf_line(deployment: &str, run_id: &str, value: u64, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": [{"Name": METRIC, "Unit": "Count"}],
            }],
        },
        DIMENSION: deployment,
        METRIC: value,
        "RunId": run_id,
    })
    .to_string()
}

/// Prints the metric for one run on stdout: at the first poll, every `every`, and as soon
/// as it reaches 0.
#[derive(Debug)]
pub struct AccountsWithWorkMetric {
    deployment: String,
    run_id: String,
    every: Duration,
    last: Option<(Instant, u64)>,
}

impl AccountsWithWorkMetric {
    pub fn new(deployment: &str, run_id: &str, every: Duration) -> Self {
        AccountsWithWorkMetric {
            deployment: deployment.to_string(),
            run_id: run_id.to_string(),
            every,
            last: None,
        }
    }

    /// The line to print for this poll, if one is due.
    pub fn due(&mut self, totals: &RunTotals, now: Instant, timestamp_ms: u64) -> Option<String> {
        let value = accounts_with_work(totals);
        let due = match self.last {
            None => true,
            Some((at, last)) => {
                now.saturating_duration_since(at) >= self.every || (value == 0 && last != 0)
            }
        };
        if !due {
            return None;
        }
        self.last = Some((now, value));
        Some(emf_line(
            &self.deployment,
            &self.run_id,
            value,
            timestamp_ms,
        ))
    }

    /// Prints the line if one is due (stdout is line-buffered: one log event per line).
    pub fn observe(&mut self, totals: &RunTotals) {
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Some(line) = self.due(totals, Instant::now(), timestamp_ms) {
            say!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(accounts: usize, finished: usize) -> RunTotals {
        RunTotals {
            accounts,
            accounts_finished: finished,
            ..RunTotals::default()
        }
    }

    #[test]
    fn the_line_is_an_emf_document() {
        let line = emf_line("accessflow-prod", "20261202T020000Z", 7, 1_764_640_800_000);
        let doc: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(doc["_aws"]["Timestamp"], 1_764_640_800_000u64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Accessflow");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Deployment"]]));
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "AccountsWithWork", "Unit": "Count"}])
        );
        // Every dimension and metric named in the directive is a member of the root.
        assert_eq!(doc["Deployment"], "accessflow-prod");
        assert_eq!(doc["AccountsWithWork"], 7);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn accounts_with_work_are_the_unfinished_ones() {
        assert_eq!(accounts_with_work(&totals(100, 37)), 63);
        assert_eq!(accounts_with_work(&totals(3, 3)), 0);
        assert_eq!(accounts_with_work(&totals(0, 0)), 0);
    }

    #[test]
    fn printed_at_first_then_every_period_and_at_once_when_it_reaches_zero() {
        let mut metric = AccountsWithWorkMetric::new("d", "r", Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(metric.due(&totals(10, 0), t0, 0).is_some());
        assert!(metric
            .due(&totals(10, 4), t0 + Duration::from_secs(30), 0)
            .is_none());
        let line = metric
            .due(&totals(10, 4), t0 + Duration::from_secs(60), 0)
            .expect("a minute later");
        assert!(line.contains(r#""AccountsWithWork":6"#), "{line}");
        let zero = metric
            .due(&totals(10, 10), t0 + Duration::from_secs(61), 0)
            .expect("0 at once");
        assert!(zero.contains(r#""AccountsWithWork":0"#), "{zero}");
        assert!(metric
            .due(&totals(10, 10), t0 + Duration::from_secs(62), 0)
            .is_none());
    }
}
