//! Blob storage: content-addressed snapshots and report files (S3, or a directory).
//!
//! Keys are `/`-separated paths such as `acme/snapshots/<digest>` or
//! `acme/reports/<run>/<account>/report.json`. Blobs are opaque bytes: encryption happens
//! above this port (see `crate::crypto`), except for report files a user reads directly.

use async_trait::async_trait;

use super::PortResult;

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes (or overwrites) a blob atomically: a reader sees the old or the new bytes.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()>;

    /// Reads a blob; `None` when missing.
    async fn get(&self, key: &str) -> PortResult<Option<Vec<u8>>>;

    /// Whether the blob exists.
    async fn exists(&self, key: &str) -> PortResult<bool>;

    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> PortResult<Vec<String>>;

    /// Where a user finds a blob: a file path for the embedded backend, `s3://...` on AWS.
    fn locate(&self, key: &str) -> String;
}
