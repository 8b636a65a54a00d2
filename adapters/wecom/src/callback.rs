//! `/wecom/callback`: URL verification (GET) and event pushes (POST), answered within
//! WeCom's 5 seconds. A push is verified, decrypted, parsed and queued before the answer;
//! moderation runs after it. Bad input gets a 4xx with the official code in the log, and
//! nothing of it is queued; a full queue gets a 503, so WeCom sends the push again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use groupguard_core::platform::{EventSink, PushError};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::Inner;
use crate::crypto::CryptoError;
use crate::inbound::{self, Inbound};
use crate::xml::Fields;

/// The route, as operators enter it in the WeCom console.
pub const PATH: &str = "/wecom/callback";
/// No WeCom push comes near this.
pub const MAX_BODY: usize = 64 * 1024;
/// Of WeCom's 5 seconds, what queueing may take before the push is refused for a retry.
const QUEUE_WAIT: Duration = Duration::from_secs(4);
/// Callbacks remembered against replays.
const NONCES: usize = 100_000;

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("missing query parameter {0}")]
    Missing(&'static str),
    #[error("timestamp {0} is outside the accepted window")]
    Stale(String),
    #[error("nonce already used")]
    Replayed,
    #[error("body over {MAX_BODY} bytes")]
    TooLarge,
}

impl Refusal {
    /// The official library's code, for the log.
    fn code(&self) -> i32 {
        match self {
            Refusal::Crypto(e) => e.code(),
            Refusal::Missing(_) => -40002,
            // A signed request that may not be accepted again or any more.
            Refusal::Stale(_) | Refusal::Replayed => -40001,
            Refusal::TooLarge => -40002,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Crypto(CryptoError::Signature) => StatusCode::UNAUTHORIZED,
            Refusal::Crypto(CryptoError::ReceiveId) | Refusal::Stale(_) | Refusal::Replayed => {
                StatusCode::FORBIDDEN
            }
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::warn!(code = self.code(), reason = %self, "WeCom callback refused");
        (self.status(), format!("{self}\n")).into_response()
    }
}

/// Callbacks already taken, by timestamp and nonce: bounded, oldest forgotten first.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl Nonces {
    fn contains(&self, key: &(String, String)) -> bool {
        self.seen.contains(key)
    }

    fn insert(&mut self, key: (String, String)) {
        if self.seen.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > NONCES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

#[derive(Clone)]
struct Callback {
    inner: Arc<Inner>,
    sink: Arc<dyn EventSink>,
}

/// The callback routes, pushing into `sink`.
pub fn router(inner: Arc<Inner>, sink: Arc<dyn EventSink>) -> Router {
    Router::new()
        .route(PATH, get(verify).post(receive))
        .with_state(Callback { inner, sink })
}

/// The query's parameters, percent-decoded without turning `+` into a space (the echo and
/// signatures are base64 and hex).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.unwrap_or_default()
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| {
                    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &'static str) -> Result<&str, Refusal> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or(Refusal::Missing(name))
    }
}

/// GET: the console saves the URL after it answers the echo, decrypted, as the raw body.
async fn verify(State(cb): State<Callback>, RawQuery(raw): RawQuery) -> Result<String, Refusal> {
    let query = Query::parse(raw.as_deref());
    let echo = query.get("echostr")?;
    let crypt = &cb.inner.config.crypt;
    crypt.verify(
        query.get("msg_signature")?,
        query.get("timestamp")?,
        query.get("nonce")?,
        echo,
    )?;
    let (plain, receive_id) = crypt.decrypt(echo)?;
    // The app's URL carries the corp id, a smart bot's an empty one.
    if receive_id != cb.inner.config.corp_id && !receive_id.is_empty() {
        return Err(CryptoError::ReceiveId.into());
    }
    Ok(plain)
}

/// POST: an app or customer-contact event (XML) or a smart-bot message (JSON).
async fn receive(State(cb): State<Callback>, RawQuery(raw): RawQuery, body: Body) -> Response {
    let started = Instant::now();
    match accept(&cb, raw.as_deref(), body).await {
        Ok(inbound) => match queue(&cb, inbound, started).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => {
                tracing::warn!(error = %e, "WeCom callback not queued; WeCom will send it again");
                (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
            }
        },
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks, decrypts and reads one push; remembers its nonce only once it was taken.
async fn accept(cb: &Callback, raw: Option<&str>, body: Body) -> Result<Taken, Refusal> {
    let query = Query::parse(raw);
    let signature = query.get("msg_signature")?;
    let timestamp = query.get("timestamp")?;
    let nonce = query.get("nonce")?;
    let inner = &cb.inner;
    if let Some(max_age) = inner.config.max_callback_age {
        let sent = timestamp
            .parse::<i64>()
            .map_err(|_| Refusal::Stale(timestamp.to_owned()))?;
        let now = inner.clock.now().millis() / 1000;
        if (now - sent).unsigned_abs() > max_age.as_secs() {
            return Err(Refusal::Stale(timestamp.to_owned()));
        }
    }
    let key = (timestamp.to_owned(), nonce.to_owned());
    if inner.lock_nonces().contains(&key) {
        return Err(Refusal::Replayed);
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Refusal::TooLarge)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CryptoError::Parse("the body is not UTF-8".to_owned()))?;
    let ctx = inbound::Context {
        corp_id: &inner.config.corp_id,
        admins: &inner.config.admins,
        now: inner.clock.now(),
    };
    let crypt = &inner.config.crypt;
    let inbound = if text.trim_start().starts_with('{') {
        // The smart bot: JSON, and an empty receive id.
        let envelope: Value =
            serde_json::from_str(text).map_err(|e| CryptoError::Parse(format!("JSON: {e}")))?;
        let encrypted = envelope["encrypt"]
            .as_str()
            .ok_or_else(|| CryptoError::Parse("no encrypt field".to_owned()))?;
        crypt.verify(signature, timestamp, nonce, encrypted)?;
        let plain = crypt.decrypt_for(encrypted, "")?;
        let message: Value = serde_json::from_str(&plain)
            .map_err(|e| CryptoError::Parse(format!("decrypted JSON: {e}")))?;
        inbound::from_bot(&message, &ctx)
    } else {
        let envelope = Fields::parse(text).map_err(|e| CryptoError::Parse(e.to_string()))?;
        let encrypted = envelope
            .text("Encrypt")
            .ok_or_else(|| CryptoError::Parse("no Encrypt element".to_owned()))?;
        crypt.verify(signature, timestamp, nonce, encrypted)?;
        let plain = crypt.decrypt_for(encrypted, &inner.config.corp_id)?;
        let fields = Fields::parse(&plain).map_err(|e| CryptoError::Parse(e.to_string()))?;
        inbound::from_xml(&fields, &ctx)
    };
    Ok(Taken { inbound, key })
}

/// A push that passed every check.
struct Taken {
    inbound: Inbound,
    key: (String, String),
}

/// Queues what a push brought, within WeCom's deadline.
async fn queue(cb: &Callback, taken: Taken, started: Instant) -> Result<(), PushError> {
    let inner = &cb.inner;
    match taken.inbound {
        Inbound::Events(events) => {
            for event in events {
                let wait = QUEUE_WAIT.saturating_sub(started.elapsed());
                cb.sink.push_within(event, wait).await?;
            }
        }
        Inbound::Chat(change) => {
            if inner.stopping() {
                return Err(PushError::Closed);
            }
            tokio::spawn(crate::follow_change(
                Arc::clone(inner),
                Arc::clone(&cb.sink),
                change,
            ));
        }
        Inbound::ArchiveNotify => inner.archive_wake.notify_one(),
        Inbound::Ignored(what) => tracing::debug!(%what, "WeCom callback not used"),
    }
    inner.lock_nonces().insert(taken.key);
    Ok(())
}

impl Inner {
    fn lock_nonces(&self) -> std::sync::MutexGuard<'_, Nonces> {
        self.nonces.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shared between the adapter and its routes.
pub type NonceCache = Mutex<Nonces>;
