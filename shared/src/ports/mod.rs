//! The ports: every side effect Accessflow has goes through one of these small traits.
//!
//! Each port has two backends with the *same* semantics (docs/ARCHITECTURE.md §4): the embedded one
//! (SQLite and a directory, one machine, the default) and the AWS one (SQS, SNS, DynamoDB,
//! S3, KMS, STS + IAM). The conformance suite in `shared/tests/conformance/` is written
//! against these traits only, so that a behaviour difference between the backends shows up
//! as a failing test rather than as a surprise in production.
//!
//! The traits use `async_trait` so the program can hold `Arc<dyn Port>` and pick the backend
//! at start-up from configuration.

mod blob;
mod error;
mod iam_source;
mod keys;
mod queue;
mod store;
mod topic;

pub use blob::{validate_key as validate_blob_key, BlobStore};
pub use error::{PortError, PortResult};
pub use iam_source::{AccountLocator, AccountSnapshotRaw, IamSource};
pub use keys::{DataKey, KeyProvider};
pub use queue::{
    OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage, SendOutcome, WorkQueues, DEDUP_WINDOW,
    MAX_BATCH,
};
pub use store::{Condition, Consistency, KeyValueStore, Record, StoreKey, WriteOp};
pub use topic::{FilterPolicy, Subscription, Topics};

use std::sync::Arc;

/// Every port, bundled: what a process needs to talk to its backend.
///
/// Built once at start-up (see `crate::backend`), then cloned cheaply into tasks.
#[derive(Clone)]
pub struct Ports {
    pub queues: Arc<dyn WorkQueues>,
    pub topics: Arc<dyn Topics>,
    pub store: Arc<dyn KeyValueStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub iam: Arc<dyn IamSource>,
    /// The time every lease, timeout and TTL is measured by (see [`crate::clock`]).
    pub clock: crate::clock::Clock,
}
