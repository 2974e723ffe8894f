# Accessflow customer audit role: applied by a CUSTOMER in each AWS account Accessflow
# should analyse. It creates the read-only role Accessflow's workers assume (with the
# customer's ExternalId) and prints the tenants-file entry to send back to Accessflow.
#
# The permissions are exactly the IAM reads of the collector (shared/src/aws/iam_source.rs):
# GetAccountAuthorizationDetails, the credential report (Generate + Get) and the
# service-last-accessed jobs (Generate + Get). Nothing else: no data, no writes.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  # The role's ARN as IAM will give it (path "/"), known before apply, so the tenants
  # snippet can be reviewed in `terraform plan`.
  role_arn = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${var.role_name}"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [var.accessflow_principal_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }
  }
}

data "aws_iam_policy_document" "audit" {
  statement {
    sid = "ReadIamConfiguration"
    # No resource type: AWS accepts only "*" for these.
    actions = [
      "iam:GetAccountAuthorizationDetails",
      "iam:GenerateCredentialReport",
      "iam:GetCredentialReport",
      "iam:GetServiceLastAccessedDetails",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "StartLastAccessedJobs"
    actions = ["iam:GenerateServiceLastAccessedDetails"]
    # One job per principal (user, role, group) of this account; policies too.
    resources = [
      "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:user/*",
      "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/*",
      "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:group/*",
      "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:policy/*",
    ]
  }
}

resource "aws_iam_role" "audit" {
  name                 = var.role_name
  description          = "Read-only IAM audit role assumed by Accessflow (ExternalId required)"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

resource "aws_iam_role_policy" "audit" {
  name   = "accessflow-audit"
  role   = aws_iam_role.audit.id
  policy = data.aws_iam_policy_document.audit.json
}
