output "role_arn" {
  description = "ARN of the audit role (tenants file: role_arn)."
  value       = aws_iam_role.audit.arn
}

output "external_id" {
  description = "The ExternalId the role requires (tenants file: external_id)."
  value       = var.external_id
}

output "tenants_snippet" {
  description = "Ready-to-paste tenants-file entry for this account (tenants.example.toml). With several accounts of one customer, keep one [[customers]] block and repeat only [[customers.accounts]]."
  value       = <<-EOT
    [[customers]]
    id = "${var.customer_id}"
    name = "${var.customer_name}"

    [[customers.accounts]]
    id = "${data.aws_caller_identity.current.account_id}"
    role_arn = "${local.role_arn}"
    external_id = "${var.external_id}"
    size_hint = ${var.size_hint}
  EOT
}
