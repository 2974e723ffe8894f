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
    /// Evaluate one principal of the snapshot.
    AnalyzePrincipal {
        #[serde(flatten)]
        work: AccountWork,
        /// Content digest of the snapshot every item of the run reads.
        snapshot: String,
        /// Position of the item in the plan (0-based); the idempotency key.
        item: u32,
        principal_arn: String,
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
}

impl WorkMessage {
    pub fn work(&self) -> &AccountWork {
        match self {
            WorkMessage::CollectAccount { work }
            | WorkMessage::AnalyzePrincipal { work, .. }
            | WorkMessage::FinalizeAccount { work, .. } => work,
        }
    }

    /// Short name of the message type, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkMessage::CollectAccount { .. } => "collect_account",
            WorkMessage::AnalyzePrincipal { .. } => "analyze_principal",
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

    pub fn decode(body: &str) -> Result<WorkMessage, DecodeError> {
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
        Ok(envelope.message)
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
}
