//! SQS: `ListQueues` (paged), and per queue `GetQueueAttributes` (`Policy`, `QueueArn`)
//! and `ListQueueTags`.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn queues(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let sqs = &ctx.clients.sqs;
    let op = "sqs:ListQueues";
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |token| async move {
            got(
                op,
                sqs.list_queues()
                    .set_next_token(token)
                    .max_results(1000)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_sqs::operation::list_queues::ListQueuesOutput| {
            (
                page.queue_urls().to_vec(),
                page.next_token().map(str::to_string),
            )
        },
    )
    .await?;
    let urls = found.listed(
        listed,
        &format!("SQS in {}", ctx.region()),
        "queues",
        "sqs:ListQueues",
    );
    for url in urls {
        if let Some(q) = queue(ctx, &url, found).await? {
            found.resources.push(q);
        }
    }
    Ok(())
}

async fn queue(ctx: &RegionCtx<'_>, url: &str, found: &mut Found) -> PortResult<Option<Value>> {
    let sqs = &ctx.clients.sqs;
    let op = "sqs:GetQueueAttributes";
    let attributes = match retry_transient(ctx.policy, ctx.stats, || async {
        got(
            op,
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::Policy)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await,
            &[
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ],
        )
    })
    .await?
    {
        Got::Value(a) => a.attributes().cloned().unwrap_or_default(),
        Got::Missing => return Ok(None), // deleted since it was listed
        Got::Denied => {
            found.warn(format!(
                "SQS queue {url}: access denied reading its attributes (sqs:GetQueueAttributes): not analysed"
            ));
            return Ok(None);
        }
    };
    let Some(arn) = attributes.get(&QueueAttributeName::QueueArn).cloned() else {
        found.warn(format!(
            "SQS queue {url}: no QueueArn attribute: not analysed"
        ));
        return Ok(None);
    };
    let mut r = resource(&arn, "AWS::SQS::Queue", ctx.region());
    if let Some(policy) = attributes.get(&QueueAttributeName::Policy) {
        r.insert("Policy".into(), json!(policy));
    }
    let op = "sqs:ListQueueTags";
    match retry_transient(ctx.policy, ctx.stats, || async {
        got(op, sqs.list_queue_tags().queue_url(url).send().await, &[])
    })
    .await?
    {
        Got::Value(t) => {
            insert_tags(
                &mut r,
                t.tags()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
        Got::Missing => {}
        Got::Denied => found.warn(format!(
            "SQS queue {arn}: access denied reading its tags (sqs:ListQueueTags)"
        )),
    }
    Ok(Some(Value::Object(r)))
}
