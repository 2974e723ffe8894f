//! The IAM source of the embedded backend: fixture account directories.
//!
//! An account's `fixture_dir` holds `authorization-details.json` (the output of
//! `aws iam get-account-authorization-details`), `credential-report.csv` and
//! `last-accessed.json` (one JSON object mapping a principal ARN to its
//! `GetServiceLastAccessedDetails` response) and, optionally, `resources.json` (the
//! account's resource inventory: data stores with their resource policies; without it the
//! reports say public and cross-account access to data stores was not analysed).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::ports::{AccountLocator, AccountSnapshotRaw, IamSource, PortError, PortResult};

pub const AUTHORIZATION_DETAILS_FILE: &str = "authorization-details.json";
pub const CREDENTIAL_REPORT_FILE: &str = "credential-report.csv";
/// The optional resource inventory of a fixture account.
pub const RESOURCES_FILE: &str = "resources.json";
pub const LAST_ACCESSED_FILE: &str = "last-accessed.json";

/// A parsed `last-accessed.json`: each principal's entry as the bytes the file has for it
/// (handed out as they are, not re-serialised: re-serialising a parsed entry was a third
/// of the largest sample account's last-accessed time).
type LastAccessed = Arc<std::collections::HashMap<String, Box<serde_json::value::RawValue>>>;

/// How many parsed `last-accessed.json` files a process keeps: about the accounts it works
/// on at once. Kept without a bound, a worker of a 1,000-account night held every account's
/// file it had met (hundreds of MB; the scale bench's RSS grew with the night).
const LAST_ACCESSED_FILES_KEPT: usize = 4;

/// The fixture-directory [`IamSource`]. The last few parsed `last-accessed.json` files are
/// kept (by path and modification time), so asking for many principals of an account
/// reads its file once.
#[derive(Default)]
pub struct FixtureIamSource {
    /// Most recently used first.
    last_accessed: Mutex<Vec<(PathBuf, Option<SystemTime>, LastAccessed)>>,
}

impl FixtureIamSource {
    pub fn new() -> Self {
        Self::default()
    }
}

fn fixture_dir(op: &'static str, account: &AccountLocator) -> PortResult<PathBuf> {
    account
        .fixture_dir
        .as_ref()
        .map(PathBuf::from)
        .ok_or_else(|| PortError::Permanent {
            op,
            message: format!(
                "account {} of customer {} has no fixture_dir set (the embedded IAM source needs one)",
                account.account, account.customer
            ),
        })
}

async fn read_file(op: &'static str, path: &Path) -> PortResult<Vec<u8>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PortError::NotFound {
            what: "fixture file",
            name: path.display().to_string(),
        }),
        Err(e) => Err(PortError::Permanent {
            op,
            message: format!("{}: {e}", path.display()),
        }),
    }
}

impl FixtureIamSource {
    async fn load_last_accessed(&self, path: &Path) -> PortResult<LastAccessed> {
        const OP: &str = "last_accessed";
        // A plain `stat` (microseconds on a local file), not `tokio::fs`: this runs once per
        // principal, and a hand-off to a blocking thread and back cost about ten times the
        // call (about 40 µs a principal, a sixth of the largest sample account's batches).
        let mtime = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
        {
            let mut kept = self.last_accessed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = kept.iter().position(|(p, cached_mtime, _)| {
                p == path && *cached_mtime == mtime && mtime.is_some()
            }) {
                let hit = kept.remove(at);
                let map = Arc::clone(&hit.2);
                kept.insert(0, hit);
                return Ok(map);
            }
        }
        let bytes = read_file(OP, path).await?;
        let map: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&bytes).map_err(|e| PortError::Permanent {
                op: OP,
                message: format!(
                    "{} is not a JSON object of principal ARN -> last-accessed details: {e}",
                    path.display()
                ),
            })?;
        let map = Arc::new(map);
        let mut kept = self.last_accessed.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(p, _, _)| p != path);
        kept.insert(0, (path.to_path_buf(), mtime, Arc::clone(&map)));
        kept.truncate(LAST_ACCESSED_FILES_KEPT);
        Ok(map)
    }
}

#[async_trait]
impl IamSource for FixtureIamSource {
    async fn fetch_account(&self, account: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        const OP: &str = "fetch_account";
        let dir = fixture_dir(OP, account)?;
        if !dir.is_dir() {
            return Err(PortError::NotFound {
                what: "fixture directory",
                name: dir.display().to_string(),
            });
        }
        Ok(AccountSnapshotRaw {
            authorization_details: read_file(OP, &dir.join(AUTHORIZATION_DETAILS_FILE)).await?,
            credential_report: read_file(OP, &dir.join(CREDENTIAL_REPORT_FILE)).await?,
            resources: match read_file(OP, &dir.join(RESOURCES_FILE)).await {
                Ok(bytes) => Some(bytes),
                Err(PortError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
        })
    }

    async fn last_accessed(
        &self,
        account: &AccountLocator,
        principal_arn: &str,
    ) -> PortResult<Option<Vec<u8>>> {
        const OP: &str = "last_accessed";
        let dir = fixture_dir(OP, account)?;
        let map = self
            .load_last_accessed(&dir.join(LAST_ACCESSED_FILE))
            .await?;
        Ok(map
            .get(principal_arn)
            .map(|entry| entry.get().as_bytes().to_vec()))
    }
}
