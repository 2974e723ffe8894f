//! A sample account's resource inventory (`resources.json`, the format
//! `accessflow_analysis::resources::ResourceInventory` reads): a fixed showcase of what a
//! security team reads first, named after the account so accounts do not share buckets.
//!
//! - `-public-assets`: a bucket policy granting everyone `s3:GetObject` (public);
//! - `-partner-exchange`: shared with [`PARTNER_ACCOUNT`] (a trusted partner);
//! - `-vendor-drop`: shared with [`UNKNOWN_ACCOUNT`] for writing (an unknown account);
//! - `-reports`: readable by everyone in the organisation only (`aws:PrincipalOrgID`:
//!   conditional), or, on the night [`inventory`] is asked so, also by everyone (public);
//! - `-legacy-site`: a public policy under the bucket's Block Public Access (blocked);
//! - `-logs`: only the account's own log-delivery role (nothing external);
//! - a `data` KMS key shared with [`UNKNOWN_ACCOUNT`], and a `logs` key with the default
//!   key policy (delegation to the account: nothing external);
//! - an `events` queue that only SNS may send to (a service principal: nothing external);
//! - `-payroll`: a bucket its policy opens to one role of the account
//!   (`OrganizationAccountAccessRole`) and closes to every other principal, with a `payroll`
//!   key whose policy names that role and does not delegate to the account: nothing
//!   external, but the report's "Data access" shows who inside can reach them;
//! - a `-partner-api-key` secret [`PARTNER_ACCOUNT`] may read (cross-account, trusted);
//! - a `base-images` container repository the organisation may pull from (conditional).

use serde_json::{json, Value};

/// The trusted partner of the bundled sample's customers.
pub const PARTNER_ACCOUNT: &str = "204571298364";
/// An account no customer lists.
pub const UNKNOWN_ACCOUNT: &str = "999912345678";
/// Block Public Access is read from one region.
const REGION: &str = "eu-west-1";

fn bucket(name: &str, policy: Value, tags: Value) -> Value {
    json!({
        "Arn": format!("arn:aws:s3:::{name}"),
        "Type": "AWS::S3::Bucket",
        "Region": REGION,
        "Policy": policy,
        "Tags": tags,
    })
}

fn statement(sid: &str, principal: Value, action: Value, resource: Value) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource})
}

/// The inventory's JSON (pretty, keys sorted: the same account gives the same bytes).
pub(crate) fn inventory(account: &str, reports_bucket_public: bool) -> Vec<u8> {
    let b = |suffix: &str| format!("{account}{suffix}");
    let objects = |suffix: &str| format!("arn:aws:s3:::{account}{suffix}/*");
    let mut reports_statements = vec![{
        let mut st = statement(
            "OrganisationRead",
            json!("*"),
            json!("s3:GetObject"),
            json!(objects("-reports")),
        );
        st["Condition"] = json!({"StringEquals": {"aws:PrincipalOrgID": "o-sample12345"}});
        st
    }];
    if reports_bucket_public {
        reports_statements.push(statement(
            "TemporaryPublicShare",
            json!("*"),
            json!("s3:GetObject"),
            json!(objects("-reports")),
        ));
    }
    let mut legacy = bucket(
        &b("-legacy-site"),
        json!({"Version": "2012-10-17", "Statement": [statement("PublicRead", json!("*"), json!("s3:GetObject"), json!(objects("-legacy-site")))]}),
        json!({"environment": "production"}),
    );
    legacy["BlockPublicAccess"] = json!({
        "BlockPublicAcls": true, "IgnorePublicAcls": true,
        "BlockPublicPolicy": true, "RestrictPublicBuckets": true
    });
    let key = |id: &str| format!("arn:aws:kms:{REGION}:{account}:key/{id}");
    let resources = vec![
        bucket(
            &b("-public-assets"),
            json!({"Version": "2012-10-17", "Statement": [statement("PublicRead", json!("*"), json!("s3:GetObject"), json!(objects("-public-assets")))]}),
            json!({"confidentiality": "public", "environment": "production"}),
        ),
        bucket(
            &b("-partner-exchange"),
            json!({"Version": "2012-10-17", "Statement": [statement(
                "PartnerReadWrite",
                json!({"AWS": format!("arn:aws:iam::{PARTNER_ACCOUNT}:root")}),
                json!(["s3:GetObject", "s3:PutObject", "s3:ListBucket"]),
                json!([format!("arn:aws:s3:::{account}-partner-exchange"), objects("-partner-exchange")]),
            )]}),
            json!({"confidentiality": "confidential", "environment": "production"}),
        ),
        bucket(
            &b("-vendor-drop"),
            json!({"Version": "2012-10-17", "Statement": [statement(
                "VendorUpload",
                json!({"AWS": UNKNOWN_ACCOUNT}),
                json!("s3:PutObject"),
                json!(objects("-vendor-drop")),
            )]}),
            json!({"confidentiality": "internal"}),
        ),
        bucket(
            &b("-reports"),
            json!({"Version": "2012-10-17", "Statement": reports_statements}),
            json!({"confidentiality": "confidential"}),
        ),
        legacy,
        bucket(
            &b("-logs"),
            json!({"Version": "2012-10-17", "Statement": [statement(
                "LogDelivery",
                json!({"AWS": format!("arn:aws:iam::{account}:role/log-delivery")}),
                json!("s3:PutObject"),
                json!(objects("-logs")),
            )]}),
            json!({"confidentiality": "internal"}),
        ),
        json!({
            "Arn": key("0b5e7d1a-0000-4000-8000-00000000da7a"),
            "Type": "AWS::KMS::Key",
            "Region": REGION,
            "Policy": {"Version": "2012-10-17", "Statement": [
                statement("Enable IAM User Permissions", json!({"AWS": format!("arn:aws:iam::{account}:root")}), json!("kms:*"), json!("*")),
                statement("AllowExternalUse", json!({"AWS": format!("arn:aws:iam::{UNKNOWN_ACCOUNT}:root")}),
                    json!(["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*"]), json!("*")),
            ]},
            "Tags": {"alias": "data", "confidentiality": "confidential"},
        }),
        json!({
            "Arn": key("0b5e7d1a-0000-4000-8000-0000000010c5"),
            "Type": "AWS::KMS::Key",
            "Region": REGION,
            "Policy": {"Version": "2012-10-17", "Statement": [
                statement("Enable IAM User Permissions", json!({"AWS": format!("arn:aws:iam::{account}:root")}), json!("kms:*"), json!("*")),
            ]},
            "Tags": {"alias": "logs"},
        }),
        json!({
            "Arn": format!("arn:aws:sqs:{REGION}:{account}:events"),
            "Type": "AWS::SQS::Queue",
            "Region": REGION,
            "Policy": {"Version": "2012-10-17", "Statement": [
                statement("FromSns", json!({"Service": "sns.amazonaws.com"}), json!("sqs:SendMessage"),
                    json!(format!("arn:aws:sqs:{REGION}:{account}:events"))),
            ]},
        }),
    ];
    let payroll_role = format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole");
    let mut resources = resources;
    resources.push(bucket(
        &b("-payroll"),
        json!({"Version": "2012-10-17", "Statement": [
            statement("PayrollRole", json!({"AWS": payroll_role}),
                json!(["s3:GetObject", "s3:PutObject"]), json!(objects("-payroll"))),
            {"Sid": "NobodyElseReads", "Effect": "Deny", "Principal": "*",
             "Action": ["s3:GetObject*", "s3:ListBucket*", "s3:ListMultipartUploadParts"],
             "Resource": [format!("arn:aws:s3:::{account}-payroll"), objects("-payroll")],
             "Condition": {"StringNotEquals": {"aws:PrincipalArn": payroll_role}}},
        ]}),
        json!({"confidentiality": "restricted"}),
    ));
    resources.push(json!({
        "Arn": key("0b5e7d1a-0000-4000-8000-00000000fa11"),
        "Type": "AWS::KMS::Key",
        "Region": REGION,
        "Policy": {"Version": "2012-10-17", "Statement": [
            statement("PayrollRoleOnly", json!({"AWS": payroll_role}),
                json!(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]), json!("*")),
        ]},
        "Tags": {"alias": "payroll", "confidentiality": "restricted"},
    }));
    // A secret the partner reads (cross-account, trusted), and a container repository the
    // organisation pulls from (its policy has no Resource element; conditional).
    resources.push(json!({
        "Arn": format!("arn:aws:secretsmanager:{REGION}:{account}:secret:{account}-partner-api-key-Xq3v9Z"),
        "Type": "AWS::SecretsManager::Secret",
        "Region": REGION,
        "Policy": {"Version": "2012-10-17", "Statement": [
            statement("PartnerReadsTheKey", json!({"AWS": format!("arn:aws:iam::{PARTNER_ACCOUNT}:root")}),
                json!("secretsmanager:GetSecretValue"), json!("*")),
        ]},
        "Tags": {"confidentiality": "restricted", "environment": "production"},
    }));
    resources.push(json!({
        "Arn": format!("arn:aws:ecr:{REGION}:{account}:repository/base-images"),
        "Type": "AWS::ECR::Repository",
        "Region": REGION,
        "Policy": {"Version": "2012-10-17", "Statement": [{
            "Sid": "OrganisationPulls", "Effect": "Allow", "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-sample12345"}},
        }]},
        "Tags": {"environment": "shared"},
    }));
    let doc = json!({
        "AccountBlockPublicAccess": {"BlockPublicAcls": true, "IgnorePublicAcls": true},
        "Resources": resources,
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}
