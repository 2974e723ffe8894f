//! What a batch holds while it is worked on, kept alive by one heartbeat.
//!
//! A receive hands a task the messages of one FIFO group; while the task works through
//! them, nobody else may get them, and while a handler holds a step's idempotency claim,
//! nobody else may take the step over. Both are leases that run out: the messages'
//! visibility timeout and the claim's lease. A [`Lease`] owns both and extends them
//! together every third of the visibility timeout, so the two can never drift apart. The
//! consumer creates one per batch; the heartbeat stops when the lease is dropped (a panic
//! included), so it never keeps messages invisible for a batch nobody works on.

use accessflow_shared::metrics::work::work;
use std::sync::Arc;
use std::time::Duration;

use accessflow_shared::idempotency::{self, ClaimToken};
use accessflow_shared::ports::{KeyValueStore, WorkQueues};
use tokio::sync::Mutex;
use tracing::warn;

/// The receipts of one batch and the claim of the step in hand, with their heartbeat.
pub struct Lease {
    held: Arc<Held>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// What the heartbeat extends.
struct Held {
    queue: String,
    store: Arc<dyn KeyValueStore>,
    visibility: Duration,
    /// Receipt handles of the batch's messages not yet settled.
    receipts: Mutex<Vec<String>>,
    /// The idempotency claim of the step being handled, if one is held.
    claim: Mutex<Option<ClaimToken>>,
}

impl Lease {
    /// Starts holding `receipts` (received from `queue`): from now on, every third of
    /// `visibility` their visibility and any claim held are extended by `visibility`.
    /// Must be called inside a tokio runtime.
    pub fn start(
        queues: Arc<dyn WorkQueues>,
        store: Arc<dyn KeyValueStore>,
        queue: &str,
        receipts: Vec<String>,
        visibility: Duration,
    ) -> Lease {
        let held = Arc::new(Held {
            queue: queue.to_string(),
            store: store.clone(),
            visibility,
            receipts: Mutex::new(receipts),
            claim: Mutex::new(None),
        });
        let heartbeat = tokio::spawn(heartbeat(held.clone(), queues, store, visibility));
        Lease { held, heartbeat }
    }

    /// Stops extending a message's visibility (it is being settled: a tick must not undo a
    /// retry delay).
    pub async fn let_go(&self, receipt: &str) {
        self.held.receipts.lock().await.retain(|r| r != receipt);
    }

    /// The claim the heartbeat extends from now on.
    pub async fn hold_claim(&self, token: ClaimToken) {
        *self.held.claim.lock().await = Some(token);
    }

    /// Takes the held claim away from the heartbeat (to commit or release it), so no
    /// extension can move its version meanwhile.
    pub async fn take_claim(&self) -> Option<ClaimToken> {
        self.held.claim.lock().await.take()
    }

    /// Extends the held claim now, conditioned on its version: `Ok(true)` while the claim
    /// is still ours, `Ok(false)` once somebody else took the step over (the claim is then
    /// dropped). The fence before effects that cannot join the commit's transaction.
    pub async fn confirm_claim(&self) -> Result<bool, accessflow_shared::ports::PortError> {
        let mut claim = self.held.claim.lock().await;
        let Some(token) = claim.as_ref() else {
            return Ok(false);
        };
        match idempotency::extend(self.held.store.as_ref(), token, self.held.visibility).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => {
                *claim = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a claim is held.
    pub async fn holds_claim(&self) -> bool {
        self.held.claim.lock().await.is_some()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn heartbeat(
    held: Arc<Held>,
    queues: Arc<dyn WorkQueues>,
    store: Arc<dyn KeyValueStore>,
    visibility: Duration,
) {
    let every = (visibility / 3).max(Duration::from_millis(200));
    let queue = held.queue.as_str();
    loop {
        tokio::time::sleep(every).await;
        // Everything held in one request (SQS: up to 10 per request, the most one
        // receive hands out).
        let receipts = held.receipts.lock().await.clone();
        if !receipts.is_empty() {
            match queues
                .change_visibility_batch(queue, &receipts, visibility)
                .await
            {
                Ok(()) => work().heartbeat_extensions.inc_by(receipts.len() as u64),
                Err(e) => {
                    warn!(queue, error = %e, "heartbeat could not extend the visibility of every held message")
                }
            }
        }
        // Held across the extension: a commit or release waits for it, so the token's
        // version it uses is the one the store has.
        let claim = held.claim.lock().await;
        if let Some(token) = claim.as_ref() {
            match idempotency::extend(store.as_ref(), token, visibility).await {
                Ok(_) => work().heartbeat_extensions.inc(),
                Err(e) => {
                    warn!(queue, error = %e, "heartbeat could not extend the idempotency lease")
                }
            }
        }
    }
}
