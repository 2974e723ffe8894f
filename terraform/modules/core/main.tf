# Accessflow core: the state and storage both binaries share.
#
# - one DynamoDB table (ledger, idempotency records, cache index, tenant registry),
# - one S3 bucket (snapshots, results, reports), with its access-log bucket,
# - one customer-managed KMS key for the table, the bucket's default encryption, the log
#   groups and the tenants secret.
#
# Not here, because `coordinator reconcile` creates them at run time: the per-account SQS
# FIFO queues and DLQs (`<prefix>-q-<customer>-<account>[-dlq].fifo`, SQS-managed SSE),
# the per-customer SNS FIFO topics (`<prefix>-t-<customer>-<shard>.fifo`, encrypted with
# alias/aws/sns) and the per-customer KMS keys (`alias/accessflow/<customer>`). The task
# roles are granted those by name prefix.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id      = data.aws_caller_identity.current.account_id
  region          = data.aws_region.current.name
  partition       = data.aws_partition.current.partition
  table_name      = coalesce(var.table_name, var.name_prefix)
  bucket_name     = coalesce(var.bucket_name, "${var.name_prefix}-data-${local.account_id}")
  log_bucket_name = coalesce(var.log_bucket_name, "${var.name_prefix}-access-logs-${local.account_id}")
}

# ---------------------------------------------------------------------------------------
# KMS: the deployment's own key (table, bucket default, log groups, tenants secret).
# Customer keys are made by `coordinator reconcile`, not here.
# ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "data_key" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; IAM delegation to the account root is AWS's default key policy.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only.
  statement {
    sid       = "AccountAdministersTheKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # AWS's documented pattern for DynamoDB, S3 and Secrets Manager: principals of this
  # account may use the key only through these services, and only if IAM lets them use the
  # table / bucket / secret. The task roles therefore need no KMS grant on this key.
  statement {
    sid = "UseThroughDynamoDbS3AndSecretsManagerInThisAccount"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:CreateGrant",
      "kms:DescribeKey",
    ]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${local.region}.amazonaws.com",
        "s3.${local.region}.amazonaws.com",
        "secretsmanager.${local.region}.amazonaws.com",
      ]
    }
  }

  statement {
    sid       = "DynamoDbDescribesTheKey"
    actions   = ["kms:Describe*", "kms:Get*", "kms:List*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["dynamodb.amazonaws.com"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsTheDeploymentsLogGroups"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${var.log_group_prefix}*"]
    }
  }
}

resource "aws_kms_key" "data" {
  description             = "Accessflow ${var.name_prefix}: DynamoDB table, S3 bucket default encryption, log groups, tenants secret"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.data_key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "data" {
  # Outside the customer alias prefix (alias/accessflow/<customer>), so no task role's
  # customer-key grant reaches it.
  name          = "alias/${var.name_prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

# ---------------------------------------------------------------------------------------
# DynamoDB: pk/sk strings, TTL on expires_at (run records 90 days, idempotency 14 days).
# ---------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "this" {
  name                        = local.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------------------
# S3: the data bucket. Objects of a customer are written by the worker with SSE-KMS under
# the customer's own key (bucket key on); the default encryption below covers anything
# else (the tenants file an operator may keep here, for instance).
# ---------------------------------------------------------------------------------------

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice left to the operator: snapshots and results are rebuilt by the next night, but past reports are not re-creatable, so add replication if they must survive the loss of the region.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events; the ledger in DynamoDB is the source of truth for what was written.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "data" {
  bucket        = aws_s3_bucket.data.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${local.bucket_name}/"
}

data "aws_iam_policy_document" "data_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.data.arn,
      "${aws_s3_bucket.data.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = data.aws_iam_policy_document.data_bucket.json
  # The public access block first, so the policy is never briefly unguarded.
  depends_on = [aws_s3_bucket_public_access_block.data]
}

# Lifecycle (docs/ARCHITECTURE.md section 8, retention). `coordinator gc --keep-days N`
# is what deletes old runs; these rules are its backstop and the versioning clean-up:
# - reports: <bucket prefix><customer>/reports/ expire after N + 7 days, one rule per
#   customer (S3 filters take one literal prefix, so no single rule can match
#   */reports/ without also matching snapshots and results);
# - snapshots and results get NO age-based rule: an unchanged account reuses its
#   snapshot and its principals' results for months; gc deletes them when no kept run
#   references them;
# - every object: noncurrent versions (what gc's deletes leave in a versioned bucket)
#   expire after noncurrent_version_days, lone delete markers are removed, and incomplete
#   multipart uploads are aborted after 7 days.
resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "all-objects-noncurrent-versions-and-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = toset(var.customers)
    content {
      id     = "reports-${rule.value}"
      status = "Enabled"
      filter {
        prefix = "${var.bucket_prefix}${rule.value}/reports/"
      }
      expiration {
        days = var.gc_keep_days + 7
      }
      abort_incomplete_multipart_upload {
        days_after_initiation = 7
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.data]
}

# ---------------------------------------------------------------------------------------
# S3: the access-log bucket (target of the data bucket's server access logs).
# ---------------------------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Cross-region replication of access logs is left to the operator (compliance choice).
  #checkov:skip=CKV_AWS_145:S3 server access logging delivers only to buckets with SSE-S3 (AES256) default encryption, not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing consumes the log objects' events.
  bucket        = local.log_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      # SSE-S3: the only default encryption S3 server access logging delivers to.
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.access_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.logs.arn,
      "${aws_s3_bucket.logs.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # With BucketOwnerEnforced, S3 server access logging is authorized by this statement
  # (ACL grants are ignored).
  statement {
    sid       = "S3ServerAccessLogsFromTheDataBucket"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.data.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket     = aws_s3_bucket.logs.id
  policy     = data.aws_iam_policy_document.logs_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.logs]
}
