//! Accessflow worker library: the pipeline handlers and the access analysis engine.
pub mod analysis;
