//! Settings of the AWS backend, read from the environment at start-up.
//!
//! The AWS side itself (credentials, region, endpoint) follows the SDK conventions through
//! `aws-config`: the credential chain (environment, profile, ECS task role, instance
//! profile), `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile's region, and
//! `AWS_ENDPOINT_URL` for LocalStack or moto. Accessflow's own names come from
//! `ACCESSFLOW_*` variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ACCESSFLOW_TABLE` | DynamoDB table (keys `pk`, `sk`, TTL attribute `expires_at`) | `accessflow` |
//! | `ACCESSFLOW_BUCKET` | S3 bucket for snapshots and reports | required |
//! | `ACCESSFLOW_BUCKET_PREFIX` | key prefix inside the bucket | empty |
//! | `ACCESSFLOW_KMS_ALIAS_PREFIX` | KMS alias of a customer's key is this + customer id | `alias/accessflow/` |
//! | `ACCESSFLOW_S3_FORCE_PATH_STYLE` | path-style S3 URLs (`true` for moto/LocalStack) | `true` with an endpoint URL |
//! | `ACCESSFLOW_AWS_RETRY_MAX_SECS` | how long IAM/STS throttling is retried with backoff | `60` |
//! | `ACCESSFLOW_ROLE_SESSION_NAME` | session name used for AssumeRole into customer accounts | `accessflow` |
//! | `ACCESSFLOW_IAM_LAST_ACCESSED` | fetch IAM service-last-accessed data (`off` only for emulators without it, e.g. moto: unused-access findings are then skipped) | `on` |
//! | `ACCESSFLOW_COLLECT_RESOURCES` | collect each account's resource inventory with its IAM data, through the assumed role (S3 bucket policies, account and bucket Block Public Access, ACLs, Object Ownership, tags; KMS key policies, grants, tags; SQS, SNS, Secrets Manager, Lambda, ECR and DynamoDB resource policies and tags), for the data access and public and cross-account reports; the Terraform customer role grants the reads (`off`: IAM only) | `on` |
//! | `ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS` | longest single attempt of any AWS call (above SQS's 20 s long poll) | `60` |
//! | `ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS` | longest AWS call, all its retries included | `300` |
//!
//! Settings both backends share (`--name-prefix` / `ACCESSFLOW_NAME_PREFIX` among them) are
//! read once, by [`crate::config::Settings`], and never again here: queue and topic names
//! reach this backend already carrying the deployment's prefix.

use std::time::Duration;

/// Everything the AWS backend needs besides the SDK's own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region override; `None` lets `aws-config` resolve it (env, profile).
    pub region: Option<String>,
    /// Endpoint override (LocalStack, moto); `None` lets `aws-config` read `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Fixed credentials (access key id, secret) for emulators; `None` uses the credential
    /// chain, which is what production does.
    pub static_credentials: Option<(String, String)>,
    /// DynamoDB table name.
    pub table: String,
    /// S3 bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (empty, or ending with `/`).
    pub bucket_prefix: String,
    /// Extra prefix of every SQS queue and SNS topic name this backend creates or lists, on
    /// top of the logical names (which already carry `--name-prefix`, see
    /// [`crate::naming::Names`]). Empty in the binaries; tests that share one emulator set
    /// it to keep their queues and topics apart. Not read from the environment.
    pub name_prefix: String,
    /// Prefix of the KMS alias of each customer's key (starts with `alias/`).
    pub kms_alias_prefix: String,
    /// Path-style S3 addressing (needed by moto and LocalStack on 127.0.0.1).
    pub s3_force_path_style: bool,
    /// How long throttled IAM/STS calls are retried (exponential backoff with jitter).
    pub retry_max_elapsed: Duration,
    /// The RoleSessionName used when assuming a customer's role.
    pub role_session_name: String,
    /// Longest single attempt of any AWS call: a hung connection fails and is retried
    /// instead of holding a message (and its lease) forever.
    pub attempt_timeout: Duration,
    /// Longest AWS call, all its attempts included.
    pub operation_timeout: Duration,
    /// Whether IAM service-last-accessed jobs are run. `false` only for emulators that lack
    /// the API (moto): the unused-access findings are then skipped.
    pub last_accessed: bool,
    /// Whether each account's resource inventory (buckets, keys, queues, topics, secrets,
    /// functions, repositories and tables, with their policies) is collected with its IAM
    /// data. On by default; the customer's role needs the read permissions the Terraform
    /// `customer_role` module grants.
    pub collect_resources: bool,
}

/// A setting that is missing or wrong: which one, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AWS backend setting {setting}: {problem}. {fix}")]
pub struct SettingsError {
    pub setting: &'static str,
    pub problem: String,
    pub fix: String,
}

impl SettingsError {
    fn new(setting: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        SettingsError {
            setting,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl AwsSettings {
    /// Settings with defaults for everything but the bucket, for tests and emulators.
    pub fn new(bucket: impl Into<String>) -> Self {
        AwsSettings {
            region: None,
            endpoint_url: None,
            static_credentials: None,
            table: "accessflow".to_string(),
            bucket: bucket.into(),
            bucket_prefix: String::new(),
            name_prefix: String::new(),
            kms_alias_prefix: "alias/accessflow/".to_string(),
            s3_force_path_style: false,
            retry_max_elapsed: Duration::from_secs(60),
            role_session_name: "accessflow".to_string(),
            attempt_timeout: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(300),
            last_accessed: true,
            collect_resources: true,
        }
    }

    /// Reads the settings from the process environment (see the module docs), and checks them.
    pub fn from_env() -> Result<AwsSettings, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`AwsSettings::from_env`], reading variables through `lookup` (for tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<AwsSettings, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let bucket = get("ACCESSFLOW_BUCKET").ok_or_else(|| {
            SettingsError::new(
                "ACCESSFLOW_BUCKET",
                "is not set",
                "Set it to the S3 bucket that holds snapshots and reports (terraform output `bucket`).",
            )
        })?;
        let mut s = AwsSettings::new(bucket);
        s.region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"));
        s.endpoint_url = get("AWS_ENDPOINT_URL");
        if let Some(v) = get("ACCESSFLOW_TABLE") {
            s.table = v;
        }
        if let Some(v) = lookup("ACCESSFLOW_BUCKET_PREFIX") {
            s.bucket_prefix = v.trim().to_string();
        }
        if let Some(v) = get("ACCESSFLOW_KMS_ALIAS_PREFIX") {
            s.kms_alias_prefix = v;
        }
        s.s3_force_path_style = match get("ACCESSFLOW_S3_FORCE_PATH_STYLE") {
            None => s.endpoint_url.is_some(),
            Some(v) => parse_bool(&v).ok_or_else(|| {
                SettingsError::new(
                    "ACCESSFLOW_S3_FORCE_PATH_STYLE",
                    format!("`{v}` is not a boolean"),
                    "Use true or false.",
                )
            })?,
        };
        let seconds =
            |name: &'static str, example: &str| -> Result<Option<Duration>, SettingsError> {
                match get(name) {
                    None => Ok(None),
                    Some(v) => v
                        .parse::<u64>()
                        .map(|n| Some(Duration::from_secs(n)))
                        .map_err(|_| {
                            SettingsError::new(
                                name,
                                format!("`{v}` is not a whole number of seconds"),
                                format!("Use e.g. {example}."),
                            )
                        }),
                }
            };
        if let Some(d) = seconds("ACCESSFLOW_AWS_RETRY_MAX_SECS", "60")? {
            s.retry_max_elapsed = d;
        }
        if let Some(d) = seconds("ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS", "60")? {
            s.attempt_timeout = d;
        }
        if let Some(d) = seconds("ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS", "300")? {
            s.operation_timeout = d;
        }
        if let Some(v) = get("ACCESSFLOW_IAM_LAST_ACCESSED") {
            s.last_accessed = parse_bool(&v).ok_or_else(|| {
                SettingsError::new(
                    "ACCESSFLOW_IAM_LAST_ACCESSED",
                    format!("`{v}` is not on or off"),
                    "Use on (AWS) or off (an emulator without service-last-accessed jobs).",
                )
            })?;
        }
        if let Some(v) = get("ACCESSFLOW_COLLECT_RESOURCES") {
            s.collect_resources = parse_bool(&v).ok_or_else(|| {
                SettingsError::new(
                    "ACCESSFLOW_COLLECT_RESOURCES",
                    format!("`{v}` is not on or off"),
                    "Use on (the customers' roles may read S3 and KMS policies) or off.",
                )
            })?;
        }
        if let Some(v) = get("ACCESSFLOW_ROLE_SESSION_NAME") {
            s.role_session_name = v;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks every name against the AWS naming rules, so a typo stops the program at start
    /// rather than failing the first request of the night.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(region) = &self.region {
            let ok = !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(SettingsError::new(
                    "AWS_REGION",
                    format!("`{region}` is not a region name"),
                    "Use a region such as eu-west-1.",
                ));
            }
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SettingsError::new(
                    "AWS_ENDPOINT_URL",
                    format!("`{url}` is not an http(s) URL"),
                    "Unset it to use AWS, or set it to the emulator, e.g. http://127.0.0.1:5000.",
                ));
            }
        }
        let table_ok = (3..=255).contains(&self.table.len())
            && self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !table_ok {
            return Err(SettingsError::new(
                "ACCESSFLOW_TABLE",
                format!("`{}` is not a valid DynamoDB table name", self.table),
                "Use 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'.",
            ));
        }
        let b = &self.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && b.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(SettingsError::new(
                "ACCESSFLOW_BUCKET",
                format!("`{b}` is not a valid S3 bucket name"),
                "Use 3-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit.",
            ));
        }
        if !self.bucket_prefix.is_empty() && !self.bucket_prefix.ends_with('/') {
            return Err(SettingsError::new(
                "ACCESSFLOW_BUCKET_PREFIX",
                format!("`{}` does not end with '/'", self.bucket_prefix),
                "Leave it empty or end it with '/', e.g. prod/.",
            ));
        }
        let prefix_ok = self.name_prefix.len() <= 40
            && self
                .name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return Err(SettingsError::new(
                "AwsSettings::name_prefix",
                format!("`{}` cannot start SQS/SNS names", self.name_prefix),
                "Use at most 40 characters of a-z, A-Z, 0-9, '-', '_'.",
            ));
        }
        let alias_ok = self.kms_alias_prefix.starts_with("alias/")
            && !self.kms_alias_prefix.starts_with("alias/aws/")
            && self
                .kms_alias_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'));
        if !alias_ok {
            return Err(SettingsError::new(
                "ACCESSFLOW_KMS_ALIAS_PREFIX",
                format!("`{}` is not a KMS alias prefix", self.kms_alias_prefix),
                "Start it with alias/ (not alias/aws/), e.g. alias/accessflow/.",
            ));
        }
        let session_ok = (2..=64).contains(&self.role_session_name.len())
            && self
                .role_session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(c));
        if !session_ok {
            return Err(SettingsError::new(
                "ACCESSFLOW_ROLE_SESSION_NAME",
                format!(
                    "`{}` is not a valid RoleSessionName",
                    self.role_session_name
                ),
                "Use 2-64 characters of a-z, A-Z, 0-9 and =,.@-_.",
            ));
        }
        // A receive long-polls for up to 20 s: a shorter attempt timeout would fail every
        // empty poll.
        if self.attempt_timeout <= Duration::from_secs(20) {
            return Err(SettingsError::new(
                "ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS",
                format!(
                    "{} s is not longer than SQS's 20 s long poll",
                    self.attempt_timeout.as_secs()
                ),
                "Use more than 20, e.g. 60.",
            ));
        }
        if self.operation_timeout < self.attempt_timeout {
            return Err(SettingsError::new(
                "ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS",
                format!(
                    "{} s is shorter than one attempt ({} s)",
                    self.operation_timeout.as_secs(),
                    self.attempt_timeout.as_secs()
                ),
                "Make it at least ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS, e.g. 300.",
            ));
        }
        Ok(())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn missing_bucket_names_the_setting() {
        let err = AwsSettings::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(err.setting, "ACCESSFLOW_BUCKET");
        assert!(err.to_string().contains("ACCESSFLOW_BUCKET"));
    }

    #[test]
    fn defaults_and_endpoint() {
        let s = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(s.table, "accessflow");
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert!(s.s3_force_path_style);
        assert_eq!(s.kms_alias_prefix, "alias/accessflow/");
    }

    #[test]
    fn call_timeouts_are_read_and_checked() {
        let s = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS", "45"),
            ("ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS", "90"),
        ]))
        .unwrap();
        assert_eq!(s.attempt_timeout, Duration::from_secs(45));
        assert_eq!(s.operation_timeout, Duration::from_secs(90));
        assert!(s.last_accessed, "on unless turned off");
        let off = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("ACCESSFLOW_IAM_LAST_ACCESSED", "off"),
        ]))
        .unwrap();
        assert!(!off.last_accessed);
        let err = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS", "10"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting, "ACCESSFLOW_AWS_ATTEMPT_TIMEOUT_SECS");
        let err = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS", "30"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting, "ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS");
        let err = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("ACCESSFLOW_AWS_OPERATION_TIMEOUT_SECS", "soon"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("`soon` is not a whole number"));
    }

    #[test]
    fn resource_collection_is_on_unless_turned_off() {
        let base = [("ACCESSFLOW_BUCKET", "my-bucket")];
        assert!(
            AwsSettings::from_lookup(lookup(&base))
                .unwrap()
                .collect_resources
        );
        let off =
            AwsSettings::from_lookup(lookup(&[base[0], ("ACCESSFLOW_COLLECT_RESOURCES", "off")]))
                .unwrap();
        assert!(!off.collect_resources);
        let err = AwsSettings::from_lookup(lookup(&[
            base[0],
            ("ACCESSFLOW_COLLECT_RESOURCES", "maybe"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting, "ACCESSFLOW_COLLECT_RESOURCES");
    }

    #[test]
    fn the_name_prefix_is_not_read_again() {
        // `--name-prefix` / ACCESSFLOW_NAME_PREFIX belongs to `config::Settings` alone.
        let s = AwsSettings::from_lookup(lookup(&[
            ("ACCESSFLOW_BUCKET", "my-bucket"),
            ("ACCESSFLOW_NAME_PREFIX", "bad prefix"),
        ]))
        .unwrap();
        assert_eq!(s.name_prefix, "");
    }

    #[test]
    fn a_wrong_extra_name_prefix_is_named() {
        let mut s = AwsSettings::new("my-bucket");
        s.name_prefix = "bad prefix".to_string();
        let err = s.validate().unwrap_err();
        assert_eq!(err.setting, "AwsSettings::name_prefix", "{err}");
    }

    #[test]
    fn wrong_values_are_named() {
        for (var, value) in [
            ("ACCESSFLOW_BUCKET", "My_Bucket"),
            ("ACCESSFLOW_TABLE", "a"),
            ("AWS_ENDPOINT_URL", "127.0.0.1:5000"),
            ("ACCESSFLOW_KMS_ALIAS_PREFIX", "accessflow/"),
            ("ACCESSFLOW_AWS_RETRY_MAX_SECS", "soon"),
            ("ACCESSFLOW_S3_FORCE_PATH_STYLE", "maybe"),
            ("ACCESSFLOW_BUCKET_PREFIX", "prod"),
        ] {
            let mut pairs = vec![("ACCESSFLOW_BUCKET", "my-bucket")];
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, value));
            let err = AwsSettings::from_lookup(lookup(&pairs)).unwrap_err();
            assert_eq!(err.setting, var, "{err}");
        }
    }
}
