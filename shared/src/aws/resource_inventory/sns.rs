//! SNS: `ListTopics` (paged), and per topic `GetTopicAttributes` (`Policy`) and
//! `ListTagsForResource`.

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn topics(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let sns = &ctx.clients.sns;
    let op = "sns:ListTopics";
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |token| async move {
            got(
                op,
                sns.list_topics().set_next_token(token).send().await,
                &[],
            )
        },
        |page: &aws_sdk_sns::operation::list_topics::ListTopicsOutput| {
            let arns = page
                .topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_string))
                .collect();
            (arns, page.next_token().map(str::to_string))
        },
    )
    .await?;
    let arns = found.listed(
        listed,
        &format!("SNS in {}", ctx.region()),
        "topics",
        "sns:ListTopics",
    );
    for arn in arns {
        if let Some(t) = topic(ctx, &arn, found).await? {
            found.resources.push(t);
        }
    }
    Ok(())
}

async fn topic(ctx: &RegionCtx<'_>, arn: &str, found: &mut Found) -> PortResult<Option<Value>> {
    let sns = &ctx.clients.sns;
    let op = "sns:GetTopicAttributes";
    let attributes = match retry_transient(ctx.policy, ctx.stats, || async {
        got(
            op,
            sns.get_topic_attributes().topic_arn(arn).send().await,
            &["NotFound"],
        )
    })
    .await?
    {
        Got::Value(a) => a.attributes().cloned().unwrap_or_default(),
        Got::Missing => return Ok(None), // deleted since it was listed
        Got::Denied => {
            found.warn(format!(
                "SNS topic {arn}: access denied reading its attributes (sns:GetTopicAttributes): not analysed"
            ));
            return Ok(None);
        }
    };
    let mut r = resource(arn, "AWS::SNS::Topic", ctx.region());
    if let Some(policy) = attributes.get("Policy") {
        r.insert("Policy".into(), json!(policy));
    }
    let op = "sns:ListTagsForResource";
    match retry_transient(ctx.policy, ctx.stats, || async {
        got(
            op,
            sns.list_tags_for_resource().resource_arn(arn).send().await,
            &[],
        )
    })
    .await?
    {
        Got::Value(t) => {
            insert_tags(&mut r, t.tags().iter().map(|t| (t.key(), t.value())));
        }
        Got::Missing => {}
        Got::Denied => found.warn(format!(
            "SNS topic {arn}: access denied reading its tags (sns:ListTagsForResource)"
        )),
    }
    Ok(Some(Value::Object(r)))
}
