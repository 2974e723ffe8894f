//! Accessflow worker library.
//!
//! - [`analysis`]: the access analysis engine — parse authorization details, evaluate
//!   policies, classify access, build reports. Usable without any queue.
//! - [`pipeline`]: the three message handlers (collect, analyze, finalize) over the ports.
//! - [`consumer`]: the polling loop with bounded concurrency, heartbeat and shutdown.
//! - [`startup`]: wiring a worker process from its settings.
//! - [`shutdown`]: the one type that tells every task to stop.

pub mod analysis;
pub mod consumer;
pub mod pipeline;
pub mod shutdown;
pub mod startup;
