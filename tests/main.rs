//! End-to-end tests of the `groupguard` binary.

mod admin;
mod bot;
mod discord;
mod matrix;
#[cfg(feature = "testing")]
mod service;
mod simulate;
mod wecom;
