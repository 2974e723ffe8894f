# Accessflow monitoring on AWS, the Prometheus path:
#
# - an Amazon Managed Service for Prometheus (AMP) workspace, encrypted with a key of its
#   own, logging its rule evaluation and alert manager errors to CloudWatch Logs;
# - the alerting rules of deploy/prometheus/alerts.yml loaded into it, and its alert
#   manager sending every alert to the alarms SNS topic (the alarms module lets AMP
#   publish to it and use its key: prometheus_alerts_enabled);
# - an Amazon Managed Grafana workspace with the AMP data source and the dashboards of
#   deploy/grafana/dashboards (grafana.tf; grafana_enabled).
#
# The samples come from ADOT collector sidecars (../collector_sidecar) beside the workers
# and the exporter, which remote-write to remote_write_url with aps:RemoteWrite on this
# workspace only (worker_service, exporter_service: metrics_collector_enabled).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # The repository's files by default; a module fetched by git:: brings them along.
  alert_rules_file = coalesce(var.alert_rules_file, "${path.module}/../../../deploy/prometheus/alerts.yml")
  dashboards_dir   = coalesce(var.dashboards_dir, "${path.module}/../../../deploy/grafana/dashboards")
}

# ---------------------------------------------------------------------------------------
# KMS: the workspace's key. AMP encrypts the samples, rules and alert manager definition
# with it; principals of this account may use it only through AMP (the pattern of AWS's
# documentation: AMP makes grants on it for the workspace).
# ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "workspace_key" {
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

  statement {
    sid = "UseThroughAmpInThisAccount"
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
      values   = ["aps.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "workspace" {
  description             = "Accessflow ${var.name_prefix}: Amazon Managed Service for Prometheus workspace"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.workspace_key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "workspace" {
  name          = "alias/${var.name_prefix}-prometheus"
  target_key_id = aws_kms_key.workspace.key_id
}

# ---------------------------------------------------------------------------------------
# The AMP workspace.
# ---------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "prometheus" {
  count             = var.prometheus_logging_enabled ? 1 : 0
  name              = "${var.log_group_prefix}${var.name_prefix}/prometheus"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_prometheus_workspace" "this" {
  alias       = var.name_prefix
  kms_key_arn = aws_kms_key.workspace.arn

  dynamic "logging_configuration" {
    for_each = var.prometheus_logging_enabled ? [1] : []
    content {
      log_group_arn = "${aws_cloudwatch_log_group.prometheus[0].arn}:*"
    }
  }

  tags = var.tags
}

# The alerting rules (deploy/prometheus/alerts.yml: the same file a local Prometheus
# loads). AMP evaluates them against the remote-written samples of jobs
# accessflow-worker and accessflow-exporter.
resource "aws_prometheus_rule_group_namespace" "alerts" {
  name         = "accessflow"
  workspace_id = aws_prometheus_workspace.this.id
  data         = file(local.alert_rules_file)
  tags         = var.tags
}

# Every alert goes to the alarms topic (e-mail), grouped, repeated and inhibited as in
# deploy/prometheus/alertmanager.yml.template (the local Alertmanager's e-mail): one
# notification per alert name, customer and account. AMP's only receiver is SNS; the
# topic is KMS-encrypted, and the alarms module's topic and key policies let
# aps.amazonaws.com publish for this workspace only (prometheus_alerts_enabled).
locals {
  alertmanager_config = yamlencode({
    route = {
      receiver        = "alarms-topic"
      group_by        = ["alertname", "customer", "account"]
      group_wait      = "30s"
      group_interval  = "5m"
      repeat_interval = "4h"
    }
    # source_match / target_match: the matcher form every Alertmanager version AMP has run
    # accepts.
    inhibit_rules = [
      {
        source_match = { alertname = "AccessflowNightPastDeadline" }
        target_match = { alertname = "AccessflowNightWillMissDeadline" }
      },
      {
        source_match_re = { alertname = "AccessflowNoWorkerWhilePending|AccessflowExporterRefreshFailing" }
        target_match    = { alertname = "AccessflowRunStalled" }
      },
    ]
    receivers = [{
      name = "alarms-topic"
      sns_configs = [{
        topic_arn     = var.alarm_topic_arn
        sigv4         = { region = local.region }
        send_resolved = true
        # SNS subjects are at most 100 ASCII characters: status and alert name only.
        subject = "[{{ .Status | toUpper }}] {{ .GroupLabels.alertname }} (Accessflow ${var.name_prefix})"
        message = <<-EOT
          Accessflow ${var.name_prefix}: {{ len .Alerts.Firing }} firing, {{ len .Alerts.Resolved }} resolved ({{ .GroupLabels.alertname }}{{ with .GroupLabels.customer }}, customer {{ . }}{{ end }}{{ with .GroupLabels.account }}, account {{ . }}{{ end }})
          {{ range .Alerts }}
          [{{ .Status | toUpper }}] {{ .Labels.alertname }} ({{ .Labels.severity }})
            Summary:  {{ .Annotations.summary }}
            Runbook:  {{ .Annotations.runbook }}
            Customer: {{ or .Labels.customer "-" }}
            Account:  {{ or .Labels.account "-" }}
            Labels:   {{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
            Since:    {{ .StartsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}
          {{ end }}
        EOT
      }]
    }]
  })
}

resource "aws_prometheus_alert_manager_definition" "this" {
  workspace_id = aws_prometheus_workspace.this.id
  definition   = yamlencode({ alertmanager_config = local.alertmanager_config })
}
