//! Deterministic generator of large `get-account-authorization-details` files (for the
//! benchmark and tests). No randomness source: a fixed linear congruential generator.

use serde_json::{json, Value};

pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

const ACCOUNT: &str = "123456789012";

const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:List*",
    "s3:Get*",
    "s3:*",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:*",
    "ec2:Describe*",
    "ec2:RunInstances",
    "ec2:StartInstances",
    "lambda:InvokeFunction",
    "lambda:CreateFunction",
    "lambda:Get*",
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sns:Publish",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "cloudwatch:PutMetricData",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter*",
    "iam:Get*",
    "iam:List*",
    "iam:PassRole",
    "cloudformation:Describe*",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "athena:StartQueryExecution",
    "glue:Get*",
    "kinesis:PutRecord",
    "rds:Describe*",
    "elasticloadbalancing:Describe*",
    "autoscaling:Describe*",
];

fn resource_for(rng: &mut Lcg, action: &str) -> String {
    let svc = action.split(':').next().unwrap_or("s3");
    if rng.chance(30) {
        return "*".into();
    }
    let n = rng.below(300);
    match svc {
        "s3" => {
            if rng.chance(50) {
                format!("arn:aws:s3:::data-bucket-{n}/*")
            } else {
                format!("arn:aws:s3:::data-bucket-{n}")
            }
        }
        "dynamodb" => format!("arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/table-{n}"),
        "lambda" => format!("arn:aws:lambda:eu-west-1:{ACCOUNT}:function:fn-{n}"),
        "sqs" => format!("arn:aws:sqs:eu-west-1:{ACCOUNT}:queue-{n}"),
        "sns" => format!("arn:aws:sns:eu-west-1:{ACCOUNT}:topic-{n}"),
        "kms" => format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/key-{n}"),
        "secretsmanager" => format!("arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:app-{n}-*"),
        "iam" | "sts" => format!("arn:aws:iam::{ACCOUNT}:role/service-role-{n}"),
        "logs" => format!("arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/app/{n}:*"),
        _ => "*".into(),
    }
}

fn statement(rng: &mut Lcg) -> Value {
    if rng.chance(2) {
        // a few principals may assume roles: a pattern of roles, or all of them
        let r = if rng.chance(20) {
            "*".to_string()
        } else {
            format!("arn:aws:iam::{ACCOUNT}:role/role-{}*", rng.below(50))
        };
        return json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": r});
    }
    let n_actions = 1 + rng.below(3);
    let actions: Vec<&str> = (0..n_actions)
        .map(|_| ACTIONS[rng.below(ACTIONS.len())])
        .collect();
    let resources: Vec<String> = actions
        .iter()
        .take(2)
        .map(|a| resource_for(rng, a))
        .collect();
    let mut st = json!({"Effect": "Allow", "Action": actions, "Resource": resources});
    if rng.chance(10) {
        st["Condition"] = json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}});
    }
    if rng.chance(5) {
        st["Effect"] = json!("Deny");
        st["Resource"] = json!("*");
    }
    st
}

fn document(rng: &mut Lcg, statements: usize) -> Value {
    let sts: Vec<Value> = (0..statements).map(|_| statement(rng)).collect();
    json!({"Version": "2012-10-17", "Statement": sts})
}

fn trust(rng: &mut Lcg) -> Value {
    let principal = match rng.below(10) {
        0 => json!({"AWS": "arn:aws:iam::999988887777:root"}),
        1 => {
            json!({"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com")})
        }
        2..=5 => json!({"Service": "lambda.amazonaws.com"}),
        _ => json!({"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}),
    };
    let mut st = json!({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"});
    if rng.chance(30) {
        st["Condition"] = json!({"StringEquals": {"sts:ExternalId": "x-123"}});
    }
    json!({"Version": "2012-10-17", "Statement": [st]})
}

/// Generates an account with the given numbers of roles, users and customer managed
/// policies (plus AdministratorAccess and ReadOnly-style AWS managed policies).
pub fn generate(roles: usize, users: usize, policies: usize, seed: u64) -> Value {
    let mut rng = Lcg::new(seed);
    let mut pols = Vec::new();
    let mut policy_arns = Vec::new();
    for i in 0..policies {
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy/generated-{i}");
        let k = 1 + rng.below(4);
        let doc = document(&mut rng, k);
        pols.push(json!({
            "PolicyName": format!("generated-{i}"), "PolicyId": format!("ANPA{i:016}"), "Arn": arn,
            "Path": "/", "DefaultVersionId": "v1", "AttachmentCount": 1, "PermissionsBoundaryUsageCount": 0,
            "IsAttachable": true, "CreateDate": "2024-01-01T00:00:00Z", "UpdateDate": "2024-01-01T00:00:00Z",
            "PolicyVersionList": [{"Document": doc, "VersionId": "v1", "IsDefaultVersion": true, "CreateDate": "2024-01-01T00:00:00Z"}]
        }));
        policy_arns.push(arn);
    }
    let admin_arn = "arn:aws:iam::aws:policy/AdministratorAccess".to_string();
    pols.push(json!({
        "PolicyName": "AdministratorAccess", "Arn": admin_arn, "DefaultVersionId": "v1",
        "PolicyVersionList": [{"Document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, "VersionId": "v1", "IsDefaultVersion": true}]
    }));
    let boundary_arn = "arn:aws:iam::aws:policy/PowerUserAccess".to_string();
    pols.push(json!({
        "PolicyName": "PowerUserAccess", "Arn": boundary_arn, "DefaultVersionId": "v1",
        "PolicyVersionList": [{"Document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole", "iam:ListRoles"], "Resource": "*"}]}, "VersionId": "v1", "IsDefaultVersion": true}]
    }));
    let groups: Vec<Value> = (0..50)
        .map(|i| {
            let managed: Vec<Value> = (0..2)
                .map(|_| json!({"PolicyName": "p", "PolicyArn": policy_arns[rng.below(policy_arns.len())]}))
                .collect();
            json!({
                "Path": "/", "GroupName": format!("group-{i}"), "GroupId": format!("AGPA{i:016}"),
                "Arn": format!("arn:aws:iam::{ACCOUNT}:group/group-{i}"), "CreateDate": "2024-01-01T00:00:00Z",
                "GroupPolicyList": [{"PolicyName": "inline", "PolicyDocument": document(&mut rng, 2)}],
                "AttachedManagedPolicies": managed
            })
        })
        .collect();
    let attach = |rng: &mut Lcg, i: usize| -> Vec<Value> {
        let mut v: Vec<Value> = (0..rng.below(3))
            .map(|_| json!({"PolicyName": "p", "PolicyArn": policy_arns[rng.below(policy_arns.len())]}))
            .collect();
        if i % 1000 == 7 {
            v.push(json!({"PolicyName": "AdministratorAccess", "PolicyArn": admin_arn}));
        }
        v
    };
    let users_v: Vec<Value> = (0..users)
        .map(|i| {
            let mut u = json!({
                "Path": "/", "UserName": format!("user-{i}"), "UserId": format!("AIDA{i:016}"),
                "Arn": format!("arn:aws:iam::{ACCOUNT}:user/user-{i}"), "CreateDate": "2024-01-01T00:00:00Z",
                "GroupList": if rng.chance(50) { json!([format!("group-{}", rng.below(50))]) } else { json!([format!("group-{}", rng.below(50)), format!("group-{}", rng.below(50))]) },
                "AttachedManagedPolicies": attach(&mut rng, i),
                "Tags": [{"Key": "team", "Value": format!("team-{}", i % 17)}]
            });
            if rng.chance(30) {
                u["UserPolicyList"] = json!([{"PolicyName": "own", "PolicyDocument": document(&mut rng, 2)}]);
            }
            u
        })
        .collect();
    let roles_v: Vec<Value> = (0..roles)
        .map(|i| {
            let k = 1 + rng.below(3);
            let mut r = json!({
                "Path": "/", "RoleName": format!("role-{i}"), "RoleId": format!("AROA{i:016}"),
                "Arn": format!("arn:aws:iam::{ACCOUNT}:role/role-{i}"), "CreateDate": "2024-01-01T00:00:00Z",
                "AssumeRolePolicyDocument": trust(&mut rng),
                "InstanceProfileList": [],
                "RolePolicyList": [{"PolicyName": "inline", "PolicyDocument": document(&mut rng, k)}],
                "AttachedManagedPolicies": attach(&mut rng, i),
                "Tags": [],
                "RoleLastUsed": {"LastUsedDate": "2026-11-01T00:00:00Z", "Region": "eu-west-1"}
            });
            if rng.chance(20) {
                r["PermissionsBoundary"] = json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary_arn});
            }
            r
        })
        .collect();
    json!({
        "UserDetailList": users_v,
        "GroupDetailList": groups,
        "RoleDetailList": roles_v,
        "Policies": pols
    })
}
