//! Wiring a worker process: settings → backend → pipeline → consumer, until shutdown.
//! The pipeline and the consumer each get the ports and settings they use, here.

use std::sync::Arc;
use std::time::Duration;

use accessflow_shared::config::Settings;
use anyhow::Context;

use accessflow_shared::metrics::server::{self as metrics_server, Health};

use crate::consumer::{self, Consumer, ConsumerOptions};
use crate::pipeline::Pipeline;
use crate::scale_in_protection::ProtectionSettings;
use crate::shutdown::Shutdown;
use accessflow_analysis::Engine;

/// Options of `worker serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Account queues this process works on at the same time.
    #[arg(long, env = "ACCESSFLOW_WORKER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,

    /// Seconds to finish in-flight messages after SIGTERM before exiting anyway.
    #[arg(long, env = "ACCESSFLOW_STOP_TIMEOUT", default_value_t = 25)]
    pub stop_timeout_secs: u64,

    /// Longest one message is worked on, in seconds: past it the step is abandoned and the
    /// message released for another worker, with the reason recorded in the run.
    #[arg(long, env = "ACCESSFLOW_MAX_HOLD_SECS", default_value_t = 1800)]
    pub max_hold_secs: u64,

    /// Milliseconds to pause after a sweep over all queues found nothing.
    #[arg(long, default_value_t = 200)]
    pub idle_pause_ms: u64,

    /// On exit, write the AWS requests this worker made (per operation) to this JSON file.
    #[arg(long)]
    pub request_report: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics (`/metrics`) and a health check (`/healthz`) on this
    /// address, e.g. `0.0.0.0:9464` (port 0 picks a free port, logged at start).
    #[arg(long, env = "ACCESSFLOW_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Runs a worker until SIGTERM / Ctrl-C.
pub async fn serve(settings: &Settings, args: &ServeArgs) -> anyhow::Result<()> {
    let names = settings.validate()?;
    let backend = accessflow_shared::backend::connect(settings)
        .await
        .context("cannot connect to the backend")?;
    let engine = Arc::new(Engine::new().context("the analysis engine cannot start")?);
    let pipeline = Arc::new(Pipeline::new(
        backend.ports.clone(),
        settings.clone(),
        names.clone(),
        engine,
    ));
    let consumer = Consumer::new(
        pipeline,
        backend.ports.clone(),
        names,
        settings.visibility_timeout(),
    );
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let health = Health::new(Duration::from_secs(60));
    accessflow_shared::metrics::set_build_info("worker");
    if let Some(addr) = args.metrics_addr {
        let bound = metrics_server::serve(addr, health.clone()).await?;
        tracing::info!(metrics_addr = %bound, "serving /metrics and /healthz");
    }
    let options = ConsumerOptions {
        health,
        concurrency: args.concurrency,
        idle_pause: Duration::from_millis(args.idle_pause_ms),
        stop_timeout: Duration::from_secs(args.stop_timeout_secs),
        max_hold: Duration::from_secs(args.max_hold_secs.max(1)),
        // On ECS (the agent sets ECS_AGENT_URI), busy tasks are protected from scale-in.
        scale_in_protection: ProtectionSettings::from_env(),
        ..ConsumerOptions::default()
    };
    consumer::run(consumer, options, shutdown).await?;
    let requests = backend.aws_request_counts();
    if !requests.is_empty() {
        tracing::info!(?requests, throttled = ?backend.aws_throttle_counts(), "AWS requests made by this worker");
    }
    if let Some(path) = &args.request_report {
        backend.write_request_report(path)?;
    }
    tracing::info!("worker stopped");
    Ok(())
}
