//! Per-customer keys: envelope encryption with one data key per customer.
//!
//! On AWS this is KMS `GenerateDataKey` / `Decrypt` under the customer's KMS key; embedded,
//! a keyring file (mode 0600) holds one master key per customer. Either way a data key is
//! returned in plaintext (to encrypt with, kept in memory only) and wrapped (stored next to
//! the ciphertext, to recover the plaintext key later through the same port).

use async_trait::async_trait;

use super::PortResult;

/// A customer's data key.
#[derive(Clone)]
pub struct DataKey {
    /// 32 bytes for AES-256-GCM. Never stored or logged.
    pub plaintext: [u8; 32],
    /// The key wrapped by the customer's master key; safe to store.
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("wrapped_len", &self.wrapped.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// Makes sure the customer has a master key (creates it if missing); idempotent.
    async fn ensure_customer_key(&self, customer: &str) -> PortResult<()>;

    /// A fresh data key under the customer's master key.
    async fn generate_data_key(&self, customer: &str) -> PortResult<DataKey>;

    /// Unwraps a data key. Fails (`Permanent`) if `wrapped` was made for another customer.
    async fn decrypt_data_key(&self, customer: &str, wrapped: &[u8]) -> PortResult<[u8; 32]>;
}
