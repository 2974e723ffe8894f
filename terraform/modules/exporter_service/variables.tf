variable "name_prefix" {
  description = "Deployment prefix (ACCESSFLOW_NAME_PREFIX); must match the coordinator's and the workers'. The task role may read only queues named <prefix>-q-*. Also the `Deployment` dimension of the exporter's CloudWatch metrics."
  type        = string
}

variable "image" {
  description = "Container image URI with the `coordinator` binary (the same image as the coordinator's and the workers')."
  type        = string
}

variable "deliver_by" {
  description = "`coordinator exporter --deliver-by HH:MM` (UTC): the time of day the reports must be delivered by after a run's start; past it with the run unfinished, NightPastDeadline = 1 (CloudWatch alarm) and the run's deadline metric is passed."
  type        = string
  default     = "06:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.deliver_by))
    error_message = "deliver_by must be HH:MM (UTC, 00:00 to 23:59)."
  }
}

variable "refresh_secs" {
  description = "`coordinator exporter --refresh-secs`: seconds between two reads of the ledger and the queues. Each refresh makes two sqs:GetQueueAttributes per registered account (queue and DLQ) and a few DynamoDB queries: at 30 s and 100 accounts about 17.5 million SQS requests a month; 60 halves that."
  type        = number
  default     = 30

  validation {
    condition     = var.refresh_secs >= 10 && var.refresh_secs <= 240
    error_message = "Between 10 and 240 seconds (the heartbeat alarm needs a datapoint every 5 minutes)."
  }
}

variable "metrics_port" {
  description = "Port of the exporter's /metrics on the task's loopback (never published)."
  type        = number
  default     = 9465
}

variable "cluster_arn" {
  description = "ECS cluster the service runs in (worker_service module output)."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the exporter task (private, with a NAT gateway or VPC endpoints for DynamoDB, SQS, CloudWatch Logs, ECR, and aps-workspaces for the collector)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the exporter task (worker_service module's security_group_id: outbound HTTPS only)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the task a public IP (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "table_name" {
  description = "DynamoDB table name (core module output)."
  type        = string
}

variable "table_arn" {
  description = "DynamoDB table ARN (core module output): the task role may GetItem and Query it, nothing else."
  type        = string
}

variable "bucket_name" {
  description = "ACCESSFLOW_BUCKET (core module output). The AWS backend's settings require it; the exporter reads no object and the role grants no S3 access."
  type        = string
}

variable "bucket_prefix" {
  description = "ACCESSFLOW_BUCKET_PREFIX (empty or ending with '/')."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "The deployment's KMS key (core module output): encrypts the log group."
  type        = string
}

variable "kms_alias_prefix" {
  description = "ACCESSFLOW_KMS_ALIAS_PREFIX, as the coordinator's (the role grants no KMS use)."
  type        = string
  default     = "alias/accessflow/"
}

variable "log_group_prefix" {
  description = "Log group names start with this (core module output log_group_prefix)."
  type        = string
  default     = "/accessflow/"
}

variable "log_retention_days" {
  description = "CloudWatch log retention of the exporter logs (its EMF lines included), in days."
  type        = number
  default     = 365
}

variable "cpu" {
  description = "Task CPU units (256 = 0.25 vCPU, Fargate's smallest)."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Task memory in MiB (512: Fargate's smallest for 0.25 vCPU)."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: must match the image."
  type        = string
  default     = "X86_64"
}

variable "rust_log" {
  description = "RUST_LOG filter of the exporter's logs."
  type        = string
  default     = "info"
}

variable "metrics_collector_enabled" {
  description = "Run an ADOT collector sidecar that scrapes the exporter's /metrics (job accessflow-exporter) and remote-writes to Amazon Managed Service for Prometheus. Without it the exporter still prints its EMF metrics (CloudWatch alarms). Needs prometheus_workspace_arn and prometheus_remote_write_url."
  type        = bool
  default     = false
}

variable "prometheus_workspace_arn" {
  description = "ARN of the AMP workspace (monitoring module output workspace_arn): the task role may aps:RemoteWrite to it only."
  type        = string
  default     = null
}

variable "prometheus_remote_write_url" {
  description = "Remote write URL of the AMP workspace (monitoring module output remote_write_url)."
  type        = string
  default     = null
}

variable "collector_image" {
  description = "AWS Distro for OpenTelemetry collector image (see worker_service's collector_image)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.47.0"
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
}
