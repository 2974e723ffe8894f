variable "job_name" {
  description = "Prometheus `job` label of the scraped metrics (docs: accessflow-worker, accessflow-exporter); the dashboards and alert rules select on it."
  type        = string
}

variable "metrics_port" {
  description = "Port the Accessflow container serves /metrics on, on the task's loopback (awsvpc: the containers of a task share localhost)."
  type        = number
}

variable "remote_write_url" {
  description = "Remote write endpoint of the Amazon Managed Service for Prometheus workspace (monitoring module output remote_write_url). null only while the sidecar is not used."
  type        = string
  default     = null
}

variable "region" {
  description = "Region of the workspace (SigV4 signing)."
  type        = string
}

variable "image" {
  description = "AWS Distro for OpenTelemetry collector image."
  type        = string
}

variable "essential" {
  description = "Whether the task stops when the collector stops. false beside the worker (metrics never stop work); true beside the exporter (a dead collector restarts the task)."
  type        = bool
}

variable "scrape_interval" {
  description = "How often the collector scrapes /metrics (Prometheus duration). Each sample costs AMP ingestion."
  type        = string
  default     = "30s"
}

variable "log_group_name" {
  description = "CloudWatch log group of the collector's own logs (the task's log group)."
  type        = string
}

variable "log_stream_prefix" {
  description = "awslogs stream prefix of the collector container."
  type        = string
  default     = "collector"
}

variable "container_name" {
  description = "Name of the collector container in the task definition."
  type        = string
  default     = "collector"
}
