//! The step of an account's work a message stands for: the key of its idempotency record
//! and of the error recorded when it is dead-lettered.
//!
//! The text form (`collect`, `item#000007`, `finalize`, `finalize#2`) is stored in the
//! ledger and the idempotency records, so it must never change; it is written in one place,
//! [`Step`]'s `Display`.

use std::fmt;

use crate::message::WorkMessage;

/// One step of an account's work within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// `CollectAccount`: snapshot the account and plan its items.
    Collect,
    /// `AnalyzePrincipal` of the item at this position in the plan.
    Item(u32),
    /// `FinalizeAccount`; generation 0 is the run's own, later ones come from a replay.
    Finalize { generation: u32 },
}

impl Step {
    /// The step a work message performs.
    pub fn of(message: &WorkMessage) -> Step {
        match message {
            WorkMessage::CollectAccount { .. } => Step::Collect,
            WorkMessage::AnalyzePrincipal { item, .. } => Step::Item(*item),
            WorkMessage::FinalizeAccount { generation, .. } => Step::Finalize {
                generation: *generation,
            },
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Collect => f.write_str("collect"),
            Step::Item(item) => write!(f, "item#{item:06}"),
            Step::Finalize { generation: 0 } => f.write_str("finalize"),
            Step::Finalize { generation } => write!(f, "finalize#{generation}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_stored_ones() {
        let cases = [
            (Step::Collect, "collect"),
            (Step::Item(7), "item#000007"),
            (Step::Item(1_234_567), "item#1234567"),
            (Step::Finalize { generation: 0 }, "finalize"),
            (Step::Finalize { generation: 2 }, "finalize#2"),
        ];
        for (step, key) in cases {
            assert_eq!(step.to_string(), key);
        }
    }
}
