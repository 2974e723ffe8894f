# Accessflow alarms for the operator's morning check, sent by e-mail through one
# KMS-encrypted SNS topic:
#
# 1. the nightly coordinator task stopped with a non-zero exit code (3 partial reports,
#    4 failed accounts, 5 timeout, 1 error: coordinator/src/exit_code.rs) or failed to
#    start at all (image pull, tenants secret), or the daily gc task failed -- EventBridge
#    rule on ECS task state;
# 2. the schedule dropped an invocation (it could not start the task at all);
# 3. a run is in progress (the coordinator task is waiting on it) but the worker service
#    has run no task for no_worker_minutes;
# 4. ERROR lines in the worker or coordinator logs.
#
# Not covered, honestly: the per-account DLQs. They are created at run time by
# `coordinator reconcile`, so Terraform cannot put an alarm on each, and CloudWatch has no
# name-pattern alarm on SQS metrics. A dead-lettered message makes that night's report
# partial, which alarm 1 reports (exit code 3 or 4); `coordinator status` and
# `coordinator dlq list` show the DLQ depths. DLQ messages expire after 14 days.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  namespace  = "Accessflow/Logs"
}

data "aws_iam_policy_document" "topic_key" {
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

  # CloudWatch alarms and EventBridge publish to the encrypted topic.
  statement {
    sid       = "AlarmSourcesPublishToTheEncryptedTopic"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "topic" {
  description             = "Accessflow ${var.name_prefix}: alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.topic_key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "topic" {
  name          = "alias/${var.name_prefix}-alarms"
  target_key_id = aws_kms_key.topic.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.topic.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "CloudWatchAlarms"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "EventBridgeRule"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.coordinator_failed.arn]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# 1. The nightly coordinator task ended badly.
resource "aws_cloudwatch_event_rule" "coordinator_failed" {
  name        = "${var.name_prefix}-coordinator-failed"
  description = "Accessflow: the coordinator task stopped with a non-zero exit code, or failed to start"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [var.cluster_arn]
      group      = [for f in compact([var.coordinator_task_family, var.gc_task_family]) : "family:${f}"]
      lastStatus = ["STOPPED"]
      "$or" = [
        { containers = { name = ["coordinator"], exitCode = [{ "anything-but" = 0 }] } },
        { stopCode = ["TaskFailedToStart"] },
      ]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "coordinator_failed" {
  rule = aws_cloudwatch_event_rule.coordinator_failed.name
  arn  = aws_sns_topic.alarms.arn

  input_transformer {
    input_paths = {
      task     = "$.detail.taskArn"
      stopCode = "$.detail.stopCode"
      reason   = "$.detail.stoppedReason"
    }
    input_template = "\"Accessflow nightly coordinator task <task> stopped (<stopCode>: <reason>). Exit codes: 1 coordinator error, 3 some reports partial, 4 some accounts failed, 5 timeout. Check `coordinator status` and the coordinator log group ${var.coordinator_log_group_name}.\""
  }
}

# 2. The schedule could not start the task.
resource "aws_cloudwatch_metric_alarm" "schedule_dropped" {
  alarm_name          = "${var.name_prefix}-schedule-dropped"
  alarm_description   = "EventBridge Scheduler dropped an invocation: the nightly coordinator task was not started (account-wide metric)."
  namespace           = "AWS/Scheduler"
  metric_name         = "InvocationDroppedCount"
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

# 3. A run is waiting on workers that do not run (Container Insights metrics).
resource "aws_cloudwatch_metric_alarm" "no_worker_running" {
  alarm_name          = "${var.name_prefix}-no-worker-running"
  alarm_description   = "The worker service runs no task (no datapoint at all also means none: ECS reports nothing for a service without running tasks)."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = var.cluster_name, ServiceName = var.worker_service_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = ceil(var.no_worker_minutes / 5)
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "coordinator_waiting" {
  alarm_name        = "${var.name_prefix}-coordinator-waiting"
  alarm_description = "The coordinator task is running (`start --wait` watches a run): memory is reserved by its task family."
  # Container Insights has no task count per family (TaskCount is per cluster only); a
  # running task of the family reserves memory, so MemoryReserved > 0 means "running".
  namespace           = "ECS/ContainerInsights"
  metric_name         = "MemoryReserved"
  dimensions          = { ClusterName = var.cluster_name, TaskDefinitionFamily = var.coordinator_task_family }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = ceil(var.no_worker_minutes / 5)
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  tags                = var.tags
}

resource "aws_cloudwatch_composite_alarm" "run_without_workers" {
  alarm_name        = "${var.name_prefix}-run-without-workers"
  alarm_description = "A nightly run is in progress but no worker task has run for ${var.no_worker_minutes} minutes: check the worker service's events and its autoscaling."
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.no_worker_running.alarm_name}\") AND ALARM(\"${aws_cloudwatch_metric_alarm.coordinator_waiting.alarm_name}\")"
  alarm_actions     = [aws_sns_topic.alarms.arn]
  tags              = var.tags
}

# 4. ERROR lines (the containers run with NO_COLOR=1, so the level is plain text).
resource "aws_cloudwatch_log_metric_filter" "errors" {
  for_each = {
    worker      = var.worker_log_group_name
    coordinator = var.coordinator_log_group_name
  }
  name           = "${var.name_prefix}-${each.key}-errors"
  log_group_name = each.value
  pattern        = "\"ERROR\""

  metric_transformation {
    name          = "ErrorLines"
    namespace     = local.namespace
    value         = "1"
    default_value = "0"
    unit          = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "error_lines" {
  alarm_name          = "${var.name_prefix}-error-log-lines"
  alarm_description   = "ERROR lines in the Accessflow worker or coordinator logs (CloudWatch Logs Insights: filter @message like /ERROR/)."
  namespace           = local.namespace
  metric_name         = "ErrorLines"
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = var.error_lines_threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = var.tags
  depends_on          = [aws_cloudwatch_log_metric_filter.errors]
}
