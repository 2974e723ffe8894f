variable "name_prefix" {
  description = "Deployment prefix (ACCESSFLOW_NAME_PREFIX): 1-20 characters of a-z, 0-9 and '-'. Queues are <prefix>-q-*, topics <prefix>-t-*."
  type        = string
  default     = "accessflow"

  validation {
    condition     = can(regex("^[a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix must be 1-20 characters of a-z, 0-9 and '-' (shared/src/naming.rs)."
  }
}

variable "table_name" {
  description = "DynamoDB table (ACCESSFLOW_TABLE). Default: the name prefix."
  type        = string
  default     = null
}

variable "bucket_name" {
  description = "S3 bucket for snapshots, results and reports (ACCESSFLOW_BUCKET). Default: <name_prefix>-data-<account id>."
  type        = string
  default     = null
}

variable "log_bucket_name" {
  description = "S3 bucket receiving the data bucket's server access logs. Default: <name_prefix>-access-logs-<account id>."
  type        = string
  default     = null
}

variable "bucket_prefix" {
  description = "ACCESSFLOW_BUCKET_PREFIX: key prefix inside the bucket (empty, or ending with '/'). Used by the lifecycle rules."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_prefix == "" || endswith(var.bucket_prefix, "/")
    error_message = "bucket_prefix must be empty or end with '/'."
  }
}

variable "customers" {
  description = "Customer ids of the tenants file. Each gets an S3 lifecycle rule expiring <customer>/reports/ after gc_keep_days + 7 days (a backstop for a `coordinator gc` that stopped running; docs/ARCHITECTURE.md section 8). S3 allows 1,000 lifecycle rules per bucket."
  type        = list(string)
  default     = []
}

variable "gc_keep_days" {
  description = "The N of the nightly `coordinator gc --keep-days N`; reports expire by lifecycle after N + 7 days."
  type        = number
  default     = 30
}

variable "noncurrent_version_days" {
  description = "Days a deleted or overwritten object version is kept (the bucket is versioned; gc deletes leave noncurrent versions)."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days the S3 server access logs are kept."
  type        = number
  default     = 365
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the deployment's KMS key is deleted after a destroy."
  type        = number
  default     = 30
}

variable "log_group_prefix" {
  description = "CloudWatch log groups of the deployment start with this; the KMS key lets CloudWatch Logs encrypt them."
  type        = string
  default     = "/accessflow/"
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets with their objects (every version). Off: the buckets must be emptied first."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
}
