//! Logging setup shared by the binaries: `tracing` to stderr, filtered by `RUST_LOG`
//! (default `info`), compact so several worker processes can share one terminal.
//!
//! Colours only on a terminal and without `NO_COLOR`: in a container the log driver
//! (CloudWatch Logs on ECS) gets plain lines, which metric filters can match.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The environment variables the logging setup reads.
pub const ENVIRONMENT: &[&str] = &["RUST_LOG", "NO_COLOR"];

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .compact()
        .try_init();
}
