//! The WeCom adapter as the binary runs it.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use groupguard_core::platform::{ActionExecutor, EventSink};
use groupguard_wecom::Wecom;
use tokio::sync::watch;

use crate::adapter::{Adapter, Readiness};

/// [`Wecom`] behind the binary's adapter trait.
#[derive(Debug)]
pub struct WecomAdapter(pub Wecom);

#[async_trait]
impl Adapter for WecomAdapter {
    fn name(&self) -> &'static str {
        "wecom"
    }

    fn executors(&self) -> Vec<Arc<dyn ActionExecutor>> {
        vec![self.0.executor()]
    }

    fn routes(&self, sink: &Arc<dyn EventSink>) -> Option<Router> {
        Some(self.0.router(Arc::clone(sink)))
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
