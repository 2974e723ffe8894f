//! Per-customer keys from a local keyring file (`keyring.json`, mode 0600).
//!
//! The keyring holds one random 32-byte master key per customer. A data key is 32 random
//! bytes, wrapped with AES-256-GCM under the customer's master key with the customer id as
//! associated data: unwrapping it under another customer fails (`PortError::Permanent`).
//!
//! Creating a customer's key is a read-modify-write of the keyring file that several
//! processes may attempt at once; it runs while holding the SQLite write lock of the shared
//! database (a cross-process mutex), re-reads the file, and replaces it atomically.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::db::{random_hex, Db};
use crate::ports::{DataKey, KeyProvider, PortError, PortResult};

/// Format version of a wrapped data key (its first byte).
const WRAP_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyringFile {
    version: u32,
    /// Customer id -> hex master key.
    customers: BTreeMap<String, String>,
}

/// The keyring-file [`KeyProvider`].
pub struct LocalKeyring {
    path: PathBuf,
    db: Arc<Db>,
    cache: Mutex<HashMap<String, [u8; 32]>>,
}

impl LocalKeyring {
    pub(crate) fn new(path: PathBuf, db: Arc<Db>) -> PortResult<Self> {
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "keyring was readable by others; setting mode 0600");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                    |e| PortError::Permanent {
                        op: "open keyring",
                        message: format!("{}: {e}", path.display()),
                    },
                )?;
            }
        }
        Ok(LocalKeyring {
            path,
            db,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, customer: &str) -> Option<[u8; 32]> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(customer)
            .copied()
    }

    /// The customer's master key, reading the file again on a cache miss (another process
    /// may have created it).
    fn master_key(&self, op: &'static str, customer: &str) -> PortResult<Option<[u8; 32]>> {
        if let Some(key) = self.cached(customer) {
            return Ok(Some(key));
        }
        let file = read_keyring(op, &self.path)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for (name, hex_key) in &file.customers {
            cache.insert(name.clone(), decode_master(op, name, hex_key)?);
        }
        Ok(cache.get(customer).copied())
    }

    fn require_master_key(&self, op: &'static str, customer: &str) -> PortResult<[u8; 32]> {
        validate_customer(op, customer)?;
        self.master_key(op, customer)?
            .ok_or_else(|| PortError::NotFound {
                what: "customer key",
                name: customer.to_string(),
            })
    }
}

fn validate_customer(op: &'static str, customer: &str) -> PortResult<()> {
    if customer.is_empty() {
        Err(PortError::Invalid {
            op,
            message: "empty customer id".into(),
        })
    } else {
        Ok(())
    }
}

fn read_keyring(op: &'static str, path: &Path) -> PortResult<KeyringFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PortError::Permanent {
            op,
            message: format!("keyring {} is not valid: {e}", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyringFile {
            version: 1,
            customers: BTreeMap::new(),
        }),
        Err(e) => Err(PortError::Permanent {
            op,
            message: format!("keyring {}: {e}", path.display()),
        }),
    }
}

fn write_keyring(op: &'static str, path: &Path, file: &KeyringFile) -> PortResult<()> {
    let err = |e: std::io::Error| PortError::Permanent {
        op,
        message: format!("keyring {}: {e}", path.display()),
    };
    let tmp = path.with_file_name(format!(".keyring.{}.tmp", random_hex(8)));
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| PortError::Permanent {
        op,
        message: format!("keyring: {e}"),
    })?;
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn decode_master(op: &'static str, customer: &str, hex_key: &str) -> PortResult<[u8; 32]> {
    hex::decode(hex_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| PortError::Permanent {
            op,
            message: format!("keyring entry of customer {customer} is not a 32-byte hex key"),
        })
}

fn associated_data(customer: &str) -> Vec<u8> {
    let mut aad = b"accessflow/data-key/v1/".to_vec();
    aad.extend_from_slice(customer.as_bytes());
    aad
}

fn wrap(master: &[u8; 32], customer: &str, plaintext: &[u8; 32]) -> PortResult<Vec<u8>> {
    let cipher = Aes256Gcm::new(master.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let aad = associated_data(customer);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| PortError::Permanent {
            op: "generate_data_key",
            message: "could not wrap the data key".into(),
        })?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn unwrap(master: &[u8; 32], customer: &str, wrapped: &[u8]) -> PortResult<[u8; 32]> {
    const OP: &str = "decrypt_data_key";
    let fail = |why: &str| PortError::Permanent {
        op: OP,
        message: format!("cannot unwrap the data key for customer {customer}: {why}"),
    };
    if wrapped.len() != 1 + NONCE_LEN + 32 + 16 || wrapped[0] != WRAP_VERSION {
        return Err(fail("not a wrapped data key"));
    }
    let cipher = Aes256Gcm::new(master.into());
    let aad = associated_data(customer);
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&wrapped[1..1 + NONCE_LEN]),
            Payload {
                msg: &wrapped[1 + NONCE_LEN..],
                aad: &aad,
            },
        )
        .map_err(|_| fail("it was wrapped for another customer or is corrupt"))?;
    <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| fail("wrong key length"))
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    async fn ensure_customer_key(&self, customer: &str) -> PortResult<()> {
        const OP: &str = "ensure_customer_key";
        validate_customer(OP, customer)?;
        if self.master_key(OP, customer)?.is_some() {
            return Ok(());
        }
        let db = Arc::clone(&self.db);
        let path = self.path.clone();
        let who = customer.to_string();
        tokio::task::spawn_blocking(move || {
            db.blocking_exclusive(OP, || {
                let mut file = read_keyring(OP, &path)?;
                if !file.customers.contains_key(&who) {
                    let mut key = [0u8; 32];
                    rand::thread_rng().fill_bytes(&mut key);
                    file.version = 1;
                    file.customers.insert(who.clone(), hex::encode(key));
                    write_keyring(OP, &path, &file)?;
                    tracing::info!(customer = %who, "created a customer master key");
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| PortError::Permanent {
            op: OP,
            message: format!("keyring task failed: {e}"),
        })??;
        self.master_key(OP, customer)?;
        Ok(())
    }

    async fn generate_data_key(&self, customer: &str) -> PortResult<DataKey> {
        let master = self.require_master_key("generate_data_key", customer)?;
        let mut plaintext = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut plaintext);
        let wrapped = wrap(&master, customer, &plaintext)?;
        Ok(DataKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(&self, customer: &str, wrapped: &[u8]) -> PortResult<[u8; 32]> {
        let master = self.require_master_key("decrypt_data_key", customer)?;
        unwrap(&master, customer, wrapped)
    }
}
