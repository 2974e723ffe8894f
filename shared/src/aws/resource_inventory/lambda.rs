//! Lambda: `ListFunctions` (paged), and per function `GetPolicy` (who may invoke or manage
//! it) and `ListTags`.

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn functions(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let client = &ctx.clients.lambda;
    let op = "lambda:ListFunctions";
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |marker| async move {
            got(
                op,
                client
                    .list_functions()
                    .set_marker(marker)
                    .max_items(50)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_lambda::operation::list_functions::ListFunctionsOutput| {
            let arns = page
                .functions()
                .iter()
                .filter_map(|f| f.function_arn().map(str::to_string))
                .collect();
            (arns, page.next_marker().map(str::to_string))
        },
    )
    .await?;
    let arns = found.listed(
        listed,
        &format!("Lambda in {}", ctx.region()),
        "functions",
        "lambda:ListFunctions",
    );
    for arn in arns {
        let mut r = resource(&arn, "AWS::Lambda::Function", ctx.region());
        let op = "lambda:GetPolicy";
        match retry_transient(ctx.policy, ctx.stats, || async {
            // A function without a policy answers ResourceNotFoundException too.
            got(
                op,
                client.get_policy().function_name(&arn).send().await,
                &["ResourceNotFoundException"],
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
                "Lambda function {arn}: access denied reading its policy (lambda:GetPolicy): not analysed"
            )),
        }
        let op = "lambda:ListTags";
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client.list_tags().resource(&arn).send().await,
                &["ResourceNotFoundException"],
            )
        })
        .await?
        {
            Got::Value(t) => {
                let mut tags: Vec<(String, String)> = t
                    .tags()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                tags.sort();
                insert_tags(&mut r, tags.into_iter());
            }
            Got::Missing => {}
            Got::Denied => found.warn(format!(
                "Lambda function {arn}: access denied reading its tags (lambda:ListTags)"
            )),
        }
        found.resources.push(Value::Object(r));
    }
    Ok(())
}
