variable "name_prefix" {
  description = "Deployment prefix; names the topic and the alarms."
  type        = string
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm the subscription e-mail)."
  type        = list(string)
  default     = []
}

variable "cluster_name" {
  description = "ECS cluster of the deployment (worker_service module output)."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster ARN (worker_service module output)."
  type        = string
}

variable "worker_service_name" {
  description = "Worker ECS service name (worker_service module output)."
  type        = string
}

variable "coordinator_task_family" {
  description = "Coordinator task definition family (coordinator_schedule module output)."
  type        = string
}

variable "gc_task_family" {
  description = "Daily gc task definition family (coordinator_schedule module output); its failures are reported like the coordinator's. null: none."
  type        = string
  default     = null
}

variable "worker_log_group_name" {
  description = "Worker log group (worker_service module output)."
  type        = string
}

variable "coordinator_log_group_name" {
  description = "Coordinator log group (coordinator_schedule module output)."
  type        = string
}

variable "exporter_alarms_enabled" {
  description = "Alarm on the metrics exporter's CloudWatch metrics (exporter_service): DlqMessages > 0, FailedAccounts > 0, NightPastDeadline >= 1, and no ExporterHeartbeat; and count ERROR lines of its log group. Turn off only without the exporter service (its heartbeat alarm would fire)."
  type        = bool
  default     = true
}

variable "exporter_log_group_name" {
  description = "Exporter log group (exporter_service module output); its ERROR lines are counted with the others'. Needed with exporter_alarms_enabled."
  type        = string
  default     = null
}

variable "exporter_metric_namespace" {
  description = "CloudWatch namespace of the exporter's EMF metrics (dimension Deployment = name_prefix)."
  type        = string
  default     = "Accessflow"
}

variable "exporter_heartbeat_periods" {
  description = "5-minute periods without an ExporterHeartbeat datapoint before the heartbeat alarm fires."
  type        = number
  default     = 3

  validation {
    condition     = var.exporter_heartbeat_periods >= 1 && var.exporter_heartbeat_periods <= 288
    error_message = "Between 1 and 288 periods (5 minutes to 24 hours)."
  }
}

variable "prometheus_alerts_enabled" {
  description = "Let the Prometheus alert manager of the AMP workspace prometheus_workspace_arn (monitoring module) publish to the topic and use its key."
  type        = bool
  default     = false
}

variable "prometheus_workspace_arn" {
  description = "AMP workspace whose alert manager may publish to the topic (monitoring module output workspace_arn)."
  type        = string
  default     = null
}

variable "error_lines_threshold" {
  description = "ERROR log lines per hour (workers and coordinator together) that raise the alarm."
  type        = number
  default     = 1
}

variable "no_worker_minutes" {
  description = "Minutes the coordinator may wait on a run while no worker task runs before the alarm fires (autoscaling needs a few minutes to start tasks)."
  type        = number
  default     = 20
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the alarm topic's KMS key is deleted after a destroy."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
}
