# The coordinator's roles and the scheduler's.
#
# Task role: exactly what the coordinator's commands call (reconcile, start, status,
# dlq list/show/replay/purge, gc, index/notify; shared/src/aws/*.rs names every call), by
# name prefix.
# deploy/checks/render_policies.py renders data.aws_iam_policy_document.coordinator_task
# for the least-privilege test.

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

data "aws_iam_policy_document" "coordinator_task" {

  # reconcile.rs (queues and DLQs: create with SSE and redrive, tag, set the SNS send
  # policy, delete removed accounts'), start.rs (send straight to a young subscription's
  # queue), status.rs (depths), dlq.rs (receive, release, resend, delete, purge).
  statement {
    sid = "AccountQueues"
    actions = [
      "sqs:CreateQueue",
      "sqs:DeleteQueue",
      "sqs:SetQueueAttributes",
      "sqs:TagQueue",
      "sqs:GetQueueUrl",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:SendMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${var.name_prefix}-q-*"]
  }

  # reconcile.rs and dlq.rs list the queues by name prefix. ListQueues has no resource
  # type: AWS accepts only "*".
  statement {
    sid       = "ListQueues"
    actions   = ["sqs:ListQueues"]
    resources = ["*"]
  }

  # reconcile.rs (topics, subscriptions with filter policies), start.rs (PublishBatch,
  # authorized as sns:Publish).
  statement {
    sid = "CustomerTopics"
    actions = [
      "sns:CreateTopic",
      "sns:DeleteTopic",
      "sns:Subscribe",
      "sns:ListSubscriptionsByTopic",
      "sns:Publish",
    ]
    resources = ["arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.name_prefix}-t-*"]
  }

  # ListTopics, GetSubscriptionAttributes, SetSubscriptionAttributes and Unsubscribe have
  # no resource type (a subscription is not an IAM resource): AWS accepts only "*".
  statement {
    sid = "TopicListingAndSubscriptions"
    actions = [
      "sns:ListTopics",
      "sns:GetSubscriptionAttributes",
      "sns:SetSubscriptionAttributes",
      "sns:Unsubscribe",
    ]
    resources = ["*"]
  }

  # The ledger and the tenant registry (store.rs); gc deletes records. Transactions hold
  # updates and deletes only (no ConditionCheck in the code).
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

  # review.rs (`start --wait`, `index`, `notify`): the customers' morning review. It
  # reads the accounts' summary.json and the runs' index.json and trend-point.json, and
  # writes the review files into the run directory; never the reports themselves
  # (report.json, the CSVs, the snapshots stay the worker's).
  statement {
    sid     = "MorningReviewReads"
    actions = ["s3:GetObject"]
    resources = [
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/summary.json",
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/index.json",
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/trend-point.json",
    ]
  }

  statement {
    sid     = "MorningReviewWrites"
    actions = ["s3:PutObject"]
    resources = [
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/index.json",
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/index.html",
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/digest.txt",
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/digest.html",
      "${var.bucket_arn}/${var.bucket_prefix}*/reports/*/trend-point.json",
    ]
  }

  # The review's objects are SSE-KMS under the customer's key (blobs.rs): PutObject needs
  # GenerateDataKey, GetObject Decrypt; any key of this account and region, only while it
  # carries an alias under the customer alias prefix (as the worker's).
  statement {
    sid       = "MorningReviewKeys"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"]
    condition {
      test     = "ForAnyValue:StringLike"
      variable = "kms:ResourceAliases"
      values   = ["${var.kms_alias_prefix}*"]
    }
  }

  # gc.rs: list a customer's reports, snapshots and results, delete the unreferenced.
  statement {
    sid       = "GcListsBlobs"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "GcDeletesBlobs"
    actions   = ["s3:DeleteObject"]
    resources = ["${var.bucket_arn}/${var.bucket_prefix}*"]
  }

  # keys.rs ensure_customer_key: DescribeKey by alias; if missing, CreateKey (tagged
  # `customer`, which needs kms:TagResource) and CreateAlias. CreateKey has no resource
  # type: AWS accepts only "*".
  statement {
    sid       = "CreateCustomerKeys"
    actions   = ["kms:CreateKey"]
    resources = ["*"]
  }

  statement {
    sid       = "TagNewCustomerKeys"
    actions   = ["kms:TagResource"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["customer"]
    }
  }

  statement {
    sid       = "DescribeCustomerKeys"
    actions   = ["kms:DescribeKey"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"]
    condition {
      test     = "ForAnyValue:StringLike"
      variable = "kms:ResourceAliases"
      values   = ["${var.kms_alias_prefix}*"]
    }
  }

  # CreateAlias is authorized on the alias and on the key. The key is new and has no alias
  # yet, so it is recognised by the `customer` tag CreateKey gave it; the same for the
  # spare key of a lost creation race, which is scheduled for deletion.
  statement {
    sid       = "NameCustomerKeys"
    actions   = ["kms:CreateAlias"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:${var.kms_alias_prefix}*"]
  }

  statement {
    sid       = "AliasAndRetireNewCustomerKeys"
    actions   = ["kms:CreateAlias", "kms:ScheduleKeyDeletion"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/customer"
      values   = ["false"]
    }
  }
  # No cloudwatch:PutMetricData: `coordinator start --wait` prints the backlog metric in
  # CloudWatch's embedded metric format on stdout, and CloudWatch Logs (the awslogs driver,
  # with the execution role) turns it into the metric; the task itself calls nothing.
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-coordinator"
  description        = "Accessflow coordinator task role: reconcile queues, topics and keys; publish; ledger; DLQ; gc"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "coordinator"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.coordinator_task.json
}

# Execution role: pull the image, write the logs, read the tenants secret for the init
# container (its KMS key is used through Secrets Manager: core key policy).
locals {
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
    resources = ["${aws_cloudwatch_log_group.coordinator.arn}:*"]
  }

  statement {
    sid       = "ReadTheTenantsSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.tenants.arn]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-coordinator-execution"
  description        = "Accessflow coordinator task execution role: image pull, logs, tenants secret"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The scheduler's role: run the coordinator (and gc) task definitions in the cluster, and
# pass them their two roles.
data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid     = "RunTheCoordinatorTasks"
    actions = ["ecs:RunTask"]
    resources = concat(
      ["${aws_ecs_task_definition.coordinator.arn_without_revision}:*"],
      [for gc in aws_ecs_task_definition.gc : "${gc.arn_without_revision}:*"],
    )
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "PassTheTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task.arn, aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name_prefix}-coordinator-scheduler"
  description        = "EventBridge Scheduler: runs the nightly Accessflow coordinator task"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-coordinator"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
