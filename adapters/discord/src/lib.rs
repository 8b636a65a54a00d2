//! groupguard's Discord adapter.

pub mod config;
pub mod rest;
pub mod translate;
