//! How names are derived from customer and account ids: queues, DLQs, topic shards.
//!
//! Every name carries the customer id (docs/ARCHITECTURE.md §5, tenancy), and all of them start with a
//! deployment prefix so several deployments can share one AWS account or one data directory.
//! SQS and SNS allow 80 characters of `[A-Za-z0-9_-]` (the AWS backend appends `.fifo`).

use thiserror::Error;

/// A FIFO topic takes at most 100 subscriptions; one account is one subscription.
pub const MAX_SUBSCRIPTIONS_PER_TOPIC: usize = 100;

/// An id that cannot be used in resource names.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("customer id {0:?} is invalid: use 1 to 20 characters of a-z, 0-9 and '-', starting with a letter or digit")]
    Customer(String),
    #[error("account id {0:?} is invalid: an AWS account id is exactly 12 digits")]
    Account(String),
    #[error("name prefix {0:?} is invalid: use 1 to 20 characters of a-z, 0-9 and '-'")]
    Prefix(String),
}

pub fn validate_customer(id: &str) -> Result<(), NameError> {
    let ok = !id.is_empty()
        && id.len() <= 20
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Customer(id.to_string()))
    }
}

pub fn validate_account(id: &str) -> Result<(), NameError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(NameError::Account(id.to_string()))
    }
}

pub fn validate_prefix(prefix: &str) -> Result<(), NameError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 20
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Prefix(prefix.to_string()))
    }
}

/// Names of one deployment's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Result<Names, NameError> {
        validate_prefix(prefix)?;
        Ok(Names {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Prefix shared by every account queue (and DLQ) of the deployment.
    pub fn queue_prefix(&self) -> String {
        format!("{}-q-", self.prefix)
    }

    /// The work queue of one account: `<prefix>-q-<customer>-<account>`.
    pub fn account_queue(&self, customer: &str, account: &str) -> String {
        format!("{}-q-{customer}-{account}", self.prefix)
    }

    /// The dead-letter queue of one account's queue.
    pub fn account_dlq(&self, customer: &str, account: &str) -> String {
        format!("{}-dlq", self.account_queue(customer, account))
    }

    /// Whether a queue name is a DLQ.
    pub fn is_dlq(queue: &str) -> bool {
        queue.ends_with("-dlq")
    }

    /// Splits an account queue (or DLQ) name back into (customer, account).
    pub fn parse_account_queue(&self, queue: &str) -> Option<(String, String)> {
        let rest = queue.strip_prefix(&self.queue_prefix())?;
        let rest = rest.strip_suffix("-dlq").unwrap_or(rest);
        let (customer, account) = rest.rsplit_once('-')?;
        (validate_customer(customer).is_ok() && validate_account(account).is_ok())
            .then(|| (customer.to_string(), account.to_string()))
    }

    /// Prefix of every customer topic of this deployment.
    pub fn topics_prefix(&self) -> String {
        format!("{}-t-", self.prefix)
    }

    /// The customer whose topic shard `topic` is (`<prefix>-t-<customer>-<shard>`), if it
    /// is one.
    pub fn customer_of_topic(&self, topic: &str) -> Option<String> {
        let rest = topic.strip_prefix(&self.topics_prefix())?;
        let (customer, shard) = rest.rsplit_once('-')?;
        let is_shard = !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit());
        (is_shard && validate_customer(customer).is_ok()).then(|| customer.to_string())
    }

    /// Prefix of every topic of one customer.
    pub fn topic_prefix(&self, customer: &str) -> String {
        format!("{}-t-{customer}-", self.prefix)
    }

    /// Topic shard `shard` of a customer: `<prefix>-t-<customer>-<shard>`.
    pub fn customer_topic(&self, customer: &str, shard: usize) -> String {
        format!("{}{shard}", self.topic_prefix(customer))
    }

    /// Whether `topic` is a shard of exactly this customer's. A listing by
    /// [`Names::topic_prefix`] is not enough: customer `acme`'s prefix also matches
    /// `acme-eu`'s topics, so what follows the prefix must be a shard number.
    pub fn is_customer_topic(&self, customer: &str, topic: &str) -> bool {
        topic
            .strip_prefix(&self.topic_prefix(customer))
            .is_some_and(|shard| !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Assigns accounts to topic shards: the customer's accounts, sorted, in chunks of
/// [`MAX_SUBSCRIPTIONS_PER_TOPIC`]. Returns (account, shard) in account order.
pub fn shard_accounts<'a>(accounts: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut sorted: Vec<&str> = accounts.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, a)| (a, i / MAX_SUBSCRIPTIONS_PER_TOPIC))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_topic_is_matched_exactly() {
        let n = Names::new("accessflow").unwrap();
        let acme = n.customer_topic("acme", 0);
        let acme_eu = n.customer_topic("acme-eu", 12);
        assert!(n.is_customer_topic("acme", &acme));
        assert!(n.is_customer_topic("acme-eu", &acme_eu));
        assert!(acme_eu.starts_with(&n.topic_prefix("acme")), "the trap");
        assert!(!n.is_customer_topic("acme", &acme_eu));
        assert!(!n.is_customer_topic("acme-eu", &acme));
        assert!(!n.is_customer_topic("acme", "accessflow-t-acme-"));
        assert_eq!(n.customer_of_topic(&acme_eu).as_deref(), Some("acme-eu"));
        assert_eq!(n.customer_of_topic(&acme).as_deref(), Some("acme"));
        assert_eq!(n.customer_of_topic("accessflow-t-acme-"), None);
        assert_eq!(n.customer_of_topic("accessflow-q-acme-1"), None);
        assert_eq!(n.customer_of_topic("other-t-acme-0"), None);
    }

    #[test]
    fn queue_names_round_trip() {
        let names = Names::new("accessflow").unwrap();
        let q = names.account_queue("acme-eu", "111122223333");
        assert_eq!(q, "accessflow-q-acme-eu-111122223333");
        assert_eq!(
            names.parse_account_queue(&q),
            Some(("acme-eu".into(), "111122223333".into()))
        );
        let dlq = names.account_dlq("acme-eu", "111122223333");
        assert!(Names::is_dlq(&dlq));
        assert_eq!(
            names.parse_account_queue(&dlq),
            Some(("acme-eu".into(), "111122223333".into()))
        );
        assert_eq!(names.parse_account_queue("other-q-x-1"), None);
        // The longest names stay within SQS's 80 characters, `.fifo` included.
        let long = Names::new("abcdefghijklmnopqrst").unwrap();
        let dlq = long.account_dlq("abcdefghijklmnopqrst", "111122223333");
        assert!(dlq.len() + ".fifo".len() <= 80, "{} is too long", dlq);
    }

    #[test]
    fn ids_are_validated() {
        assert!(validate_customer("acme").is_ok());
        assert!(validate_customer("Acme").is_err());
        assert!(validate_customer("").is_err());
        assert!(validate_customer("a_b").is_err());
        assert!(validate_account("123456789012").is_ok());
        assert!(validate_account("12345678901").is_err());
        assert!(validate_account("12345678901x").is_err());
    }

    #[test]
    fn shards_hold_at_most_one_hundred_accounts() {
        let accounts: Vec<String> = (0..250).map(|i| format!("{:012}", i)).collect();
        let shards = shard_accounts(accounts.iter().map(String::as_str));
        assert_eq!(shards.len(), 250);
        assert_eq!(shards[99].1, 0);
        assert_eq!(shards[100].1, 1);
        assert_eq!(shards[249].1, 2);
    }
}
