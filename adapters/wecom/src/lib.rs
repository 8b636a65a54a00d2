//! groupguard's WeCom adapter.

pub mod config;
pub mod crypto;
