//! Static material: a policy statement builder, the AWS managed policies the generator
//! attaches (real names and paths, abbreviated but faithful documents), service names for
//! last-accessed data, and name lists.

use super::json::{jobj, list, J};

/// A policy statement under construction. Keys are emitted in the order AWS consoles write
/// them: Sid, Effect, Principal, Action/NotAction, Resource/NotResource, Condition.
pub(crate) struct S {
    sid: Option<String>,
    effect: &'static str,
    principal: Option<J>,
    action_key: &'static str,
    action: J,
    resource: Option<(&'static str, J)>,
    condition: Option<J>,
}

impl S {
    pub(crate) fn allow<T: AsRef<str>>(actions: &[T]) -> S {
        S {
            sid: None,
            effect: "Allow",
            principal: None,
            action_key: "Action",
            action: list(actions),
            resource: None,
            condition: None,
        }
    }
    pub(crate) fn deny<T: AsRef<str>>(actions: &[T]) -> S {
        S {
            effect: "Deny",
            ..S::allow(actions)
        }
    }
    /// Turns `Action` into `NotAction`.
    pub(crate) fn not_action(mut self) -> S {
        self.action_key = "NotAction";
        self
    }
    pub(crate) fn on<T: AsRef<str>>(mut self, resources: &[T]) -> S {
        self.resource = Some(("Resource", list(resources)));
        self
    }
    pub(crate) fn any(self) -> S {
        self.on(&["*"])
    }
    pub(crate) fn not_on<T: AsRef<str>>(mut self, resources: &[T]) -> S {
        self.resource = Some(("NotResource", list(resources)));
        self
    }
    pub(crate) fn when(mut self, condition: J) -> S {
        self.condition = Some(condition);
        self
    }
    pub(crate) fn sid(mut self, sid: &str) -> S {
        self.sid = Some(sid.to_string());
        self
    }
    pub(crate) fn principal(mut self, p: J) -> S {
        self.principal = Some(p);
        self
    }
    pub(crate) fn build(self) -> J {
        let mut kv: Vec<(String, J)> = Vec::with_capacity(6);
        if let Some(sid) = self.sid {
            kv.push(("Sid".into(), J::Str(sid)));
        }
        kv.push(("Effect".into(), J::Str(self.effect.into())));
        if let Some(p) = self.principal {
            kv.push(("Principal".into(), p));
        }
        kv.push((self.action_key.into(), self.action));
        if let Some((k, v)) = self.resource {
            kv.push((k.into(), v));
        }
        if let Some(c) = self.condition {
            kv.push(("Condition".into(), c));
        }
        J::Obj(kv)
    }
}

/// A policy document from statements.
pub(crate) fn doc(statements: Vec<S>) -> J {
    jobj! {
        "Version" => "2012-10-17",
        "Statement" => statements.into_iter().map(S::build).collect::<Vec<J>>(),
    }
}

/// An AWS managed policy: name, path, document, default version, create and update dates.
pub(crate) struct AwsManaged {
    pub name: &'static str,
    pub path: &'static str,
    pub version: &'static str,
    pub created: &'static str,
    pub updated: &'static str,
}

pub(crate) const AWS_MANAGED: &[AwsManaged] = &[
    m(
        "AdministratorAccess",
        "/",
        "v1",
        "2015-02-06T18:39:46+00:00",
        "2015-02-06T18:39:46+00:00",
    ),
    m(
        "ReadOnlyAccess",
        "/",
        "v118",
        "2015-02-06T18:39:48+00:00",
        "2026-06-18T17:31:06+00:00",
    ),
    m(
        "PowerUserAccess",
        "/",
        "v5",
        "2015-02-06T18:39:47+00:00",
        "2023-07-06T22:04:00+00:00",
    ),
    m(
        "IAMFullAccess",
        "/",
        "v2",
        "2015-02-06T18:40:38+00:00",
        "2019-06-21T19:40:00+00:00",
    ),
    m(
        "SecurityAudit",
        "/",
        "v49",
        "2015-02-06T18:41:01+00:00",
        "2026-05-13T19:49:31+00:00",
    ),
    m(
        "AmazonS3ReadOnlyAccess",
        "/",
        "v3",
        "2015-02-06T18:40:59+00:00",
        "2023-08-10T21:31:39+00:00",
    ),
    m(
        "AmazonS3FullAccess",
        "/",
        "v2",
        "2015-02-06T18:40:58+00:00",
        "2021-09-27T20:16:37+00:00",
    ),
    m(
        "AmazonEC2ReadOnlyAccess",
        "/",
        "v3",
        "2015-02-06T18:40:17+00:00",
        "2018-11-27T02:16:56+00:00",
    ),
    m(
        "AmazonDynamoDBReadOnlyAccess",
        "/",
        "v13",
        "2015-02-06T18:40:11+00:00",
        "2024-06-01T12:00:00+00:00",
    ),
    m(
        "AmazonSSMManagedInstanceCore",
        "/",
        "v2",
        "2019-03-15T17:22:12+00:00",
        "2019-05-23T16:54:21+00:00",
    ),
    m(
        "job-function/ViewOnlyAccess",
        "/job-function/",
        "v21",
        "2016-11-10T17:20:15+00:00",
        "2025-02-18T18:00:00+00:00",
    ),
    m(
        "job-function/Billing",
        "/job-function/",
        "v9",
        "2016-11-10T17:33:18+00:00",
        "2024-12-05T19:00:00+00:00",
    ),
    m(
        "service-role/AWSLambdaBasicExecutionRole",
        "/service-role/",
        "v1",
        "2015-04-09T15:03:43+00:00",
        "2015-04-09T15:03:43+00:00",
    ),
    m(
        "service-role/AmazonECSTaskExecutionRolePolicy",
        "/service-role/",
        "v1",
        "2017-11-16T18:48:22+00:00",
        "2017-11-16T18:48:22+00:00",
    ),
    m(
        "service-role/AWSGlueServiceRole",
        "/service-role/",
        "v8",
        "2017-04-19T18:36:01+00:00",
        "2023-06-01T10:00:00+00:00",
    ),
    m(
        "aws-service-role/AWSSupportServiceRolePolicy",
        "/aws-service-role/",
        "v31",
        "2018-04-19T18:04:44+00:00",
        "2026-03-10T21:10:12+00:00",
    ),
    m(
        "aws-service-role/AWSTrustedAdvisorServiceRolePolicy",
        "/aws-service-role/",
        "v12",
        "2018-02-22T21:27:33+00:00",
        "2025-08-20T17:44:05+00:00",
    ),
];

const fn m(
    name: &'static str,
    path: &'static str,
    version: &'static str,
    created: &'static str,
    updated: &'static str,
) -> AwsManaged {
    AwsManaged {
        name,
        path,
        version,
        created,
        updated,
    }
}

impl AwsManaged {
    /// The short policy name, without the path.
    pub(crate) fn policy_name(&self) -> &'static str {
        self.name.rsplit('/').next().unwrap_or(self.name)
    }
    pub(crate) fn arn(&self) -> String {
        format!("arn:aws:iam::aws:policy/{}", self.name)
    }
    pub(crate) fn document(&self) -> J {
        aws_managed_document(self.name)
    }
}

/// Services an `Action: "*"` (or a broad NotAction) grant shows in last-accessed data.
pub(crate) const BROAD_NAMESPACES: &[&str] = &[
    "athena",
    "cloudformation",
    "cloudtrail",
    "cloudwatch",
    "config",
    "dynamodb",
    "ec2",
    "ecr",
    "ecs",
    "elasticloadbalancing",
    "events",
    "glue",
    "guardduty",
    "iam",
    "kms",
    "lambda",
    "logs",
    "organizations",
    "rds",
    "route53",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "sts",
];

fn aws_managed_document(name: &str) -> J {
    let read_only_services = [
        "acm:Describe*",
        "acm:Get*",
        "acm:List*",
        "athena:Get*",
        "athena:List*",
        "autoscaling:Describe*",
        "cloudformation:Describe*",
        "cloudformation:Get*",
        "cloudformation:List*",
        "cloudfront:Get*",
        "cloudfront:List*",
        "cloudtrail:Describe*",
        "cloudtrail:Get*",
        "cloudtrail:List*",
        "cloudtrail:LookupEvents",
        "cloudwatch:Describe*",
        "cloudwatch:Get*",
        "cloudwatch:List*",
        "config:Describe*",
        "config:Get*",
        "config:List*",
        "dynamodb:BatchGetItem",
        "dynamodb:Describe*",
        "dynamodb:GetItem",
        "dynamodb:List*",
        "dynamodb:Query",
        "dynamodb:Scan",
        "ec2:Describe*",
        "ec2:Get*",
        "ecr:BatchGetImage",
        "ecr:Describe*",
        "ecr:Get*",
        "ecr:List*",
        "ecs:Describe*",
        "ecs:List*",
        "elasticloadbalancing:Describe*",
        "events:Describe*",
        "events:List*",
        "glue:Get*",
        "glue:List*",
        "guardduty:Get*",
        "guardduty:List*",
        "iam:Generate*",
        "iam:Get*",
        "iam:List*",
        "iam:Simulate*",
        "kms:Describe*",
        "kms:Get*",
        "kms:List*",
        "lambda:Get*",
        "lambda:List*",
        "logs:Describe*",
        "logs:FilterLogEvents",
        "logs:Get*",
        "logs:StartQuery",
        "organizations:Describe*",
        "organizations:List*",
        "rds:Describe*",
        "rds:List*",
        "route53:Get*",
        "route53:List*",
        "s3:DescribeJob",
        "s3:Get*",
        "s3:List*",
        "secretsmanager:Describe*",
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:List*",
        "sns:Get*",
        "sns:List*",
        "sqs:Get*",
        "sqs:List*",
        "sqs:ReceiveMessage",
        "ssm:Describe*",
        "ssm:Get*",
        "ssm:List*",
        "sts:GetCallerIdentity",
    ];
    match name {
        "AdministratorAccess" => doc(vec![S::allow(&["*"]).any()]),
        "ReadOnlyAccess" => doc(vec![S::allow(&read_only_services)
            .any()
            .sid("ReadOnlyAccess")]),
        "PowerUserAccess" => doc(vec![
            S::allow(&["iam:*", "organizations:*", "account:*"])
                .not_action()
                .any(),
            S::allow(&[
                "account:GetAccountInformation",
                "account:GetPrimaryEmail",
                "account:ListRegions",
                "iam:CreateServiceLinkedRole",
                "iam:DeleteServiceLinkedRole",
                "iam:ListRoles",
                "organizations:DescribeOrganization",
            ])
            .any(),
        ]),
        "IAMFullAccess" => doc(vec![S::allow(&[
            "iam:*",
            "organizations:DescribeAccount",
            "organizations:DescribeOrganization",
            "organizations:DescribeOrganizationalUnit",
            "organizations:DescribePolicy",
            "organizations:ListChildren",
            "organizations:ListParents",
            "organizations:ListPoliciesForTarget",
            "organizations:ListRoots",
            "organizations:ListPolicies",
            "organizations:ListTargetsForPolicy",
        ])
        .any()]),
        "SecurityAudit" => doc(vec![S::allow(&[
            "acm:Describe*",
            "acm:List*",
            "cloudtrail:DescribeTrails",
            "cloudtrail:GetEventSelectors",
            "cloudtrail:GetTrailStatus",
            "cloudtrail:ListTags",
            "cloudwatch:DescribeAlarms",
            "config:Describe*",
            "config:Get*",
            "dynamodb:DescribeTable",
            "dynamodb:ListTables",
            "ec2:Describe*",
            "ec2:GetEbsEncryptionByDefault",
            "ecr:DescribeRepositories",
            "ecr:GetRepositoryPolicy",
            "ecs:Describe*",
            "ecs:List*",
            "elasticloadbalancing:Describe*",
            "guardduty:Get*",
            "guardduty:List*",
            "iam:GenerateCredentialReport",
            "iam:Get*",
            "iam:List*",
            "iam:SimulateCustomPolicy",
            "iam:SimulatePrincipalPolicy",
            "kms:Describe*",
            "kms:Get*",
            "kms:List*",
            "lambda:GetFunctionConfiguration",
            "lambda:GetPolicy",
            "lambda:List*",
            "logs:Describe*",
            "organizations:Describe*",
            "organizations:List*",
            "rds:Describe*",
            "route53:Get*",
            "route53:List*",
            "s3:GetAccountPublicAccessBlock",
            "s3:GetBucket*",
            "s3:GetEncryptionConfiguration",
            "s3:GetLifecycleConfiguration",
            "s3:ListAllMyBuckets",
            "secretsmanager:DescribeSecret",
            "secretsmanager:ListSecrets",
            "sns:GetTopicAttributes",
            "sns:ListTopics",
            "sqs:GetQueueAttributes",
            "sqs:ListQueues",
            "ssm:Describe*",
            "ssm:ListDocuments",
        ])
        .any()
        .sid("SecurityAuditReadConfig")]),
        "AmazonS3ReadOnlyAccess" => doc(vec![S::allow(&[
            "s3:Get*",
            "s3:List*",
            "s3:Describe*",
            "s3-object-lambda:Get*",
            "s3-object-lambda:List*",
        ])
        .any()]),
        "AmazonS3FullAccess" => doc(vec![S::allow(&["s3:*", "s3-object-lambda:*"]).any()]),
        "AmazonEC2ReadOnlyAccess" => doc(vec![
            S::allow(&["ec2:Describe*"]).any(),
            S::allow(&["elasticloadbalancing:Describe*"]).any(),
            S::allow(&[
                "cloudwatch:ListMetrics",
                "cloudwatch:GetMetricStatistics",
                "cloudwatch:Describe*",
            ])
            .any(),
            S::allow(&["autoscaling:Describe*"]).any(),
        ]),
        "AmazonDynamoDBReadOnlyAccess" => doc(vec![S::allow(&[
            "application-autoscaling:DescribeScalableTargets",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:GetMetricData",
            "dynamodb:BatchGetItem",
            "dynamodb:Describe*",
            "dynamodb:List*",
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "dynamodb:PartiQLSelect",
            "kms:DescribeKey",
            "kms:ListAliases",
        ])
        .any()]),
        "AmazonSSMManagedInstanceCore" => doc(vec![
            S::allow(&[
                "ssm:DescribeAssociation",
                "ssm:GetDeployablePatchSnapshotForInstance",
                "ssm:GetDocument",
                "ssm:DescribeDocument",
                "ssm:GetManifest",
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:ListAssociations",
                "ssm:ListInstanceAssociations",
                "ssm:PutInventory",
                "ssm:PutComplianceItems",
                "ssm:PutConfigurePackageResult",
                "ssm:UpdateAssociationStatus",
                "ssm:UpdateInstanceAssociationStatus",
                "ssm:UpdateInstanceInformation",
            ])
            .any(),
            S::allow(&[
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ])
            .any(),
            S::allow(&[
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
            ])
            .any(),
        ]),
        "job-function/ViewOnlyAccess" => doc(vec![S::allow(&[
            "acm:ListCertificates",
            "athena:List*",
            "cloudformation:ListStacks",
            "cloudtrail:DescribeTrails",
            "cloudwatch:ListMetrics",
            "config:Describe*",
            "dynamodb:ListTables",
            "ec2:DescribeInstances",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
            "ecr:DescribeRepositories",
            "ecs:List*",
            "iam:List*",
            "kms:ListKeys",
            "lambda:List*",
            "logs:DescribeLogGroups",
            "rds:DescribeDBInstances",
            "route53:ListHostedZones",
            "s3:ListAllMyBuckets",
            "s3:ListBucket",
            "secretsmanager:ListSecrets",
            "sns:ListTopics",
            "sqs:ListQueues",
        ])
        .any()
        .sid("ViewOnlyAccess")]),
        "job-function/Billing" => doc(vec![S::allow(&[
            "account:GetAccountInformation",
            "aws-portal:*Billing",
            "aws-portal:*PaymentMethods",
            "aws-portal:*Usage",
            "billing:*",
            "budgets:ModifyBudget",
            "budgets:ViewBudget",
            "ce:*",
            "cur:*",
            "payments:*",
            "tax:*",
        ])
        .any()]),
        "service-role/AWSLambdaBasicExecutionRole" => doc(vec![S::allow(&[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ])
        .any()]),
        "service-role/AmazonECSTaskExecutionRolePolicy" => doc(vec![S::allow(&[
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ])
        .any()]),
        "service-role/AWSGlueServiceRole" => doc(vec![
            S::allow(&[
                "glue:*",
                "s3:GetBucketLocation",
                "s3:ListBucket",
                "s3:ListAllMyBuckets",
                "s3:GetBucketAcl",
                "ec2:DescribeVpcEndpoints",
                "ec2:DescribeRouteTables",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcAttribute",
                "iam:ListRolePolicies",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "cloudwatch:PutMetricData",
            ])
            .any(),
            S::allow(&["s3:GetObject", "s3:PutObject"])
                .on(&["arn:aws:s3:::aws-glue-*/*", "arn:aws:s3:::*/*aws-glue-*/*"]),
            S::allow(&[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ])
            .on(&["arn:aws:logs:*:*:*:/aws-glue/*"]),
        ]),
        "aws-service-role/AWSSupportServiceRolePolicy" => doc(vec![S::allow(&[
            "cloudformation:DescribeStacks",
            "cloudtrail:DescribeTrails",
            "cloudwatch:DescribeAlarms",
            "dynamodb:DescribeTable",
            "ec2:DescribeInstances",
            "ec2:DescribeVolumes",
            "ecs:DescribeClusters",
            "iam:GetAccountSummary",
            "iam:ListRoles",
            "lambda:ListFunctions",
            "rds:DescribeDBInstances",
            "s3:GetBucketPolicy",
            "s3:ListAllMyBuckets",
            "sqs:GetQueueAttributes",
        ])
        .any()
        .sid("AWSSupportAPIGatewayAccess")]),
        "aws-service-role/AWSTrustedAdvisorServiceRolePolicy" => doc(vec![S::allow(&[
            "autoscaling:DescribeAutoScalingGroups",
            "cloudtrail:DescribeTrails",
            "ec2:DescribeAddresses",
            "ec2:DescribeInstances",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVolumes",
            "iam:GenerateCredentialReport",
            "iam:GetAccountSummary",
            "iam:GetCredentialReport",
            "iam:ListUsers",
            "rds:DescribeDBInstances",
            "s3:GetBucketAcl",
            "s3:GetBucketPolicyStatus",
            "s3:ListAllMyBuckets",
        ])
        .any()
        .sid("TrustedAdvisorServiceRolePermissions")]),
        other => unreachable!("no document for AWS managed policy {other}"),
    }
}

/// `ServiceName` of a namespace in GetServiceLastAccessedDetails.
pub(crate) fn service_name(ns: &str) -> String {
    let known = match ns {
        "account" => "AWS Account Management",
        "acm" => "AWS Certificate Manager",
        "application-autoscaling" => "Application Auto Scaling",
        "athena" => "Amazon Athena",
        "autoscaling" => "Amazon EC2 Auto Scaling",
        "aws-portal" => "AWS Billing Console",
        "billing" => "AWS Billing",
        "budgets" => "AWS Budget Service",
        "ce" => "AWS Cost Explorer Service",
        "cloudformation" => "AWS CloudFormation",
        "cloudfront" => "Amazon CloudFront",
        "cloudtrail" => "AWS CloudTrail",
        "cloudwatch" => "Amazon CloudWatch",
        "config" => "AWS Config",
        "cur" => "AWS Cost and Usage Report",
        "dynamodb" => "Amazon DynamoDB",
        "ec2" => "Amazon EC2",
        "ec2messages" => "Amazon Message Delivery Service",
        "ecr" => "Amazon Elastic Container Registry",
        "ecs" => "Amazon Elastic Container Service",
        "elasticloadbalancing" => "Elastic Load Balancing",
        "events" => "Amazon EventBridge",
        "glue" => "AWS Glue",
        "guardduty" => "Amazon GuardDuty",
        "iam" => "AWS Identity and Access Management",
        "kms" => "AWS Key Management Service",
        "lambda" => "AWS Lambda",
        "logs" => "Amazon CloudWatch Logs",
        "organizations" => "AWS Organizations",
        "payments" => "AWS Payments",
        "rds" => "Amazon RDS",
        "route53" => "Amazon Route 53",
        "s3" => "Amazon S3",
        "s3-object-lambda" => "Amazon S3 Object Lambda",
        "secretsmanager" => "AWS Secrets Manager",
        "sns" => "Amazon SNS",
        "sqs" => "Amazon SQS",
        "ssm" => "AWS Systems Manager",
        "ssmmessages" => "Amazon Session Manager Message Gateway Service",
        "sts" => "AWS Security Token Service",
        "tax" => "AWS Tax Settings",
        _ => "",
    };
    if known.is_empty() {
        format!("AWS {ns}")
    } else {
        known.to_string()
    }
}

pub(crate) const TEAMS: &[&str] = &[
    "payments",
    "search",
    "platform",
    "data",
    "growth",
    "identity",
    "billing",
    "mobile",
    "web",
    "ml",
    "analytics",
    "infra",
    "checkout",
    "catalog",
    "inventory",
    "shipping",
    "notifications",
    "reporting",
    "ledger",
    "fraud",
    "support",
    "marketing",
    "crm",
    "etl",
    "media",
    "edge",
    "gateway",
    "risk",
    "pricing",
    "partners",
];

pub(crate) const APPS: &[&str] = &[
    "api",
    "worker",
    "ingest",
    "export",
    "sync",
    "scheduler",
    "indexer",
    "resizer",
    "notifier",
    "reporter",
    "processor",
    "aggregator",
    "crawler",
    "webhook",
    "auth",
    "cache",
    "reconciler",
    "importer",
    "archiver",
    "router",
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kim",
    "leo", "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "uma",
    "victor", "wendy", "xavier", "yara", "zane", "amir", "beatriz", "chen", "deepa", "emeka",
    "fatima", "goran", "hana", "ines", "jonas", "kenji", "lucia", "mateo", "noor", "olga", "priya",
    "rahul", "sofia", "tomas", "ulla", "vera", "wei", "yusuf", "zoe",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "anderson", "thomas",
    "taylor", "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris",
    "sanchez", "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king",
    "wright", "scott", "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker",
    "hall", "rivera", "campbell", "mitchell", "carter", "roberts", "kowalski", "novak", "tanaka",
    "muller", "rossi", "silva", "okafor",
];
