//! Test and benchmark support for Accessflow. Nothing here is part of a production build:
//! only tests, benchmarks and the `queue-bench` binary depend on this crate.
//!
//! - [`data_stores`]: one data store of each kind the resource inventory reads, in an
//!   emulated account;
//! - [`moto`]: installs moto's server into a virtualenv under `target/` and starts it on a
//!   free loopback port, once per test process, for the AWS backend's tests;
//! - [`python_venv`]: the virtualenvs under `target/` that hold Python tools from PyPI;
//! - [`seed`]: writes an account's IAM data (an authorization-details document) into moto's
//!   IAM, so the real binaries can collect it through STS and IAM;

pub mod data_stores;
pub mod moto;
pub mod python_venv;
pub mod seed;
