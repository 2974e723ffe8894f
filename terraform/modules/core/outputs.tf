output "table_name" {
  description = "DynamoDB table name (ACCESSFLOW_TABLE)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "DynamoDB table ARN."
  value       = aws_dynamodb_table.this.arn
}

output "bucket_name" {
  description = "S3 data bucket name (ACCESSFLOW_BUCKET)."
  value       = aws_s3_bucket.data.id
}

output "bucket_arn" {
  description = "S3 data bucket ARN."
  value       = aws_s3_bucket.data.arn
}

output "log_bucket_name" {
  description = "S3 bucket holding the data bucket's access logs."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "ARN of the deployment's KMS key (table, bucket default encryption, log groups, tenants secret)."
  value       = aws_kms_key.data.arn
}

output "name_prefix" {
  description = "The deployment prefix (ACCESSFLOW_NAME_PREFIX)."
  value       = var.name_prefix
}

output "bucket_prefix" {
  description = "ACCESSFLOW_BUCKET_PREFIX."
  value       = var.bucket_prefix
}

output "log_group_prefix" {
  description = "Prefix the deployment's log groups must start with (the KMS key policy lets CloudWatch Logs use the key for those)."
  value       = var.log_group_prefix
}
