//! Per-customer keys in KMS: one symmetric KMS key per customer, found by its alias
//! `<alias prefix><customer>`; data keys come from `GenerateDataKey` (AES_256) with the
//! encryption context `{"customer": <customer>}`, and `Decrypt` passes the same context and
//! the customer's key id, so a data key wrapped for one customer cannot be unwrapped as
//! another's (KMS fails the call: `Permanent`).

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, Tag};
use aws_sdk_kms::Client;

use super::error::{classify, has_code};
use crate::ports::{DataKey, KeyProvider, PortError, PortResult};

const NOT_FOUND: &[&str] = &["NotFoundException"];

/// The KMS key provider.
pub struct AwsKeys {
    client: Client,
    alias_prefix: String,
    ensured: Mutex<HashSet<String>>,
}

fn check_customer(op: &'static str, customer: &str) -> PortResult<()> {
    let ok = !customer.is_empty()
        && customer
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PortError::Invalid {
            op,
            message: format!("`{customer}` cannot be part of a KMS alias"),
        })
    }
}

impl AwsKeys {
    pub(crate) fn new(client: Client, alias_prefix: String) -> Self {
        AwsKeys {
            client,
            alias_prefix,
            ensured: Mutex::new(HashSet::new()),
        }
    }

    /// The alias of the customer's key.
    pub fn alias(&self, customer: &str) -> String {
        format!("{}{}", self.alias_prefix, customer)
    }

    fn context(customer: &str) -> std::collections::HashMap<String, String> {
        std::collections::HashMap::from([("customer".to_string(), customer.to_string())])
    }
}

#[async_trait]
impl KeyProvider for AwsKeys {
    async fn ensure_customer_key(&self, customer: &str) -> PortResult<()> {
        check_customer("kms:CreateKey", customer)?;
        if self
            .ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(customer)
        {
            return Ok(());
        }
        let alias = self.alias(customer);
        match self.client.describe_key().key_id(&alias).send().await {
            Ok(_) => {}
            Err(e) if has_code(&e, NOT_FOUND) => {
                let key = self
                    .client
                    .create_key()
                    .description(format!("Accessflow data keys of customer {customer}"))
                    .tags(
                        Tag::builder()
                            .tag_key("customer")
                            .tag_value(customer)
                            .build()
                            .map_err(|e| PortError::Invalid {
                                op: "kms:CreateKey",
                                message: e.to_string(),
                            })?,
                    )
                    .send()
                    .await
                    .map_err(|e| classify("kms:CreateKey", e))?;
                let key_id = key
                    .key_metadata()
                    .map(|m| m.key_id().to_string())
                    .unwrap_or_default();
                match self
                    .client
                    .create_alias()
                    .alias_name(&alias)
                    .target_key_id(&key_id)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if has_code(&e, &["AlreadyExistsException"]) => {
                        // Another process won the race: retire our spare key.
                        let _ = self
                            .client
                            .schedule_key_deletion()
                            .key_id(&key_id)
                            .pending_window_in_days(7)
                            .send()
                            .await;
                    }
                    Err(e) => return Err(classify("kms:CreateAlias", e)),
                }
            }
            Err(e) => return Err(classify("kms:DescribeKey", e)),
        }
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(customer.to_string());
        Ok(())
    }

    async fn generate_data_key(&self, customer: &str) -> PortResult<DataKey> {
        check_customer("kms:GenerateDataKey", customer)?;
        let out = self
            .client
            .generate_data_key()
            .key_id(self.alias(customer))
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(customer)))
            .send()
            .await
            .map_err(|e| {
                if has_code(&e, NOT_FOUND) {
                    PortError::NotFound {
                        what: "KMS key of customer",
                        name: customer.to_string(),
                    }
                } else {
                    classify("kms:GenerateDataKey", e)
                }
            })?;
        let plaintext: [u8; 32] = out
            .plaintext()
            .map(|b| b.as_ref())
            .unwrap_or_default()
            .try_into()
            .map_err(|_| PortError::Permanent {
                op: "kms:GenerateDataKey",
                message: "KMS returned a data key that is not 32 bytes".into(),
            })?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        Ok(DataKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(&self, customer: &str, wrapped: &[u8]) -> PortResult<[u8; 32]> {
        let op = "kms:Decrypt";
        check_customer(op, customer)?;
        let out = self
            .client
            .decrypt()
            .key_id(self.alias(customer))
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(Self::context(customer)))
            .send()
            .await
            .map_err(|e| {
                if has_code(
                    &e,
                    &[
                        "InvalidCiphertextException",
                        "IncorrectKeyException",
                        "AccessDeniedException",
                    ],
                ) {
                    PortError::Permanent {
                        op,
                        message: format!(
                            "this data key was not wrapped for customer {customer}: {}",
                            super::error::code(&e).unwrap_or_default()
                        ),
                    }
                } else if has_code(&e, NOT_FOUND) {
                    PortError::Permanent {
                        op,
                        message: format!("customer {customer} has no KMS key"),
                    }
                } else {
                    classify(op, e)
                }
            })?;
        out.plaintext()
            .map(|b| b.as_ref())
            .unwrap_or_default()
            .try_into()
            .map_err(|_| PortError::Permanent {
                op,
                message: "KMS returned a data key that is not 32 bytes".into(),
            })
    }
}
