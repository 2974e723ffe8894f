//! Accessflow core library.
//!
//! Everything the coordinator and the workers share lives here:
//! - [`ports`]: the traits every side effect goes through, and [`embedded`], the
//!   SQLite/directory backend behind them (the AWS backend sits next to it);
//! - [`message`]: the work messages and their envelope; [`step`]: the step key each stands for;
//! - [`naming`]: how queue, topic, key and blob names are derived from customer and account;
//! - [`ledger`], [`idempotency`], [`cache`]: run bookkeeping and exactly-once effects,
//!   built on the key-value port so both backends share one implementation;
//! - [`crypto`]: per-customer envelope encryption with AES-256-GCM;
//! - [`tenants`]: the tenant configuration file;
//! - [`metrics`]: the Prometheus metrics of both binaries, and their catalog;
//! - [`telemetry`]: logging (text on a terminal, JSON lines otherwise).

pub mod aws;
pub mod backend;
pub mod cache;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod embedded;
pub mod idempotency;
pub mod ledger;
pub mod message;
pub mod metrics;
pub mod naming;
pub mod ports;
pub mod step;
pub mod telemetry;
pub mod tenants;
