//! The Discord adapter as the binary runs it.

use std::sync::Arc;

use async_trait::async_trait;
use groupguard_core::platform::{ActionExecutor, BlacklistMirror, EventSink};
use groupguard_discord::Discord;
use tokio::sync::watch;

use crate::adapter::{Adapter, Readiness};

/// [`Discord`] behind the binary's adapter trait.
#[derive(Debug)]
pub struct DiscordAdapter(pub Discord);

#[async_trait]
impl Adapter for DiscordAdapter {
    fn name(&self) -> &'static str {
        "discord"
    }

    fn executors(&self) -> Vec<Arc<dyn ActionExecutor>> {
        vec![self.0.executor()]
    }

    fn mirrors(&self) -> Vec<Arc<dyn BlacklistMirror>> {
        vec![self.0.mirror()]
    }

    fn readiness(&self) -> Readiness {
        match self.0.readiness() {
            Ok(()) => Readiness::Ready,
            Err(why) => Readiness::NotReady(why),
        }
    }

    async fn run(self: Arc<Self>, sink: Arc<dyn EventSink>, stop: watch::Receiver<bool>) {
        self.0.run(sink, stop).await;
    }
}
