//! KMS: `ListKeys` (paged), and per customer managed key `DescribeKey`, `GetKeyPolicy`,
//! `ListGrants` (paged) and `ListResourceTags`. AWS managed keys (the `aws/` aliases) are
//! AWS's and skipped.

use serde_json::{json, Value};

use super::{got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn keys(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let kms = &ctx.clients.kms;
    let op = "kms:ListKeys";
    let mut marker: Option<String> = None;
    let mut ids = Vec::new();
    loop {
        let m = marker.clone();
        let page = retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                kms.list_keys()
                    .set_marker(m.clone())
                    .limit(1000)
                    .send()
                    .await,
                &[],
            )
        })
        .await?;
        let Got::Value(page) = page else {
            found.warn(format!(
                "KMS in {}: access denied listing the keys (kms:ListKeys): keys not analysed",
                ctx.region()
            ));
            return Ok(());
        };
        ids.extend(
            page.keys()
                .iter()
                .filter_map(|k| k.key_id().map(str::to_string)),
        );
        match page.next_marker() {
            Some(next) if page.truncated() && Some(next) != marker.as_deref() => {
                marker = Some(next.to_string())
            }
            _ => break,
        }
    }
    ids.sort();
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
    let mut grants = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let m = marker.clone();
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                kms.list_grants()
                    .key_id(id)
                    .set_marker(m.clone())
                    .limit(100)
                    .send()
                    .await,
                &[],
            )
        })
        .await?
        {
            Got::Value(page) => {
                for g in page.grants() {
                    if let Some(p) = g.grantee_principal() {
                        let ops: Vec<&str> = g.operations().iter().map(|o| o.as_str()).collect();
                        grants.push(json!({"GranteePrincipal": p, "Operations": ops}));
                    }
                }
                match page.next_marker() {
                    Some(next) if page.truncated() && Some(next) != marker.as_deref() => {
                        marker = Some(next.to_string())
                    }
                    _ => break,
                }
            }
            Got::Missing => break,
            Got::Denied => {
                found.warn(format!(
                    "KMS key {arn}: access denied listing its grants (kms:ListGrants): not analysed"
                ));
                break;
            }
        }
    }
    if !grants.is_empty() {
        r.insert("Grants".into(), Value::Array(grants));
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
