//! Reconcile: make the queues, DLQs, topics, subscriptions, customer keys and the tenant
//! registry match the tenants file, before any work is published (an SNS filter policy can
//! take minutes to apply, so queues come first — docs/ARCHITECTURE.md §9).
//!
//! Accounts no longer listed are removed only once drained: while their queue still holds
//! messages, it stays registered so workers finish it; a non-empty DLQ is never deleted.

use std::collections::{BTreeMap, BTreeSet};

use accessflow_shared::config::Settings;
use accessflow_shared::ledger::{Ledger, TenantAccount};
use accessflow_shared::naming::{shard_accounts, Names};
use accessflow_shared::ports::{FilterPolicy, Ports, Subscription};
use accessflow_shared::tenants::TenantsFile;
use tracing::{info, warn};

/// What reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub queues_ensured: usize,
    pub queues_removed: Vec<String>,
    /// Queues of removed accounts that still hold messages (left to drain).
    pub queues_draining: Vec<String>,
    /// DLQs kept because they still hold messages.
    pub dlqs_kept: Vec<String>,
}

pub async fn reconcile(
    ports: &Ports,
    settings: &Settings,
    names: &Names,
    tenants: &TenantsFile,
) -> anyhow::Result<ReconcileReport> {
    let ledger = Ledger::new(ports.store.clone());
    let mut report = ReconcileReport::default();
    let accounts = tenants.accounts();
    let mut by_customer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (locator, _) in &accounts {
        by_customer
            .entry(&locator.customer)
            .or_default()
            .push(&locator.account);
    }

    // Desired state: keys, topics, queues, subscriptions.
    let mut desired_queues = BTreeSet::new();
    // (customer, account) whose subscription was created or changed now.
    let mut fresh: BTreeSet<(String, String)> = BTreeSet::new();
    for (customer, customer_accounts) in &by_customer {
        ports.keys.ensure_customer_key(customer).await?;
        let shards = shard_accounts(customer_accounts.iter().copied());
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // The subscriptions each topic had before: a new or changed one is recorded, since
        // its filter policy may take minutes to apply.
        let mut existing: BTreeMap<String, Vec<Subscription>> = BTreeMap::new();
        for (account, shard) in shards {
            let topic = names.customer_topic(customer, shard);
            let spec = settings.queue_spec(names, customer, account);
            ports.queues.ensure_queue(&spec).await?;
            if !wanted.contains_key(&topic) {
                ports.topics.ensure_topic(&topic).await?;
                existing.insert(
                    topic.clone(),
                    ports.topics.list_subscriptions(&topic).await?,
                );
            }
            let filter = FilterPolicy::on("account", vec![account.to_string()]);
            let unchanged = existing.get(&topic).is_some_and(|subs| {
                subs.iter()
                    .any(|s| s.queue == spec.name && s.filter == filter)
            });
            if !unchanged {
                fresh.insert((customer.to_string(), account.to_string()));
            }
            ports.topics.subscribe(&topic, &spec.name, &filter).await?;
            wanted.entry(topic).or_default().insert(spec.name.clone());
            desired_queues.insert(spec.name);
            report.queues_ensured += 1;
        }
        // Subscriptions that no longer belong on a topic of this customer (exactly this
        // customer's: `acme`'s prefix also lists `acme-eu`'s topics).
        for topic in customer_topics(ports, names, customer).await? {
            let keep = wanted.get(&topic);
            for sub in ports.topics.list_subscriptions(&topic).await? {
                if !keep.is_some_and(|k| k.contains(&sub.queue)) {
                    info!(topic, queue = sub.queue, "removing a stale subscription");
                    ports.topics.unsubscribe(&sub.id).await?;
                }
            }
            if keep.is_none() && ports.topics.list_subscriptions(&topic).await?.is_empty() {
                ports.topics.delete_topic(&topic).await?;
            }
        }
    }
    // Topics of customers no longer in the tenants file: their subscriptions and the topics
    // themselves go (their queues go below, like any removed account's).
    for topic in ports.topics.list_topics(&names.topics_prefix()).await? {
        let Some(customer) = names.customer_of_topic(&topic) else {
            continue;
        };
        if by_customer.contains_key(customer.as_str()) {
            continue;
        }
        for sub in ports.topics.list_subscriptions(&topic).await? {
            info!(
                topic,
                queue = sub.queue,
                "removing a removed customer's subscription"
            );
            ports.topics.unsubscribe(&sub.id).await?;
        }
        info!(topic, customer, "removing a removed customer's topic");
        ports.topics.delete_topic(&topic).await?;
    }
    let now_ms = ports.clock.now_ms();
    for (locator, size_hint) in &accounts {
        let key = (locator.customer.clone(), locator.account.clone());
        let subscribed_at_ms = if fresh.contains(&key) {
            Some(now_ms)
        } else {
            ledger
                .tenant(&locator.customer, &locator.account)
                .await?
                .and_then(|t| t.subscribed_at_ms)
        };
        ledger
            .put_tenant(&TenantAccount {
                locator: locator.clone(),
                size_hint: *size_hint,
                subscribed_at_ms,
            })
            .await?;
    }

    // Queues of accounts no longer listed: remove once drained.
    for queue in ports.queues.list_queues(&names.queue_prefix()).await? {
        if Names::is_dlq(&queue) || desired_queues.contains(&queue) {
            continue;
        }
        let Some((customer, account)) = names.parse_account_queue(&queue) else {
            continue;
        };
        let depth = ports.queues.depth(&queue).await?;
        if depth.total() > 0 {
            warn!(
                queue,
                messages = depth.total(),
                "account removed from the tenants file; its queue is drained first"
            );
            report.queues_draining.push(queue);
            continue;
        }
        let dlq = ports.queues.dlq_of(&queue).await.ok();
        for topic in customer_topics(ports, names, &customer).await? {
            for sub in ports.topics.list_subscriptions(&topic).await? {
                if sub.queue == queue {
                    ports.topics.unsubscribe(&sub.id).await?;
                }
            }
        }
        ports.queues.delete_queue(&queue).await?;
        ledger.delete_tenant(&customer, &account).await?;
        info!(queue, "removed the queue of an account no longer listed");
        report.queues_removed.push(queue);
        if let Some(dlq) = dlq {
            if ports.queues.depth(&dlq).await?.total() == 0 {
                ports.queues.delete_queue(&dlq).await?;
            } else {
                warn!(dlq, "keeping a non-empty DLQ of a removed account; replay or inspect it with `coordinator dlq`");
                report.dlqs_kept.push(dlq);
            }
        }
    }
    Ok(report)
}

/// The topics of exactly one customer.
async fn customer_topics(
    ports: &Ports,
    names: &Names,
    customer: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(ports
        .topics
        .list_topics(&names.topic_prefix(customer))
        .await?
        .into_iter()
        .filter(|topic| names.is_customer_topic(customer, topic))
        .collect())
}
