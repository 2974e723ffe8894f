//! Blob storage: content-addressed snapshots and report files (S3, or a directory).
//!
//! Keys are `/`-separated paths such as `acme/snapshots/<digest>` or
//! `acme/reports/<run>/<account>/report.json`. Blobs are opaque bytes: encryption happens
//! above this port (see `crate::crypto`), except for report files a user reads directly.

use async_trait::async_trait;

use super::{PortError, PortResult};

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

    /// Deletes a blob; deleting a missing one is not an error (retention, `coordinator gc`).
    async fn delete(&self, key: &str) -> PortResult<()>;

    /// Where a user finds a blob: a file path for the embedded backend, `s3://...` on AWS.
    fn locate(&self, key: &str) -> String;
}

/// Checks a key (or, with `allow_partial`, a listing prefix) and returns its segments.
///
/// Both backends apply the same rules: relative, `/`-separated, no empty, `.` or `..`
/// segments, no NUL or backslash. S3 itself would accept such keys, but they would mean
/// something else on disk, and a key must mean the same thing on either backend.
pub fn validate_key<'k>(
    op: &'static str,
    key: &'k str,
    allow_partial: bool,
) -> PortResult<Vec<&'k str>> {
    let bad = |why: &str| PortError::invalid(op, format!("blob key {key:?} {why}"));
    if key.is_empty() && !allow_partial {
        return Err(bad("is empty"));
    }
    if key.starts_with('/') || key.starts_with('\\') {
        return Err(bad("is absolute"));
    }
    if key.contains('\0') || key.contains('\\') {
        return Err(bad("contains a NUL byte or a backslash"));
    }
    let parts: Vec<&str> = key.split('/').collect();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        if *part == "." || *part == ".." {
            return Err(bad("contains a '.' or '..' segment"));
        }
        // The last segment of a prefix may be empty ("acme/") or partial ("acme/rep").
        if part.is_empty() && !(allow_partial && i == last) {
            return Err(bad("contains an empty segment"));
        }
    }
    Ok(parts)
}
