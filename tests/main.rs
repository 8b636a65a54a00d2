//! End-to-end tests of the `groupguard` binary.

mod admin;
#[cfg(feature = "testing")]
mod service;
mod simulate;
