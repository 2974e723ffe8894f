variable "accessflow_principal_arn" {
  description = "ARN of Accessflow's worker task role (given by Accessflow), the only principal allowed to assume the audit role."
  type        = string
}

variable "external_id" {
  description = "The ExternalId Accessflow must present (given by Accessflow, unique per customer)."
  type        = string

  validation {
    condition     = length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[A-Za-z0-9+=,.@:/-]+$", var.external_id))
    error_message = "external_id must be 2-1224 characters of A-Z, a-z, 0-9 and +=,.@:/- (STS rules)."
  }
}

variable "role_name" {
  description = "Name of the audit role; Accessflow's worker may assume only roles of this name."
  type        = string
  default     = "AccessflowAudit"
}

variable "customer_id" {
  description = "The customer's id at Accessflow (for the tenants-file snippet)."
  type        = string
}

variable "customer_name" {
  description = "Display name for the tenants-file snippet."
  type        = string
  default     = ""
}

variable "size_hint" {
  description = "Expected principals in the account (tenants-file size_hint: larger accounts are dispatched first)."
  type        = number
  default     = 100
}

variable "max_session_duration" {
  description = "Longest session of the audit role, seconds (Accessflow asks for 3600)."
  type        = number
  default     = 3600
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}

variable "read_resource_policies" {
  description = "Also let Accessflow read the resource policies of the account's data stores (S3 with the account's Block Public Access, KMS, SQS, SNS, Secrets Manager, Lambda, ECR, DynamoDB: policies, Block Public Access, ACLs, grants, tags; never their data), for the data access and public and cross-account reports. With false, run the workers with ACCESSFLOW_COLLECT_RESOURCES=off."
  type        = bool
  default     = true
}
