//! groupguard's WeCom adapter: the encrypted callback (`/wecom/callback`), customer-group
//! events read back from the API, chat-archive messages, smart-bot and app commands, and an
//! executor that does in each group what WeCom allows and says why not elsewhere.

pub mod api;
pub mod archive;
pub mod callback;
pub mod config;
pub mod crypto;
pub mod executor;
#[cfg(feature = "testing")]
pub mod fake;
pub mod groups;
pub mod inbound;
pub mod render;
pub mod xml;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use groupguard_core::model::{Event, EventId, EventKind, GroupId, Member, OrgId, Platform, Role};
use groupguard_core::platform::{ActionExecutor, EventSink};
use groupguard_core::ports::Clock;
use groupguard_core::time::Timestamp;
use tokio::sync::{Notify, watch};

use crate::api::{Api, ApiError};
use crate::archive::{ArchiveSource, FileSource, SidecarSource};
use crate::callback::NonceCache;
use crate::config::{ArchiveConfig, ArchiveSourceConfig, WecomConfig};
use crate::executor::WecomExecutor;
use crate::groups::{ChatChange, Groups};

/// How often to try the app secret again while WeCom refuses it or cannot be reached.
const RECONNECT_EVERY: Duration = Duration::from_secs(30);
/// Attempts at reading a group after a change.
const SYNC_ATTEMPTS: u32 = 3;
/// Pages read per wake-up, so one busy archive cannot hold the loop forever.
const PAGES_PER_PULL: usize = 50;

/// What the adapter's parts share.
#[derive(Debug)]
pub struct Inner {
    config: WecomConfig,
    api: Api,
    clock: Arc<dyn Clock>,
    groups: Groups,
    nonces: NonceCache,
    archive_wake: Notify,
    /// Why the adapter is not connected, while it is not.
    not_ready: Mutex<Option<String>>,
    stopping: AtomicBool,
}

impl Inner {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn set_not_ready(&self, why: Option<String>) {
        *self.not_ready.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// The WeCom adapter.
#[derive(Debug, Clone)]
pub struct Wecom {
    inner: Arc<Inner>,
}

impl Wecom {
    /// The adapter for `config`; nothing is called until [`Wecom::run`].
    pub fn new(config: WecomConfig, clock: Arc<dyn Clock>) -> Wecom {
        let api = Api::new(&config.api_base, &config.corp_id, config.secret.clone());
        Wecom {
            inner: Arc::new(Inner {
                config,
                api,
                clock,
                groups: Groups::default(),
                nonces: NonceCache::default(),
                archive_wake: Notify::new(),
                not_ready: Mutex::new(Some("checking the app secret".to_owned())),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// The executor for WeCom.
    pub fn executor(&self) -> Arc<dyn ActionExecutor> {
        Arc::new(WecomExecutor::new(Arc::clone(&self.inner)))
    }

    /// `/wecom/callback`, pushing into `sink`.
    pub fn router(&self, sink: Arc<dyn EventSink>) -> Router {
        callback::router(Arc::clone(&self.inner), sink)
    }

    /// `Ok` once WeCom accepted the app secret; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        match &*self
            .inner
            .not_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Checks the app secret (and keeps trying), and follows the chat archive, until `stop`.
    pub async fn run(&self, sink: Arc<dyn EventSink>, stop: watch::Receiver<bool>) {
        let inner = &self.inner;
        let connect = connect(inner, stop.clone());
        let archive = async {
            if let Some(config) = &inner.config.archive {
                follow_archive(inner, config, &sink, stop.clone()).await;
            }
        };
        tokio::join!(connect, archive);
        inner.stopping.store(true, Ordering::Relaxed);
    }
}

/// Fetches a token until WeCom accepts the secret, for readiness.
async fn connect(inner: &Inner, mut stop: watch::Receiver<bool>) {
    loop {
        match inner.api.check().await {
            Ok(()) => {
                inner.set_not_ready(None);
                tracing::info!("WeCom accepted the app secret");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "WeCom did not accept the app secret; trying again");
                inner.set_not_ready(Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// After a customer-group change: waits for WeCom's data to settle, reads the group and
/// pushes what changed.
pub(crate) async fn follow_change(inner: Arc<Inner>, sink: Arc<dyn EventSink>, change: ChatChange) {
    tokio::time::sleep(inner.config.member_sync_delay).await;
    for attempt in 1..=SYNC_ATTEMPTS {
        match inner
            .groups
            .apply(&inner.api, &inner.config.corp_id, &change)
            .await
        {
            Ok(events) => {
                let _ = sink.push_all(events).await;
                return;
            }
            Err(e) => {
                let wait = match &e {
                    ApiError::RateLimited { retry_after } => *retry_after,
                    _ => Duration::from_secs(2),
                };
                tracing::warn!(chat = %change.chat_id, attempt, error = %e, "cannot read a customer group after a change");
                if attempt < SYNC_ATTEMPTS {
                    tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                }
            }
        }
    }
}

/// The archive cursor as saved.
fn load_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the cursor through a temporary file, so a crash leaves the old or the new one.
fn save_cursor(path: &Path, cursor: u64) {
    let temp = path.with_extension("tmp");
    let result =
        std::fs::write(&temp, cursor.to_string()).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the archive cursor");
    }
}

/// Pulls archive records on each `msgaudit_notify` and every `poll_every`, and pushes the
/// group messages among them.
async fn follow_archive(
    inner: &Inner,
    config: &ArchiveConfig,
    sink: &Arc<dyn EventSink>,
    mut stop: watch::Receiver<bool>,
) {
    let source: Box<dyn ArchiveSource> = match &config.source {
        ArchiveSourceConfig::File(path) => Box::new(FileSource::new(path.clone())),
        ArchiveSourceConfig::Sidecar(url) => {
            Box::new(SidecarSource::new(url, &inner.config.corp_id))
        }
    };
    let mut cursor = load_cursor(&config.cursor_file);
    tracing::info!(cursor, "following the chat archive");
    loop {
        for _ in 0..PAGES_PER_PULL {
            let batch = match source.pull(cursor, archive::PAGE).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pull the chat archive");
                    break;
                }
            };
            let full = batch.records.len() >= archive::PAGE;
            let mut events = Vec::new();
            for record in &batch.records {
                if let Some(message) = archive::message(record) {
                    events.extend(archive_events(inner, message).await);
                }
            }
            // Durable once pushed: the cursor moves past the page only then.
            if sink.push_all(events).await.is_err() {
                return;
            }
            if batch.next != cursor {
                cursor = batch.next;
                save_cursor(&config.cursor_file, cursor);
            }
            if !full {
                break;
            }
        }
        tokio::select! {
            _ = inner.archive_wake.notified() => {}
            _ = tokio::time::sleep(config.poll_every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The events of one archived group message: the group's registration the first time it is
/// seen, then the message, from the member as the group lists them.
async fn archive_events(inner: &Inner, archived: archive::ArchivedMessage) -> Vec<Event> {
    let corp = inner.config.corp_id.as_str();
    let (mut events, sender) = match inner
        .groups
        .ensure(&inner.api, corp, &archived.room, Timestamp(archived.at))
        .await
    {
        Ok((chat, events)) => {
            let sender = match chat.member_list.iter().find(|m| m.userid == archived.from) {
                Some(m) => inner.groups.member(&inner.api, corp, &chat, m).await,
                None => unlisted_member(inner, &archived.from).await,
            };
            (events, sender)
        }
        Err(e) => {
            tracing::warn!(chat = %archived.room, error = %e, "cannot read the group of an archived message");
            (Vec::new(), unlisted_member(inner, &archived.from).await)
        }
    };
    events.push(Event {
        id: EventId::new(format!("archive:{}", archived.id)),
        at: Timestamp(archived.at),
        platform: Platform::WeCom,
        group: GroupId::from(archived.room.as_str()),
        member: sender,
        kind: EventKind::MessagePosted(archived.message),
    });
    events
}

/// A sender the group's member list does not (yet) show: a member of the corp by their id's
/// shape, else a customer whose company WeCom may know.
async fn unlisted_member(inner: &Inner, id: &str) -> Member {
    let mut member = Member::new(id);
    member.is_bot = id.starts_with("wb");
    if id.starts_with("wm") || id.starts_with("wo") {
        member.org = inner.groups.external_org(&inner.api, id).await;
    } else if !member.is_bot {
        member.org = Some(OrgId::from(inner.config.corp_id.as_str()));
        member.role = Role::Staff;
    }
    member
}
