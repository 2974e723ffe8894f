variable "name_prefix" {
  description = "Deployment prefix (ACCESSFLOW_NAME_PREFIX); must match the workers'. The task role manages only queues <prefix>-q-* and topics <prefix>-t-*."
  type        = string
}

variable "image" {
  description = "Container image URI with the `coordinator` binary (the same image as the workers')."
  type        = string
}

variable "command" {
  description = "Container command of the nightly coordinator task."
  type        = list(string)
  default     = ["coordinator", "start", "--wait"]
}

variable "cluster_arn" {
  description = "ECS cluster the coordinator task runs in (worker_service module output)."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the coordinator task."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the coordinator task (worker_service module's security_group_id: outbound HTTPS only)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the coordinator task a public IP (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "table_name" {
  description = "DynamoDB table name (core module output)."
  type        = string
}

variable "table_arn" {
  description = "DynamoDB table ARN (core module output)."
  type        = string
}

variable "bucket_name" {
  description = "S3 data bucket name (core module output)."
  type        = string
}

variable "bucket_arn" {
  description = "S3 data bucket ARN (core module output)."
  type        = string
}

variable "bucket_prefix" {
  description = "ACCESSFLOW_BUCKET_PREFIX (empty or ending with '/')."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "The deployment's KMS key (core module output): encrypts the log group and the tenants secret."
  type        = string
}

variable "kms_alias_prefix" {
  description = "ACCESSFLOW_KMS_ALIAS_PREFIX: reconcile creates alias <prefix><customer> for each customer's key."
  type        = string
  default     = "alias/accessflow/"
}

variable "log_group_prefix" {
  description = "Log group names start with this (core module output log_group_prefix)."
  type        = string
  default     = "/accessflow/"
}

variable "log_retention_days" {
  description = "CloudWatch log retention of the coordinator logs, in days."
  type        = number
  default     = 365
}

variable "schedule_expression" {
  description = "When the nightly run starts (EventBridge Scheduler expression)."
  type        = string
  default     = "cron(0 2 * * ? *)"
}

variable "schedule_expression_timezone" {
  description = "Time zone of schedule_expression (IANA name)."
  type        = string
  default     = "UTC"
}

variable "schedule_enabled" {
  description = "Whether the nightly schedule is enabled."
  type        = bool
  default     = true
}

variable "gc_keep_days" {
  description = "Run `coordinator gc --keep-days N` on gc_schedule_expression with this N (runs more than N days older than the newest are deleted with their reports, and snapshots and results no kept run uses). null: no gc schedule."
  type        = number
  default     = 30
}

variable "gc_schedule_expression" {
  description = "When gc runs (EventBridge Scheduler expression): well after the nightly run's deadline, so gc never runs beside a night."
  type        = string
  default     = "cron(0 15 * * ? *)"
}

variable "cpu" {
  description = "Task CPU units of the coordinator."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Task memory of the coordinator, MiB."
  type        = number
  default     = 1024
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: must match the image."
  type        = string
  default     = "X86_64"
}

variable "visibility_timeout_secs" {
  description = "ACCESSFLOW_VISIBILITY_TIMEOUT: the queues' visibility timeout set by reconcile; must equal the workers'."
  type        = number
  default     = 60
}

variable "max_receive_count" {
  description = "ACCESSFLOW_MAX_RECEIVE_COUNT: the queues' redrive policy set by reconcile; must equal the workers'."
  type        = number
  default     = 5
}

variable "run_deadline_secs" {
  description = "ACCESSFLOW_RUN_DEADLINE_SECS: a run's unfinished accounts are marked failed after this long."
  type        = number
  default     = 43200
}

variable "tenants_init_image" {
  description = "Image of the init container that writes the tenants secret into the task's volume (needs sh and printf). Default: var.image (deploy/Dockerfile, Debian slim)."
  type        = string
  default     = null
}

variable "tenants_toml" {
  description = "Optional tenants file content (TOML) stored as the secret's value by Terraform. It then lives in the Terraform state; leave null and put the value with `aws secretsmanager put-secret-value` instead."
  type        = string
  default     = null
  sensitive   = true
}

variable "rust_log" {
  description = "RUST_LOG filter of the coordinator's logs."
  type        = string
  default     = "info"
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
}
