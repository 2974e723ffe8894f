output "container_definition" {
  description = "The collector's ECS container definition (an object: put it in the task's jsonencode([...]) list)."
  value       = local.container_definition
}

output "config" {
  description = "The collector configuration (YAML) passed in AOT_CONFIG_CONTENT."
  value       = local.config
}
