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
  # conditional write), Query, BatchGetItem and BatchWriteItem (get_many/put_many: an
  # AnalyzePrincipals batch reads its caches and writes its results' records together),
  # and TransactWriteItems, which IAM authorizes through the
  # actions it contains: the code's transactions hold updates and deletes only (the port's
  # ConditionCheck is never used, so dynamodb:ConditionCheckItem is not granted). The
  # table's KMS key is used through DynamoDB (core key policy).
  statement {
    sid = "Ledger"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:UpdateItem",
      "dynamodb:BatchWriteItem",
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

# The ADOT collector sidecar (metrics_collector_enabled; ../collector_sidecar) shares the
# task role: it may remote-write to the one AMP workspace, nothing else. A policy of its
# own, apart from `worker`: data.aws_iam_policy_document.worker_task is what the worker
# binary calls (render_policies.py renders the two separately, worker.json and
# worker_collector.json).
data "aws_iam_policy_document" "collector_remote_write" {
  count = var.metrics_collector_enabled ? 1 : 0

  statement {
    sid       = "RemoteWriteToTheWorkspace"
    actions   = ["aps:RemoteWrite"]
    resources = [var.prometheus_workspace_arn]
  }
}

resource "aws_iam_role_policy" "collector_remote_write" {
  count  = var.metrics_collector_enabled ? 1 : 0
  name   = "collector-remote-write"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.collector_remote_write[0].json

  lifecycle {
    precondition {
      condition     = var.prometheus_workspace_arn != null && var.prometheus_remote_write_url != null
      error_message = "metrics_collector_enabled needs prometheus_workspace_arn and prometheus_remote_write_url (monitoring module outputs)."
    }
  }
}

# Execution role: what the ECS agent needs to start the containers (pull the images from
# ECR, write the log streams).
locals {
  # 123456789012.dkr.ecr.us-east-1.amazonaws.com/name:tag -> the repository's ARN; images
  # elsewhere (the collector's default, public.ecr.aws) need no permission.
  ecr_images          = compact([var.image, var.metrics_collector_enabled ? var.collector_image : null])
  ecr_matches         = [for image in local.ecr_images : try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com/([^:@]+)", image), null)]
  ecr_repository_arns = distinct([for m in local.ecr_matches : "arn:${local.partition}:ecr:${m[1]}:${m[0]}:repository/${m[2]}" if m != null])
}

data "aws_iam_policy_document" "execution" {
  dynamic "statement" {
    for_each = length(local.ecr_repository_arns) == 0 ? [] : [local.ecr_repository_arns]
    content {
      sid       = "PullTheImages"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = length(local.ecr_repository_arns) == 0 ? [] : [1]
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
