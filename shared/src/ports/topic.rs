//! Fan-out topics: SNS FIFO semantics.
//!
//! A topic per customer (sharded: one FIFO topic takes at most 100 subscriptions). Each
//! account's queue subscribes with a filter policy on the `account` message attribute and raw
//! message delivery, so a message published with `account = X` lands, unchanged (body,
//! group id, dedup id, attributes), in exactly the queues whose filter matches.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{OutgoingMessage, PortResult, SendOutcome};

/// An SNS filter policy restricted to what Accessflow uses: for each attribute, the list of
/// exact string values that match. A message matches when every listed attribute is present
/// with one of its values. An empty policy matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPolicy(pub BTreeMap<String, Vec<String>>);

impl FilterPolicy {
    pub fn on(attribute: impl Into<String>, values: Vec<String>) -> Self {
        let mut map = BTreeMap::new();
        map.insert(attribute.into(), values);
        FilterPolicy(map)
    }

    pub fn matches(&self, attributes: &BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|(key, values)| attributes.get(key).is_some_and(|v| values.contains(v)))
    }

    /// The SNS JSON form, e.g. `{"account":["111122223333"]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_string())
    }
}

/// A subscription of a queue to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Backend id of the subscription (an ARN on AWS).
    pub id: String,
    pub topic: String,
    pub queue: String,
    pub filter: FilterPolicy,
}

#[async_trait]
pub trait Topics: Send + Sync {
    /// Creates the topic if missing; idempotent.
    async fn ensure_topic(&self, topic: &str) -> PortResult<()>;

    /// Deletes a topic and its subscriptions. Missing is not an error.
    async fn delete_topic(&self, topic: &str) -> PortResult<()>;

    /// Names of the topics whose name starts with `prefix`, sorted.
    async fn list_topics(&self, prefix: &str) -> PortResult<Vec<String>>;

    /// Subscribes `queue` with `filter` and raw delivery. Subscribing the same queue again
    /// updates the filter and returns the existing subscription.
    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: &FilterPolicy,
    ) -> PortResult<Subscription>;

    /// Removes a subscription by id. Missing is not an error.
    async fn unsubscribe(&self, subscription_id: &str) -> PortResult<()>;

    /// The subscriptions of a topic, sorted by queue name.
    async fn list_subscriptions(&self, topic: &str) -> PortResult<Vec<Subscription>>;

    /// Publishes up to 10 messages; each is delivered to every matching subscription's queue
    /// (deduplicated per topic within the 5-minute window). Outcomes are in order.
    async fn publish_batch(
        &self,
        topic: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<SendOutcome>>;
}
