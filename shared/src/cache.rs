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
//! Blobs hold the snapshots (no 400 KB item limit). A result, sealed, is usually a few
//! kilobytes: up to the store's [`KeyValueStore::inline_value_max_bytes`] (6 KB on
//! DynamoDB, set by price; 1 MiB embedded) it is kept inline in its index record of the
//! key-value port (one DynamoDB item instead of an S3 object, its PUT, HEAD and GET; one
//! SQLite row instead of a file); a larger one goes to a blob the index record points at.
//! Freshness is judged by the [`Clock`] the caches are built with (the ports' clock).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::crypto::{CryptoError, Sealer};
use crate::metrics::work::work;
use crate::ports::{
    AccountSnapshotRaw, BlobStore, Consistency, KeyValueStore, PortError, StoreKey,
};

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

/// Level 2 of flate2's zlib-rs backend: as fast as level 1 was on the miniz_oxide backend
/// and 9 % smaller on the largest sample account's results (zlib-rs's level 1 is twice as
/// fast again but 11 % larger than that, and on AWS a result's size is what DynamoDB bills).
const GZIP_LEVEL: u32 = 2;

thread_local! {
    /// This thread's gzip compressor, reset for each record: a new one per record would
    /// allocate and clear its few hundred KB of state each time, which cost about as much
    /// as compressing a small record (a third of the gzip time in a profile of the largest
    /// sample account's batches).
    static GZIP: std::cell::RefCell<flate2::Compress> = std::cell::RefCell::new(
        flate2::Compress::new_gzip(flate2::Compression::new(GZIP_LEVEL), 15),
    );
}

/// `bytes` as one gzip member (what [`gunzip`] and any gzip reader read).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    GZIP.with(|compressor| {
        let mut compressor = compressor.borrow_mut();
        compressor.reset();
        let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
        let mut rest = bytes;
        loop {
            let before = compressor.total_in();
            let status = compressor.compress_vec(rest, &mut out, flate2::FlushCompress::Finish);
            rest = &rest[(compressor.total_in() - before) as usize..];
            match status {
                Ok(flate2::Status::StreamEnd) => return out,
                // More output space needed. Compressing into memory fails only on a bug
                // (a misused stream): fall back to a fresh encoder then.
                Ok(_) => out.reserve(out.capacity().max(4096)),
                Err(_) => return gzip_fresh(bytes),
            }
        }
    })
}

/// A result's JSON gzipped, ready for [`Caches::seal_result`]. Compressing is most of a
/// new result's cost after the analysis, so it is done where the analysis runs (off the
/// async threads, on as many cores as the batch uses); sealing it is quick.
pub struct Compressed(Vec<u8>);

impl Compressed {
    /// `json` gzipped.
    pub fn new(json: &[u8]) -> Compressed {
        Compressed(gzip(json))
    }
}

/// `bytes` gzipped by a new encoder (the fallback of [`gzip`]).
fn gzip_fresh(bytes: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct LastAccessedEntry {
    fetched_at_ms: i64,
    /// Base64 of the sealed, gzipped JSON; absent (with `sealed`) when the source had no
    /// data for the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_gz64: Option<String>,
    /// Hex of the sealed JSON, as written before `sealed_gz64`: still read.
    #[serde(default)]
    sealed: Option<String>,
}

/// Sealed bytes as text in a key-value record: base64, 4 characters per 3 bytes (hex, used
/// before, took 2 per byte, and DynamoDB bills every KB written).
fn to_base64(sealed: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

fn from_base64(text: &str, what: &str) -> Result<Vec<u8>, CacheError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| CacheError::Corrupt {
            what: what.to_string(),
            detail: format!("not base64: {e}"),
        })
}

/// A result's index record: the sealed result inline, or the blob that holds it.
#[derive(Serialize, Deserialize)]
struct ResultEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
    /// Base64 of the sealed result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline64: Option<String>,
    /// Hex of the sealed result, as written before `inline64`: still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline: Option<String>,
}

impl ResultEntry {
    fn in_blob(blob: String) -> ResultEntry {
        ResultEntry {
            blob: Some(blob),
            inline64: None,
            inline: None,
        }
    }

    /// Whether the result is in the record itself (either encoding).
    fn is_inline(&self) -> bool {
        self.inline64.is_some() || self.inline.is_some()
    }
}

/// A sealed cache record not yet written: see [`Caches::put_pending`].
pub struct PendingWrite {
    key: StoreKey,
    value: serde_json::Value,
    expires_at: Option<i64>,
}

/// Seals one account's last-accessed records ([`Caches::last_accessed_sealer`]).
#[derive(Clone)]
pub struct LastAccessedSealer {
    key: crate::crypto::SealingKey,
    customer: String,
    account: String,
    ttl: Duration,
    clock: Clock,
}

impl LastAccessedSealer {
    /// `principal_arn`'s last-accessed data (`None`: the source has none) sealed into its
    /// cache record, to be written with [`Caches::put_pending`].
    pub fn seal(
        &self,
        principal_arn: &str,
        data: Option<&[u8]>,
    ) -> Result<PendingWrite, CacheError> {
        // Last-accessed JSON repeats service names and keys: gzipped first, it seals to a
        // fraction of its size (DynamoDB bills every KB written).
        let sealed_gz64 = match data {
            Some(bytes) => Some(to_base64(&self.key.seal(
                &self.account,
                "last-accessed",
                &gzip(bytes),
            )?)),
            None => None,
        };
        let entry = LastAccessedEntry {
            fetched_at_ms: self.clock.now_ms(),
            sealed_gz64,
            sealed: None,
        };
        Ok(PendingWrite {
            key: Caches::last_accessed_key(&self.customer, &self.account, principal_arn),
            value: crate::ledger::to_value(&entry),
            expires_at: Some(self.clock.now_secs() + self.ttl.as_secs() as i64 + 3600),
        })
    }
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
        // Without an inventory the digest is what it was before inventories existed, so
        // stored snapshots and the runs that name them stay valid.
        let digest = match &raw.resources {
            None => sha256_hex(&[&raw.authorization_details, &raw.credential_report]),
            Some(resources) => sha256_hex(&[
                &raw.authorization_details,
                &raw.credential_report,
                resources,
            ]),
        };
        let key = Self::snapshot_blob(customer, account, &digest);
        let stored = self.blobs.exists(&key).await?;
        work().cache_lookup("snapshot", stored);
        if stored {
            return Ok((digest, true));
        }
        let doc = SnapshotDoc {
            authorization_details: String::from_utf8_lossy(&raw.authorization_details).into_owned(),
            credential_report: String::from_utf8_lossy(&raw.credential_report).into_owned(),
            resources: raw
                .resources
                .as_ref()
                .map(|r| String::from_utf8_lossy(r).into_owned()),
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
            resources: doc.resources.map(String::into_bytes),
        })
    }

    fn last_accessed_key(customer: &str, account: &str, principal_arn: &str) -> StoreKey {
        StoreKey::new(format!("lastacc#{customer}#{account}"), principal_arn)
    }

    /// Fresh cached last-accessed data of each of `principal_arns`, in their order:
    /// `Some(data)` on a hit (data itself may be `None`: the source had none), `None` on a
    /// miss or a stale entry. One store read for the lot (DynamoDB: 100 keys per request).
    pub async fn get_last_accessed_many(
        &self,
        customer: &str,
        account: &str,
        principal_arns: &[String],
    ) -> Result<Vec<Option<Option<Vec<u8>>>>, CacheError> {
        let keys: Vec<StoreKey> = principal_arns
            .iter()
            .map(|arn| Self::last_accessed_key(customer, account, arn))
            .collect();
        // A stale miss only fetches the entry again.
        let records = self.store.get_many(&keys, Consistency::Eventual).await?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, record) in keys.iter().zip(records) {
            let found = match record {
                Some(record) => {
                    self.open_last_accessed(customer, account, key, record)
                        .await?
                }
                None => None,
            };
            work().cache_lookup("last_accessed", found.is_some());
            out.push(found);
        }
        Ok(out)
    }

    /// A stored last-accessed entry, unsealed; `None` when it is stale.
    async fn open_last_accessed(
        &self,
        customer: &str,
        account: &str,
        key: &StoreKey,
        record: crate::ports::Record,
    ) -> Result<Option<Option<Vec<u8>>>, CacheError> {
        let entry: LastAccessedEntry =
            serde_json::from_value(record.value).map_err(|e| CacheError::Corrupt {
                what: key.to_string(),
                detail: e.to_string(),
            })?;
        if self.clock.now_ms() - entry.fetched_at_ms > self.last_accessed_ttl.as_millis() as i64 {
            return Ok(None);
        }
        let what = key.to_string();
        match (entry.sealed_gz64, entry.sealed) {
            (Some(text), _) => {
                let sealed = from_base64(&text, &what)?;
                let zipped = self
                    .sealer
                    .open(customer, account, "last-accessed", &sealed)
                    .await?;
                Ok(Some(Some(gunzip(&zipped, &what)?)))
            }
            (None, Some(hex)) => {
                let sealed = hex::decode(&hex).map_err(|e| CacheError::Corrupt {
                    what,
                    detail: e.to_string(),
                })?;
                Ok(Some(Some(
                    self.sealer
                        .open(customer, account, "last-accessed", &sealed)
                        .await?,
                )))
            }
            (None, None) => Ok(Some(None)),
        }
    }

    /// A principal's last-accessed data sealed into its cache record, to be written with
    /// [`Caches::put_pending`] (alone, or with others in one request).
    pub async fn seal_last_accessed(
        &self,
        customer: &str,
        account: &str,
        principal_arn: &str,
        data: Option<&[u8]>,
    ) -> Result<PendingWrite, CacheError> {
        self.last_accessed_sealer(customer, account)
            .await?
            .seal(principal_arn, data)
    }

    /// What seals an account's last-accessed records on any thread, without waiting:
    /// [`LastAccessedSealer::seal`] is [`Caches::seal_last_accessed`].
    pub async fn last_accessed_sealer(
        &self,
        customer: &str,
        account: &str,
    ) -> Result<LastAccessedSealer, CacheError> {
        Ok(LastAccessedSealer {
            key: self.sealer.sealing_key(customer).await?,
            customer: customer.to_string(),
            account: account.to_string(),
            ttl: self.last_accessed_ttl,
            clock: self.clock.clone(),
        })
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

    /// For each of `digests`, in their order, the result key (`<customer>/results/
    /// <account>/<digest>`, what item outcomes refer to) of its cached result, if one is
    /// stored. One store read for the lot (DynamoDB: 100 keys per request).
    pub async fn find_results(
        &self,
        customer: &str,
        account: &str,
        digests: &[String],
    ) -> Result<Vec<Option<String>>, CacheError> {
        let keys: Vec<StoreKey> = digests
            .iter()
            .map(|digest| Self::result_key(customer, account, digest))
            .collect();
        // A stale miss only evaluates the principal again (results are content-addressed).
        let records = self.store.get_many(&keys, Consistency::Eventual).await?;
        let mut out = Vec::with_capacity(keys.len());
        for ((key, digest), record) in keys.iter().zip(digests).zip(records) {
            let found = match record {
                Some(record) => {
                    let entry = Self::result_entry(key, record.value)?;
                    match (entry.is_inline(), entry.blob) {
                        (true, _) => true,
                        (false, Some(blob)) => self.blobs.exists(&blob).await?,
                        (false, None) => false,
                    }
                }
                None => false,
            };
            work().cache_lookup("result", found);
            out.push(found.then(|| Self::result_name(customer, account, digest)));
        }
        Ok(out)
    }

    fn result_name(customer: &str, account: &str, digest: &str) -> String {
        format!("{customer}/results/{account}/{digest}")
    }

    fn result_entry(key: &StoreKey, value: serde_json::Value) -> Result<ResultEntry, CacheError> {
        serde_json::from_value(value).map_err(|e| CacheError::Corrupt {
            what: key.to_string(),
            detail: e.to_string(),
        })
    }

    /// Seals a result (its JSON, [`Compressed`]) for `digest`: a small one goes inline into
    /// its index record, a larger one into a blob now. Returns its result key and the index
    /// record still to be written with [`Caches::put_pending`] (so a batch of results is
    /// one store request per 25 on DynamoDB). The result is found only once that record is
    /// written.
    pub async fn seal_result(
        &self,
        customer: &str,
        account: &str,
        digest: &str,
        result: &Compressed,
    ) -> Result<(String, PendingWrite), CacheError> {
        let name = Self::result_name(customer, account, digest);
        let sealed = self
            .sealer
            .seal(customer, account, "result", &result.0)
            .await?;
        let entry = if sealed.len() <= self.store.inline_value_max_bytes() {
            ResultEntry {
                blob: None,
                inline64: Some(to_base64(&sealed)),
                inline: None,
            }
        } else {
            self.blobs.put(&name, sealed).await?;
            ResultEntry::in_blob(name.clone())
        };
        let pending = PendingWrite {
            key: Self::result_key(customer, account, digest),
            value: crate::ledger::to_value(&entry),
            expires_at: Some(
                self.clock.now_secs() + crate::ledger::RUN_RECORD_TTL.as_secs() as i64,
            ),
        };
        Ok((name, pending))
    }

    /// Writes cache records sealed earlier, all at once.
    pub async fn put_pending(&self, pending: Vec<PendingWrite>) -> Result<(), CacheError> {
        if pending.is_empty() {
            return Ok(());
        }
        self.store
            .put_many(
                pending
                    .into_iter()
                    .map(|p| (p.key, p.value, p.expires_at))
                    .collect(),
            )
            .await?;
        Ok(())
    }

    /// Stores a result now ([`Caches::seal_result`] and its record written); returns its
    /// result key.
    pub async fn put_result(
        &self,
        customer: &str,
        account: &str,
        digest: &str,
        json: &[u8],
    ) -> Result<String, CacheError> {
        let (name, pending) = self
            .seal_result(customer, account, digest, &Compressed::new(json))
            .await?;
        self.put_pending(vec![pending]).await?;
        Ok(name)
    }

    /// Reads a result back by its result key.
    pub async fn get_result(
        &self,
        customer: &str,
        account: &str,
        name: &str,
    ) -> Result<Vec<u8>, CacheError> {
        let mut results = self
            .get_results(customer, account, &[name.to_string()])
            .await?;
        results.pop().ok_or_else(|| CacheError::Corrupt {
            what: name.to_string(),
            detail: "no result read".into(),
        })
    }

    /// Reads results back by their result keys, in their order: their index records in one
    /// store read (DynamoDB: 100 keys per request), then each inline result unsealed or
    /// its blob read.
    pub async fn get_results(
        &self,
        customer: &str,
        account: &str,
        names: &[String],
    ) -> Result<Vec<Vec<u8>>, CacheError> {
        let corrupt = |name: &str, detail: &str| CacheError::Corrupt {
            what: name.to_string(),
            detail: detail.to_string(),
        };
        let indexes = names
            .iter()
            .map(|name| {
                Self::result_index_key(name).ok_or_else(|| corrupt(name, "not a result key"))
            })
            .collect::<Result<Vec<StoreKey>, CacheError>>()?;
        // Finalize reads results written moments ago: they must be seen.
        let records = self.store.get_many(&indexes, Consistency::Strong).await?;
        let mut out = Vec::with_capacity(names.len());
        for ((name, index), record) in names.iter().zip(&indexes).zip(records) {
            let entry = match record {
                Some(record) => Self::result_entry(index, record.value)?,
                // An index record gone (expired) while its blob stayed: read the blob.
                None => ResultEntry::in_blob(name.to_string()),
            };
            let sealed = match (entry.inline64, entry.inline, entry.blob) {
                (Some(text), _, _) => from_base64(&text, name)?,
                (None, Some(inline), _) => hex::decode(inline)
                    .map_err(|e| corrupt(name, &format!("inline result: {e}")))?,
                (None, None, Some(blob)) => self
                    .blobs
                    .get(&blob)
                    .await?
                    .ok_or_else(|| corrupt(name, "result blob is missing"))?,
                (None, None, None) => {
                    return Err(corrupt(name, "the index record holds no result"))
                }
            };
            out.push(gunzip(
                &self
                    .sealer
                    .open(customer, account, "result", &sealed)
                    .await?,
                name,
            )?);
        }
        Ok(out)
    }

    /// Every stored result of an account, as (result key, blob holding it if not inline),
    /// for retention.
    pub async fn stored_results(
        store: &dyn KeyValueStore,
        customer: &str,
        account: &str,
    ) -> Result<Vec<(String, Option<String>)>, CacheError> {
        let mut out = Vec::new();
        for record in store
            .query(&format!("result#{customer}#{account}"), "")
            .await?
        {
            let entry = Self::result_entry(&record.key, record.value)?;
            out.push((
                Self::result_name(customer, account, &record.key.sk),
                entry.blob,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBackend;
    use crate::ports::Condition;

    /// A small result lives in its index record, a large one in a blob; both read back,
    /// both are listed for retention.
    #[tokio::test]
    async fn small_results_are_inline_and_large_ones_are_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = crate::embedded::EmbeddedBackend::open(dir.path())
            .expect("open embedded backend")
            .ports();
        ports.keys.ensure_customer_key("acme").await.unwrap();
        let caches = Caches::new(
            ports.blobs.clone(),
            ports.store.clone(),
            Sealer::new(ports.keys.clone()),
            Duration::from_secs(3600),
            Clock::system(),
        );
        let account = "111122223333";
        let small = br#"{"principal":"small"}"#.to_vec();
        // Hash outputs as raw bytes: incompressible, so the sealed form stays above the limit.
        let limit = ports.store.inline_value_max_bytes();
        let large: Vec<u8> = (0..(limit / 16) as u64)
            .flat_map(|i| hex::decode(sha256_hex(&[&i.to_be_bytes()])).expect("hex digest"))
            .collect();
        assert!(large.len() >= 2 * limit);
        let digests = ["d1".to_string(), "d2".to_string()];
        assert_eq!(
            caches
                .find_results("acme", account, &digests)
                .await
                .unwrap(),
            vec![None, None]
        );
        let small_key = caches
            .put_result("acme", account, "d1", &small)
            .await
            .unwrap();
        let large_key = caches
            .put_result("acme", account, "d2", &large)
            .await
            .unwrap();
        assert_eq!(small_key, "acme/results/111122223333/d1");
        assert_eq!(
            caches
                .find_results("acme", account, &digests)
                .await
                .unwrap(),
            vec![Some(small_key.clone()), Some(large_key.clone())]
        );
        assert_eq!(
            caches
                .get_result("acme", account, &small_key)
                .await
                .unwrap(),
            small
        );
        assert_eq!(
            caches
                .get_result("acme", account, &large_key)
                .await
                .unwrap(),
            large
        );
        assert!(
            !ports.blobs.exists(&small_key).await.unwrap(),
            "small: no blob"
        );
        assert!(
            ports.blobs.exists(&large_key).await.unwrap(),
            "large: a blob"
        );
        assert_eq!(
            Caches::stored_results(ports.store.as_ref(), "acme", account)
                .await
                .unwrap(),
            vec![(small_key, None), (large_key.clone(), Some(large_key))]
        );
    }

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
        let record = caches
            .seal_last_accessed("acme", "111122223333", arn, Some(&b"[1]"[..]))
            .await
            .unwrap();
        caches.put_pending(vec![record]).await.unwrap();
        assert!(clock.advance(ttl));
        assert_eq!(
            caches
                .get_last_accessed_many("acme", "111122223333", &[arn.to_string()])
                .await
                .unwrap(),
            vec![Some(Some(b"[1]".to_vec()))],
            "fresh up to the end of its TTL"
        );
        assert!(clock.advance(Duration::from_millis(1)));
        assert_eq!(
            caches
                .get_last_accessed_many("acme", "111122223333", &[arn.to_string()])
                .await
                .unwrap(),
            vec![None],
            "stale after it"
        );
    }

    /// Cache records are written base64 (last-accessed data gzipped first), smaller than
    /// the hex records written before, and those older hex records still read back.
    /// The reused compressor gives independent gzip members, whatever the size: empty,
    /// small, and incompressible data larger than its first output guess.
    #[test]
    fn the_reused_gzip_compressor_round_trips_every_size() {
        let incompressible: Vec<u8> = (0..40_000u64)
            .flat_map(|i| hex::decode(sha256_hex(&[&i.to_be_bytes()])).expect("hex digest"))
            .collect();
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"{\"principal\":\"small\"}".to_vec(),
            incompressible,
            br#"{"a":1}"#.repeat(10_000),
        ];
        for round in 0..2 {
            for input in &inputs {
                let zipped = gzip(input);
                assert_eq!(&zipped[..2], &[0x1f, 0x8b], "a gzip member");
                assert_eq!(
                    &gunzip(&zipped, "test").expect("gunzip"),
                    input,
                    "round {round}, {} bytes",
                    input.len()
                );
                assert_eq!(&gunzip(&gzip_fresh(input), "test").expect("gunzip"), input);
            }
        }
    }

    #[tokio::test]
    async fn records_are_base64_and_older_hex_records_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = EmbeddedBackend::open(dir.path())
            .expect("open embedded backend")
            .ports();
        ports.keys.ensure_customer_key("acme").await.unwrap();
        let sealer = Sealer::new(ports.keys.clone());
        let caches = Caches::new(
            ports.blobs.clone(),
            ports.store.clone(),
            sealer.clone(),
            Duration::from_secs(3600),
            Clock::system(),
        );
        let account = "111122223333";
        // Last-accessed data as IAM returns it: the same keys for every service.
        let services: Vec<String> = (0..60)
            .map(|i| format!(r#"{{"ServiceName":"Service {i}","ServiceNamespace":"svc{i}","LastAuthenticated":"2026-11-0{}T10:00:00Z","TotalAuthenticatedEntities":1}}"#, i % 9 + 1))
            .collect();
        let data = format!(
            r#"{{"JobStatus":"COMPLETED","ServicesLastAccessed":[{}]}}"#,
            services.join(",")
        );
        let alice = "arn:aws:iam::111122223333:user/alice";
        let sealed = caches
            .seal_last_accessed("acme", account, alice, Some(data.as_bytes()))
            .await
            .unwrap();
        caches.put_pending(vec![sealed]).await.unwrap();
        let record = ports
            .store
            .get(&Caches::last_accessed_key("acme", account, alice))
            .await
            .unwrap()
            .expect("written");
        let stored = record.value.to_string().len();
        assert!(
            stored * 4 < data.len(),
            "the record ({stored} bytes) should be a fraction of the data ({} bytes)",
            data.len()
        );
        // A record as written before: hex of the sealed JSON, not gzipped.
        let bob = "arn:aws:iam::111122223333:user/bob";
        let legacy = sealer
            .seal("acme", account, "last-accessed", data.as_bytes())
            .await
            .unwrap();
        ports
            .store
            .put(
                &Caches::last_accessed_key("acme", account, bob),
                serde_json::json!({"fetched_at_ms": Clock::system().now_ms(), "sealed": hex::encode(&legacy)}),
                None,
                Condition::None,
            )
            .await
            .unwrap();
        assert_eq!(
            caches
                .get_last_accessed_many("acme", account, &[alice.to_string(), bob.to_string()])
                .await
                .unwrap(),
            vec![
                Some(Some(data.as_bytes().to_vec())),
                Some(Some(data.as_bytes().to_vec()))
            ]
        );

        // A result: base64 inline; one written before as hex still reads.
        let result = br#"{"principal":"carol","grants":[1,2,3]}"#.to_vec();
        let key = caches
            .put_result("acme", account, "d1", &result)
            .await
            .unwrap();
        let record = ports
            .store
            .get(&Caches::result_key("acme", account, "d1"))
            .await
            .unwrap()
            .expect("written");
        assert!(record.value.get("inline64").is_some(), "{}", record.value);
        let sealed = sealer
            .seal("acme", account, "result", &gzip(&result))
            .await
            .unwrap();
        ports
            .store
            .put(
                &Caches::result_key("acme", account, "d2"),
                serde_json::json!({"inline": hex::encode(&sealed)}),
                None,
                Condition::None,
            )
            .await
            .unwrap();
        assert_eq!(
            caches
                .get_results(
                    "acme",
                    account,
                    &[key, "acme/results/111122223333/d2".to_string()]
                )
                .await
                .unwrap(),
            vec![result.clone(), result]
        );
    }
}
