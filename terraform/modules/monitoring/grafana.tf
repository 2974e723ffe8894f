# Amazon Managed Grafana (grafana_enabled): a workspace users sign in to with IAM Identity
# Center, its own role allowed to query the AMP workspace, and the dashboards of
# deploy/grafana/dashboards uploaded through Grafana's HTTP API.
#
# Permission type CUSTOMER_MANAGED: SERVICE_MANAGED (Grafana creating its own role and
# policies) happens only in the AWS console; through the API, as here, AWS documents
# CUSTOMER_MANAGED with a role the caller manages, so the role below is the whole of what
# Grafana may do: query this one workspace. data_sources only labels the workspace in the
# console.
#
# How the dashboards get there (no Grafana Terraform provider is used): a service account
# with the ADMIN role and a short-lived token of it, and terraform_data.dashboards, whose
# local-exec runs upload-dashboards.sh (curl and jq) on the machine that applies. The
# script creates or updates the data source with the fixed uid `prometheus` (type
# prometheus, SigV4 with the workspace's role, the AMP query endpoint), which the
# dashboards reference, and uploads every *.json into the folder "Accessflow" (overwrite).
# A change of any dashboard file (or of the script) changes the token's name, so a new
# token is made and the upload runs again.

locals {
  dashboard_files = sort(fileset(local.dashboards_dir, "*.json"))
  dashboards_hash = sha256(join("\n", concat(
    [for f in local.dashboard_files : "${f} ${filesha256("${local.dashboards_dir}/${f}")}"],
    ["upload-dashboards.sh ${filesha256("${path.module}/upload-dashboards.sh")}"],
  )))
}

data "aws_iam_policy_document" "grafana_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["grafana.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:grafana:${local.region}:${local.account_id}:/workspaces/*"]
    }
  }
}

data "aws_iam_policy_document" "grafana" {
  statement {
    sid       = "QueryTheWorkspace"
    actions   = ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"]
    resources = [aws_prometheus_workspace.this.arn]
  }
}

resource "aws_iam_role" "grafana" {
  count              = var.grafana_enabled ? 1 : 0
  name               = "${var.name_prefix}-grafana"
  description        = "Accessflow Amazon Managed Grafana workspace: query the AMP workspace"
  assume_role_policy = data.aws_iam_policy_document.grafana_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "grafana" {
  count  = var.grafana_enabled ? 1 : 0
  name   = "query-prometheus"
  role   = aws_iam_role.grafana[0].id
  policy = data.aws_iam_policy_document.grafana.json
}

resource "aws_grafana_workspace" "this" {
  count                    = var.grafana_enabled ? 1 : 0
  name                     = var.name_prefix
  description              = "Accessflow ${var.name_prefix}: nightly runs, workers, queues (Amazon Managed Service for Prometheus)"
  account_access_type      = "CURRENT_ACCOUNT"
  authentication_providers = ["AWS_SSO"]
  permission_type          = "CUSTOMER_MANAGED"
  role_arn                 = aws_iam_role.grafana[0].arn
  data_sources             = ["PROMETHEUS"]
  grafana_version          = var.grafana_version
  tags                     = var.tags
}

resource "aws_grafana_role_association" "admins" {
  count        = var.grafana_enabled && length(var.grafana_admin_group_ids) > 0 ? 1 : 0
  role         = "ADMIN"
  group_ids    = var.grafana_admin_group_ids
  workspace_id = aws_grafana_workspace.this[0].id
}

resource "aws_grafana_role_association" "viewers" {
  count        = var.grafana_enabled && length(var.grafana_viewer_group_ids) > 0 ? 1 : 0
  role         = "VIEWER"
  group_ids    = var.grafana_viewer_group_ids
  workspace_id = aws_grafana_workspace.this[0].id
}

# The upload's identity inside Grafana: creating a data source needs the ADMIN role.
resource "aws_grafana_workspace_service_account" "dashboards" {
  count        = var.grafana_enabled ? 1 : 0
  name         = "terraform-dashboards"
  grafana_role = "ADMIN"
  workspace_id = aws_grafana_workspace.this[0].id
}

# Named after the dashboards' hash: any change makes a new token (the old one is deleted),
# so the upload never runs with an expired one. Its key is in the Terraform state until
# it expires (dashboards_token_ttl_secs).
resource "aws_grafana_workspace_service_account_token" "dashboards" {
  count              = var.grafana_enabled ? 1 : 0
  name               = "upload-${substr(local.dashboards_hash, 0, 16)}"
  service_account_id = aws_grafana_workspace_service_account.dashboards[0].service_account_id
  seconds_to_live    = var.dashboards_token_ttl_secs
  workspace_id       = aws_grafana_workspace.this[0].id
}

resource "terraform_data" "dashboards" {
  count = var.grafana_enabled ? 1 : 0

  triggers_replace = {
    dashboards = local.dashboards_hash
    token      = aws_grafana_workspace_service_account_token.dashboards[0].id
    endpoint   = aws_prometheus_workspace.this.prometheus_endpoint
  }

  provisioner "local-exec" {
    command = "sh '${abspath(path.module)}/upload-dashboards.sh'"
    environment = {
      GRAFANA_URL       = "https://${aws_grafana_workspace.this[0].endpoint}"
      GRAFANA_TOKEN     = aws_grafana_workspace_service_account_token.dashboards[0].key
      PROMETHEUS_URL    = aws_prometheus_workspace.this.prometheus_endpoint
      PROMETHEUS_REGION = local.region
      DASHBOARDS_DIR    = abspath(local.dashboards_dir)
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.dashboard_files) > 0
      error_message = "No dashboards (*.json) in ${local.dashboards_dir}."
    }
  }
}
