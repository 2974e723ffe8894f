//! KMS: `ListKeys` (paged), and per customer managed key `DescribeKey`, `GetKeyPolicy`,
//! `ListGrants` (paged) and `ListResourceTags`. AWS managed keys (the `aws/` aliases) are
//! AWS's and skipped.

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn keys(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let kms = &ctx.clients.kms;
    let op = "kms:ListKeys";
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |marker| async move {
            got(
                op,
                kms.list_keys().set_marker(marker).limit(1000).send().await,
                &[],
            )
        },
        |page: &aws_sdk_kms::operation::list_keys::ListKeysOutput| {
            let ids = page
                .keys()
                .iter()
                .filter_map(|k| k.key_id().map(str::to_string))
                .collect();
            let next = page.next_marker().filter(|_| page.truncated());
            (ids, next.map(str::to_string))
        },
    )
    .await?;
    let ids = found.listed(
        listed,
        &format!("KMS in {}", ctx.region()),
        "keys",
        "kms:ListKeys",
    );
    for id in ids {
        if let Some(key) = key(ctx, &id, found).await? {
            found.resources.push(key);
        }
    }
    Ok(())
}

async fn key(ctx: &RegionCtx<'_>, id: &str, found: &mut Found) -> PortResult<Option<Value>> {
    let kms = &ctx.clients.kms;
    let op = "kms:DescribeKey";
    let meta = match retry_transient(ctx.policy, ctx.stats, || async {
        got(
            op,
            kms.describe_key().key_id(id).send().await,
            &["NotFoundException"],
        )
    })
    .await?
    {
        Got::Value(d) => d.key_metadata().cloned(),
        Got::Missing => return Ok(None),
        Got::Denied => {
            found.warn(format!(
                "KMS key {id} in {}: access denied describing it (kms:DescribeKey): not analysed",
                ctx.region()
            ));
            return Ok(None);
        }
    };
    let Some(meta) = meta else { return Ok(None) };
    if meta.key_manager().map(|m| m.as_str()) == Some("AWS") {
        return Ok(None); // AWS managed (aws/ aliases): AWS's, not the account's
    }
    let arn = meta.arn().map(str::to_string).unwrap_or_else(|| {
        format!(
            "arn:{}:kms:{}:{}:key/{id}",
            ctx.partition,
            ctx.region(),
            ctx.account
        )
    });
    let mut r = resource(&arn, "AWS::KMS::Key", ctx.region());

    let op = "kms:GetKeyPolicy";
    match retry_transient(ctx.policy, ctx.stats, || async {
        got(
            op,
            kms.get_key_policy()
                .key_id(id)
                .policy_name("default")
                .send()
                .await,
            &[],
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
        Got::Denied => found.warn(format!(
            "KMS key {arn}: access denied reading its key policy (kms:GetKeyPolicy): not analysed"
        )),
    }

    let op = "kms:ListGrants";
    let grants = all_pages(
        ctx.policy,
        ctx.stats,
        |marker| async move {
            got(
                op,
                kms.list_grants()
                    .key_id(id)
                    .set_marker(marker)
                    .limit(100)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_kms::operation::list_grants::ListGrantsOutput| {
            let grants = page
                .grants()
                .iter()
                .filter_map(|g| {
                    let ops: Vec<&str> = g.operations().iter().map(|o| o.as_str()).collect();
                    Some(json!({"GranteePrincipal": g.grantee_principal()?, "Operations": ops}))
                })
                .collect();
            let next = page.next_marker().filter(|_| page.truncated());
            (grants, next.map(str::to_string))
        },
    )
    .await?;
    match grants {
        Some(grants) if !grants.is_empty() => {
            r.insert("Grants".into(), Value::Array(grants));
        }
        Some(_) => {}
        None => found.warn(format!(
            "KMS key {arn}: access denied listing its grants (kms:ListGrants): not analysed"
        )),
    }

    let op = "kms:ListResourceTags";
    match retry_transient(ctx.policy, ctx.stats, || async {
        got(op, kms.list_resource_tags().key_id(id).send().await, &[])
    })
    .await?
    {
        Got::Value(t) => {
            insert_tags(
                &mut r,
                t.tags().iter().map(|t| (t.tag_key(), t.tag_value())),
            );
        }
        Got::Missing => {}
        Got::Denied => found.warn(format!(
            "KMS key {arn}: access denied reading its tags (kms:ListResourceTags)"
        )),
    }
    Ok(Some(Value::Object(r)))
}
