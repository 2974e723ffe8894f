output "service_name" {
  description = "Name of the exporter ECS service."
  value       = aws_ecs_service.exporter.name
}

output "task_definition_family" {
  description = "Exporter task definition family."
  value       = aws_ecs_task_definition.exporter.family
}

output "task_role_arn" {
  description = "Exporter task role ARN (read-only; plus aps:RemoteWrite for the collector sidecar)."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the exporter (its EMF metric lines, and the collector's logs)."
  value       = aws_cloudwatch_log_group.exporter.name
}

output "environment_names" {
  description = "Names of the environment variables the exporter container gets."
  value       = sort(keys(local.exporter_environment))
}

output "metric_namespace" {
  description = "CloudWatch namespace of the exporter's EMF metrics (set by the exporter itself)."
  value       = "Accessflow"
}
