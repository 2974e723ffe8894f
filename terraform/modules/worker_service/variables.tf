variable "name_prefix" {
  description = "Deployment prefix (ACCESSFLOW_NAME_PREFIX); must match the coordinator's. The task role may use only queues named <prefix>-q-*."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name. Default: the name prefix."
  type        = string
  default     = null
}

variable "image" {
  description = "Container image URI with the `worker` and `coordinator` binaries (built from deploy/Dockerfile), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/accessflow:v1."
  type        = string
}

variable "command" {
  description = "Container command of the worker."
  type        = list(string)
  default     = ["worker", "serve"]
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
  description = "The deployment's KMS key (core module output): encrypts the log group."
  type        = string
}

variable "kms_alias_prefix" {
  description = "ACCESSFLOW_KMS_ALIAS_PREFIX: the customers' keys are <prefix><customer>; the task role may use only keys with such an alias."
  type        = string
  default     = "alias/accessflow/"
}

variable "customer_role_name" {
  description = "Name (IAM wildcards allowed) of the audit role in customers' accounts; the task role may assume only roles of this name (customer_role module's role_name)."
  type        = string
  default     = "AccessflowAudit"
}

variable "log_group_prefix" {
  description = "Log group names start with this (core module output log_group_prefix)."
  type        = string
  default     = "/accessflow/"
}

variable "log_retention_days" {
  description = "CloudWatch log retention of the worker logs, in days."
  type        = number
  default     = 365
}

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the tasks (private subnets with a NAT gateway or VPC endpoints for SQS, SNS, DynamoDB, S3, KMS, STS, IAM, ECR, CloudWatch Logs)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the tasks a public IP (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "launch_type" {
  description = "FARGATE or EC2. Ignored when capacity_provider_strategy is set."
  type        = string
  default     = "FARGATE"

  validation {
    condition     = contains(["FARGATE", "EC2"], var.launch_type)
    error_message = "launch_type must be FARGATE or EC2."
  }
}

variable "capacity_provider_strategy" {
  description = "Capacity providers (e.g. FARGATE_SPOT, or an EC2 Auto Scaling group's provider registered on the cluster) instead of launch_type."
  type = list(object({
    capacity_provider = string
    weight            = number
    base              = optional(number, 0)
  }))
  default = []
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
  default     = 2048
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: must match the image."
  type        = string
  default     = "X86_64"
}

variable "desired_count" {
  description = "Tasks when the service is created; afterwards autoscaling.tf owns the count (changes are ignored here)."
  type        = number
  default     = 0
}

variable "max_tasks" {
  description = "Most worker tasks the service may scale out to (used by autoscaling.tf)."
  type        = number
  default     = 10
}

variable "worker_concurrency" {
  description = "ACCESSFLOW_WORKER_CONCURRENCY: account queues one worker task works on at the same time."
  type        = number
  default     = 2
}

variable "visibility_timeout_secs" {
  description = "ACCESSFLOW_VISIBILITY_TIMEOUT: must equal the coordinator's (it sets the queues' visibility timeout)."
  type        = number
  default     = 60
}

variable "max_receive_count" {
  description = "ACCESSFLOW_MAX_RECEIVE_COUNT: must equal the coordinator's (the queues' redrive policy); the worker's poison guard counts on it."
  type        = number
  default     = 5
}

variable "max_hold_secs" {
  description = "ACCESSFLOW_MAX_HOLD_SECS: longest one message is worked on before it is released."
  type        = number
  default     = 1800
}

variable "stop_timeout_secs" {
  description = "ACCESSFLOW_STOP_TIMEOUT: seconds to finish in-flight messages after SIGTERM. ECS waits 5 s longer before SIGKILL (at most 120 s)."
  type        = number
  default     = 25

  validation {
    condition     = var.stop_timeout_secs >= 1 && var.stop_timeout_secs <= 115
    error_message = "stop_timeout_secs must be 1..115 (ECS stopTimeout is at most 120 s)."
  }
}

variable "rust_log" {
  description = "RUST_LOG filter of the worker's logs."
  type        = string
  default     = "info"
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
}

variable "metrics_collector_enabled" {
  description = "Run an ADOT collector sidecar that scrapes the worker's /metrics (job accessflow-worker) and remote-writes to Amazon Managed Service for Prometheus; `worker serve` then gets --metrics-addr 127.0.0.1:<metrics_port>. Needs prometheus_workspace_arn and prometheus_remote_write_url."
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

variable "metrics_port" {
  description = "Port of the worker's /metrics on the task's loopback (never published: no port mapping, no security group rule)."
  type        = number
  default     = 9464
}

variable "collector_image" {
  description = "AWS Distro for OpenTelemetry collector image of the metrics sidecar. public.ecr.aws needs internet access (NAT); behind VPC endpoints only, mirror it into ECR (e.g. an ECR pull-through cache) and set its URI here: the execution role is then granted its repository."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.47.0"
}
