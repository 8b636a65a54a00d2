//! groupguard's Matrix adapter.

pub mod config;
pub mod translate;
