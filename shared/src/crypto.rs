//! Per-customer envelope encryption (docs/ARCHITECTURE.md §5, tenancy).
//!
//! Everything stored for a customer (snapshots, last-accessed data, per-principal results)
//! is sealed with AES-256-GCM under a data key of that customer, with the customer, the
//! account and the kind of data bound in as associated data: a blob copied to another
//! customer's or account's place, or opened with another customer's key, fails to open.
//!
//! One data key per customer is generated per process and cached (on AWS that is one KMS
//! `GenerateDataKey` per customer per run, not one per blob). Sealed format:
//! `b"AF1" | u16 BE wrapped-key length | wrapped key | 12-byte nonce | ciphertext+tag`.

use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use tokio::sync::Mutex;

use crate::ports::{DataKey, KeyProvider, PortError};

const MAGIC: &[u8; 3] = b"AF1";
const NONCE_LEN: usize = 12;

/// Why sealed data could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed data is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed data does not open for customer {customer}, account {account} ({purpose}): wrong key or tampered data")]
    Open {
        customer: String,
        account: String,
        purpose: String,
    },
    #[error("data key unavailable: {0}")]
    Key(#[from] PortError),
}

/// One customer's data key, ready to seal with ([`Sealer::sealing_key`]); what
/// [`Sealer::seal`] does, without the wait for the key.
#[derive(Clone)]
pub struct SealingKey {
    customer: String,
    cipher: Aes256Gcm,
    wrapped: Arc<Vec<u8>>,
    wrapped_len: u16,
}

impl SealingKey {
    /// Encrypts `plaintext` for (this key's customer, account, purpose).
    pub fn seal(
        &self,
        account: &str,
        purpose: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(&self.customer, account, purpose);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Malformed("encryption failed"))?;
        let mut out = Vec::with_capacity(3 + 2 + self.wrapped.len() + NONCE_LEN + ciphertext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.wrapped_len.to_be_bytes());
        out.extend_from_slice(&self.wrapped);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }
}

/// (customer, wrapped data key): what an unwrapped key is cached under.
type UnwrapKey = (String, Vec<u8>);

/// Seals and opens data for customers, caching each customer's data key.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<dyn KeyProvider>,
    data_keys: Arc<Mutex<HashMap<String, DataKey>>>,
    unwrapped: Arc<Mutex<HashMap<UnwrapKey, [u8; 32]>>>,
}

fn aad(customer: &str, account: &str, purpose: &str) -> Vec<u8> {
    format!("accessflow:v1:{customer}:{account}:{purpose}").into_bytes()
}

impl Sealer {
    pub fn new(keys: Arc<dyn KeyProvider>) -> Sealer {
        Sealer {
            keys,
            data_keys: Default::default(),
            unwrapped: Default::default(),
        }
    }

    async fn data_key(&self, customer: &str) -> Result<DataKey, CryptoError> {
        let mut cache = self.data_keys.lock().await;
        if let Some(key) = cache.get(customer) {
            return Ok(key.clone());
        }
        let key = self.keys.generate_data_key(customer).await?;
        cache.insert(customer.to_string(), key.clone());
        Ok(key)
    }

    /// Encrypts `plaintext` for (customer, account, purpose).
    pub async fn seal(
        &self,
        customer: &str,
        account: &str,
        purpose: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.sealing_key(customer)
            .await?
            .seal(account, purpose, plaintext)
    }

    /// `customer`'s data key, to seal with on any thread without waiting (a batch's records
    /// are sealed where they are computed, on the blocking threads).
    pub async fn sealing_key(&self, customer: &str) -> Result<SealingKey, CryptoError> {
        let key = self.data_key(customer).await?;
        let cipher = Aes256Gcm::new_from_slice(&key.plaintext)
            .map_err(|_| CryptoError::Malformed("data key length"))?;
        let wrapped_len = u16::try_from(key.wrapped.len())
            .map_err(|_| CryptoError::Malformed("wrapped key too long"))?;
        Ok(SealingKey {
            customer: customer.to_string(),
            cipher,
            wrapped: Arc::new(key.wrapped),
            wrapped_len,
        })
    }

    /// Decrypts data sealed by [`Sealer::seal`] for the same (customer, account, purpose).
    pub async fn open(
        &self,
        customer: &str,
        account: &str,
        purpose: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let rest = sealed
            .strip_prefix(MAGIC.as_slice())
            .ok_or(CryptoError::Malformed("missing header"))?;
        if rest.len() < 2 {
            return Err(CryptoError::Malformed("truncated header"));
        }
        let wrapped_len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let rest = &rest[2..];
        if rest.len() < wrapped_len + NONCE_LEN {
            return Err(CryptoError::Malformed("truncated key or nonce"));
        }
        let (wrapped, rest) = rest.split_at(wrapped_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self.unwrap_key(customer, wrapped).await?;
        let cipher = Aes256Gcm::new_from_slice(&key)
            .map_err(|_| CryptoError::Malformed("data key length"))?;
        let aad = aad(customer, account, purpose);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Open {
                customer: customer.to_string(),
                account: account.to_string(),
                purpose: purpose.to_string(),
            })
    }

    async fn unwrap_key(&self, customer: &str, wrapped: &[u8]) -> Result<[u8; 32], CryptoError> {
        let cache_key = (customer.to_string(), wrapped.to_vec());
        if let Some(key) = self.unwrapped.lock().await.get(&cache_key) {
            return Ok(*key);
        }
        let key = self.keys.decrypt_data_key(customer, wrapped).await?;
        self.unwrapped.lock().await.insert(cache_key, key);
        Ok(key)
    }
}
