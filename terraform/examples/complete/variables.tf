variable "region" {
  description = "AWS region of the deployment (AWS_REGION of the containers)."
  type        = string
}

variable "name_prefix" {
  description = "Deployment prefix (ACCESSFLOW_NAME_PREFIX): names of the table, bucket, queues, topics, roles."
  type        = string
  default     = "accessflow"
}

variable "image" {
  description = "Image URI built from deploy/Dockerfile and pushed to ECR, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/accessflow:1.0.0."
  type        = string
}

variable "vpc_id" {
  description = "VPC for the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks (with a NAT gateway or VPC endpoints)."
  type        = list(string)
}

variable "alarm_emails" {
  description = "E-mail addresses that receive the alarms."
  type        = list(string)
  default     = []
}

variable "schedule_expression" {
  description = "When the nightly run starts (EventBridge Scheduler cron/rate expression)."
  type        = string
  default     = "cron(0 2 * * ? *)"
}

variable "schedule_expression_timezone" {
  description = "Time zone of the schedule (IANA name)."
  type        = string
  default     = "UTC"
}

variable "customers" {
  description = "Customer ids of the tenants file (one S3 lifecycle rule each for their reports)."
  type        = list(string)
  default     = []
}

variable "gc_keep_days" {
  description = "N of `coordinator gc --keep-days N`; the reports' lifecycle backstop is N + 7 days."
  type        = number
  default     = 30
}

variable "max_tasks" {
  description = "Most worker tasks."
  type        = number
  default     = 10
}

variable "worker_concurrency" {
  description = "Account queues each worker task works on at once (ACCESSFLOW_WORKER_CONCURRENCY)."
  type        = number
  default     = 2
}

variable "max_receive_count" {
  description = "Receives before a message is dead-lettered; the same value goes to the coordinator (redrive policy) and the workers (poison guard)."
  type        = number
  default     = 5
}

variable "visibility_timeout_secs" {
  description = "Visibility timeout of the account queues; the same value goes to the coordinator and the workers."
  type        = number
  default     = 60
}

variable "customer_role_name" {
  description = "Name of the audit role customers create (customer_role module's role_name)."
  type        = string
  default     = "AccessflowAudit"
}

variable "deliver_by" {
  description = "Time of day (HH:MM, UTC) the nightly reports must be delivered by: the exporter's --deliver-by (NightPastDeadline alarm, the run's deadline metric)."
  type        = string
  default     = "06:00"
}

variable "collector_image" {
  description = "AWS Distro for OpenTelemetry collector image of the metrics sidecars (public.ecr.aws needs NAT; mirror it into ECR behind VPC endpoints only)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.47.0"
}

variable "grafana_enabled" {
  description = "Create the Amazon Managed Grafana workspace with the dashboards (needs IAM Identity Center, and curl and jq where terraform applies)."
  type        = bool
  default     = true
}

variable "grafana_admin_group_ids" {
  description = "IAM Identity Center group ids with the Grafana ADMIN role."
  type        = list(string)
  default     = []
}

variable "grafana_viewer_group_ids" {
  description = "IAM Identity Center group ids with the Grafana VIEWER role."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { application = "accessflow" }
}
