# Accessflow customer audit role: applied by a CUSTOMER in each AWS account Accessflow
# should analyse. It creates the read-only role Accessflow's workers assume (with the
# customer's ExternalId) and prints the tenants-file entry to send back to Accessflow.
#
# The permissions are exactly the IAM reads of the collector (shared/src/aws/iam_source.rs):
# GetAccountAuthorizationDetails, the credential report (Generate + Get) and the
# service-last-accessed jobs (Generate + Get); and, unless read_resource_policies = false,
# the metadata reads of the resource inventory (shared/src/aws/resource_inventory/: the
# account's and each bucket's Block Public Access, bucket policies, ACLs and tags; key
# policies, grants and tags; queue, topic, secret, function, repository and table policies
# and tags). Nothing else: no object, message, secret value or item, no decryption, no
# writes.

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

data "aws_iam_policy_document" "resource_policies" {
  statement {
    sid = "ListDataStores"
    # No resource type: AWS accepts only "*" for these.
    actions = [
      "s3:ListAllMyBuckets",
      "s3:GetAccountPublicAccessBlock",
      "kms:ListKeys",
      "sqs:ListQueues",
      "sns:ListTopics",
      "secretsmanager:ListSecrets",
      "lambda:ListFunctions",
      "dynamodb:ListTables",
    ]
    resources = ["*"]
  }

  statement {
    sid = "ReadResourcePolicies"
    actions = [
      "s3:GetBucketPolicy",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetBucketAcl",
      "s3:GetBucketOwnershipControls",
      "s3:GetBucketTagging",
      "kms:DescribeKey",
      "kms:GetKeyPolicy",
      "kms:ListGrants",
      "kms:ListResourceTags",
      "sqs:GetQueueAttributes",
      "sqs:ListQueueTags",
      "sns:GetTopicAttributes",
      "sns:ListTagsForResource",
      "secretsmanager:GetResourcePolicy",
      "lambda:GetPolicy",
      "lambda:ListTags",
      "ecr:DescribeRepositories",
      "ecr:GetRepositoryPolicy",
      "ecr:ListTagsForResource",
      "dynamodb:GetResourcePolicy",
      "dynamodb:ListTagsOfResource",
    ]
    # The account's own data stores, in every region.
    resources = [
      "arn:${data.aws_partition.current.partition}:s3:::*",
      "arn:${data.aws_partition.current.partition}:kms:*:${data.aws_caller_identity.current.account_id}:key/*",
      "arn:${data.aws_partition.current.partition}:sqs:*:${data.aws_caller_identity.current.account_id}:*",
      "arn:${data.aws_partition.current.partition}:sns:*:${data.aws_caller_identity.current.account_id}:*",
      "arn:${data.aws_partition.current.partition}:secretsmanager:*:${data.aws_caller_identity.current.account_id}:secret:*",
      "arn:${data.aws_partition.current.partition}:lambda:*:${data.aws_caller_identity.current.account_id}:function:*",
      "arn:${data.aws_partition.current.partition}:ecr:*:${data.aws_caller_identity.current.account_id}:repository/*",
      "arn:${data.aws_partition.current.partition}:dynamodb:*:${data.aws_caller_identity.current.account_id}:table/*",
    ]
  }
}

resource "aws_iam_role_policy" "resource_policies" {
  count  = var.read_resource_policies ? 1 : 0
  name   = "accessflow-resource-policies"
  role   = aws_iam_role.audit.id
  policy = data.aws_iam_policy_document.resource_policies.json
}
