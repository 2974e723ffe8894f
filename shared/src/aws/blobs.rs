//! Blobs in S3: one bucket, every key under an optional prefix.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::error::{classify, has_code, status};
use crate::ports::{validate_blob_key, BlobStore, PortError, PortResult};

/// The S3 blob store.
pub struct AwsBlobs {
    client: Client,
    bucket: String,
    prefix: String,
    region: String,
}

impl AwsBlobs {
    pub(crate) fn new(client: Client, bucket: String, prefix: String, region: String) -> Self {
        AwsBlobs {
            client,
            bucket,
            prefix,
            region,
        }
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
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(bytes))
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
