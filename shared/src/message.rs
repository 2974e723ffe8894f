//! The work messages that flow through the queues, and how they are encoded.
//!
//! Bodies are JSON with a `type` tag and a format `version`, so a worker can tell a message
//! it does not understand (wrong version, unknown type, not JSON at all) from a bug of its
//! own and send it to the DLQ with that reason. Message group = account id, so every
//! message of one account goes through one FIFO group (docs/ARCHITECTURE.md §2).

use serde::{Deserialize, Serialize};

use crate::ports::OutgoingMessage;

/// Version of the message format; bumped on an incompatible change.
pub const MESSAGE_VERSION: u32 = 1;

/// Largest body a worker decodes: SQS's own limit (256 KiB). A work message is a few hundred
/// bytes; anything near this is forged or corrupt.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Most items (principals) one account's run may plan. IAM's own quotas stop at 5,000 users
/// and 5,000 roles per account; this leaves room for raised quotas, and bounds what a
/// forged `items` can make a worker allocate.
pub const MAX_ITEMS_PER_ACCOUNT: u32 = 100_000;

/// Longest principal ARN (IAM's limit is 2,048 characters).
pub const MAX_ARN_LEN: usize = 2048;

/// Most principals one `AnalyzePrincipals` message carries. A batch commits its items in
/// one store transaction (DynamoDB's limit: 100 operations), beside the step's record,
/// the account's counters and the step's error.
pub const MAX_PRINCIPALS_PER_MESSAGE: usize = 90;

/// Most bytes of ARNs one `AnalyzePrincipals` message carries, leaving room for the rest
/// of the body under [`MAX_BODY_BYTES`].
pub const MAX_ARN_BYTES_PER_MESSAGE: usize = 200 * 1024;

/// The identity of one account's work within one run, carried by every message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountWork {
    pub run_id: String,
    pub customer: String,
    pub account: String,
}

/// What a worker is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkMessage {
    /// Snapshot the account's IAM data and plan its items.
    CollectAccount {
        #[serde(flatten)]
        work: AccountWork,
    },
    /// Evaluate one principal of the snapshot. Collect now plans batches
    /// ([`WorkMessage::AnalyzePrincipals`]); this single form is still read, so messages
    /// sent by an earlier version (in a queue or a DLQ) are processed.
    AnalyzePrincipal {
        #[serde(flatten)]
        work: AccountWork,
        /// Content digest of the snapshot every item of the run reads.
        snapshot: String,
        /// Position of the item in the plan (0-based); the idempotency key.
        item: u32,
        principal_arn: String,
    },
    /// Evaluate a batch of consecutive items of the snapshot: items `first_item`,
    /// `first_item + 1`, ... are the principals in order. Sized by collect so that one
    /// message is a few hundred milliseconds of work.
    AnalyzePrincipals {
        #[serde(flatten)]
        work: AccountWork,
        snapshot: String,
        /// Position in the plan of the first principal (0-based).
        first_item: u32,
        principals: Vec<String>,
    },
    /// Aggregate the items into the account's reports.
    FinalizeAccount {
        #[serde(flatten)]
        work: AccountWork,
        snapshot: String,
        /// Number of AnalyzePrincipal items planned.
        items: u32,
        /// 0 for the run's own finalize; a later one (sent by `coordinator dlq replay`
        /// after replayed items) rebuilds the reports.
        #[serde(default, skip_serializing_if = "is_zero")]
        generation: u32,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Message attribute set on messages sent back by `coordinator dlq replay`: a step that
/// failed before may be tried again.
pub const REPLAY_ATTRIBUTE: &str = "accessflow-replay";

/// Message attribute a worker sets on a message it dead-letters itself: why.
pub const ERROR_ATTRIBUTE: &str = "accessflow-error";

/// Message attribute a worker sets on a message it dead-letters itself: the queue it came
/// from.
pub const SOURCE_QUEUE_ATTRIBUTE: &str = "accessflow-source-queue";

/// Prefix of every attribute Accessflow sets (a replay strips them all).
pub const ATTRIBUTE_PREFIX: &str = "accessflow-";

#[derive(Serialize, Deserialize)]
struct Envelope {
    version: u32,
    #[serde(flatten)]
    message: WorkMessage,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not a valid work message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("message format version {found} is not supported (this build reads version {MESSAGE_VERSION})")]
    Version { found: u32 },
    #[error("message body is {0} bytes, more than the {MAX_BODY_BYTES} a work message can be")]
    TooLarge(usize),
    #[error("message field `{field}` is out of bounds: {problem}")]
    OutOfBounds {
        field: &'static str,
        problem: String,
    },
}

fn out_of_bounds(field: &'static str, problem: impl Into<String>) -> DecodeError {
    DecodeError::OutOfBounds {
        field,
        problem: problem.into(),
    }
}

impl WorkMessage {
    pub fn work(&self) -> &AccountWork {
        match self {
            WorkMessage::CollectAccount { work }
            | WorkMessage::AnalyzePrincipal { work, .. }
            | WorkMessage::AnalyzePrincipals { work, .. }
            | WorkMessage::FinalizeAccount { work, .. } => work,
        }
    }

    /// Short name of the message type, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkMessage::CollectAccount { .. } => "collect_account",
            WorkMessage::AnalyzePrincipal { .. } => "analyze_principal",
            WorkMessage::AnalyzePrincipals { .. } => "analyze_principals",
            WorkMessage::FinalizeAccount { .. } => "finalize_account",
        }
    }

    /// Deduplication id: unique per run, account and step, so a resend is dropped by the
    /// queue's 5-minute window and, after it, by the idempotency record.
    pub fn dedup_id(&self) -> String {
        let w = self.work();
        match self {
            WorkMessage::CollectAccount { .. } => format!("{}.{}.collect", w.run_id, w.account),
            WorkMessage::AnalyzePrincipal { item, .. } => {
                format!("{}.{}.item.{item}", w.run_id, w.account)
            }
            WorkMessage::AnalyzePrincipals { first_item, .. } => {
                format!("{}.{}.items.{first_item}", w.run_id, w.account)
            }
            WorkMessage::FinalizeAccount { generation: 0, .. } => {
                format!("{}.{}.finalize", w.run_id, w.account)
            }
            WorkMessage::FinalizeAccount { generation, .. } => {
                format!("{}.{}.finalize.{generation}", w.run_id, w.account)
            }
        }
    }

    pub fn encode(&self) -> String {
        let envelope = Envelope {
            version: MESSAGE_VERSION,
            message: self.clone(),
        };
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string(&envelope).unwrap_or_default()
    }

    /// Decodes a body and checks every id, count and size in it before anything uses them:
    /// a forged message is refused here, with the field named, instead of crashing or
    /// misleading a worker.
    pub fn decode(body: &str) -> Result<WorkMessage, DecodeError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(DecodeError::TooLarge(body.len()));
        }
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly = serde_json::from_str(body)?;
        if version.version != MESSAGE_VERSION {
            return Err(DecodeError::Version {
                found: version.version,
            });
        }
        let envelope: Envelope = serde_json::from_str(body)?;
        envelope.message.check_bounds()?;
        Ok(envelope.message)
    }

    /// Every field within the bounds the pipeline relies on.
    fn check_bounds(&self) -> Result<(), DecodeError> {
        let w = self.work();
        let run_ok = !w.run_id.is_empty()
            && w.run_id.len() <= 64
            && w.run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !run_ok {
            return Err(out_of_bounds(
                "run_id",
                "not 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
            ));
        }
        crate::naming::validate_customer(&w.customer)
            .map_err(|e| out_of_bounds("customer", e.to_string()))?;
        crate::naming::validate_account(&w.account)
            .map_err(|e| out_of_bounds("account", e.to_string()))?;
        let check_snapshot = |snapshot: &str| {
            let ok = !snapshot.is_empty()
                && snapshot.len() <= 128
                && snapshot
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if ok {
                Ok(())
            } else {
                Err(out_of_bounds(
                    "snapshot",
                    "not a content digest (1 to 128 lowercase hex digits)",
                ))
            }
        };
        match self {
            WorkMessage::CollectAccount { .. } => Ok(()),
            WorkMessage::AnalyzePrincipal {
                snapshot,
                item,
                principal_arn,
                ..
            } => {
                check_snapshot(snapshot)?;
                if *item >= MAX_ITEMS_PER_ACCOUNT {
                    return Err(out_of_bounds(
                        "item",
                        format!("{item} is not below {MAX_ITEMS_PER_ACCOUNT}"),
                    ));
                }
                if !principal_arn.starts_with("arn:") || principal_arn.len() > MAX_ARN_LEN {
                    return Err(out_of_bounds(
                        "principal_arn",
                        format!("not an ARN of at most {MAX_ARN_LEN} characters"),
                    ));
                }
                Ok(())
            }
            WorkMessage::AnalyzePrincipals {
                snapshot,
                first_item,
                principals,
                ..
            } => {
                check_snapshot(snapshot)?;
                if principals.is_empty() || principals.len() > MAX_PRINCIPALS_PER_MESSAGE {
                    return Err(out_of_bounds(
                        "principals",
                        format!(
                            "{} principals, not 1 to {MAX_PRINCIPALS_PER_MESSAGE}",
                            principals.len()
                        ),
                    ));
                }
                let end = u64::from(*first_item) + principals.len() as u64;
                if end > u64::from(MAX_ITEMS_PER_ACCOUNT) {
                    return Err(out_of_bounds(
                        "first_item",
                        format!(
                            "items {first_item} to {} go past {MAX_ITEMS_PER_ACCOUNT}",
                            end - 1
                        ),
                    ));
                }
                if let Some(bad) = principals
                    .iter()
                    .position(|arn| !arn.starts_with("arn:") || arn.len() > MAX_ARN_LEN)
                {
                    return Err(out_of_bounds(
                        "principals",
                        format!("entry {bad} is not an ARN of at most {MAX_ARN_LEN} characters"),
                    ));
                }
                Ok(())
            }
            // `generation` is any u32 (replay uses the time); nothing is sized by it.
            WorkMessage::FinalizeAccount {
                snapshot, items, ..
            } => {
                check_snapshot(snapshot)?;
                if *items > MAX_ITEMS_PER_ACCOUNT {
                    return Err(out_of_bounds(
                        "items",
                        format!("{items} is more than {MAX_ITEMS_PER_ACCOUNT}"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The message ready to send: group = account, attributes `customer`, `account`, `type`.
    pub fn to_outgoing(&self) -> OutgoingMessage {
        let w = self.work();
        OutgoingMessage::new(w.account.clone(), self.dedup_id(), self.encode())
            .with_attribute("customer", w.customer.clone())
            .with_attribute("account", w.account.clone())
            .with_attribute("type", self.kind())
    }
}

/// A failure reason cut to at most `max` bytes on a character boundary, marked `…` when
/// cut: for a DLQ message's error attribute and for the reasons a batch's outcome record
/// keeps.
pub fn truncate_reason(reason: &str, max: usize) -> String {
    if reason.len() <= max {
        return reason.to_string();
    }
    let mut end = max;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work() -> AccountWork {
        AccountWork {
            run_id: "r1".into(),
            customer: "acme".into(),
            account: "111122223333".into(),
        }
    }

    #[test]
    fn round_trips() {
        let messages = [
            WorkMessage::CollectAccount { work: work() },
            WorkMessage::AnalyzePrincipal {
                work: work(),
                snapshot: "abc".into(),
                item: 7,
                principal_arn: "arn:aws:iam::111122223333:role/x".into(),
            },
            WorkMessage::AnalyzePrincipals {
                work: work(),
                snapshot: "abc".into(),
                first_item: 90,
                principals: vec![
                    "arn:aws:iam::111122223333:role/x".into(),
                    "arn:aws:iam::111122223333:user/y".into(),
                ],
            },
            WorkMessage::FinalizeAccount {
                work: work(),
                snapshot: "abc".into(),
                items: 9,
                generation: 0,
            },
            WorkMessage::FinalizeAccount {
                work: work(),
                snapshot: "abc".into(),
                items: 9,
                generation: 3,
            },
        ];
        for m in messages {
            assert_eq!(WorkMessage::decode(&m.encode()).unwrap(), m);
            let out = m.to_outgoing();
            assert_eq!(out.group_id, "111122223333");
            assert_eq!(out.attributes["account"], "111122223333");
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(matches!(
            WorkMessage::decode("not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            WorkMessage::decode(r#"{"version":9,"type":"collect_account"}"#),
            Err(DecodeError::Version { found: 9 })
        ));
        let err = WorkMessage::decode(r#"{"version":1,"type":"collect_account","run_id":"r"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("customer"), "{err}");
        let err = WorkMessage::decode(r#"{"version":1,"type":"explode"}"#).unwrap_err();
        assert!(err.to_string().contains("explode"), "{err}");
    }

    /// Every count and size is checked at decode time, naming the field.
    #[test]
    fn refuses_out_of_bounds_fields() {
        let finalize = |items: u32, generation: u32| WorkMessage::FinalizeAccount {
            work: work(),
            snapshot: "abc".into(),
            items,
            generation,
        };
        let field = |m: &WorkMessage| match WorkMessage::decode(&m.encode()) {
            Err(DecodeError::OutOfBounds { field, .. }) => field,
            other => panic!("expected out of bounds, got {other:?}"),
        };
        assert_eq!(field(&finalize(u32::MAX, 0)), "items");
        assert_eq!(field(&finalize(MAX_ITEMS_PER_ACCOUNT + 1, 0)), "items");
        assert!(WorkMessage::decode(&finalize(MAX_ITEMS_PER_ACCOUNT, 0).encode()).is_ok());
        assert!(WorkMessage::decode(&finalize(3, u32::MAX).encode()).is_ok());
        let analyze = |item: u32, arn: &str, snapshot: &str| WorkMessage::AnalyzePrincipal {
            work: work(),
            snapshot: snapshot.into(),
            item,
            principal_arn: arn.into(),
        };
        let arn = "arn:aws:iam::111122223333:role/x";
        assert_eq!(field(&analyze(u32::MAX, arn, "abc")), "item");
        assert_eq!(field(&analyze(1, "role/x", "abc")), "principal_arn");
        assert_eq!(
            field(&analyze(1, &"arn:".repeat(1000), "abc")),
            "principal_arn"
        );
        assert_eq!(field(&analyze(1, arn, "../../etc")), "snapshot");
        let batch = |first_item: u32, principals: Vec<String>| WorkMessage::AnalyzePrincipals {
            work: work(),
            snapshot: "abc".into(),
            first_item,
            principals,
        };
        assert_eq!(field(&batch(0, vec![])), "principals");
        assert_eq!(
            field(&batch(
                0,
                vec![arn.to_string(); MAX_PRINCIPALS_PER_MESSAGE + 1]
            )),
            "principals"
        );
        assert_eq!(
            field(&batch(0, vec![arn.to_string(), "role/x".into()])),
            "principals"
        );
        assert_eq!(
            field(&batch(MAX_ITEMS_PER_ACCOUNT - 1, vec![arn.to_string(); 2])),
            "first_item"
        );
        assert!(WorkMessage::decode(
            &batch(0, vec![arn.to_string(); MAX_PRINCIPALS_PER_MESSAGE]).encode()
        )
        .is_ok());
        let mut bad_work = work();
        bad_work.account = "1".repeat(400);
        assert_eq!(
            field(&WorkMessage::CollectAccount { work: bad_work }),
            "account"
        );
        let mut bad_work = work();
        bad_work.customer = "Acme Corp".into();
        assert_eq!(
            field(&WorkMessage::CollectAccount { work: bad_work }),
            "customer"
        );
        let mut bad_work = work();
        bad_work.run_id = "r/../1".into();
        assert_eq!(
            field(&WorkMessage::CollectAccount { work: bad_work }),
            "run_id"
        );
        let huge = format!(
            r#"{{"version":1,"type":"collect_account","run_id":"{}"}}"#,
            "r".repeat(MAX_BODY_BYTES)
        );
        assert!(matches!(
            WorkMessage::decode(&huge),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn long_failure_reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncate_reason("short", 10), "short");
        let long = "é".repeat(1024);
        let cut = truncate_reason(&long, 1023);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(cut.len() <= 1023 + '…'.len_utf8());
        assert_eq!(cut, format!("{}…", "é".repeat(511)));
    }
}
