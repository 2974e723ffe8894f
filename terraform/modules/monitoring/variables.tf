variable "name_prefix" {
  description = "Deployment prefix: names the workspaces, roles, key alias and log group."
  type        = string
}

variable "alarm_topic_arn" {
  description = "The alarms SNS topic (alarms module output topic_arn): the Prometheus alert manager sends its notifications there. The alarms module must be given prometheus_alerts_enabled = true and this module's workspace_arn, so the topic and its key let AMP publish."
  type        = string
}

variable "kms_key_arn" {
  description = "The deployment's KMS key (core module output): encrypts the workspace's log group (its policy lets CloudWatch Logs use it for log groups under log_group_prefix)."
  type        = string
}

variable "log_group_prefix" {
  description = "Log group names start with this (core module output log_group_prefix)."
  type        = string
  default     = "/accessflow/"
}

variable "log_retention_days" {
  description = "Retention of the workspace's log group (rule evaluation and alert manager errors), in days."
  type        = number
  default     = 365
}

variable "prometheus_logging_enabled" {
  description = "Send the workspace's rule evaluation and alert manager errors (a rule that does not evaluate, an SNS publish that is denied) to a CloudWatch log group."
  type        = bool
  default     = true
}

variable "alert_rules_file" {
  description = "Prometheus alerting rules file loaded into the workspace. null: deploy/prometheus/alerts.yml of this repository."
  type        = string
  default     = null
}

variable "dashboards_dir" {
  description = "Directory of the Grafana dashboards (*.json) uploaded to the Grafana workspace. null: deploy/grafana/dashboards of this repository."
  type        = string
  default     = null
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the workspace's KMS key is deleted after a destroy."
  type        = number
  default     = 30
}

variable "grafana_enabled" {
  description = "Create the Amazon Managed Grafana workspace (IAM Identity Center sign-in) with the AMP data source and the dashboards. Needs IAM Identity Center enabled in the account or its organization."
  type        = bool
  default     = true
}

variable "grafana_version" {
  description = "Grafana version of the workspace (one Amazon Managed Grafana offers)."
  type        = string
  default     = "10.4"
}

variable "grafana_admin_group_ids" {
  description = "IAM Identity Center group ids given the Grafana ADMIN role in the workspace."
  type        = list(string)
  default     = []
}

variable "grafana_viewer_group_ids" {
  description = "IAM Identity Center group ids given the Grafana VIEWER role in the workspace."
  type        = list(string)
  default     = []
}

variable "dashboards_token_ttl_secs" {
  description = "Lifetime of the Grafana service account token the dashboard upload uses. A new token is made whenever a dashboard changes; to upload again with nothing changed after it expired: terraform apply -replace='module.monitoring.aws_grafana_workspace_service_account_token.dashboards[0]'."
  type        = number
  default     = 3600

  validation {
    condition     = var.dashboards_token_ttl_secs >= 60 && var.dashboards_token_ttl_secs <= 2592000
    error_message = "Between 60 seconds and 30 days (Amazon Managed Grafana's limit)."
  }
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
}
