//! IAM source: where an account's IAM configuration comes from.
//!
//! On AWS: STS AssumeRole into the customer's account (with the ExternalId the customer
//! set), then `GetAccountAuthorizationDetails`, the credential report and the
//! service-last-accessed jobs. Embedded: a fixture directory per account holding
//! `authorization-details.json`, `credential-report.csv` and `last-accessed.json`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortResult;

/// Everything needed to reach one customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLocator {
    pub customer: String,
    pub account: String,
    /// ARN of the role Accessflow assumes in the account (AWS backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The ExternalId the customer's trust policy requires (AWS backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Fixture directory (embedded backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture_dir: Option<String>,
    /// The customer's known partner accounts (the tenants file's `trusted_accounts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_accounts: Vec<String>,
    /// The regions whose resource policies are collected (the tenants file's `regions`);
    /// empty: the backend's own region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

/// The raw account-level IAM data, exactly as AWS returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSnapshotRaw {
    /// `get-account-authorization-details`, all pages merged into one JSON document.
    pub authorization_details: Vec<u8>,
    /// The credential report CSV (decoded).
    pub credential_report: Vec<u8>,
    /// The resource inventory (`resources.json`: data stores with their resource policies,
    /// see `accessflow_analysis::resources`), when the source collects one.
    pub resources: Option<Vec<u8>>,
}

#[async_trait]
pub trait IamSource: Send + Sync {
    /// Collects the account-level data (authorization details and credential report).
    async fn fetch_account(&self, account: &AccountLocator) -> PortResult<AccountSnapshotRaw>;

    /// The service-last-accessed details of one principal, as the JSON of
    /// `GetServiceLastAccessedDetails`. `Ok(None)` when the source has none for it.
    async fn last_accessed(
        &self,
        account: &AccountLocator,
        principal_arn: &str,
    ) -> PortResult<Option<Vec<u8>>>;
}
