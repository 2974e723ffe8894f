output "bucket" {
  description = "ACCESSFLOW_BUCKET: the data bucket."
  value       = module.core.bucket_name
}

output "table" {
  description = "ACCESSFLOW_TABLE: the DynamoDB table."
  value       = module.core.table_name
}

output "cluster" {
  description = "ECS cluster name."
  value       = module.worker_service.cluster_name
}

output "worker_task_role_arn" {
  description = "Give this to customers: their audit role trusts it (customer_role module's accessflow_principal_arn)."
  value       = module.worker_service.task_role_arn
}

output "tenants_secret_arn" {
  description = "Put the tenants file here: aws secretsmanager put-secret-value --secret-id <this> --secret-string file://tenants.toml"
  value       = module.coordinator_schedule.tenants_secret_arn
}

output "coordinator_task_family" {
  description = "Coordinator task definition family (aws ecs run-task --task-definition <this>)."
  value       = module.coordinator_schedule.task_definition_family
}

output "worker_log_group" {
  description = "Worker logs."
  value       = module.worker_service.log_group_name
}

output "coordinator_log_group" {
  description = "Coordinator logs."
  value       = module.coordinator_schedule.log_group_name
}

output "alarm_topic_arn" {
  description = "Alarm SNS topic."
  value       = module.alarms.topic_arn
}

output "exporter_log_group" {
  description = "Metrics exporter logs (its EMF metric lines)."
  value       = module.exporter_service.log_group_name
}

output "prometheus_workspace_id" {
  description = "Amazon Managed Service for Prometheus workspace id."
  value       = module.monitoring.workspace_id
}

output "prometheus_endpoint" {
  description = "Amazon Managed Service for Prometheus endpoint (query API under api/v1/, SigV4)."
  value       = module.monitoring.prometheus_endpoint
}

output "grafana_url" {
  description = "Amazon Managed Grafana workspace URL (sign in with IAM Identity Center)."
  value       = module.monitoring.grafana_url
}
