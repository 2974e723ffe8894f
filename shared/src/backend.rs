//! Choosing and connecting the backend named by the settings.
//!
//! One place decides embedded or AWS; everything after it sees only [`Ports`]. The AWS
//! backend also keeps its request counters, which a process reports when it stops (the
//! requests-per-item figures of the README come from them).

use std::collections::BTreeMap;

use crate::aws::{AwsBackend, AwsSettings};
use crate::config::{BackendKind, Settings};
use crate::embedded::EmbeddedBackend;
use crate::ports::Ports;

/// A connected backend.
#[derive(Clone)]
pub struct Backend {
    pub ports: Ports,
    aws: Option<AwsBackend>,
}

impl Backend {
    /// AWS requests this process made, per `service:Operation` (empty on the embedded backend).
    pub fn aws_operation_counts(&self) -> BTreeMap<String, u64> {
        self.aws
            .as_ref()
            .map(AwsBackend::operation_counts)
            .unwrap_or_default()
    }

    /// AWS requests this process made, per service (empty on the embedded backend).
    pub fn aws_request_counts(&self) -> BTreeMap<String, u64> {
        self.aws
            .as_ref()
            .map(AwsBackend::request_counts)
            .unwrap_or_default()
    }

    /// Creates what the backend needs before its first run: on AWS the DynamoDB table and the
    /// S3 bucket (for emulators and first-time setups; production gets them from Terraform,
    /// with keys, logging and lifecycle rules this does not set); embedded, nothing (the
    /// database and directories are created when the backend is opened). Idempotent.
    pub async fn provision(&self) -> anyhow::Result<()> {
        if let Some(aws) = &self.aws {
            aws.provision()
                .await
                .map_err(|e| anyhow::anyhow!("cannot provision the AWS backend: {e}"))?;
        }
        Ok(())
    }

    /// Writes the AWS requests this process made (per service, per operation, throttled) as
    /// JSON to `path`: the cost figures and the least-privilege test read these reports.
    pub fn write_request_report(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let report = serde_json::json!({
            "requests": self.aws_request_counts(),
            "operations": self.aws_operation_counts(),
            // Of those, the ones made with a customer role's credentials.
            "customer_role_operations": self.aws.as_ref().map(AwsBackend::customer_role_operation_counts).unwrap_or_default(),
            "billed_units": self.aws.as_ref().map(AwsBackend::billed_units).unwrap_or_default(),
            "throttled": self.aws_throttle_counts(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .map_err(|e| anyhow::anyhow!("cannot write the request report {}: {e}", path.display()))
    }

    /// Throttled AWS responses, per service.
    pub fn aws_throttle_counts(&self) -> BTreeMap<String, u64> {
        self.aws
            .as_ref()
            .map(AwsBackend::throttle_counts)
            .unwrap_or_default()
    }
}

/// Connects the ports of the configured backend. A wrong or missing setting fails here, at
/// start-up, with a message naming the setting and what to do.
pub async fn connect(settings: &Settings) -> anyhow::Result<Backend> {
    match settings.backend {
        BackendKind::Embedded => {
            let backend = EmbeddedBackend::open_with(
                &settings.data_dir,
                crate::clock::Clock::system(),
                settings.filter_propagation(),
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the embedded backend in {} ({e}); check --data-dir / ACCESSFLOW_DATA_DIR",
                    settings.data_dir.display()
                )
            })?;
            Ok(Backend {
                ports: backend.ports(),
                aws: None,
            })
        }
        BackendKind::Aws => {
            // Only the AWS-specific settings come from here; queue and topic names already
            // carry --name-prefix (see `naming`), which `Settings` alone reads.
            let aws_settings = AwsSettings::from_env()?;
            let backend = AwsBackend::connect(&aws_settings)
                .await
                .map_err(|e| anyhow::anyhow!("cannot set up the AWS backend: {e}"))?;
            Ok(Backend {
                ports: backend.ports(),
                aws: Some(backend),
            })
        }
    }
}
