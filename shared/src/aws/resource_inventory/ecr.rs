//! ECR: `DescribeRepositories` (paged), and per repository `GetRepositoryPolicy` and
//! `ListTagsForResource`.

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn repositories(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let client = &ctx.clients.ecr;
    let op = "ecr:DescribeRepositories";
    // (ARN, name)
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |token| async move {
            got(
                op,
                client
                    .describe_repositories()
                    .set_next_token(token)
                    .max_results(1000)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput| {
            let repositories = page
                .repositories()
                .iter()
                .filter_map(|r| {
                    Some((
                        r.repository_arn()?.to_string(),
                        r.repository_name()?.to_string(),
                    ))
                })
                .collect();
            (repositories, page.next_token().map(str::to_string))
        },
    )
    .await?;
    let listed = found.listed(
        listed,
        &format!("ECR in {}", ctx.region()),
        "repositories",
        "ecr:DescribeRepositories",
    );
    for (arn, name) in listed {
        let mut r = resource(&arn, "AWS::ECR::Repository", ctx.region());
        let op = "ecr:GetRepositoryPolicy";
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client.get_repository_policy().repository_name(&name).send().await,
                &["RepositoryPolicyNotFoundException", "RepositoryNotFoundException"],
            )
        })
        .await?
        {
            Got::Value(p) => {
                if let Some(text) = p.policy_text() {
                    r.insert("Policy".into(), json!(text));
                }
            }
            Got::Missing => {}
            Got::Denied => found.warn(format!(
                "ECR repository {arn}: access denied reading its policy (ecr:GetRepositoryPolicy): not analysed"
            )),
        }
        let op = "ecr:ListTagsForResource";
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await,
                &["RepositoryNotFoundException"],
            )
        })
        .await?
        {
            Got::Value(t) => insert_tags(&mut r, t.tags().iter().map(|t| (t.key(), t.value()))),
            Got::Missing => {}
            Got::Denied => found.warn(format!(
                "ECR repository {arn}: access denied reading its tags (ecr:ListTagsForResource)"
            )),
        }
        found.resources.push(Value::Object(r));
    }
    Ok(())
}
