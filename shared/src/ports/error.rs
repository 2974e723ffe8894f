//! The one error type every port returns, classified the way the worker needs to react:
//! retry (transient), give up on this message (permanent), or take another path
//! (a failed condition, a missing thing).

/// What went wrong in a port call.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A conditional write's condition did not hold (DynamoDB `ConditionalCheckFailed`).
    #[error("condition failed on {key}")]
    ConditionFailed { key: String },

    /// A transaction was cancelled; `reasons` has one entry per operation, `None` where that
    /// operation was fine (DynamoDB `TransactionCanceledException` cancellation reasons).
    #[error("transaction cancelled: {}", describe_reasons(.reasons))]
    TransactionCancelled { reasons: Vec<Option<String>> },

    /// The queue, topic, subscription or object does not exist.
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },

    /// The request itself is wrong (batch too large, bad name, ...): retrying will not help.
    #[error("invalid request to {op}: {message}")]
    Invalid { op: &'static str, message: String },

    /// Throttling, 5xx, timeouts, a busy database: worth retrying with backoff.
    #[error("transient failure in {op}: {message}")]
    Transient { op: &'static str, message: String },

    /// Access denied by the customer's role or any other failure that retrying cannot fix.
    #[error("permanent failure in {op}: {message}")]
    Permanent { op: &'static str, message: String },
}

fn describe_reasons(reasons: &[Option<String>]) -> String {
    reasons
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| format!("operation {i}: {r}")))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PortError {
    /// A request that is wrong in itself (see [`PortError::Invalid`]).
    pub fn invalid(op: &'static str, message: impl Into<String>) -> PortError {
        PortError::Invalid {
            op,
            message: message.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Transient { .. })
    }

    /// Whether this is a failed condition (plain or inside a transaction).
    pub fn is_condition_failed(&self) -> bool {
        matches!(
            self,
            PortError::ConditionFailed { .. } | PortError::TransactionCancelled { .. }
        )
    }
}

pub type PortResult<T> = Result<T, PortError>;
