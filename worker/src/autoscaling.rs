//! The worker service's scaling policy, as pure functions: how many worker tasks a night
//! needs, from the number of accounts that still have work.
//!
//! Why not the queues' message count: SQS FIFO hands out one message per group (account)
//! at a time, so an account with 2,400 principals waiting keeps exactly one worker slot
//! busy, however many messages it has. Tasks beyond `ceil(accounts with work /
//! concurrency per task)` can only idle. And a queue-length scaler scales in while the last
//! messages are in flight (none visible), killing the tasks that hold them.
//!
//! The policy, which `terraform/modules/worker_service/autoscaling.tf` implements and
//! `worker/benches/skewed_night.rs` simulates:
//! - desired tasks = `ceil(AccountsWithWork / worker_concurrency)`, between 0 and
//!   `max_tasks` ([`desired_tasks`]); `AccountsWithWork` is the metric the coordinator
//!   publishes (`coordinator start --wait`, embedded metric format);
//! - out fast: a higher desired count applies at the next evaluation (once a minute);
//! - in slowly: a lower one only once `scale_in_cooldown` has passed since the last scaling
//!   activity ([`next_capacity`]), which is Application Auto Scaling's step-scaling cooldown;
//! - busy tasks are protected from scale-in ([`crate::scale_in_protection`]): a lower
//!   desired count stops idle tasks first, and a busy one only once it is idle.
//!
//! In Terraform this is one step-scaling policy with `ExactCapacity` adjustments, one step
//! per task count ([`step_intervals`]), on an alarm that is in ALARM whenever the metric
//! has a value (so the policy is applied every minute); target tracking cannot scale out
//! from 0 tasks and aims at a ratio, not an exact count.

/// `ceil(accounts_with_work / concurrency)`, at most `max_tasks`. A concurrency of 0 is
/// taken as 1.
pub fn desired_tasks(accounts_with_work: u64, concurrency: u32, max_tasks: u32) -> u32 {
    let per_task = u64::from(concurrency.max(1));
    let wanted = accounts_with_work.div_ceil(per_task);
    u32::try_from(wanted.min(u64::from(max_tasks))).unwrap_or(max_tasks)
}

/// The policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Accounts one task works on at once (`worker serve --concurrency`).
    pub concurrency: u32,
    /// The service's maximum task count.
    pub max_tasks: u32,
    /// Seconds after a scaling activity before the desired count may go down.
    pub scale_in_cooldown_secs: u64,
}

/// One evaluation of the policy: the new desired count, from the current one, the metric,
/// and the seconds since the last scaling activity (`None`: there was none). Up at once,
/// down only after the cooldown.
pub fn next_capacity(
    policy: &Policy,
    current: u32,
    accounts_with_work: u64,
    secs_since_last_activity: Option<u64>,
) -> u32 {
    let target = desired_tasks(accounts_with_work, policy.concurrency, policy.max_tasks);
    if target >= current
        || secs_since_last_activity.is_none_or(|secs| secs >= policy.scale_in_cooldown_secs)
    {
        target
    } else {
        current
    }
}

/// One step adjustment of the Terraform policy: a metric value in `[lower, upper)`
/// (`upper` `None`: no bound) sets the desired count to `capacity`. Bounds are relative to
/// the alarm's threshold, 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInterval {
    pub lower: f64,
    pub upper: Option<f64>,
    pub capacity: u32,
}

/// The step adjustments that make `ExactCapacity` step scaling compute [`desired_tasks`]:
/// `capacity` k for `AccountsWithWork` in `((k-1)·c, k·c]`, written with half-integer
/// bounds (the metric is a whole number): `[(k-1)·c + 0.5, k·c + 0.5)`; 0 below 0.5, and
/// `max_tasks` from `(max_tasks-1)·c + 0.5` up. The Terraform's `dynamic` block generates
/// the same list, and `deploy/checks/plan_check.py` checks the provider's plan of it against
/// the same formula.
pub fn step_intervals(concurrency: u32, max_tasks: u32) -> Vec<StepInterval> {
    let c = f64::from(concurrency.max(1));
    let mut steps = vec![StepInterval {
        lower: 0.0,
        upper: (max_tasks > 0).then_some(0.5),
        capacity: 0,
    }];
    for k in 1..=max_tasks {
        steps.push(StepInterval {
            lower: f64::from(k - 1) * c + 0.5,
            upper: (k < max_tasks).then(|| f64::from(k) * c + 0.5),
            capacity: k,
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_task_per_concurrency_accounts_rounded_up_and_capped() {
        assert_eq!(desired_tasks(0, 2, 10), 0);
        assert_eq!(desired_tasks(1, 2, 10), 1);
        assert_eq!(desired_tasks(2, 2, 10), 1);
        assert_eq!(desired_tasks(3, 2, 10), 2);
        assert_eq!(desired_tasks(100, 2, 10), 10);
        assert_eq!(desired_tasks(7, 0, 10), 7);
        assert_eq!(desired_tasks(u64::MAX, 1, u32::MAX), u32::MAX);
    }

    #[test]
    fn a_single_2400_item_account_needs_one_task() {
        // What message-count scaling gets wrong: the account's messages are one group.
        assert_eq!(desired_tasks(1, 2, 20), 1);
    }

    #[test]
    fn out_at_once_in_after_the_cooldown() {
        let policy = Policy {
            concurrency: 2,
            max_tasks: 20,
            scale_in_cooldown_secs: 600,
        };
        // From 0, at the first evaluation.
        assert_eq!(next_capacity(&policy, 0, 100, None), 20);
        assert_eq!(next_capacity(&policy, 3, 9, Some(10)), 5);
        // Down: held during the cooldown, then straight to the target.
        assert_eq!(next_capacity(&policy, 20, 9, Some(599)), 20);
        assert_eq!(next_capacity(&policy, 20, 9, Some(600)), 5);
        assert_eq!(next_capacity(&policy, 5, 0, Some(600)), 0);
    }

    #[test]
    fn the_step_intervals_compute_the_desired_count() {
        for concurrency in 1..=4 {
            for max_tasks in 0..=19 {
                let steps = step_intervals(concurrency, max_tasks);
                assert_eq!(steps.len(), max_tasks as usize + 1);
                // Contiguous, no gap, no overlap, the last one unbounded.
                for pair in steps.windows(2) {
                    assert_eq!(pair[0].upper, Some(pair[1].lower));
                }
                assert_eq!(steps.last().and_then(|s| s.upper), None);
                for accounts in 0..=(u64::from(concurrency) * u64::from(max_tasks) + 7) {
                    let value = accounts as f64;
                    let step = steps
                        .iter()
                        .find(|s| value >= s.lower && s.upper.is_none_or(|u| value < u))
                        .expect("a step covers every value");
                    assert_eq!(
                        step.capacity,
                        desired_tasks(accounts, concurrency, max_tasks),
                        "accounts {accounts}, concurrency {concurrency}, max {max_tasks}"
                    );
                }
            }
        }
    }
}
