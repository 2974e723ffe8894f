//! S3: the account's Block Public Access (S3 Control `GetPublicAccessBlock`), the buckets
//! (`ListBuckets`, paged, once for all regions) and, per bucket in a collected region,
//! `GetBucketPolicy`, `GetPublicAccessBlock`, `GetBucketAcl` (grants to everyone only),
//! `GetBucketOwnershipControls` (`BucketOwnerEnforced` turns ACLs off) and
//! `GetBucketTagging`.

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Collector, Found, Got, Regional};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

/// `{"BlockPublicAcls": .., ...}` from an SDK configuration's four optional flags.
fn bpa_json(
    acls: Option<bool>,
    ignore: Option<bool>,
    policy: Option<bool>,
    restrict: Option<bool>,
) -> Value {
    json!({
        "BlockPublicAcls": acls.unwrap_or(false),
        "IgnorePublicAcls": ignore.unwrap_or(false),
        "BlockPublicPolicy": policy.unwrap_or(false),
        "RestrictPublicBuckets": restrict.unwrap_or(false),
    })
}

/// The account-level Block Public Access, which overrides every bucket's.
pub(super) async fn account_block_public_access(
    c: &Collector<'_>,
    account: &str,
    found: &mut Found,
) -> PortResult<()> {
    let op = "s3:GetAccountPublicAccessBlock";
    match retry_transient(c.policy, c.stats, || async {
        got(
            op,
            c.s3control
                .get_public_access_block()
                .account_id(account)
                .send()
                .await,
            &["NoSuchPublicAccessBlockConfiguration"],
        )
    })
    .await?
    {
        Got::Value(p) => {
            if let Some(b) = p.public_access_block_configuration() {
                found.account_block_public_access = Some(bpa_json(
                    b.block_public_acls(),
                    b.ignore_public_acls(),
                    b.block_public_policy(),
                    b.restrict_public_buckets(),
                ));
            }
        }
        Got::Missing => {}
        Got::Denied => found.warn(
            "S3: access denied reading the account's Block Public Access (s3:GetAccountPublicAccessBlock): public bucket policies may be shown as open although the account blocks them",
        ),
    }
    Ok(())
}

/// Every bucket of the account that is in a collected region.
pub(super) async fn buckets(c: &Collector<'_>, found: &mut Found) -> PortResult<()> {
    // ListBuckets is global: any region's client lists them all.
    let Some(lister) = c.region(&c.home_region).or(c.regions.first()) else {
        return Ok(());
    };
    let op = "s3:ListBuckets";
    let listed = all_pages(
        c.policy,
        c.stats,
        |token| async move {
            got(
                op,
                lister
                    .s3
                    .list_buckets()
                    .set_continuation_token(token)
                    .max_buckets(1000)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
            let names = page
                .buckets()
                .iter()
                .filter_map(|b| {
                    Some((b.name()?.to_string(), b.bucket_region().map(str::to_string)))
                })
                .collect();
            (names, page.continuation_token().map(str::to_string))
        },
    )
    .await?;
    let names = found.listed(listed, "S3", "buckets", "s3:ListAllMyBuckets");
    for (name, region) in names {
        // A bucket whose region S3 does not say is read where it was listed.
        let region = region.unwrap_or_else(|| lister.region.clone());
        let Some(clients) = c.region(&region) else {
            found.warn(format!(
                "S3 bucket {name} is in {region}, which the customer's regions do not list: its policy is not analysed"
            ));
            continue;
        };
        let bucket = bucket(c, clients, &name, found).await?;
        found.resources.push(bucket);
    }
    Ok(())
}

async fn bucket(
    c: &Collector<'_>,
    clients: &Regional,
    name: &str,
    found: &mut Found,
) -> PortResult<Value> {
    let s3 = &clients.s3;
    let denied = |found: &mut Found, what: &str| {
        found.warn(format!(
            "S3 bucket {name}: access denied reading its {what}: not analysed"
        ))
    };
    let mut r = resource(
        &format!("arn:aws:s3:::{name}"),
        "AWS::S3::Bucket",
        &clients.region,
    );

    let op = "s3:GetBucketPolicy";
    match retry_transient(c.policy, c.stats, || async {
        got(
            op,
            s3.get_bucket_policy().bucket(name).send().await,
            &["NoSuchBucketPolicy"],
        )
    })
    .await?
    {
        Got::Value(p) => {
            if let Some(text) = p.policy() {
                r.insert("Policy".into(), json!(text));
            }
        }
        Got::Missing => {}
        Got::Denied => denied(found, "policy (s3:GetBucketPolicy)"),
    }

    let op = "s3:GetPublicAccessBlock";
    match retry_transient(c.policy, c.stats, || async {
        got(
            op,
            s3.get_public_access_block().bucket(name).send().await,
            &["NoSuchPublicAccessBlockConfiguration"],
        )
    })
    .await?
    {
        Got::Value(p) => {
            if let Some(b) = p.public_access_block_configuration() {
                r.insert(
                    "BlockPublicAccess".into(),
                    bpa_json(
                        b.block_public_acls(),
                        b.ignore_public_acls(),
                        b.block_public_policy(),
                        b.restrict_public_buckets(),
                    ),
                );
            }
        }
        Got::Missing => {}
        Got::Denied => denied(found, "Block Public Access (s3:GetBucketPublicAccessBlock)"),
    }

    let op = "s3:GetBucketAcl";
    match retry_transient(c.policy, c.stats, || async {
        got(op, s3.get_bucket_acl().bucket(name).send().await, &[])
    })
    .await?
    {
        Got::Value(acl) => {
            let grants: Vec<Value> = acl
                .grants()
                .iter()
                .filter_map(|g| {
                    let uri = g.grantee()?.uri()?;
                    let everyone =
                        uri.ends_with("/AllUsers") || uri.ends_with("/AuthenticatedUsers");
                    everyone.then(|| {
                        json!({"Grantee": uri, "Permission": g.permission().map(|p| p.as_str()).unwrap_or_default()})
                    })
                })
                .collect();
            if !grants.is_empty() {
                r.insert("AclGrants".into(), Value::Array(grants));
            }
        }
        Got::Missing => {}
        Got::Denied => denied(found, "ACL (s3:GetBucketAcl)"),
    }

    let op = "s3:GetBucketOwnershipControls";
    match retry_transient(c.policy, c.stats, || async {
        got(
            op,
            s3.get_bucket_ownership_controls().bucket(name).send().await,
            &["OwnershipControlsNotFoundError"],
        )
    })
    .await?
    {
        Got::Value(o) => {
            if let Some(rule) = o.ownership_controls().and_then(|c| c.rules().first()) {
                r.insert(
                    "ObjectOwnership".into(),
                    json!(rule.object_ownership().as_str()),
                );
            }
        }
        Got::Missing => {}
        Got::Denied => denied(found, "Object Ownership (s3:GetBucketOwnershipControls)"),
    }

    let op = "s3:GetBucketTagging";
    match retry_transient(c.policy, c.stats, || async {
        got(
            op,
            s3.get_bucket_tagging().bucket(name).send().await,
            &["NoSuchTagSet", "NoSuchTagSetError"],
        )
    })
    .await?
    {
        Got::Value(t) => {
            insert_tags(&mut r, t.tag_set().iter().map(|t| (t.key(), t.value())));
        }
        Got::Missing => {}
        Got::Denied => denied(found, "tags (s3:GetBucketTagging)"),
    }
    Ok(Value::Object(r))
}
