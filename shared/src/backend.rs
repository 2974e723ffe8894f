//! Choosing and connecting the backend named by the settings.

use crate::config::{BackendKind, Settings};
use crate::ports::Ports;

/// Connects the ports of the configured backend.
pub async fn connect(settings: &Settings) -> anyhow::Result<Ports> {
    match settings.backend {
        BackendKind::Embedded => {
            let backend = crate::embedded::EmbeddedBackend::open(&settings.data_dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the embedded backend in {} ({e}); check --data-dir / ACCESSFLOW_DATA_DIR",
                    settings.data_dir.display()
                )
            })?;
            Ok(backend.ports())
        }
        BackendKind::Aws => anyhow::bail!(
            "the AWS backend is not built into this version yet; use --backend embedded"
        ),
    }
}
