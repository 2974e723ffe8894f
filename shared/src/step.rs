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
    /// `AnalyzePrincipals` of `count` consecutive items from `first`.
    Items { first: u32, count: u32 },
    /// `FinalizeAccount`; generation 0 is the run's own, later ones come from a replay.
    Finalize { generation: u32 },
}

impl Step {
    /// The step a work message performs.
    pub fn of(message: &WorkMessage) -> Step {
        match message {
            WorkMessage::CollectAccount { .. } => Step::Collect,
            WorkMessage::AnalyzePrincipal { item, .. } => Step::Item(*item),
            WorkMessage::AnalyzePrincipals {
                first_item,
                principals,
                ..
            } => Step::Items {
                first: *first_item,
                count: principals.len() as u32,
            },
            WorkMessage::FinalizeAccount { generation, .. } => Step::Finalize {
                generation: *generation,
            },
        }
    }
}

impl Step {
    /// The step a stored key names (the inverse of `Display`); `None` for any other text.
    pub fn parse(key: &str) -> Option<Step> {
        if key == "collect" {
            return Some(Step::Collect);
        }
        if key == "finalize" {
            return Some(Step::Finalize { generation: 0 });
        }
        if let Some(generation) = key.strip_prefix("finalize#") {
            return generation
                .parse()
                .ok()
                .map(|generation| Step::Finalize { generation });
        }
        if let Some(range) = key.strip_prefix("items#") {
            let (first, count) = range.split_once('+')?;
            return Some(Step::Items {
                first: first.parse().ok()?,
                count: count.parse().ok()?,
            });
        }
        key.strip_prefix("item#")?.parse().ok().map(Step::Item)
    }

    /// Whether this step analyses `item`.
    pub fn covers_item(&self, item: u32) -> bool {
        match *self {
            Step::Item(n) => n == item,
            Step::Items { first, count } => {
                item >= first && u64::from(item) < u64::from(first) + u64::from(count)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Collect => f.write_str("collect"),
            Step::Item(item) => write!(f, "item#{item:06}"),
            Step::Items { first, count } => write!(f, "items#{first:06}+{count}"),
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
            (
                Step::Items {
                    first: 90,
                    count: 45,
                },
                "items#000090+45",
            ),
            (Step::Finalize { generation: 0 }, "finalize"),
            (Step::Finalize { generation: 2 }, "finalize#2"),
        ];
        for (step, key) in cases {
            assert_eq!(step.to_string(), key);
            assert_eq!(Step::parse(key), Some(step));
        }
        for junk in [
            "",
            "item#",
            "items#1",
            "items#a+2",
            "finalize#x",
            "message 7",
        ] {
            assert_eq!(Step::parse(junk), None, "{junk}");
        }
        let batch = Step::Items {
            first: 90,
            count: 45,
        };
        assert!(batch.covers_item(90) && batch.covers_item(134));
        assert!(!batch.covers_item(89) && !batch.covers_item(135));
        assert!(Step::Item(3).covers_item(3) && !Step::Collect.covers_item(0));
    }
}
