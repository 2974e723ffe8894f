//! Accessflow worker library.
//!
//! The analysis engine itself is the `accessflow-analysis` crate; this crate runs it over
//! the work queues.
//!
//! - [`pipeline`]: the three message handlers (collect, analyze, finalize) over the ports.
//! - [`consumer`]: the polling loop with bounded concurrency and shutdown;
//! - [`lease`]: what a batch holds (message visibility, the step's claim) and its heartbeat;
//! - [`offline`]: `worker analyze` and `worker check`, the engine on one file, no queues;
//! - [`startup`]: wiring a worker process from its settings.
//! - [`shutdown`]: the one type that tells every task to stop.
//! - [`scale_in_protection`]: on ECS, no scale-in stops a task holding a message;
//! - [`autoscaling`]: the worker service's scaling policy (tasks from accounts with work).

pub mod autoscaling;
pub mod consumer;
pub mod lease;
pub mod memory;
pub mod offline;
pub mod pipeline;
pub mod scale_in_protection;
pub mod shutdown;
pub mod startup;
