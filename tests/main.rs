//! End-to-end tests of the `groupguard` binary.

#[cfg(feature = "testing")]
mod service;
mod simulate;
