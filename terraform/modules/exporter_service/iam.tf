# The exporter's roles.
#
# Task role: read-only. `coordinator exporter` (coordinator/src/exporter.rs) reads the
# ledger (GetItem, Query: store.rs) and each registered account's queue and DLQ depth by
# name (GetQueueUrl, GetQueueAttributes: queues.rs); it lists, receives, sends, deletes and
# writes nothing (so no sqs:ListQueues either), and its CloudWatch metrics go through
# stdout (EMF), not PutMetricData. The ledger's KMS key is
# used through DynamoDB (core key policy); the queues use SQS-managed encryption.
# deploy/checks/render_policies.py renders data.aws_iam_policy_document.exporter_task
# (exporter.json) and decisions.py checks it allows no write.

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

data "aws_iam_policy_document" "exporter_task" {
  statement {
    sid       = "ReadTheLedger"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = [var.table_arn]
  }

  statement {
    sid       = "QueueDepths"
    actions   = ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
    resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${var.name_prefix}-q-*"]
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-exporter"
  description        = "Accessflow metrics exporter task role: read the ledger and the queue depths (read-only)"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "exporter"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.exporter_task.json
}

# The ADOT collector sidecar shares the task role: remote write to the one AMP workspace,
# in a policy of its own (render_policies.py: exporter_collector.json).
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

# Execution role: pull the images from ECR (when they are there), write the log streams.
locals {
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
    resources = ["${aws_cloudwatch_log_group.exporter.arn}:*"]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-exporter-execution"
  description        = "Accessflow metrics exporter task execution role: image pull and logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
