//! The HTTP side: `/healthz` (the process is up), `/readyz` (it is judging events and every
//! adapter is connected), `/metrics` (Prometheus), and the routes adapters need (the WeCom
//! callback), all on one server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use groupguard_core::platform::EventSink;

use crate::adapter::{Adapter, Readiness};
use crate::metrics::{Metrics, UnjudgedLabels};

/// What the handlers read.
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub adapters: Vec<Arc<dyn Adapter>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

pub fn router(state: &Arc<HttpState>, sink: &Arc<dyn EventSink>) -> Router {
    let routes = state.adapters.iter().filter_map(|a| a.routes(sink));
    routes.fold(
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(Arc::clone(state)),
        Router::merge,
    )
}

/// `ready` and one line per adapter; 503 while starting, stopping or disconnected.
async fn readyz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting or stopping\n".to_owned(),
        );
    }
    let mut all_ready = true;
    let mut lines = String::new();
    for adapter in &state.adapters {
        match adapter.readiness() {
            Readiness::Ready => lines.push_str(&format!("{}: connected\n", adapter.name())),
            Readiness::NotReady(why) => {
                all_ready = false;
                lines.push_str(&format!("{}: not connected: {why}\n", adapter.name()));
            }
        }
    }
    if all_ready {
        (StatusCode::OK, format!("ready\n{lines}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{lines}"),
        )
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    for adapter in &state.adapters {
        for (reason, total) in adapter.unjudged() {
            let labels = UnjudgedLabels {
                platform: adapter.name().to_owned(),
                reason: reason.to_owned(),
            };
            state
                .metrics
                .unjudged
                .get_or_create(&labels)
                .inner()
                .store(total, Ordering::Relaxed);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
