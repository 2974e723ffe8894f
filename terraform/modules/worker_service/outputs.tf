output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "Name of the worker ECS service."
  value       = aws_ecs_service.worker.name
}

output "task_role_arn" {
  description = "Worker task role ARN: what customers' audit roles trust (customer_role module's accessflow_principal_arn)."
  value       = aws_iam_role.task.arn
}

output "task_role_name" {
  description = "Worker task role name."
  value       = aws_iam_role.task.name
}

output "security_group_id" {
  description = "Security group of the Accessflow tasks (outbound HTTPS only); the coordinator task uses it too."
  value       = aws_security_group.tasks.id
}

output "log_group_name" {
  description = "CloudWatch log group of the workers."
  value       = aws_cloudwatch_log_group.worker.name
}

output "environment_names" {
  description = "Names of the environment variables the worker container gets."
  value       = sort(keys(local.worker_environment))
}

output "metrics_port" {
  description = "Port of the worker's /metrics on the task's loopback (scraped by the collector sidecar when metrics_collector_enabled)."
  value       = var.metrics_port
}
