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
# 4. ERROR lines in the worker, coordinator or exporter logs ({ $.level = "ERROR" });
# 5. the metrics exporter's CloudWatch metrics (exporter_alarms_enabled; exporter_service
#    prints them in the embedded metric format, namespace Accessflow, dimension
#    Deployment = name_prefix): messages in the DLQs, failed accounts in the latest run,
#    the night past its delivery deadline, and the exporter itself silent.
#
# The per-account DLQs are created at run time by `coordinator reconcile`, so Terraform
# cannot put an alarm on each, and CloudWatch has no name-pattern alarm on SQS metrics:
# the exporter sums their depths into one metric (DlqMessages) instead; `coordinator dlq
# list` shows which. DLQ messages expire after 14 days.
#
# These alarms need nothing of Prometheus: they work when the AMP workspace, a collector
# or Grafana does not. The Prometheus alert manager (monitoring module) sends its alerts to
# the same topic (prometheus_alerts_enabled: the topic and key policies let AMP publish).

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

  # CloudWatch alarms, EventBridge and the Prometheus alert manager (monitoring module;
  # which workspace may publish is the topic policy's business) publish to the encrypted
  # topic.
  statement {
    sid       = "AlarmSourcesPublishToTheEncryptedTopic"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = concat(["cloudwatch.amazonaws.com", "events.amazonaws.com"], var.prometheus_alerts_enabled ? ["aps.amazonaws.com"] : [])
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

  # AMP's documented statement for an alert manager receiver (Publish and
  # GetTopicAttributes), for this account's workspace only.
  dynamic "statement" {
    for_each = var.prometheus_alerts_enabled ? [1] : []
    content {
      sid       = "PrometheusAlertManager"
      actions   = ["sns:Publish", "sns:GetTopicAttributes"]
      resources = [aws_sns_topic.alarms.arn]
      principals {
        type        = "Service"
        identifiers = ["aps.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [var.prometheus_workspace_arn]
      }
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.topic.json

  lifecycle {
    precondition {
      condition     = !var.prometheus_alerts_enabled || var.prometheus_workspace_arn != null
      error_message = "prometheus_alerts_enabled needs prometheus_workspace_arn (monitoring module output workspace_arn)."
    }
  }
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

# 4. ERROR lines. Off a terminal the binaries log one JSON object per line
#    ({"timestamp":..,"level":"ERROR","target":..,"message":..,"run":..,"customer":..,
#    "account":..,"step":..}), so the filter matches the level field, not the word ERROR
#    anywhere in a message. Lines that are not JSON (the tenants init container's) and JSON
#    lines without a level (the EMF metric lines) never match.
resource "aws_cloudwatch_log_metric_filter" "errors" {
  for_each = merge(
    {
      worker      = var.worker_log_group_name
      coordinator = var.coordinator_log_group_name
    },
    var.exporter_alarms_enabled ? { exporter = var.exporter_log_group_name } : {},
  )
  name           = "${var.name_prefix}-${each.key}-errors"
  log_group_name = each.value
  pattern        = "{ $.level = \"ERROR\" }"

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
  alarm_description   = "ERROR lines in the Accessflow worker, coordinator or exporter logs (CloudWatch Logs Insights: filter level = \"ERROR\" | fields @timestamp, message, run, customer, account, step)."
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

# 5. The exporter's metrics (exporter_service: `coordinator exporter` prints them every
#    refresh, 30 s, in CloudWatch's embedded metric format; CloudWatch Logs extracts them).
#    Maximum over 5 minutes: a value that was there at all counts. Missing data is "not
#    breaching" for the three state alarms: a silent exporter is the heartbeat alarm's.
locals {
  exporter_dimensions = { Deployment = var.name_prefix }
  exporter_state_alarms = {
    dlq_messages = {
      metric      = "DlqMessages"
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      description = "Messages are waiting in the account queues' DLQs (sum over all DLQs): `coordinator dlq list` shows which account, `coordinator dlq show` why, `coordinator dlq replay` sends them back."
    }
    failed_accounts = {
      metric      = "FailedAccounts"
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      description = "The latest run has failed accounts (their reports are missing): `coordinator status` lists them with the reason."
    }
    night_past_deadline = {
      metric      = "NightPastDeadline"
      comparison  = "GreaterThanOrEqualToThreshold"
      threshold   = 1
      description = "The latest run is past its delivery deadline (the exporter's --deliver-by) and not complete: `coordinator status` shows what is left; check the worker service and the DLQs."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "exporter_state" {
  for_each            = var.exporter_alarms_enabled ? local.exporter_state_alarms : {}
  alarm_name          = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = var.exporter_metric_namespace
  metric_name         = each.value.metric
  dimensions          = local.exporter_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

# The exporter prints ExporterHeartbeat = 1 every refresh. No datapoint for
# exporter_heartbeat_periods periods of 5 minutes (missing data is breaching) means the
# exporter, and with it the three alarms above, is dead.
resource "aws_cloudwatch_metric_alarm" "exporter_heartbeat" {
  count               = var.exporter_alarms_enabled ? 1 : 0
  alarm_name          = "${var.name_prefix}-exporter-heartbeat"
  alarm_description   = "The metrics exporter has printed no heartbeat for ${var.exporter_heartbeat_periods * 5} minutes: the DLQ, failed-account and deadline alarms are blind. Check the exporter service's events and its log group."
  namespace           = var.exporter_metric_namespace
  metric_name         = "ExporterHeartbeat"
  dimensions          = local.exporter_dimensions
  statistic           = "SampleCount"
  period              = 300
  evaluation_periods  = var.exporter_heartbeat_periods
  datapoints_to_alarm = var.exporter_heartbeat_periods
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
