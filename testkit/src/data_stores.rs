//! One data store of each kind the resource inventory reads, created in an emulated
//! (moto) account: a bucket, a customer managed key, a queue, a topic, a secret, a
//! function, an ECR repository and a DynamoDB table, each with a tag. A night over the
//! account then makes every collection request once at least (the least-privilege test
//! proves the customer role with them).

use aws_sdk_iam::config::{BehaviorVersion, Region};

use crate::moto;

/// The smallest valid zip archive (an empty one): moto stores a function's code and never
/// runs it here.
const EMPTY_ZIP: [u8; 22] = [
    80, 75, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// An SDK configuration acting inside `account` on the moto server (us-east-1), for the
/// clients of any service.
pub async fn sdk_config_in_account(account: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto::server().url)
        .http_client(accessflow_shared::aws::https_client())
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            moto::credentials_in_account(account).await,
        ))
        .build()
}

/// Creates the eight data stores in `account` (us-east-1), named `<prefix>-...`.
pub async fn seed_data_stores(account: &str, prefix: &str) -> anyhow::Result<()> {
    let sdk = sdk_config_in_account(account).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(format!("{prefix}-{account}-data"))
        .send()
        .await?;
    aws_sdk_kms::Client::new(&sdk).create_key().send().await?;
    aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(format!("{prefix}-inbox"))
        .send()
        .await?;
    aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(format!("{prefix}-alerts"))
        .send()
        .await?;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("{prefix}-password"))
        .secret_string("hunter2")
        .send()
        .await?;
    create_function(&sdk, account, &format!("{prefix}-thumbnailer"), &[]).await?;
    aws_sdk_ecr::Client::new(&sdk)
        .create_repository()
        .repository_name(format!("{prefix}-images"))
        .send()
        .await?;
    create_table(
        &aws_sdk_dynamodb::Client::new(&sdk),
        &format!("{prefix}-orders"),
    )
    .await?;
    Ok(())
}

/// Creates a Lambda function `name` with `tags` in `account` (with a role of its own, which
/// moto requires to exist); returns its ARN.
pub async fn create_function(
    sdk: &aws_config::SdkConfig,
    account: &str,
    name: &str,
    tags: &[(&str, &str)],
) -> anyhow::Result<String> {
    let role = moto::iam_in_account(account)
        .await
        .create_role()
        .role_name(format!("{name}-role"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await?;
    let role_arn = role
        .role()
        .map(|r| r.arn().to_string())
        .ok_or_else(|| anyhow::anyhow!("CreateRole returned no role"))?;
    let mut create = aws_sdk_lambda::Client::new(sdk)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .handler("index.handler")
        .role(role_arn)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(EMPTY_ZIP.to_vec()))
                .build(),
        );
    for (k, v) in tags {
        create = create.tags(*k, *v);
    }
    let function = create.send().await?;
    function
        .function_arn()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("CreateFunction returned no ARN"))
}

/// Creates an on-demand DynamoDB table `name` keyed by a string `id`.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}
