//! Secrets Manager: `ListSecrets` (paged; it carries each secret's tags), and per secret
//! `GetResourcePolicy`.

use serde_json::{json, Value};

use super::{all_pages, got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn secrets(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let client = &ctx.clients.secrets_manager;
    let op = "secretsmanager:ListSecrets";
    // (ARN, tags) of every secret
    let listed = all_pages(
        ctx.policy,
        ctx.stats,
        |token| async move {
            got(
                op,
                client
                    .list_secrets()
                    .set_next_token(token)
                    .max_results(100)
                    .send()
                    .await,
                &[],
            )
        },
        |page: &aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput| {
            let secrets = page
                .secret_list()
                .iter()
                .filter_map(|s| {
                    let tags: Vec<(String, String)> = s
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                        })
                        .collect();
                    Some((s.arn()?.to_string(), tags))
                })
                .collect();
            (secrets, page.next_token().map(str::to_string))
        },
    )
    .await?;
    let listed = found.listed(
        listed,
        &format!("Secrets Manager in {}", ctx.region()),
        "secrets",
        "secretsmanager:ListSecrets",
    );
    for (arn, tags) in listed {
        let mut r = resource(&arn, "AWS::SecretsManager::Secret", ctx.region());
        let op = "secretsmanager:GetResourcePolicy";
        match retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client.get_resource_policy().secret_id(&arn).send().await,
                &["ResourceNotFoundException"],
            )
        })
        .await?
        {
            Got::Value(p) => {
                if let Some(text) = p.resource_policy() {
                    r.insert("Policy".into(), json!(text));
                }
            }
            Got::Missing => continue, // deleted since it was listed
            Got::Denied => found.warn(format!(
                "Secrets Manager secret {arn}: access denied reading its resource policy (secretsmanager:GetResourcePolicy): not analysed"
            )),
        }
        insert_tags(&mut r, tags.into_iter());
        found.resources.push(Value::Object(r));
    }
    Ok(())
}
