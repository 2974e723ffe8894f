//! Settings both binaries share: which backend, where its data lives, the queue behaviour.
//!
//! Every setting is a command-line flag with an `ACCESSFLOW_*` environment variable behind
//! it, so the same binary is configured the same way on a laptop, in CI and on ECS. The AWS
//! backend additionally follows the AWS SDK conventions (`AWS_REGION`, `AWS_ENDPOINT_URL`,
//! the credential chain).

use std::path::PathBuf;
use std::time::Duration;

use crate::naming::Names;
use crate::ports::QueueSpec;

/// Which implementation of the ports to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// SQLite and a directory on this machine (the default).
    Embedded,
    /// SQS, SNS, DynamoDB, S3, KMS, STS and IAM through the AWS SDK.
    Aws,
}

/// Settings common to the coordinator and the workers.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Backend for queues, topics, ledger, blobs and keys.
    #[arg(
        long,
        env = "ACCESSFLOW_BACKEND",
        value_enum,
        default_value = "embedded",
        global = true
    )]
    pub backend: BackendKind,

    /// Directory of the embedded backend (database, blobs, keyring, sample fixtures).
    #[arg(
        long,
        env = "ACCESSFLOW_DATA_DIR",
        default_value = ".accessflow",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Prefix of every queue, topic and key name of this deployment.
    #[arg(
        long,
        env = "ACCESSFLOW_NAME_PREFIX",
        default_value = "accessflow",
        global = true
    )]
    pub name_prefix: String,

    /// Visibility timeout of the account queues, in seconds (workers heartbeat at a third of it).
    #[arg(
        long,
        env = "ACCESSFLOW_VISIBILITY_TIMEOUT",
        default_value_t = 60,
        global = true
    )]
    pub visibility_timeout_secs: u64,

    /// Receives after which a message goes to its DLQ.
    #[arg(
        long,
        env = "ACCESSFLOW_MAX_RECEIVE_COUNT",
        default_value_t = 5,
        global = true
    )]
    pub max_receive_count: u32,

    /// How long cached last-accessed data stays fresh, in hours.
    #[arg(
        long,
        env = "ACCESSFLOW_LAST_ACCESSED_TTL_HOURS",
        default_value_t = 20,
        global = true
    )]
    pub last_accessed_ttl_hours: u64,

    /// How long a new or changed SNS filter policy may take to apply, in seconds (default:
    /// 900 on AWS, SNS's documented worst case; 0 embedded). While an account's
    /// subscription is younger than this, `start` sends its work straight to its queue.
    /// The embedded backend applies new filter policies only after this long too, so tests
    /// can reproduce the propagation delay.
    #[arg(long, env = "ACCESSFLOW_FILTER_PROPAGATION_SECS", global = true)]
    pub filter_propagation_secs: Option<u64>,
}

/// A setting that cannot work, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("setting {setting} is invalid: {problem}")]
pub struct SettingsError {
    pub setting: &'static str,
    pub problem: String,
}

impl Settings {
    /// Checks the settings that are not checked by their types.
    pub fn validate(&self) -> Result<Names, SettingsError> {
        let names = Names::new(&self.name_prefix).map_err(|e| SettingsError {
            setting: "--name-prefix / ACCESSFLOW_NAME_PREFIX",
            problem: e.to_string(),
        })?;
        if !(1..=43_200).contains(&self.visibility_timeout_secs) {
            return Err(SettingsError {
                setting: "--visibility-timeout-secs / ACCESSFLOW_VISIBILITY_TIMEOUT",
                problem: format!(
                    "{} is outside 1..=43200 seconds (SQS allows up to 12 hours)",
                    self.visibility_timeout_secs
                ),
            });
        }
        // At least 2: a worker keeps the queue's last receive to record a failure (the
        // poison guard), so it needs one receive before that to try the step at all.
        if !(2..=1000).contains(&self.max_receive_count) {
            return Err(SettingsError {
                setting: "--max-receive-count / ACCESSFLOW_MAX_RECEIVE_COUNT",
                problem: format!(
                    "{} is outside 2..=1000 (the SQS redrive policy allows 1..=1000; the worker keeps the last receive to record a failure, so it needs at least 2)",
                    self.max_receive_count
                ),
            });
        }
        if !(1..=24 * 365).contains(&self.last_accessed_ttl_hours) {
            return Err(SettingsError {
                setting: "--last-accessed-ttl-hours / ACCESSFLOW_LAST_ACCESSED_TTL_HOURS",
                problem: format!("{} is outside 1..=8760 hours", self.last_accessed_ttl_hours),
            });
        }
        Ok(names)
    }

    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    /// How long a new subscription's filter policy may take to apply on this backend.
    pub fn filter_propagation(&self) -> Duration {
        let default = match self.backend {
            BackendKind::Aws => 900,
            BackendKind::Embedded => 0,
        };
        Duration::from_secs(self.filter_propagation_secs.unwrap_or(default))
    }

    pub fn last_accessed_ttl(&self) -> Duration {
        Duration::from_secs(self.last_accessed_ttl_hours * 3600)
    }

    /// The queue spec of one account.
    pub fn queue_spec(&self, names: &Names, customer: &str, account: &str) -> QueueSpec {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("accessflow:customer".to_string(), customer.to_string());
        tags.insert("accessflow:account".to_string(), account.to_string());
        QueueSpec {
            name: names.account_queue(customer, account),
            dlq_name: names.account_dlq(customer, account),
            visibility_timeout: self.visibility_timeout(),
            max_receive_count: self.max_receive_count,
            retention: Duration::from_secs(4 * 24 * 3600),
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn settings(args: &[&str]) -> Settings {
        Cli::parse_from(std::iter::once("test").chain(args.iter().copied())).settings
    }

    #[test]
    fn one_receive_is_too_few_for_the_poison_guard() {
        let err = settings(&["--max-receive-count", "1"])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("at least 2"), "{err}");
        assert!(settings(&["--max-receive-count", "2"]).validate().is_ok());
    }

    #[test]
    fn filter_propagation_defaults_by_backend() {
        assert_eq!(settings(&[]).filter_propagation(), Duration::ZERO);
        assert_eq!(
            settings(&["--backend", "aws"]).filter_propagation(),
            Duration::from_secs(900)
        );
        assert_eq!(
            settings(&["--filter-propagation-secs", "5"]).filter_propagation(),
            Duration::from_secs(5)
        );
    }
}
