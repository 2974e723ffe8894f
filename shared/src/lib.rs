//! Accessflow core library.

pub mod sample_tenants;
