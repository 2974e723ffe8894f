//! Caching that makes reruns cheap and deterministic.
//!
//! - **Snapshots**: an account's raw IAM data, gzip'd and sealed, stored content-addressed
//!   under its digest; a run references the digest, so every item of the run reads the same
//!   bytes, and an unchanged account is not stored twice.
//! - **Last-accessed data**: per principal, with a freshness window, so a rerun or a replay
//!   does not call the customer's rate-limited API again.
//! - **Results**: per principal, keyed by a digest of everything that determines the result
//!   plus the engine version; an unchanged principal is not evaluated again.
//!
//! Blobs hold the bytes (no 400 KB item limit); the key-value port holds the small index.
//! Freshness is judged by the [`Clock`] the caches are built with (the ports' clock).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::crypto::{CryptoError, Sealer};
use crate::metrics::work::work;
use crate::ports::{AccountSnapshotRaw, BlobStore, Condition, KeyValueStore, PortError, StoreKey};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("cached {what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
}

impl CacheError {
    pub fn is_transient(&self) -> bool {
        match self {
            CacheError::Port(e) => e.is_transient(),
            CacheError::Crypto(CryptoError::Key(e)) => e.is_transient(),
            _ => false,
        }
    }
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

fn gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>, CacheError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| CacheError::Corrupt {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct SnapshotDoc {
    authorization_details: String,
    credential_report: String,
}

#[derive(Serialize, Deserialize)]
struct LastAccessedEntry {
    fetched_at_ms: i64,
    /// Hex of the sealed JSON; absent when the source had no data for the principal.
    sealed: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ResultEntry {
    blob: String,
}

/// The three caches over the blob and key-value ports, sealed per customer.
#[derive(Clone)]
pub struct Caches {
    blobs: Arc<dyn BlobStore>,
    store: Arc<dyn KeyValueStore>,
    sealer: Sealer,
    /// How long last-accessed data stays fresh.
    pub last_accessed_ttl: Duration,
    /// What "now" is when judging freshness.
    clock: Clock,
}

impl Caches {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        store: Arc<dyn KeyValueStore>,
        sealer: Sealer,
        last_accessed_ttl: Duration,
        clock: Clock,
    ) -> Caches {
        Caches {
            blobs,
            store,
            sealer,
            last_accessed_ttl,
            clock,
        }
    }

    fn snapshot_blob(customer: &str, account: &str, digest: &str) -> String {
        format!("{customer}/snapshots/{account}/{digest}")
    }

    /// Stores a snapshot under its content digest; returns (digest, already stored).
    pub async fn put_snapshot(
        &self,
        customer: &str,
        account: &str,
        raw: &AccountSnapshotRaw,
    ) -> Result<(String, bool), CacheError> {
        let digest = sha256_hex(&[&raw.authorization_details, &raw.credential_report]);
        let key = Self::snapshot_blob(customer, account, &digest);
        let stored = self.blobs.exists(&key).await?;
        work().cache_lookup("snapshot", stored);
        if stored {
            return Ok((digest, true));
        }
        let doc = SnapshotDoc {
            authorization_details: String::from_utf8_lossy(&raw.authorization_details).into_owned(),
            credential_report: String::from_utf8_lossy(&raw.credential_report).into_owned(),
        };
        let json = serde_json::to_vec(&doc).map_err(|e| CacheError::Corrupt {
            what: key.clone(),
            detail: e.to_string(),
        })?;
        let sealed = self
            .sealer
            .seal(customer, account, "snapshot", &gzip(&json))
            .await?;
        self.blobs.put(&key, sealed).await?;
        Ok((digest, false))
    }

    /// Reads a snapshot by digest.
    pub async fn get_snapshot(
        &self,
        customer: &str,
        account: &str,
        digest: &str,
    ) -> Result<AccountSnapshotRaw, CacheError> {
        let key = Self::snapshot_blob(customer, account, digest);
        let sealed = self
            .blobs
            .get(&key)
            .await?
            .ok_or_else(|| CacheError::Corrupt {
                what: key.clone(),
                detail: "the snapshot referenced by the run is missing".into(),
            })?;
        let json = gunzip(
            &self
                .sealer
                .open(customer, account, "snapshot", &sealed)
                .await?,
            &key,
        )?;
        let doc: SnapshotDoc = serde_json::from_slice(&json).map_err(|e| CacheError::Corrupt {
            what: key.clone(),
            detail: e.to_string(),
        })?;
        Ok(AccountSnapshotRaw {
            authorization_details: doc.authorization_details.into_bytes(),
            credential_report: doc.credential_report.into_bytes(),
        })
    }

    fn last_accessed_key(customer: &str, account: &str, principal_arn: &str) -> StoreKey {
        StoreKey::new(format!("lastacc#{customer}#{account}"), principal_arn)
    }

    /// Fresh cached last-accessed data: `Some(data)` on a hit (data itself may be `None`:
    /// the source had none), `None` on a miss or a stale entry.
    pub async fn get_last_accessed(
        &self,
        customer: &str,
        account: &str,
        principal_arn: &str,
    ) -> Result<Option<Option<Vec<u8>>>, CacheError> {
        let found = self
            .lookup_last_accessed(customer, account, principal_arn)
            .await?;
        work().cache_lookup("last_accessed", found.is_some());
        Ok(found)
    }

    async fn lookup_last_accessed(
        &self,
        customer: &str,
        account: &str,
        principal_arn: &str,
    ) -> Result<Option<Option<Vec<u8>>>, CacheError> {
        let key = Self::last_accessed_key(customer, account, principal_arn);
        let Some(record) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let entry: LastAccessedEntry =
            serde_json::from_value(record.value).map_err(|e| CacheError::Corrupt {
                what: key.to_string(),
                detail: e.to_string(),
            })?;
        if self.clock.now_ms() - entry.fetched_at_ms > self.last_accessed_ttl.as_millis() as i64 {
            return Ok(None);
        }
        match entry.sealed {
            None => Ok(Some(None)),
            Some(hex) => {
                let sealed = hex::decode(&hex).map_err(|e| CacheError::Corrupt {
                    what: key.to_string(),
                    detail: e.to_string(),
                })?;
                Ok(Some(Some(
                    self.sealer
                        .open(customer, account, "last-accessed", &sealed)
                        .await?,
                )))
            }
        }
    }

    pub async fn put_last_accessed(
        &self,
        customer: &str,
        account: &str,
        principal_arn: &str,
        data: Option<&[u8]>,
    ) -> Result<(), CacheError> {
        let sealed = match data {
            Some(bytes) => Some(hex::encode(
                &self
                    .sealer
                    .seal(customer, account, "last-accessed", bytes)
                    .await?,
            )),
            None => None,
        };
        let entry = LastAccessedEntry {
            fetched_at_ms: self.clock.now_ms(),
            sealed,
        };
        let key = Self::last_accessed_key(customer, account, principal_arn);
        let expires = Some(self.clock.now_secs() + self.last_accessed_ttl.as_secs() as i64 + 3600);
        self.store
            .put(
                &key,
                crate::ledger::to_value(&entry),
                expires,
                Condition::None,
            )
            .await?;
        Ok(())
    }

    fn result_key(customer: &str, account: &str, digest: &str) -> StoreKey {
        StoreKey::new(format!("result#{customer}#{account}"), digest)
    }

    /// The store record that points at the result blob `blob` (`<customer>/results/
    /// <account>/<digest>`), for retention: deleting a result deletes both.
    pub fn result_index_key(blob: &str) -> Option<StoreKey> {
        let mut parts = blob.split('/');
        let (customer, kind, account, digest) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (kind == "results" && parts.next().is_none())
            .then(|| Self::result_key(customer, account, digest))
    }

    /// The blob key of a cached result for `digest`, if any.
    pub async fn get_result_blob(
        &self,
        customer: &str,
        account: &str,
        digest: &str,
    ) -> Result<Option<String>, CacheError> {
        let key = Self::result_key(customer, account, digest);
        let found = match self.store.get(&key).await? {
            Some(record) => {
                let entry: ResultEntry =
                    serde_json::from_value(record.value).map_err(|e| CacheError::Corrupt {
                        what: key.to_string(),
                        detail: e.to_string(),
                    })?;
                self.blobs.exists(&entry.blob).await?.then_some(entry.blob)
            }
            None => None,
        };
        work().cache_lookup("result", found.is_some());
        Ok(found)
    }

    /// Stores a result (JSON bytes) under `digest`; returns its blob key.
    pub async fn put_result(
        &self,
        customer: &str,
        account: &str,
        digest: &str,
        json: &[u8],
    ) -> Result<String, CacheError> {
        let blob = format!("{customer}/results/{account}/{digest}");
        let sealed = self
            .sealer
            .seal(customer, account, "result", &gzip(json))
            .await?;
        self.blobs.put(&blob, sealed).await?;
        let entry = ResultEntry { blob: blob.clone() };
        self.store
            .put(
                &Self::result_key(customer, account, digest),
                crate::ledger::to_value(&entry),
                Some(self.clock.now_secs() + crate::ledger::RUN_RECORD_TTL.as_secs() as i64),
                Condition::None,
            )
            .await?;
        Ok(blob)
    }

    /// Reads a result blob back.
    pub async fn get_result(
        &self,
        customer: &str,
        account: &str,
        blob: &str,
    ) -> Result<Vec<u8>, CacheError> {
        let sealed = self
            .blobs
            .get(blob)
            .await?
            .ok_or_else(|| CacheError::Corrupt {
                what: blob.to_string(),
                detail: "result blob is missing".into(),
            })?;
        gunzip(
            &self
                .sealer
                .open(customer, account, "result", &sealed)
                .await?,
            blob,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBackend;

    #[tokio::test]
    async fn last_accessed_data_is_fresh_for_its_ttl_of_clock_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Clock::manual(1_800_000_000_000);
        let ports = EmbeddedBackend::open_with_clock(dir.path(), clock.clone())
            .expect("open embedded backend")
            .ports();
        ports.keys.ensure_customer_key("acme").await.unwrap();
        let ttl = Duration::from_secs(3600);
        let caches = Caches::new(
            ports.blobs.clone(),
            ports.store.clone(),
            Sealer::new(ports.keys.clone()),
            ttl,
            clock.clone(),
        );
        let arn = "arn:aws:iam::111122223333:user/alice";
        caches
            .put_last_accessed("acme", "111122223333", arn, Some(&b"[1]"[..]))
            .await
            .unwrap();
        assert!(clock.advance(ttl));
        assert_eq!(
            caches
                .get_last_accessed("acme", "111122223333", arn)
                .await
                .unwrap(),
            Some(Some(b"[1]".to_vec())),
            "fresh up to the end of its TTL"
        );
        assert!(clock.advance(Duration::from_millis(1)));
        assert_eq!(
            caches
                .get_last_accessed("acme", "111122223333", arn)
                .await
                .unwrap(),
            None,
            "stale after it"
        );
    }
}
