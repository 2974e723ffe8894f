//! Blobs in S3: one bucket, every key under an optional prefix.
//!
//! Every object of a customer (keys start with the customer id: snapshots, results,
//! reports) is written with SSE-KMS under that customer's own KMS key, with an S3 bucket
//! key (one KMS request per bucket key's lifetime instead of one per object). Snapshots
//! and results are also sealed by the worker before they get here; reports are not, so
//! this is what keeps one customer's reports under their key at rest. Objects outside a
//! customer (none today) fall back to SSE-S3.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;

use super::error::{classify, has_code, status};
use crate::ports::{validate_blob_key, BlobStore, PortError, PortResult};

/// The S3 blob store.
pub struct AwsBlobs {
    client: Client,
    bucket: String,
    prefix: String,
    region: String,
    /// `alias/accessflow/`: a customer's key is this + the customer id (see `AwsKeys`).
    kms_alias_prefix: String,
}

/// How an object is encrypted at rest, as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEncryption {
    /// `aws:kms` or `AES256`.
    pub server_side_encryption: Option<String>,
    /// The KMS key (as given when written: the customer's alias).
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
}

impl AwsBlobs {
    pub(crate) fn new(
        client: Client,
        bucket: String,
        prefix: String,
        region: String,
        kms_alias_prefix: String,
    ) -> Self {
        AwsBlobs {
            client,
            bucket,
            prefix,
            region,
            kms_alias_prefix,
        }
    }

    /// The KMS key alias of the customer that owns `key` (its first path segment).
    fn customer_key_alias(&self, key: &str) -> Option<String> {
        let customer = key.split('/').next()?;
        crate::naming::validate_customer(customer).ok()?;
        Some(format!("{}{customer}", self.kms_alias_prefix))
    }

    /// How the object `key` is encrypted at rest (for audits and tests).
    pub async fn encryption(&self, key: &str) -> PortResult<ObjectEncryption> {
        validate_blob_key("s3:HeadObject", key, false)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| self.fail("s3:HeadObject", e))?;
        Ok(ObjectEncryption {
            server_side_encryption: out.server_side_encryption().map(|s| s.as_str().to_string()),
            kms_key_id: out.ssekms_key_id().map(str::to_string),
            bucket_key_enabled: out.bucket_key_enabled(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn fail<E>(
        &self,
        op: &'static str,
        err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> PortError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if has_code(&err, &["NoSuchBucket"]) {
            PortError::NotFound {
                what: "S3 bucket",
                name: self.bucket.clone(),
            }
        } else {
            classify(op, err)
        }
    }

    /// Creates the bucket if missing (emulators and first runs; production uses Terraform).
    pub async fn ensure_bucket(&self) -> PortResult<()> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, &["BucketAlreadyOwnedByYou"]) => Ok(()),
            Err(e) => Err(classify("s3:CreateBucket", e)),
        }
    }
}

#[async_trait]
impl BlobStore for AwsBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        validate_blob_key("s3:PutObject", key, false)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(bytes));
        let request = match self.customer_key_alias(key) {
            Some(alias) => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(alias)
                .bucket_key_enabled(true),
            None => request.server_side_encryption(ServerSideEncryption::Aes256),
        };
        request
            .send()
            .await
            .map_err(|e| self.fail("s3:PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> PortResult<Option<Vec<u8>>> {
        validate_blob_key("s3:GetObject", key, false)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if has_code(&e, &["NoSuchKey"]) => return Ok(None),
            Err(e) => return Err(self.fail("s3:GetObject", e)),
        };
        let bytes = out.body.collect().await.map_err(|e| PortError::Transient {
            op: "s3:GetObject",
            message: format!("reading the body of {key}: {e}"),
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn exists(&self, key: &str) -> PortResult<bool> {
        validate_blob_key("s3:HeadObject", key, false)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if has_code(&e, &["NotFound", "NoSuchKey"]) || status(&e) == Some(404) => {
                Ok(false)
            }
            Err(e) => Err(self.fail("s3:HeadObject", e)),
        }
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        validate_blob_key("s3:DeleteObject", key, false)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| self.fail("s3:DeleteObject", e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<String>> {
        validate_blob_key("s3:ListObjectsV2", prefix, true)?;
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.key(prefix))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.fail("s3:ListObjectsV2", e))?;
            for object in out.contents() {
                if let Some(key) = object
                    .key()
                    .and_then(|k| k.strip_prefix(self.prefix.as_str()))
                {
                    keys.push(key.to_string());
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}
