//! Builds the account model from a spec: who exists, what they are attached to, who may
//! assume which role, and when everything was created and last used.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{doc, APPS, AWS_MANAGED, FIRST_NAMES, LAST_NAMES, S, TEAMS};
use super::json::{arr, jobj, J};
use super::model::*;
use super::rng::Rng;
use super::SampleAccountSpec;

const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z
pub(crate) const YEAR_START: i64 = 1_767_225_600;
/// The snapshot time of every generated account: 2026-11-25T02:00:00Z.
pub(crate) const SNAPSHOT: i64 = YEAR_START + 328 * DAY + 2 * 3600;
/// The fewest principals an account is generated with (the fixed roles and users).
pub(crate) const MIN_PRINCIPALS: usize = 8;

struct Team {
    name: &'static str,
    data_bucket: String,
    exports_bucket: String,
    tables: Vec<String>,
    key_arn: String,
    queue_arn: String,
    topic_arn: String,
    secret_prefix: String,
    /// s3 rw, s3 read, dynamodb rw, kms decrypt, app runtime
    policies: [usize; 5],
    ops_policy: Option<usize>,
    group: usize,
}

struct Others {
    management: String,
    security: String,
    tooling: String,
    vendors: Vec<(&'static str, String, String)>,
}

struct Fixed {
    admin: usize,
    developers: usize,
    read_only: usize,
    auditors: usize,
    billing: usize,
    data_engineers: usize,
    power_users: usize,
    dev_boundary: usize,
    svc_boundary: usize,
    deny_outside: usize,
    developer_access: usize,
    policy_manager: usize,
    ci_deploy: usize,
}

struct B {
    acct: String,
    region: String,
    env: &'static str,
    rng: Rng,
    ids: Rng,
    now: i64,
    created: i64,
    policies: Vec<Policy>,
    by_name: BTreeMap<String, usize>,
    groups: Vec<Group>,
    users: Vec<User>,
    roles: Vec<Role>,
    taken: BTreeSet<String>,
    teams: Vec<Team>,
    others: Others,
}

fn tag(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

impl B {
    fn unique(&mut self, kind: &str, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 2;
        while !self.taken.insert(format!("{kind}:{name}")) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    /// A creation time after the account was created and well before the snapshot.
    fn created_time(&mut self) -> i64 {
        let lo = self.created + DAY;
        let hi = self.now - 14 * DAY;
        // Skew towards the start of the year: most of an account is old.
        let a = self.rng.range(lo, hi);
        let b = self.rng.range(lo, hi);
        a.min(b)
    }

    fn activity(&mut self, weights: [u32; 3]) -> Activity {
        match self.rng.weighted(&weights) {
            0 => Activity::Active,
            1 => Activity::Stale,
            _ => Activity::Never,
        }
    }

    /// When a principal created at `created` was last used, given its activity.
    fn last_used(&mut self, activity: Activity, created: i64) -> (Activity, Option<i64>) {
        match activity {
            Activity::Active => {
                let lo = (self.now - 30 * DAY).max(created + 3600);
                (activity, Some(self.rng.range(lo, self.now - 3600)))
            }
            Activity::Stale => {
                let hi = self.now - 120 * DAY;
                if created + DAY >= hi {
                    (Activity::Never, None)
                } else {
                    (activity, Some(self.rng.range(created + DAY, hi)))
                }
            }
            Activity::Never => (activity, None),
        }
    }

    fn aws_policy(&mut self, name: &str) -> usize {
        if let Some(i) = self.by_name.get(&format!("aws:{name}")) {
            return *i;
        }
        let p = AWS_MANAGED
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("unknown AWS managed policy {name}"));
        let id = self.ids.aws_id("ANPA");
        let policy = Policy {
            name: p.policy_name().to_string(),
            path: p.path.to_string(),
            arn: p.arn(),
            id,
            aws: true,
            versions: vec![PolicyVersion {
                id: p.version.to_string(),
                doc: p.document(),
                created: p.updated.to_string(),
            }],
            default: 0,
            created: p.created.to_string(),
            updated: p.updated.to_string(),
        };
        self.policies.push(policy);
        let i = self.policies.len() - 1;
        self.by_name.insert(format!("aws:{name}"), i);
        i
    }

    /// A customer managed policy. Some get older versions (the first one broader, as
    /// policies tend to start), the last version is the default.
    fn customer_policy(&mut self, name: &str, path: &str, document: J) -> usize {
        let name = self.unique("policy", name);
        let created = self.created_time();
        let n_versions = match self.rng.below(10) {
            0..=6 => 1,
            7 | 8 => 2,
            _ => 3,
        };
        let mut versions = Vec::with_capacity(n_versions);
        let mut t = created;
        for v in 1..n_versions {
            let ns = first_namespace(&document).unwrap_or_else(|| "s3".to_string());
            let older = if v == 1 {
                doc(vec![S::allow(&[format!("{ns}:*")]).any()])
            } else {
                doc(vec![S::allow(&[
                    format!("{ns}:Get*"),
                    format!("{ns}:List*"),
                ])
                .any()])
            };
            versions.push(PolicyVersion {
                id: format!("v{v}"),
                doc: older,
                created: iso(t),
            });
            t = self.rng.range(t + 3600, (t + 40 * DAY).min(self.now - DAY));
        }
        versions.push(PolicyVersion {
            id: format!("v{n_versions}"),
            doc: document,
            created: iso(t),
        });
        let policy = Policy {
            arn: format!("arn:aws:iam::{}:policy{}{}", self.acct, path, name),
            id: self.ids.aws_id("ANPA"),
            name,
            path: path.to_string(),
            aws: false,
            default: versions.len() - 1,
            versions,
            created: iso(created),
            updated: iso(t),
        };
        self.policies.push(policy);
        self.policies.len() - 1
    }

    fn group(
        &mut self,
        name: &str,
        path: &str,
        attached: Vec<usize>,
        inline: Vec<Inline>,
    ) -> usize {
        let name = self.unique("group", name);
        let created = self.created_time();
        let g = Group {
            arn: format!("arn:aws:iam::{}:group{}{}", self.acct, path, name),
            id: self.ids.aws_id("AGPA"),
            name,
            path: path.to_string(),
            created,
            attached,
            inline,
        };
        self.groups.push(g);
        self.groups.len() - 1
    }

    fn same_account_root(&self) -> String {
        format!("arn:aws:iam::{}:root", self.acct)
    }

    fn bucket_arns(bucket: &str) -> [String; 2] {
        [
            format!("arn:aws:s3:::{bucket}"),
            format!("arn:aws:s3:::{bucket}/*"),
        ]
    }
}

fn first_namespace(d: &J) -> Option<String> {
    let st = d.get("Statement")?;
    let first = match st {
        J::Arr(xs) => xs.first()?,
        other => other,
    };
    let a = first.get("Action")?.strs().first()?.to_string();
    a.split(':').next().map(str::to_string).filter(|s| s != "*")
}

fn trust(statements: Vec<S>) -> J {
    doc(statements)
}

fn service_trust(service: &str) -> J {
    trust(vec![
        S::allow(&["sts:AssumeRole"]).principal(jobj! {"Service" => service})
    ])
}

pub(crate) fn build(spec: &SampleAccountSpec, extra_customer_policies: usize) -> Model {
    let n = spec.principals.max(MIN_PRINCIPALS);
    let mut rng = Rng::derive(spec.seed, "accessflow-sample-account");
    let ids = Rng::derive(spec.seed, "ids");
    let region = [
        "us-east-1",
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
    ][rng.below(5) as usize]
        .to_string();
    let env = *rng.pick(&["prod", "prod", "staging", "dev", "shared"]);
    let created = YEAR_START + rng.range(0, 20 * DAY);
    let other_id = |r: &mut Rng| format!("{:012}", 100_000_000_000 + r.below(899_999_999_999));
    let others = Others {
        management: other_id(&mut rng),
        security: other_id(&mut rng),
        tooling: other_id(&mut rng),
        vendors: vec![
            (
                "monitoring",
                other_id(&mut rng),
                format!("mon-{}", rng.hex(12)),
            ),
            (
                "cost-insights",
                other_id(&mut rng),
                format!("ci-{}", rng.hex(16)),
            ),
            ("backup-vault", other_id(&mut rng), rng.uuid()),
        ],
    };
    let mut b = B {
        acct: spec.account_id.clone(),
        region,
        env,
        rng,
        ids,
        now: SNAPSHOT,
        created,
        policies: Vec::new(),
        by_name: BTreeMap::new(),
        groups: Vec::new(),
        users: Vec::new(),
        roles: Vec::new(),
        taken: BTreeSet::new(),
        teams: Vec::new(),
        others,
    };

    // Sizes: users + roles == n exactly; teams (and with them groups and customer managed
    // policies) grow with the square root of n.
    let user_frac = 0.30 + 0.15 * b.rng.unit();
    let n_users = ((n as f64 * user_frac).round() as usize).clamp(2, n - 6);
    let n_roles = n - n_users;
    let n_teams = ((n as f64).sqrt() * 0.65)
        .round()
        .clamp(2.0, TEAMS.len() as f64) as usize;

    let fixed = fixed_policies_and_groups(&mut b);
    make_teams(&mut b, n_teams);
    fixed_principals(&mut b, &fixed);
    for i in 0..n_users - 1 {
        gen_user(&mut b, &fixed, i, n);
    }
    let fixed_roles = b.roles.len();
    let mut i = 0;
    while b.roles.len() < n_roles {
        gen_role(&mut b, &fixed, i, n, fixed_roles);
        i += 1;
    }
    let max_password_age_days = if b.rng.chance(0.4) { Some(90) } else { None };
    let root_password_last_used = if b.rng.chance(0.6) {
        Some(b.rng.range(created + DAY, b.now - 60 * DAY))
    } else {
        None
    };
    // Drawn last, so an account without them is the same as before.
    extra_policies(&mut b, extra_customer_policies);
    Model {
        account_id: b.acct,
        seed: spec.seed,
        region: b.region,
        now: b.now,
        account_created: created,
        root_password_last_used,
        max_password_age_days,
        policies: b.policies,
        groups: b.groups,
        users: b.users,
        roles: b.roles,
    }
}

/// `count` more customer managed policies (for load tests), each scoped to one service's
/// team resources and attached to one or two existing roles.
fn extra_policies(b: &mut B, count: usize) {
    const SERVICES: &[(&str, &[&str], &str)] = &[
        (
            "s3",
            &["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            "arn:aws:s3:::",
        ),
        (
            "dynamodb",
            &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"],
            "table/",
        ),
        ("sqs", &["sqs:SendMessage", "sqs:ReceiveMessage"], ""),
        ("kms", &["kms:Decrypt", "kms:GenerateDataKey"], "key/"),
        (
            "lambda",
            &["lambda:InvokeFunction", "lambda:GetFunction"],
            "function:",
        ),
    ];
    if b.roles.is_empty() {
        return;
    }
    for i in 0..count {
        let (svc, actions, kind) = SERVICES[b.rng.below(SERVICES.len() as u64) as usize];
        let name = format!("{svc}-access-{i:05}");
        let resource = match svc {
            "s3" => format!("{kind}data-{i:05}-{}/*", b.acct),
            "sqs" => format!("arn:aws:sqs:{}:{}:queue-{i:05}", b.region, b.acct),
            _ => format!("arn:aws:{svc}:{}:{}:{kind}res-{i:05}", b.region, b.acct),
        };
        let n_actions = 1 + b.rng.below(actions.len() as u64) as usize;
        let document = doc(vec![S::allow(&actions[..n_actions]).on(&[resource])]);
        let policy = b.customer_policy(&name, "/load/", document);
        for _ in 0..1 + b.rng.below(2) {
            let r = b.rng.below(b.roles.len() as u64) as usize;
            if !b.roles[r].attached.contains(&policy) {
                b.roles[r].attached.push(policy);
            }
        }
    }
}

fn fixed_policies_and_groups(b: &mut B) -> Fixed {
    let acct = b.acct.clone();
    let dev_boundary = b.customer_policy(
        "DeveloperBoundary",
        "/boundaries/",
        doc(vec![
            S::allow(&["iam:*", "organizations:*", "account:*"])
                .not_action()
                .any()
                .sid("AllowEverythingOutsideIdentity"),
            S::allow(&[
                "iam:Get*",
                "iam:List*",
                "iam:PassRole",
                "iam:CreateServiceLinkedRole",
            ])
            .any()
            .sid("AllowReadingIdentityAndPassingRoles"),
            S::deny(&[
                "iam:DeleteRolePermissionsBoundary",
                "iam:DeleteUserPermissionsBoundary",
                "iam:PutRolePermissionsBoundary",
                "iam:PutUserPermissionsBoundary",
            ])
            .any()
            .sid("DenyBoundaryTampering"),
            S::deny(&[
                "cloudtrail:DeleteTrail",
                "cloudtrail:StopLogging",
                "guardduty:Delete*",
            ])
            .any()
            .sid("DenyDisablingAudit"),
        ]),
    );
    let svc_boundary = b.customer_policy(
        "ServiceBoundary",
        "/boundaries/",
        doc(vec![
            S::allow(&[
                "s3:*",
                "dynamodb:*",
                "sqs:*",
                "sns:*",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "logs:*",
                "secretsmanager:GetSecretValue",
                "ssm:GetParameter*",
                "xray:PutTraceSegments",
            ])
            .any()
            .sid("ServiceWorkloads"),
            S::deny(&["iam:*", "sts:AssumeRole"])
                .any()
                .sid("NoIdentityChanges"),
        ]),
    );
    let cidrs = [
        "203.0.113.0/24".to_string(),
        format!("198.51.100.{}/32", b.rng.below(250) + 1),
    ];
    let deny_outside = b.customer_policy(
        "DenyOutsideCorpNetwork",
        "/",
        doc(vec![S::deny(&["*"])
            .any()
            .sid("DenyRequestsFromOutsideTheOffice")
            .when(jobj! {
                "NotIpAddress" => jobj!{"aws:SourceIp" => arr(&cidrs)},
                "Bool" => jobj!{"aws:ViaAWSService" => "false"},
            })]),
    );
    let developer_access = b.customer_policy(
        "DeveloperAccess",
        "/",
        doc(vec![
            S::allow(&[
                "ec2:Describe*",
                "logs:*",
                "cloudwatch:*",
                "lambda:Get*",
                "lambda:List*",
                "lambda:InvokeFunction",
                "s3:ListAllMyBuckets",
                "s3:GetBucketLocation",
                "dynamodb:DescribeTable",
                "dynamodb:ListTables",
                "sqs:ListQueues",
                "ecs:Describe*",
                "ecs:List*",
                "cloudformation:Describe*",
                "cloudformation:List*",
            ])
            .any()
            .sid("EverydayDevelopment"),
            S::deny(&[
                "s3:DeleteBucket",
                "dynamodb:DeleteTable",
                "rds:DeleteDBInstance",
            ])
            .any()
            .sid("NoDestructiveDeletes"),
        ]),
    );
    let policy_manager = b.customer_policy(
        "PolicyManager",
        "/",
        doc(vec![S::allow(&[
            "iam:CreatePolicy",
            "iam:CreatePolicyVersion",
            "iam:DeletePolicyVersion",
            "iam:SetDefaultPolicyVersion",
            "iam:GetPolicy",
            "iam:GetPolicyVersion",
            "iam:ListPolicies",
            "iam:ListPolicyVersions",
        ])
        .on(&[format!("arn:aws:iam::{acct}:policy/*")])
        .sid("ManageCustomerPolicies")]),
    );
    let ci_deploy = b.customer_policy(
        "CIDeployPolicy",
        "/ci/",
        doc(vec![
            S::allow(&["iam:PassRole"])
                .on(&[format!("arn:aws:iam::{acct}:role/service-role/*")])
                .sid("PassServiceRoles"),
            S::allow(&[
                "lambda:CreateFunction",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:PublishVersion",
                "lambda:InvokeFunction",
            ])
            .any()
            .sid("DeployFunctions"),
            S::allow(&["cloudformation:*"]).any().sid("Stacks"),
            S::allow(&["s3:PutObject", "s3:GetObject"])
                .on(&[format!("arn:aws:s3:::cd-artifacts-{acct}/*")])
                .sid("Artifacts"),
            S::allow(&["ecr:*"]).any(),
        ]),
    );
    // An old policy nobody uses any more.
    b.customer_policy(
        "legacy-ec2-admin",
        "/",
        doc(vec![S::allow(&[
            "ec2:*",
            "elasticloadbalancing:*",
            "autoscaling:*",
        ])
        .any()]),
    );

    let require_mfa = Inline {
        name: "RequireMFA".into(),
        doc: doc(vec![S::deny(&[
            "iam:ChangePassword",
            "iam:CreateVirtualMFADevice",
            "iam:EnableMFADevice",
            "iam:GetUser",
            "iam:ListMFADevices",
            "iam:ListVirtualMFADevices",
            "iam:ResyncMFADevice",
            "sts:GetSessionToken",
        ])
        .not_action()
        .any()
        .sid("DenyAllExceptListedIfNoMFA")
        .when(
            jobj! {"BoolIfExists" => jobj!{"aws:MultiFactorAuthPresent" => "false"}},
        )]),
    };
    let admin_p = b.aws_policy("AdministratorAccess");
    let admin = b.group("Admins", "/", vec![admin_p], vec![require_mfa.clone()]);
    let dev_p = developer_access;
    let developers = b.group("Developers", "/", vec![dev_p], vec![require_mfa.clone()]);
    let ro = b.aws_policy("ReadOnlyAccess");
    let read_only = b.group("ReadOnly", "/", vec![ro], vec![]);
    let sa = b.aws_policy("SecurityAudit");
    let vo = b.aws_policy("job-function/ViewOnlyAccess");
    let auditors = b.group("SecurityAuditors", "/", vec![sa, vo], vec![]);
    let bp = b.aws_policy("job-function/Billing");
    let billing = b.group("Billing", "/", vec![bp], vec![]);
    let s3ro = b.aws_policy("AmazonS3ReadOnlyAccess");
    let ddbro = b.aws_policy("AmazonDynamoDBReadOnlyAccess");
    let data_engineers = b.group(
        "DataEngineers",
        "/",
        vec![s3ro, ddbro],
        vec![Inline {
            name: "athena-and-glue".into(),
            doc: doc(vec![
                S::allow(&["athena:*", "glue:Get*", "glue:BatchGet*", "glue:List*"]).any(),
                S::deny(&["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"]).any(),
            ]),
        }],
    );
    let pu = b.aws_policy("PowerUserAccess");
    let power_users = b.group("PowerUsers", "/", vec![pu, deny_outside], vec![require_mfa]);
    Fixed {
        admin,
        developers,
        read_only,
        auditors,
        billing,
        data_engineers,
        power_users,
        dev_boundary,
        svc_boundary,
        deny_outside,
        developer_access,
        policy_manager,
        ci_deploy,
    }
}

fn make_teams(b: &mut B, n_teams: usize) {
    let mut names: Vec<&'static str> = TEAMS.to_vec();
    // Fisher-Yates, so each account has its own teams.
    for i in (1..names.len()).rev() {
        let j = b.rng.below(i as u64 + 1) as usize;
        names.swap(i, j);
    }
    let acct = b.acct.clone();
    let short = &acct[8..];
    for &t in names.iter().take(n_teams) {
        let region = b.region.clone();
        let data_bucket = format!("{t}-data-{}-{short}", b.env);
        let exports_bucket = format!("{t}-exports-{}-{short}", b.env);
        let n_tables = 1 + b.rng.below(3) as usize;
        let tables: Vec<String> = (0..n_tables)
            .map(|_| {
                let app = *b.rng.pick(APPS);
                format!("arn:aws:dynamodb:{region}:{acct}:table/{t}-{app}")
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let key_arn = format!("arn:aws:kms:{region}:{acct}:key/{}", b.rng.uuid());
        let queue_arn = format!("arn:aws:sqs:{region}:{acct}:{t}-events");
        let topic_arn = format!("arn:aws:sns:{region}:{acct}:{t}-notifications");
        let secret_prefix = format!("arn:aws:secretsmanager:{region}:{acct}:secret:{t}/*");
        let [data, data_obj] = B::bucket_arns(&data_bucket);
        let [exp, exp_obj] = B::bucket_arns(&exports_bucket);

        let s3_rw = b.customer_policy(
            &format!("{t}-s3-data-rw"),
            "/teams/",
            doc(vec![
                S::allow(&["s3:ListBucket", "s3:GetBucketLocation"])
                    .on(&[&data, &exp])
                    .sid("ListTeamBuckets"),
                S::allow(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
                    .on(&[&data_obj, &exp_obj])
                    .sid("ReadWriteTeamObjects"),
                S::deny(&["s3:DeleteBucket", "s3:PutBucketPolicy"])
                    .on(&[&data, &exp])
                    .sid("ProtectBuckets"),
            ]),
        );
        let s3_read = b.customer_policy(
            &format!("{t}-s3-read"),
            "/teams/",
            doc(vec![
                S::allow(&["s3:GetObject", "s3:ListBucket"])
                    .on(&[&data, &data_obj])
                    .sid("ReadTeamData"),
                S::deny(&["s3:*"])
                    .not_on(&[&data, &data_obj, &exp, &exp_obj])
                    .sid("OnlyTeamBuckets")
                    .when(
                        jobj! {"StringNotEquals" => jobj!{"aws:PrincipalAccount" => acct.as_str()}},
                    ),
            ]),
        );
        let ddb_rw = b.customer_policy(
            &format!("{t}-dynamodb-rw"),
            "/teams/",
            doc(vec![S::allow(&[
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            ])
            .on(&tables
                .iter()
                .flat_map(|t| [t.clone(), format!("{t}/index/*")])
                .collect::<Vec<_>>())
            .sid("TeamTables")]),
        );
        let kms = b.customer_policy(
            &format!("{t}-kms-decrypt"),
            "/teams/",
            doc(vec![S::allow(&[
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:DescribeKey",
            ])
            .on(&[&key_arn])
            .when(
                jobj! {"StringEquals" => jobj!{"kms:ViaService" => arr(&[
                    format!("s3.{region}.amazonaws.com"),
                    format!("dynamodb.{region}.amazonaws.com"),
                ])}},
            )]),
        );
        let runtime = b.customer_policy(
            &format!("{t}-app-runtime"),
            "/teams/",
            doc(vec![
                S::allow(&[
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ])
                .on(&[&queue_arn]),
                S::allow(&["sns:Publish"]).on(&[&topic_arn]),
                S::allow(&["secretsmanager:GetSecretValue"]).on(&[&secret_prefix]),
                S::allow(&["ssm:GetParameter", "ssm:GetParametersByPath"])
                    .on(&[format!("arn:aws:ssm:{region}:{acct}:parameter/{t}/*")]),
            ]),
        );
        let ops_policy = if b.rng.chance(0.4) {
            Some(b.customer_policy(
                &format!("{t}-ec2-ops"),
                "/teams/",
                doc(vec![
                    S::allow(&["ec2:Describe*"]).any(),
                    S::allow(&["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances"])
                        .on(&[format!("arn:aws:ec2:{region}:{acct}:instance/*")])
                        .when(jobj! {"StringEquals" => jobj!{"aws:ResourceTag/team" => t}}),
                ]),
            ))
        } else {
            None
        };
        let mut inline = Vec::new();
        if b.rng.chance(0.3) {
            inline.push(Inline {
                name: format!("{t}-oncall"),
                doc: doc(vec![
                    S::allow(&["logs:*", "cloudwatch:*", "xray:Get*"]).any()
                ]),
            });
        }
        let mut attached = vec![s3_read, runtime];
        attached.extend(ops_policy);
        let group = b.group(&format!("team-{t}"), "/teams/", attached, inline);
        b.teams.push(Team {
            name: t,
            data_bucket,
            exports_bucket,
            tables,
            key_arn,
            queue_arn,
            topic_arn,
            secret_prefix,
            policies: [s3_rw, s3_read, ddb_rw, kms, runtime],
            ops_policy,
            group,
        });
    }
}

struct RoleArgs {
    name: String,
    path: &'static str,
    trust: J,
    attached: Vec<usize>,
    inline: Vec<Inline>,
    boundary: Option<usize>,
    tags: Vec<(String, String)>,
    instance_profile: bool,
    activity: [u32; 3],
}

fn add_role(b: &mut B, a: RoleArgs) {
    let name = b.unique("role", &a.name);
    let created = b.created_time();
    let act = b.activity(a.activity);
    let (activity, last_used) = b.last_used(act, created);
    let instance_profile = a.instance_profile.then(|| InstanceProfile {
        name: name.clone(),
        id: b.ids.aws_id("AIPA"),
        created,
    });
    let role = Role {
        arn: format!("arn:aws:iam::{}:role{}{}", b.acct, a.path, name),
        id: b.ids.aws_id("AROA"),
        name,
        path: a.path.to_string(),
        created,
        trust: a.trust,
        instance_profile,
        attached: a.attached,
        inline: a.inline,
        boundary: a.boundary,
        tags: a.tags,
        last_used,
        activity,
    };
    b.roles.push(role);
}

fn fixed_principals(b: &mut B, f: &Fixed) {
    let admin = b.aws_policy("AdministratorAccess");
    let ro = b.aws_policy("ReadOnlyAccess");
    let mgmt = format!("arn:aws:iam::{}:root", b.others.management);
    add_role(
        b,
        RoleArgs {
            name: "OrganizationAccountAccessRole".into(),
            path: "/",
            trust: trust(vec![
                S::allow(&["sts:AssumeRole"]).principal(jobj! {"AWS" => mgmt})
            ]),
            attached: vec![admin],
            inline: vec![],
            boundary: None,
            tags: vec![],
            instance_profile: false,
            activity: [30, 50, 20],
        },
    );
    let saml = format!(
        "arn:aws:iam::{}:saml-provider/AWSSSO_{}_DO_NOT_DELETE",
        b.acct,
        b.rng.hex(16)
    );
    for (set, policy, weights) in [
        ("AdministratorAccess", admin, [90, 10, 0]),
        ("ReadOnlyAccess", ro, [80, 15, 5]),
    ] {
        let suffix = b.rng.hex(16);
        add_role(
            b,
            RoleArgs {
                name: format!("AWSReservedSSO_{set}_{suffix}"),
                path: "/aws-reserved/sso.amazonaws.com/",
                trust: trust(vec![S::allow(&[
                    "sts:AssumeRoleWithSAML",
                    "sts:TagSession",
                ])
                .principal(jobj! {"Federated" => saml.as_str()})
                .when(jobj! {"StringEquals" => jobj!{
                    "SAML:aud" => "https://signin.aws.amazon.com/saml"
                }})]),
                attached: vec![policy],
                inline: vec![],
                boundary: None,
                tags: vec![],
                instance_profile: false,
                activity: weights,
            },
        );
    }
    for (svc, policy) in [
        ("support", "aws-service-role/AWSSupportServiceRolePolicy"),
        (
            "trustedadvisor",
            "aws-service-role/AWSTrustedAdvisorServiceRolePolicy",
        ),
    ] {
        let p = b.aws_policy(policy);
        let name = if svc == "support" {
            "AWSServiceRoleForSupport"
        } else {
            "AWSServiceRoleForTrustedAdvisor"
        };
        let path: &'static str = if svc == "support" {
            "/aws-service-role/support.amazonaws.com/"
        } else {
            "/aws-service-role/trustedadvisor.amazonaws.com/"
        };
        add_role(
            b,
            RoleArgs {
                name: name.into(),
                path,
                trust: service_trust(&format!("{svc}.amazonaws.com")),
                attached: vec![p],
                inline: vec![],
                boundary: None,
                tags: vec![],
                instance_profile: false,
                activity: [100, 0, 0],
            },
        );
    }
    // The break-glass admin user: AdministratorAccess attached directly, password and MFA.
    add_user(
        b,
        UserArgs {
            name: "breakglass-admin".into(),
            path: "/",
            groups: vec![],
            attached: vec![admin],
            inline: vec![],
            boundary: None,
            tags: vec![tag("used_by", "emergency")],
            kind: UserKind::BreakGlass,
            activity: [5, 60, 35],
        },
    );
    let _ = f;
}

#[derive(Clone, Copy, PartialEq)]
enum UserKind {
    Human,
    Service,
    BreakGlass,
}

struct UserArgs {
    name: String,
    path: &'static str,
    groups: Vec<usize>,
    attached: Vec<usize>,
    inline: Vec<Inline>,
    boundary: Option<usize>,
    tags: Vec<(String, String)>,
    kind: UserKind,
    activity: [u32; 3],
}

fn add_user(b: &mut B, a: UserArgs) {
    let name = b.unique("user", &a.name);
    let created = b.created_time();
    let act = b.activity(a.activity);
    let (activity, last_used) = b.last_used(act, created);
    let region = b.region.clone();
    let key = |b: &mut B, used: Option<i64>, services: &[&str]| {
        let rotated = b
            .rng
            .range(created, used.unwrap_or(b.now - DAY).max(created + 1));
        AccessKey {
            active: true,
            rotated,
            last_used: used.map(|t| (t, region.clone(), b.rng.pick(services).to_string())),
        }
    };
    let creds = match a.kind {
        UserKind::BreakGlass => Credentials {
            password: Some((last_used, created + b.rng.range(0, DAY))),
            mfa: true,
            keys: [None, None],
        },
        UserKind::Human => {
            let password = if b.rng.chance(0.93) {
                let changed = b
                    .rng
                    .range(created, last_used.unwrap_or(b.now - DAY).max(created + 1));
                Some((last_used, changed))
            } else {
                None
            };
            let mfa = password.is_some() && b.rng.chance(0.85);
            let k1 = if b.rng.chance(0.25) || password.is_none() {
                let used = last_used.filter(|_| b.rng.chance(0.7));
                Some(key(b, used, &["sts", "s3", "ec2", "logs"]))
            } else {
                None
            };
            Credentials {
                password,
                mfa,
                keys: [k1, None],
            }
        }
        UserKind::Service => {
            let k1 = key(
                b,
                last_used,
                &["s3", "dynamodb", "sqs", "sts", "secretsmanager"],
            );
            let k2 = if b.rng.chance(0.2) {
                // An old key, deactivated at rotation, or still active and forgotten.
                let rotated = b.rng.range(created, k1.rotated.max(created + 1));
                let active = b.rng.chance(0.3);
                let used = (rotated + DAY < k1.rotated).then(|| {
                    (
                        b.rng.range(rotated, k1.rotated),
                        region.clone(),
                        "s3".to_string(),
                    )
                });
                Some(AccessKey {
                    active,
                    rotated,
                    last_used: used,
                })
            } else {
                None
            };
            Credentials {
                password: None,
                mfa: false,
                keys: [Some(k1), k2],
            }
        }
    };
    let user = User {
        arn: format!("arn:aws:iam::{}:user{}{}", b.acct, a.path, name),
        id: b.ids.aws_id("AIDA"),
        name,
        path: a.path.to_string(),
        created,
        groups: a.groups,
        attached: a.attached,
        inline: a.inline,
        boundary: a.boundary,
        tags: a.tags,
        last_used,
        activity,
        creds,
    };
    b.users.push(user);
}

fn gen_user(b: &mut B, f: &Fixed, i: usize, n: usize) {
    let acct = b.acct.clone();
    let ti = b.rng.below(b.teams.len() as u64) as usize;
    let t = b.teams[ti].name;
    // The first generated users carry the account's escalation-prone grants.
    if i == 0 {
        add_user(
            b,
            UserArgs {
                name: "svc-user-provisioner".into(),
                path: "/service/",
                groups: vec![],
                attached: vec![],
                inline: vec![Inline {
                    name: "provision-users".into(),
                    doc: doc(vec![S::allow(&[
                        "iam:CreateUser",
                        "iam:AddUserToGroup",
                        "iam:AttachUserPolicy",
                        "iam:CreateAccessKey",
                        "iam:CreateLoginProfile",
                        "iam:TagUser",
                    ])
                    .any()
                    .sid("ProvisionUsers")]),
                }],
                boundary: None,
                tags: vec![tag("used_by", "okta-scim")],
                kind: UserKind::Service,
                activity: [70, 20, 10],
            },
        );
        return;
    }
    let kind = if i == 1 {
        1
    } else {
        b.rng.weighted(&[78, 17, 5])
    };
    match kind {
        // Humans.
        0 => {
            let first = *b.rng.pick(FIRST_NAMES);
            let last = *b.rng.pick(LAST_NAMES);
            let mut groups = vec![b.teams[ti].group];
            let n_admins = 1 + n / 600;
            let stride = (n / (3 * n_admins)).max(2);
            if i % stride == 2 || i == 2 {
                groups.push(f.admin);
            } else {
                let g = match b.rng.weighted(&[55, 20, 10, 4, 3, 3]) {
                    0 => f.developers,
                    1 => f.read_only,
                    2 => f.data_engineers,
                    3 => f.auditors,
                    4 => f.billing,
                    _ => f.power_users,
                };
                groups.push(g);
            }
            let mut attached = Vec::new();
            if i == 3 {
                // A platform lead who can rewrite any customer managed policy.
                attached.push(f.policy_manager);
            }
            if b.rng.chance(0.08) {
                attached.push(b.teams[ti].policies[0]);
            }
            if b.rng.chance(0.1) {
                attached.push(f.deny_outside);
            }
            let mut inline = Vec::new();
            if b.rng.chance(0.07) {
                let [bucket, objects] = B::bucket_arns(&b.teams[ti].exports_bucket);
                inline.push(Inline {
                    name: "exports-from-office".into(),
                    doc: doc(vec![S::allow(&["s3:GetObject", "s3:ListBucket"])
                        .on(&[bucket, objects])
                        .when(jobj! {"IpAddress" => jobj!{"aws:SourceIp" => arr(&["203.0.113.0/24"])}})]),
                });
            }
            let contractor = b.rng.chance(0.06);
            let (path, boundary) = if contractor {
                ("/contractors/", Some(f.dev_boundary))
            } else {
                ("/", None)
            };
            add_user(
                b,
                UserArgs {
                    name: format!("{first}.{last}"),
                    path,
                    groups,
                    attached,
                    inline,
                    boundary,
                    tags: vec![tag("business_unit", t), tag("used_by", "human")],
                    kind: UserKind::Human,
                    activity: [70, 20, 10],
                },
            );
        }
        // Service users with long-lived keys.
        1 => {
            let app = *b.rng.pick(APPS);
            let team = &b.teams[ti];
            let (name, attached, inline) = if i == 1 {
                (
                    "ci-deployer".to_string(),
                    vec![f.ci_deploy],
                    vec![Inline {
                        name: "deploy-from-ci-runners".into(),
                        doc: doc(vec![S::allow(&["sts:GetCallerIdentity"]).any()]),
                    }],
                )
            } else {
                let [_, objects] = B::bucket_arns(&team.exports_bucket);
                let mut inline = vec![Inline {
                    name: format!("{app}-exports"),
                    doc: doc(vec![
                        S::allow(&["s3:PutObject", "s3:GetObject"])
                            .on(&[objects])
                            .when(jobj! {"IpAddress" => jobj!{"aws:SourceIp" => arr(&[format!("198.51.100.{}/32", i % 250 + 1)])}}),
                        S::allow(&["kms:Decrypt"]).on(&[&team.key_arn]),
                    ]),
                }];
                if b.rng.chance(0.1) {
                    inline.push(Inline {
                        name: "legacy-wildcards".into(),
                        doc: doc(vec![S::allow(&["s3:*", "ec2:Describe*"]).any()]),
                    });
                }
                let attached = if b.rng.chance(0.4) {
                    vec![team.policies[2]]
                } else {
                    vec![]
                };
                (format!("svc-{t}-{app}"), attached, inline)
            };
            let boundary = b.rng.chance(0.5).then_some(f.svc_boundary);
            add_user(
                b,
                UserArgs {
                    name,
                    path: "/service/",
                    groups: vec![],
                    attached,
                    inline,
                    boundary,
                    tags: vec![tag("business_unit", t), tag("used_by", "application")],
                    kind: UserKind::Service,
                    activity: [60, 25, 15],
                },
            );
        }
        // A user for an external auditor, read-only through a group plus its own deny.
        _ => {
            let first = *b.rng.pick(FIRST_NAMES);
            add_user(
                b,
                UserArgs {
                    name: format!("auditor-{first}"),
                    path: "/external/",
                    groups: vec![f.auditors],
                    attached: vec![f.deny_outside],
                    inline: vec![Inline {
                        name: "no-data-reads".into(),
                        doc: doc(vec![S::deny(&[
                            "s3:GetObject",
                            "dynamodb:GetItem",
                            "dynamodb:Query",
                            "dynamodb:Scan",
                            "secretsmanager:GetSecretValue",
                        ])
                        .any()]),
                    }],
                    boundary: None,
                    tags: vec![tag("used_by", "external-auditor")],
                    kind: UserKind::Human,
                    activity: [40, 30, 30],
                },
            );
            let _ = acct;
        }
    }
}

fn gen_role(b: &mut B, f: &Fixed, i: usize, n: usize, _fixed: usize) {
    let acct = b.acct.clone();
    let region = b.region.clone();
    let ti = b.rng.below(b.teams.len() as u64) as usize;
    let t = b.teams[ti].name;
    let app = *b.rng.pick(APPS);
    let team_tags = |env: &str| vec![tag("business_unit", t), tag("environment", env)];
    let env = b.env;
    let root = b.same_account_root();

    // Rarely, a role anyone in any account may assume: present in large accounts and in
    // about a third of the others.
    if i == 0 {
        if n >= 1000 || b.rng.chance(0.35) {
            let with_org = b.rng.chance(0.3);
            let mut st = S::allow(&["sts:AssumeRole"]).principal(jobj! {"AWS" => "*"});
            if with_org {
                st = st.when(jobj! {"StringEquals" => jobj!{"aws:PrincipalOrgID" => format!("o-{}", b.rng.hex(10))}});
            }
            let s3_read = b.teams[ti].policies[1];
            add_role(
                b,
                RoleArgs {
                    name: "legacy-partner-access".into(),
                    path: "/",
                    trust: trust(vec![st]),
                    attached: vec![s3_read],
                    inline: vec![],
                    boundary: None,
                    tags: vec![tag("used_by", "partner")],
                    instance_profile: false,
                    activity: [30, 40, 30],
                },
            );
        }
        return;
    }
    // The first generated roles make sure even the smallest account has each shape.
    let archetype = match i {
        1 => 0, // lambda
        2 => 4, // data access
        3 => 6, // read-only cross-account
        4 => 7, // CI via OIDC
        5 => 5, // developer role with a boundary
        6 => 3, // EC2
        _ => b.rng.weighted(&[28, 14, 4, 10, 12, 7, 5, 4, 6, 4, 3, 3]),
    };
    let team = &b.teams[ti];
    let [s3_rw, s3_read, ddb_rw, kms, runtime] = team.policies;
    let ops = team.ops_policy;
    let key_arn = team.key_arn.clone();
    let tables = team.tables.clone();
    let queue_arn = team.queue_arn.clone();
    let topic_arn = team.topic_arn.clone();
    let secret_prefix = team.secret_prefix.clone();
    let data_bucket = team.data_bucket.clone();
    let args = match archetype {
        // Lambda function role.
        0 => {
            let basic = b.aws_policy("service-role/AWSLambdaBasicExecutionRole");
            let data = *b.rng.pick(&[s3_rw, ddb_rw, runtime]);
            let mut inline = Vec::new();
            if b.rng.chance(0.5) {
                inline.push(Inline {
                    name: format!("{app}-queue"),
                    doc: doc(vec![S::allow(&[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                    ])
                    .on(&[&queue_arn])]),
                });
            }
            RoleArgs {
                name: format!("{t}-{app}-lambda"),
                path: "/service-role/",
                trust: service_trust("lambda.amazonaws.com"),
                attached: vec![basic, data],
                inline,
                boundary: b.rng.chance(0.2).then_some(f.svc_boundary),
                tags: team_tags(env),
                instance_profile: false,
                activity: [75, 15, 10],
            }
        }
        // ECS task role.
        1 => RoleArgs {
            name: format!("{t}-{app}-task"),
            path: "/service-role/",
            trust: trust(vec![S::allow(&["sts:AssumeRole"])
                .principal(jobj! {"Service" => "ecs-tasks.amazonaws.com"})
                .when(jobj! {
                    "ArnLike" => jobj!{"aws:SourceArn" => format!("arn:aws:ecs:{region}:{acct}:*")},
                    "StringEquals" => jobj!{"aws:SourceAccount" => acct.as_str()},
                })]),
            attached: vec![runtime, ddb_rw],
            inline: vec![Inline {
                name: "read-secrets".into(),
                doc: doc(vec![
                    S::allow(&["secretsmanager:GetSecretValue"]).on(&[&secret_prefix]),
                    S::allow(&["sns:Publish"]).on(&[&topic_arn]),
                ]),
            }],
            boundary: None,
            tags: team_tags(env),
            instance_profile: false,
            activity: [80, 10, 10],
        },
        // ECS task execution role.
        2 => {
            let exec = b.aws_policy("service-role/AmazonECSTaskExecutionRolePolicy");
            RoleArgs {
                name: format!("{t}-{app}-task-execution"),
                path: "/service-role/",
                trust: service_trust("ecs-tasks.amazonaws.com"),
                attached: vec![exec],
                inline: vec![],
                boundary: None,
                tags: team_tags(env),
                instance_profile: false,
                activity: [85, 10, 5],
            }
        }
        // EC2 instance role, sometimes able to launch instances with any role.
        3 => {
            let ssm = b.aws_policy("AmazonSSMManagedInstanceCore");
            let mut inline = Vec::new();
            if b.rng.chance(0.15) || i == 6 {
                inline.push(Inline {
                    name: "launch-workers".into(),
                    doc: doc(vec![
                        S::allow(&["ec2:RunInstances", "ec2:CreateTags", "ec2:Describe*"]).any(),
                        S::allow(&["iam:PassRole"]).on(&[format!("arn:aws:iam::{acct}:role/*")]),
                    ]),
                });
            }
            let mut attached = vec![ssm, s3_read];
            attached.extend(ops);
            RoleArgs {
                name: format!("{t}-{app}-ec2"),
                path: "/",
                trust: service_trust("ec2.amazonaws.com"),
                attached,
                inline,
                boundary: None,
                tags: team_tags(env),
                instance_profile: true,
                activity: [70, 15, 15],
            }
        }
        // Data access role, assumed by people of the same account (with MFA).
        4 => {
            let table_arns: Vec<String> = tables.clone();
            let mut inline = vec![Inline {
                name: "table-access".into(),
                doc: doc(vec![
                    S::allow(&["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"])
                        .on(&table_arns),
                    S::deny(&["dynamodb:DeleteTable", "dynamodb:UpdateTable"]).on(&table_arns),
                ]),
            }];
            if b.rng.chance(0.3) {
                let [bucket, objects] = B::bucket_arns(&data_bucket);
                inline.push(Inline {
                    name: "bucket-admin".into(),
                    doc: doc(vec![
                        S::allow(&["s3:*"]).on(&[bucket.clone(), objects]),
                        S::deny(&["s3:DeleteBucket"]).on(&[bucket]),
                    ]),
                });
            }
            let _ = key_arn;
            RoleArgs {
                name: format!("{t}-data-access"),
                path: "/",
                trust: trust(vec![S::allow(&["sts:AssumeRole"])
                    .principal(jobj! {"AWS" => root.as_str()})
                    .when(
                        jobj! {"Bool" => jobj!{"aws:MultiFactorAuthPresent" => "true"}},
                    )]),
                attached: vec![s3_rw, kms],
                inline,
                boundary: None,
                tags: team_tags(env),
                instance_profile: false,
                activity: [55, 30, 15],
            }
        }
        // A developer's experiment: broad wildcards, held in by a permissions boundary.
        5 => {
            let first = *b.rng.pick(FIRST_NAMES);
            RoleArgs {
                name: format!("dev-{first}-{app}-experiment"),
                path: "/dev/",
                trust: if b.rng.chance(0.5) {
                    service_trust("lambda.amazonaws.com")
                } else {
                    trust(vec![
                        S::allow(&["sts:AssumeRole"]).principal(jobj! {"AWS" => root.as_str()})
                    ])
                },
                attached: vec![],
                inline: vec![Inline {
                    name: "experiment".into(),
                    doc: doc(vec![
                        S::allow(&["s3:*", "dynamodb:*", "lambda:*"]).any(),
                        S::allow(&["ec2:Describe*", "iam:PassRole"]).any(),
                    ]),
                }],
                boundary: Some(f.dev_boundary),
                tags: vec![tag("used_by", "developer"), tag("environment", "dev")],
                instance_profile: false,
                activity: [35, 35, 30],
            }
        }
        // Read-only role for the security account (cross-account).
        6 => {
            let (attached, name) = if b.rng.chance(0.5) {
                (vec![b.aws_policy("ReadOnlyAccess")], "security-readonly")
            } else {
                (
                    vec![
                        b.aws_policy("SecurityAudit"),
                        b.aws_policy("job-function/ViewOnlyAccess"),
                    ],
                    "security-audit",
                )
            };
            let sec = format!("arn:aws:iam::{}:root", b.others.security);
            RoleArgs {
                name: name.into(),
                path: "/",
                trust: trust(vec![
                    S::allow(&["sts:AssumeRole"]).principal(jobj! {"AWS" => sec})
                ]),
                attached,
                inline: vec![],
                boundary: None,
                tags: vec![tag("used_by", "security-team")],
                instance_profile: false,
                activity: [80, 10, 10],
            }
        }
        // GitHub Actions deployment role through OIDC (PassRole + lambda:CreateFunction).
        7 => {
            let gh = "token.actions.githubusercontent.com";
            RoleArgs {
                name: format!("github-actions-{t}-deploy"),
                path: "/ci/",
                trust: trust(vec![S::allow(&["sts:AssumeRoleWithWebIdentity"])
                    .principal(jobj! {"Federated" => format!("arn:aws:iam::{acct}:oidc-provider/{gh}")})
                    .when(jobj! {
                        "StringEquals" => jobj!{format!("{gh}:aud") => "sts.amazonaws.com"},
                        "StringLike" => jobj!{format!("{gh}:sub") => format!("repo:example-org/{t}-*:ref:refs/heads/main")},
                    })]),
                attached: vec![f.ci_deploy],
                inline: vec![],
                boundary: None,
                tags: vec![tag("business_unit", t), tag("used_by", "github-actions")],
                instance_profile: false,
                activity: [85, 10, 5],
            }
        }
        // Team operator role: same account, MFA required, explicit denies.
        8 => {
            let mut attached = vec![s3_read, runtime];
            if b.rng.chance(0.3) {
                attached.push(b.aws_policy("PowerUserAccess"));
            }
            attached.extend(ops);
            RoleArgs {
                name: format!("{t}-operator"),
                path: "/",
                trust: trust(vec![S::allow(&["sts:AssumeRole"])
                    .principal(jobj! {"AWS" => root.as_str()})
                    .when(
                        jobj! {"Bool" => jobj!{"aws:MultiFactorAuthPresent" => "true"}},
                    )]),
                attached,
                inline: vec![Inline {
                    name: "guardrails".into(),
                    doc: doc(vec![
                        S::deny(&[
                            "s3:DeleteBucket",
                            "kms:ScheduleKeyDeletion",
                            "kms:DisableKey",
                        ])
                        .any(),
                        S::deny(&["iam:*"]).any().when(jobj! {
                            "StringNotEquals" => jobj!{"aws:RequestedRegion" => region.as_str()}
                        }),
                    ]),
                }],
                boundary: None,
                tags: team_tags(env),
                instance_profile: false,
                activity: [50, 30, 20],
            }
        }
        // Glue ETL job role.
        9 => {
            let glue = b.aws_policy("service-role/AWSGlueServiceRole");
            RoleArgs {
                name: format!("AWSGlueServiceRole-{t}-etl"),
                path: "/service-role/",
                trust: service_trust("glue.amazonaws.com"),
                attached: vec![glue, s3_rw, kms],
                inline: vec![],
                boundary: None,
                tags: team_tags(env),
                instance_profile: false,
                activity: [70, 20, 10],
            }
        }
        // A vendor's integration role: another account, with an external id.
        10 => {
            let vi = b.rng.below(b.others.vendors.len() as u64) as usize;
            let (vendor, vacct, ext) = b.others.vendors[vi].clone();
            let sa = b.aws_policy("SecurityAudit");
            let attached = if vendor == "cost-insights" {
                vec![b.aws_policy("job-function/Billing")]
            } else if vendor == "backup-vault" {
                vec![b.aws_policy("AmazonS3ReadOnlyAccess")]
            } else {
                vec![sa]
            };
            RoleArgs {
                name: format!("vendor-{vendor}-integration"),
                path: "/vendors/",
                trust: trust(vec![S::allow(&["sts:AssumeRole"])
                    .principal(jobj! {"AWS" => format!("arn:aws:iam::{vacct}:root")})
                    .when(jobj! {"StringEquals" => jobj!{"sts:ExternalId" => ext}})]),
                attached,
                inline: vec![Inline {
                    name: "vendor-extras".into(),
                    doc: doc(vec![S::allow(&[
                        "cloudwatch:GetMetricData",
                        "cloudwatch:ListMetrics",
                        "logs:FilterLogEvents",
                        "tag:GetResources",
                    ])
                    .any()]),
                }],
                boundary: None,
                tags: vec![tag("used_by", "vendor")],
                instance_profile: false,
                activity: [75, 15, 10],
            }
        }
        // Cross-account deployer, assumed by a CI role in the tooling account.
        _ => {
            let runner = format!("arn:aws:iam::{}:role/ci-runner", b.others.tooling);
            RoleArgs {
                name: format!("cross-account-deployer-{t}"),
                path: "/ci/",
                trust: trust(vec![S::allow(&["sts:AssumeRole", "sts:TagSession"])
                    .principal(jobj! {"AWS" => arr(&[runner])})]),
                attached: vec![f.ci_deploy, s3_rw],
                inline: vec![],
                boundary: None,
                tags: vec![tag("business_unit", t), tag("used_by", "ci")],
                instance_profile: false,
                activity: [80, 10, 10],
            }
        }
    };
    let _ = (f.developer_access, f.deny_outside);
    add_role(b, args);
}
