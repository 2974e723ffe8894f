output "workspace_id" {
  description = "AMP workspace id."
  value       = aws_prometheus_workspace.this.id
}

output "workspace_arn" {
  description = "AMP workspace ARN (the collectors' aps:RemoteWrite resource; the alarms module's prometheus_workspace_arn)."
  value       = aws_prometheus_workspace.this.arn
}

output "prometheus_endpoint" {
  description = "AMP workspace endpoint (query API under api/v1/)."
  value       = aws_prometheus_workspace.this.prometheus_endpoint
}

output "remote_write_url" {
  description = "AMP remote write URL (worker_service's and exporter_service's prometheus_remote_write_url)."
  value       = "${aws_prometheus_workspace.this.prometheus_endpoint}api/v1/remote_write"
}

output "grafana_url" {
  description = "URL of the Amazon Managed Grafana workspace (null without Grafana)."
  value       = var.grafana_enabled ? "https://${aws_grafana_workspace.this[0].endpoint}" : null
}

output "grafana_workspace_id" {
  description = "Amazon Managed Grafana workspace id (null without Grafana): assign users and groups to it in IAM Identity Center."
  value       = var.grafana_enabled ? aws_grafana_workspace.this[0].id : null
}

output "dashboards" {
  description = "The dashboard files uploaded to Grafana."
  value       = local.dashboard_files
}
