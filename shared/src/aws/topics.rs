//! Fan-out topics on SNS FIFO.
//!
//! A logical topic `t` is the SNS FIFO topic `<name prefix>t.fifo` (content-based
//! deduplication off). A subscription delivers to an SQS FIFO queue of this backend with
//! `RawMessageDelivery=true` (body and message attributes arrive unchanged) and a
//! `FilterPolicy` on message attributes; subscribing also adds a statement to the queue's
//! access policy that lets this topic (and only it, by `aws:SourceArn`) send to the queue.
//!
//! Duplicates: SNS FIFO drops a repeated deduplication id within 5 minutes but does not say
//! so; as for queues, this process reports a repeat of a dedup id it published itself
//! within the window as [`SendOutcome::Duplicate`] and does not publish it again. (moto does not deduplicate at the topic
//! at all; the SQS FIFO queues behind it drop the copies.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use tokio::sync::OnceCell;

use super::error::{classify, has_code};
use super::queues::{check_batch, failed_entry, OutgoingBatch, SqsShared};
use crate::ports::{
    FilterPolicy, OutgoingMessage, PortError, PortResult, SendOutcome, Subscription, Topics,
};

const NOT_FOUND: &[&str] = &["NotFound", "NotFoundException", "ResourceNotFound"];

/// The SNS topics.
pub struct AwsTopics {
    client: Client,
    sts: aws_sdk_sts::Client,
    sqs: Arc<SqsShared>,
    region: String,
    arns: Mutex<HashMap<String, String>>,
    account: OnceCell<String>,
}

fn topic_not_found(topic: &str) -> PortError {
    PortError::NotFound {
        what: "topic",
        name: topic.to_string(),
    }
}

/// The partition of a region, for building ARNs.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Parses an SNS filter policy into the subset the port models (exact string values).
pub(crate) fn parse_filter_policy(json: &str) -> FilterPolicy {
    let mut map = BTreeMap::new();
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(json) {
        for (k, v) in obj {
            let values = match v {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::String(s) => vec![s],
                _ => Vec::new(),
            };
            map.insert(k, values);
        }
    }
    FilterPolicy(map)
}

impl AwsTopics {
    pub(crate) fn new(
        client: Client,
        sts: aws_sdk_sts::Client,
        sqs: Arc<SqsShared>,
        region: String,
    ) -> Self {
        AwsTopics {
            client,
            sts,
            sqs,
            region,
            arns: Mutex::new(HashMap::new()),
            account: OnceCell::new(),
        }
    }

    fn physical(&self, topic: &str) -> String {
        format!("{}{}.fifo", self.sqs.prefix, topic)
    }

    fn logical(&self, arn: &str) -> Option<String> {
        let name = arn.rsplit(':').next()?;
        name.strip_suffix(".fifo")?
            .strip_prefix(self.sqs.prefix.as_str())
            .map(str::to_string)
    }

    /// The topic's ARN: remembered from `ensure_topic`, or built from the caller's account.
    async fn arn(&self, topic: &str) -> PortResult<String> {
        if let Some(arn) = self
            .arns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return Ok(arn.clone());
        }
        let account = self
            .account
            .get_or_try_init(|| async {
                let out = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| classify("sts:GetCallerIdentity", e))?;
                Ok::<_, PortError>(out.account().unwrap_or_default().to_string())
            })
            .await?;
        Ok(format!(
            "arn:{}:sns:{}:{}:{}",
            partition(&self.region),
            self.region,
            account,
            self.physical(topic)
        ))
    }

    fn fail<E>(
        &self,
        op: &'static str,
        topic: &str,
        err: aws_sdk_sns::error::SdkError<E, aws_sdk_sns::config::http::HttpResponse>,
    ) -> PortError
    where
        E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if has_code(&err, NOT_FOUND) {
            topic_not_found(topic)
        } else {
            classify(op, err)
        }
    }

    /// Every subscription of a topic as (subscription ARN, endpoint, protocol).
    async fn raw_subscriptions(&self, topic: &str) -> PortResult<Vec<(String, String, String)>> {
        let arn = self.arn(topic).await?;
        let mut subs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_subscriptions_by_topic()
                .topic_arn(&arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.fail("sns:ListSubscriptionsByTopic", topic, e))?;
            for s in out.subscriptions() {
                subs.push((
                    s.subscription_arn().unwrap_or_default().to_string(),
                    s.endpoint().unwrap_or_default().to_string(),
                    s.protocol().unwrap_or_default().to_string(),
                ));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(subs)
    }

    /// Lets the topic send to the queue: adds (once) a statement to the queue's policy.
    async fn allow_topic(&self, queue: &str, queue_arn: &str, topic_arn: &str) -> PortResult<()> {
        let attrs = self
            .sqs
            .attributes(queue, &[QueueAttributeName::Policy])
            .await?;
        let mut policy: serde_json::Value = attrs
            .get(&QueueAttributeName::Policy)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []}));
        let sid: String = format!("sns-{}", topic_arn.rsplit(':').next().unwrap_or_default())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let statements = match policy.get_mut("Statement") {
            Some(serde_json::Value::Array(list)) => list,
            _ => {
                policy["Statement"] = serde_json::json!([]);
                policy["Statement"].as_array_mut().expect("just set")
            }
        };
        if statements.iter().any(|s| s["Sid"] == sid.as_str()) {
            return Ok(());
        }
        statements.push(serde_json::json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }));
        let url = self.sqs.url(queue).await?;
        self.sqs
            .client
            .set_queue_attributes()
            .queue_url(url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| self.sqs.fail("sqs:SetQueueAttributes", queue, e))?;
        Ok(())
    }
}

/// The AWS-managed key of SNS, which encrypts every topic reconcile creates.
pub const SNS_MANAGED_KEY: &str = "alias/aws/sns";

#[async_trait]
impl Topics for AwsTopics {
    async fn ensure_topic(&self, topic: &str) -> PortResult<()> {
        let out = self
            .client
            .create_topic()
            .name(self.physical(topic))
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", "false")
            // Server-side encryption with the account's AWS-managed SNS key: its key policy
            // lets the account's principals use it through SNS, so no IAM grant is needed.
            .attributes("KmsMasterKeyId", SNS_MANAGED_KEY)
            .send()
            .await
            .map_err(|e| classify("sns:CreateTopic", e))?;
        if let Some(arn) = out.topic_arn() {
            self.arns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(topic.to_string(), arn.to_string());
        }
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> PortResult<()> {
        let subs = match self.raw_subscriptions(topic).await {
            Ok(subs) => subs,
            Err(PortError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        for (sub, _, _) in subs {
            self.unsubscribe(&sub).await?;
        }
        let arn = self.arn(topic).await?;
        let result = self.client.delete_topic().topic_arn(arn).send().await;
        self.arns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
        match result {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, NOT_FOUND) => Ok(()),
            Err(e) => Err(classify("sns:DeleteTopic", e)),
        }
    }

    async fn list_topics(&self, prefix: &str) -> PortResult<Vec<String>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_topics()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("sns:ListTopics", e))?;
            for t in out.topics() {
                let arn = t.topic_arn().unwrap_or_default();
                if let Some(name) = self.logical(arn) {
                    if name.starts_with(prefix) {
                        self.arns
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.clone(), arn.to_string());
                        names.push(name);
                    }
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: &FilterPolicy,
    ) -> PortResult<Subscription> {
        let topic_arn = self.arn(topic).await?;
        let queue_arn = self.sqs.arn(queue).await?;
        self.allow_topic(queue, &queue_arn, &topic_arn).await?;
        let filter_json = filter.to_json();
        let existing = self
            .raw_subscriptions(topic)
            .await?
            .into_iter()
            .find(|(_, endpoint, protocol)| protocol == "sqs" && *endpoint == queue_arn);
        let id = match existing {
            Some((sub, _, _)) => {
                self.client
                    .set_subscription_attributes()
                    .subscription_arn(&sub)
                    .attribute_name("FilterPolicy")
                    .attribute_value(&filter_json)
                    .send()
                    .await
                    .map_err(|e| classify("sns:SetSubscriptionAttributes", e))?;
                sub
            }
            None => {
                let mut request = self
                    .client
                    .subscribe()
                    .topic_arn(&topic_arn)
                    .protocol("sqs")
                    .endpoint(&queue_arn)
                    .attributes("RawMessageDelivery", "true")
                    .return_subscription_arn(true);
                if !filter.0.is_empty() {
                    request = request.attributes("FilterPolicy", &filter_json);
                }
                let out = request
                    .send()
                    .await
                    .map_err(|e| self.fail("sns:Subscribe", topic, e))?;
                out.subscription_arn().unwrap_or_default().to_string()
            }
        };
        Ok(Subscription {
            id,
            topic: topic.to_string(),
            queue: queue.to_string(),
            filter: filter.clone(),
        })
    }

    async fn unsubscribe(&self, subscription_id: &str) -> PortResult<()> {
        match self
            .client
            .unsubscribe()
            .subscription_arn(subscription_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, NOT_FOUND) => Ok(()),
            Err(e) => Err(classify("sns:Unsubscribe", e)),
        }
    }

    async fn list_subscriptions(&self, topic: &str) -> PortResult<Vec<Subscription>> {
        let mut subs = Vec::new();
        for (arn, endpoint, protocol) in self.raw_subscriptions(topic).await? {
            if protocol != "sqs" || !arn.starts_with("arn:") {
                continue;
            }
            let Some(queue) = self.sqs.logical(&endpoint) else {
                continue;
            };
            let out = self
                .client
                .get_subscription_attributes()
                .subscription_arn(&arn)
                .send()
                .await
                .map_err(|e| classify("sns:GetSubscriptionAttributes", e))?;
            let filter = out
                .attributes()
                .and_then(|a| a.get("FilterPolicy"))
                .map(|p| parse_filter_policy(p))
                .unwrap_or_default();
            subs.push(Subscription {
                id: arn,
                topic: topic.to_string(),
                queue,
                filter,
            });
        }
        subs.sort_by(|a, b| a.queue.cmp(&b.queue).then(a.id.cmp(&b.id)));
        Ok(subs)
    }

    async fn publish_batch(
        &self,
        topic: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<SendOutcome>> {
        let op = "sns:PublishBatch";
        check_batch(op, messages)?;
        let arn = self.arn(topic).await?;
        let batch = OutgoingBatch::plan(op, &self.sqs.dedup, format!("topic:{topic}"), messages);
        let mut sent: HashMap<String, String> = HashMap::new();
        let entries = batch.to_send();
        if !entries.is_empty() {
            let mut request = self.client.publish_batch().topic_arn(arn);
            for (id, m) in entries {
                let mut entry = PublishBatchRequestEntry::builder()
                    .id(id)
                    .message(&m.body)
                    .message_group_id(&m.group_id)
                    .message_deduplication_id(&m.dedup_id);
                for (k, v) in &m.attributes {
                    let value = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(v)
                        .build()
                        .map_err(|e| PortError::invalid(op, e.to_string()))?;
                    entry = entry.message_attributes(k, value);
                }
                request = request.publish_batch_request_entries(
                    entry
                        .build()
                        .map_err(|e| PortError::invalid(op, e.to_string()))?,
                );
            }
            let out = request.send().await.map_err(|e| self.fail(op, topic, e))?;
            if let Some(f) = out.failed().first() {
                return Err(failed_entry(
                    op,
                    f.id(),
                    f.code(),
                    f.message(),
                    f.sender_fault(),
                ));
            }
            sent = out
                .successful()
                .iter()
                .map(|s| {
                    (
                        s.id().unwrap_or_default().to_string(),
                        s.message_id().unwrap_or_default().to_string(),
                    )
                })
                .collect();
        }
        batch.finish(&self.sqs.dedup, &sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_policy_round_trip() {
        let f = FilterPolicy::on("account", vec!["111".into(), "222".into()]);
        assert_eq!(parse_filter_policy(&f.to_json()), f);
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("eu-west-1"), "aws");
    }
}
