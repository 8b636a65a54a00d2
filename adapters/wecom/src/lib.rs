//! groupguard's WeCom adapter.

pub mod api;
pub mod config;
pub mod crypto;
#[cfg(feature = "testing")]
pub mod fake;
pub mod xml;
