//! The step of an account's work a message stands for: the key of its idempotency record
//! and of the error recorded when it is dead-lettered.
//!
//! The text form (`collect`, `item#000007`, `finalize`, `finalize#2`) is stored in the
//! ledger and the idempotency records, so it must never change; it is written in one place,
//! [`Step`]'s `Display`, and read back by its `FromStr`.

use std::fmt;
use std::str::FromStr;

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

/// A text that is not a step key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a step (expected collect, item#NNNNNN, finalize or finalize#N)")]
pub struct ParseStepError(pub String);

impl FromStr for Step {
    type Err = ParseStepError;

    fn from_str(text: &str) -> Result<Step, ParseStepError> {
        let invalid = || ParseStepError(text.to_string());
        match text.split_once('#') {
            None if text == "collect" => Ok(Step::Collect),
            None if text == "finalize" => Ok(Step::Finalize { generation: 0 }),
            Some(("item", n)) if n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().map(Step::Item).map_err(|_| invalid())
            }
            Some(("finalize", n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                match n.parse() {
                    Ok(0) | Err(_) => Err(invalid()),
                    Ok(generation) => Ok(Step::Finalize { generation }),
                }
            }
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_stored_ones_and_parse_back() {
        let cases = [
            (Step::Collect, "collect"),
            (Step::Item(7), "item#000007"),
            (Step::Item(1_234_567), "item#1234567"),
            (Step::Finalize { generation: 0 }, "finalize"),
            (Step::Finalize { generation: 2 }, "finalize#2"),
        ];
        for (step, key) in cases {
            assert_eq!(step.to_string(), key);
            assert_eq!(key.parse::<Step>(), Ok(step));
        }
    }

    #[test]
    fn rejects_what_is_not_a_step() {
        for text in [
            "",
            "item#7",
            "item#",
            "finalize#0",
            "finalize#x",
            "message 12",
            "Collect",
        ] {
            assert!(text.parse::<Step>().is_err(), "{text}");
        }
    }
}
