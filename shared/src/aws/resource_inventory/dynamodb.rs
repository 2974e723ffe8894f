//! DynamoDB: `ListTables` (paged), and per table `GetResourcePolicy` and
//! `ListTagsOfResource`. (Streams have resource policies too; they are not read yet.)

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn tables(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let client = &ctx.clients.dynamodb;
    let op = "dynamodb:ListTables";
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |start| async move {
            got(
                op,
                client
                    .list_tables()
                    .set_exclusive_start_table_name(start)
                    .limit(100)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_dynamodb::operation::list_tables::ListTablesOutput| {
            (
                page.table_names().to_vec(),
                page.last_evaluated_table_name().map(str::to_string),
            )
        },
    )
    .await?;
    let names = found.listed(
        listed,
        &format!("DynamoDB in {}", ctx.region()),
        "tables",
        "dynamodb:ListTables",
    );
    for name in names {
        let arn = format!(
            "arn:{}:dynamodb:{}:{}:table/{name}",
            ctx.partition,
            ctx.region(),
            ctx.account
        );
        let mut r = resource(&arn, "AWS::DynamoDB::Table", ctx.region());
        let op = "dynamodb:GetResourcePolicy";
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client.get_resource_policy().resource_arn(&arn).send().await,
                &["PolicyNotFoundException", "ResourceNotFoundException"],
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
                "DynamoDB table {arn}: access denied reading its resource policy (dynamodb:GetResourcePolicy): not analysed"
            )),
        }
        let op = "dynamodb:ListTagsOfResource";
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client
                    .list_tags_of_resource()
                    .resource_arn(&arn)
                    .send()
                    .await,
                &["ResourceNotFoundException"],
            )
        })
        .await?
        {
            Got::Value(t) => insert_tags(&mut r, t.tags().iter().map(|t| (t.key(), t.value()))),
            Got::Missing => {}
            Got::Denied => found.warn(format!(
                "DynamoDB table {arn}: access denied reading its tags (dynamodb:ListTagsOfResource)"
            )),
        }
        found.resources.push(Value::Object(r));
    }
    Ok(())
}
