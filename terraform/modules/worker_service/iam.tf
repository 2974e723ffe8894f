# The worker's two roles.
#
# Task role: exactly what `worker serve` calls (shared/src/aws/*.rs names every call),
# by name prefix. deploy/checks/render_policies.py renders
# data.aws_iam_policy_document.worker_task for the least-privilege test; keep every
# statement resolvable there (variables, locals, the data sources above).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

data "aws_iam_policy_document" "worker_task" {
  # consumer.rs / lease.rs / collect.rs: receive, delete (DeleteMessageBatch), extend the
  # visibility, send the items and dead-letter copies (SendMessageBatch), look up queue
  # URLs and the DLQ of a queue (RedrivePolicy). The queues are created at run time by
  # `coordinator reconcile`; every one of them (DLQs included) is <prefix>-q-*.
  statement {
    sid = "AccountQueues"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:SendMessage",
      "sqs:GetQueueUrl",
      "sqs:GetQueueAttributes",
    ]
    resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${var.name_prefix}-q-*"]
  }

  # store.rs: GetItem, UpdateItem, DeleteItem (an expired record in the way of a
  # conditional write), Query, and TransactWriteItems, which IAM authorizes through the
  # actions it contains: the code's transactions hold updates and deletes only (the port's
  # ConditionCheck is never used, so dynamodb:ConditionCheckItem is not granted). The
  # table's KMS key is used through DynamoDB (core key policy).
  statement {
    sid = "Ledger"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = [var.table_arn]
  }

  # blobs.rs: PutObject (snapshots, results, reports), GetObject and HeadObject (which IAM
  # authorizes as s3:GetObject).
  statement {
    sid       = "Blobs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.bucket_arn}/${var.bucket_prefix}*"]
  }

  # Not a call the worker makes: without s3:ListBucket, S3 answers a HeadObject or
  # GetObject of a missing key with 403 instead of 404, and the caches' exists()/get()
  # would read "not cached yet" as an access error. No condition: S3 checks it without a
  # prefix for that decision.
  statement {
    sid       = "BlobMissesAre404"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  # keys.rs: data keys of the customers' KMS keys, and S3 SSE-KMS with them (bucket key):
  # PutObject needs GenerateDataKey, GetObject needs Decrypt. The keys are created at run
  # time by `coordinator reconcile`, so their ids are unknown here: any key of this
  # account and region, only while it carries an alias under the customer alias prefix.
  statement {
    sid       = "CustomerKeys"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"]
    condition {
      test     = "ForAnyValue:StringLike"
      variable = "kms:ResourceAliases"
      values   = ["${var.kms_alias_prefix}*"]
    }
  }

  # iam_source.rs: AssumeRole into the customers' audit roles (with their ExternalId).
  # The account part is a wildcard because the customers' accounts are listed in the
  # tenants file, not known to Terraform; the role name is fixed.
  statement {
    sid       = "CustomerAuditRoles"
    actions   = ["sts:AssumeRole"]
    resources = ["arn:${local.partition}:iam::*:role/${var.customer_role_name}"]
  }

  # Scale-in protection while a message is in hand: the ECS agent's task-protection
  # endpoint inside the task calls ECS with the task role.
  statement {
    sid       = "OwnTaskProtection"
    actions   = ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"]
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-worker"
  description        = "Accessflow worker task role: account queues, ledger, blobs, customer keys, customer audit roles"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "worker"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.worker_task.json
}

# Execution role: what the ECS agent needs to start the container (pull the image from
# ECR, write the log stream).
locals {
  # 123456789012.dkr.ecr.us-east-1.amazonaws.com/name:tag -> the repository's ARN.
  ecr_match          = try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com/([^:@]+)", var.image), null)
  ecr_repository_arn = local.ecr_match == null ? null : "arn:${local.partition}:ecr:${local.ecr_match[1]}:${local.ecr_match[0]}:repository/${local.ecr_match[2]}"
}

data "aws_iam_policy_document" "execution" {
  dynamic "statement" {
    for_each = local.ecr_repository_arn == null ? [] : [local.ecr_repository_arn]
    content {
      sid       = "PullTheImage"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.ecr_repository_arn == null ? [] : [1]
    content {
      sid     = "EcrLogin"
      actions = ["ecr:GetAuthorizationToken"]
      # GetAuthorizationToken has no resource type: AWS accepts only "*".
      resources = ["*"]
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-worker-execution"
  description        = "Accessflow worker task execution role: image pull and logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
