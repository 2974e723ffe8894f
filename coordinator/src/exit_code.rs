//! The exit codes of `coordinator run`, `start --wait` and `status --wait`: what cron, ECS or
//! a shell script sees of a night. A night where accounts failed must not look like
//! success, and "still running" must not look like "failed".
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every account of the run finished with a complete report |
//! | 1 | the coordinator itself failed (configuration, backend, tenants file): see stderr |
//! | 2 | the command line was wrong (clap's usage error) |
//! | 3 | the run finished; some accounts have partial reports (principals that failed), none failed |
//! | 4 | the run finished; at least one account failed and has no report tonight |
//! | 5 | `--timeout` passed before the run finished (the run goes on) |

use std::process::ExitCode;

use accessflow_shared::ledger::RunTotals;

/// How a watched run ended, as far as the exit code goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Complete,
    Partial,
    Failed,
    Unfinished,
}

impl RunOutcome {
    /// The outcome of a run from its totals.
    pub fn of(totals: &RunTotals) -> RunOutcome {
        if !totals.is_complete() {
            RunOutcome::Unfinished
        } else if totals.accounts_failed > 0 {
            RunOutcome::Failed
        } else if totals.accounts_partial > 0 {
            RunOutcome::Partial
        } else {
            RunOutcome::Complete
        }
    }

    pub fn code(self) -> u8 {
        match self {
            RunOutcome::Complete => 0,
            RunOutcome::Partial => 3,
            RunOutcome::Failed => 4,
            RunOutcome::Unfinished => 5,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// The coordinator's own failure (code 1).
pub const ERROR: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(accounts: usize, finished: usize, failed: usize, partial: usize) -> RunTotals {
        RunTotals {
            accounts,
            accounts_finished: finished,
            accounts_failed: failed,
            accounts_partial: partial,
            ..RunTotals::default()
        }
    }

    #[test]
    fn each_outcome_has_its_own_code() {
        assert_eq!(RunOutcome::of(&totals(3, 3, 0, 0)).code(), 0);
        assert_eq!(RunOutcome::of(&totals(3, 3, 0, 1)).code(), 3);
        assert_eq!(RunOutcome::of(&totals(3, 3, 1, 1)).code(), 4);
        assert_eq!(RunOutcome::of(&totals(12, 12, 12, 0)).code(), 4);
        assert_eq!(RunOutcome::of(&totals(3, 2, 1, 0)).code(), 5);
        assert_eq!(RunOutcome::of(&totals(0, 0, 0, 0)).code(), 5);
    }
}
