//! Secrets Manager: `ListSecrets` (paged; it carries each secret's tags), and per secret
//! `GetResourcePolicy`.

use serde_json::{json, Value};

use super::{got, insert_tags, resource, Found, Got, RegionCtx};
use crate::aws::retry::retry_transient;
use crate::ports::PortResult;

pub(super) async fn secrets(ctx: &RegionCtx<'_>, found: &mut Found) -> PortResult<()> {
    let client = &ctx.clients.secrets_manager;
    let op = "secretsmanager:ListSecrets";
    let mut token: Option<String> = None;
    // (ARN, tags) of every secret
    let mut listed: Vec<(String, Vec<(String, String)>)> = Vec::new();
    loop {
        let t = token.clone();
        let page = retry_transient(ctx.policy, ctx.stats, || async {
            got(
                op,
                client
                    .list_secrets()
                    .set_next_token(t.clone())
                    .max_results(100)
                    .send()
                    .await,
                &[],
            )
        })
        .await?;
        let Got::Value(page) = page else {
            found.warn(format!(
                "Secrets Manager in {}: access denied listing the secrets (secretsmanager:ListSecrets): secrets not analysed",
                ctx.region()
            ));
            return Ok(());
        };
        for s in page.secret_list() {
            if let Some(arn) = s.arn() {
                let tags = s
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                    })
                    .collect();
                listed.push((arn.to_string(), tags));
            }
        }
        match page.next_token() {
            Some(next) if Some(next) != token.as_deref() => token = Some(next.to_string()),
            _ => break,
        }
    }
    listed.sort();
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
