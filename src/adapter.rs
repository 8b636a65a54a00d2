//! A platform adapter as the binary runs it: its executors, its event task, the routes it
//! needs on the one HTTP server, and whether it is connected. Which adapters exist is
//! [`crate::platforms`]' business.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use groupguard_core::platform::{ActionExecutor, BlacklistMirror, EventSink};
use tokio::sync::watch;

/// Whether an adapter is connected to its platform, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Connected, taking events.
    Ready,
    /// Not (yet, or no longer), and why.
    NotReady(String),
}

/// A running platform adapter.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// Its name, as in the configuration section.
    fn name(&self) -> &'static str;

    /// The executors for the platforms it serves.
    fn executors(&self) -> Vec<Arc<dyn ActionExecutor>>;

    /// Mirrors of the blacklist it keeps on its platforms, if any.
    fn mirrors(&self) -> Vec<Arc<dyn BlacklistMirror>> {
        Vec::new()
    }

    /// Routes it needs on the bot's HTTP server (the WeCom callback), if any, pushing the
    /// events they receive into `sink`.
    fn routes(&self, _sink: &Arc<dyn EventSink>) -> Option<Router> {
        None
    }

    /// Events it received but could not judge so far, by reason (for `/metrics`).
    fn unjudged(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Whether it is connected.
    fn readiness(&self) -> Readiness;

    /// Pushes the platform's events into `sink` until `stop` turns true.
    async fn run(self: Arc<Self>, sink: Arc<dyn EventSink>, stop: watch::Receiver<bool>);
}
