//! The IAM source of the embedded backend: fixture account directories.
//!
//! An account's `fixture_dir` holds `authorization-details.json` (the output of
//! `aws iam get-account-authorization-details`), `credential-report.csv` and
//! `last-accessed.json` (one JSON object mapping a principal ARN to its
//! `GetServiceLastAccessedDetails` response).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::ports::{AccountLocator, AccountSnapshotRaw, IamSource, PortError, PortResult};

pub const AUTHORIZATION_DETAILS_FILE: &str = "authorization-details.json";
pub const CREDENTIAL_REPORT_FILE: &str = "credential-report.csv";
pub const LAST_ACCESSED_FILE: &str = "last-accessed.json";

type LastAccessed = Arc<serde_json::Map<String, serde_json::Value>>;

/// The fixture-directory [`IamSource`]. Parsed `last-accessed.json` files are cached (keyed
/// by path and modification time), so asking for many principals reads the file once.
#[derive(Default)]
pub struct FixtureIamSource {
    last_accessed: Mutex<HashMap<PathBuf, (Option<SystemTime>, LastAccessed)>>,
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
        let mtime = tokio::fs::metadata(path)
            .await
            .ok()
            .and_then(|m| m.modified().ok());
        if let Some((cached_mtime, map)) = self
            .last_accessed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            if *cached_mtime == mtime && mtime.is_some() {
                return Ok(Arc::clone(map));
            }
        }
        let bytes = read_file(OP, path).await?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|e| PortError::Permanent {
                op: OP,
                message: format!(
                    "{} is not a JSON object of principal ARN -> last-accessed details: {e}",
                    path.display()
                ),
            })?;
        let map = Arc::new(map);
        self.last_accessed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_path_buf(), (mtime, Arc::clone(&map)));
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
        match map.get(principal_arn) {
            None => Ok(None),
            Some(value) => serde_json::to_vec(value)
                .map(Some)
                .map_err(|e| PortError::Permanent {
                    op: OP,
                    message: format!("re-serialising the entry of {principal_arn}: {e}"),
                }),
        }
    }
}
