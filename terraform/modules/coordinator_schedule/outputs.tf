output "task_definition_arn" {
  description = "Coordinator task definition ARN (latest revision)."
  value       = aws_ecs_task_definition.coordinator.arn
}

output "task_definition_family" {
  description = "Coordinator task definition family (for `aws ecs run-task` by hand)."
  value       = aws_ecs_task_definition.coordinator.family
}

output "task_role_arn" {
  description = "Coordinator task role ARN."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the coordinator (streams coordinator/* and tenants/*)."
  value       = aws_cloudwatch_log_group.coordinator.name
}

output "tenants_secret_arn" {
  description = "Secrets Manager secret holding the tenants file; put its value with `aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://tenants.toml`."
  value       = aws_secretsmanager_secret.tenants.arn
}

output "schedule_name" {
  description = "Name of the nightly EventBridge Scheduler schedule."
  value       = aws_scheduler_schedule.nightly.name
}

output "environment_names" {
  description = "Names of the environment variables the coordinator container gets."
  value       = sort(keys(local.coordinator_environment))
}

output "gc_task_definition_family" {
  description = "Family of the daily gc task definition (null without gc schedule)."
  value       = local.gc_enabled ? aws_ecs_task_definition.gc[0].family : null
}
