//! Blob storage in a directory: one file per key under `<data_dir>/blobs/`.
//!
//! Writes go to a temporary file in `<data_dir>/tmp/` (same file system), are synced, then
//! renamed over the target, so a reader sees the old bytes or the new ones, never a mix.
//! Keys are `/`-separated relative paths; absolute keys, empty segments, `.` and `..` are
//! rejected with `PortError::Invalid` so a key can never escape the directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::db::random_hex;
use crate::ports::{validate_blob_key, BlobStore, PortError, PortResult};

/// The directory-backed [`BlobStore`].
pub struct DirBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl DirBlobStore {
    /// `root` holds the blobs, `tmp` the files being written (both must be on one file system).
    pub(crate) fn new(root: PathBuf, tmp: PathBuf) -> PortResult<Self> {
        for dir in [&root, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| io_error("open blob store", dir, e))?;
        }
        // Leftovers of writers that died mid-write (older than an hour, so that a write in
        // progress in another process is never touched).
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600));
                if stale {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(DirBlobStore { root, tmp })
    }
}

fn io_error(op: &'static str, path: &Path, e: std::io::Error) -> PortError {
    use std::io::ErrorKind::*;
    match e.kind() {
        Interrupted | WouldBlock | TimedOut => PortError::Transient {
            op,
            message: format!("{}: {e}", path.display()),
        },
        _ => PortError::Permanent {
            op,
            message: format!("{}: {e}", path.display()),
        },
    }
}

impl DirBlobStore {
    fn path_of(&self, op: &'static str, key: &str) -> PortResult<PathBuf> {
        let mut path = self.root.clone();
        for part in validate_blob_key(op, key, false)? {
            path.push(part);
        }
        Ok(path)
    }
}

fn write_atomically(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> PortResult<()> {
    const OP: &str = "put blob";
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(OP, parent, e))?;
    }
    let tmp = tmp_dir.join(format!("blob-{}", random_hex(12)));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| io_error(OP, &tmp, e))?;
        file.write_all(bytes).map_err(|e| io_error(OP, &tmp, e))?;
        file.sync_data().map_err(|e| io_error(OP, &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_error(OP, path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn walk(dir: &Path, key_prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let key = if key_prefix.is_empty() {
            name
        } else {
            format!("{key_prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if kind.is_file() {
            out.push(key);
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> PortResult<T> + Send + 'static,
) -> PortResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::Permanent {
            op,
            message: format!("blob task failed: {e}"),
        })?
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        let path = self.path_of("put blob", key)?;
        let tmp = self.tmp.clone();
        blocking("put blob", move || write_atomically(&tmp, &path, &bytes)).await
    }

    async fn get(&self, key: &str) -> PortResult<Option<Vec<u8>>> {
        const OP: &str = "get blob";
        let path = self.path_of(OP, key)?;
        blocking(OP, move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) if path.is_dir() => Ok(None),
            Err(e) => Err(io_error(OP, &path, e)),
        })
        .await
    }

    async fn exists(&self, key: &str) -> PortResult<bool> {
        let path = self.path_of("blob exists", key)?;
        blocking("blob exists", move || Ok(path.is_file())).await
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        const OP: &str = "delete blob";
        let path = self.path_of(OP, key)?;
        let root = self.root.clone();
        blocking(OP, move || match std::fs::remove_file(&path) {
            Ok(()) => {
                // Empty directories left behind go too (a run's report folder).
                let mut dir = path.parent().map(std::path::Path::to_path_buf);
                while let Some(d) = dir {
                    if d == root || std::fs::remove_dir(&d).is_err() {
                        break;
                    }
                    dir = d.parent().map(std::path::Path::to_path_buf);
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(OP, &path, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<String>> {
        const OP: &str = "list blobs";
        let parts = validate_blob_key(OP, prefix, true)?;
        // Walk the deepest directory the prefix fully names, then filter by the prefix.
        let dir_parts = &parts[..parts.len() - 1];
        let mut dir = self.root.clone();
        for part in dir_parts {
            dir.push(part);
        }
        let dir_key = dir_parts.join("/");
        let prefix = prefix.to_string();
        blocking(OP, move || {
            let mut keys = Vec::new();
            walk(&dir, &dir_key, &mut keys).map_err(|e| io_error(OP, &dir, e))?;
            keys.retain(|k| k.starts_with(&prefix));
            keys.sort();
            Ok(keys)
        })
        .await
    }

    fn locate(&self, key: &str) -> String {
        match self.path_of("locate blob", key) {
            Ok(path) => path.display().to_string(),
            Err(_) => format!("{}/{key}", self.root.display()),
        }
    }
}
