//! The test platform (feature `testing`): events come from a JSONL file that tests append to
//! (delivered again after a restart unless a cursor file keeps the position past what
//! groupguard took), and every attempt to act is appended to another, so end-to-end tests can drive the real
//! binary. Like a real platform it carries out an action once per idempotency key (a repeated
//! key is written as `duplicate` and not done again, even after a restart), answers replies
//! where their `ReplyTo` points, and can be told to lack capabilities (everywhere or per
//! group), to refuse an action for a missing permission, to answer 429 or 503, to report
//! itself disconnected, and to crash the process before or after carrying out an action.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::model::{Event, GroupId, Platform, ReplyTo};
use groupguard_core::platform::{
    ActionExecutor, ActionRequest, AdapterError, AdapterErrorKind, Capabilities, Capability,
    EventSink, Lacking,
};
use groupguard_core::ports::Clock;
use groupguard_core::reply::Reply;
use groupguard_core::time::duration_text;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::adapter::{Adapter, Readiness};

/// `[testing]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestingConfig {
    inbox: PathBuf,
    cursor: Option<PathBuf>,
    outbox: PathBuf,
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    forbidden: BTreeMap<String, String>,
    #[serde(default)]
    rate_limited: BTreeMap<String, u32>,
    #[serde(default)]
    server_errors: BTreeMap<String, u32>,
    retry_after: Option<String>,
    #[serde(default)]
    crash_before_execute: bool,
    #[serde(default)]
    crash_after_execute: bool,
    disconnected: Option<String>,
}

/// The test platform's settings.
#[derive(Debug, Clone)]
pub struct TestingConfig {
    /// Events to read, one JSON per line, followed as it grows.
    pub inbox: PathBuf,
    /// Where the position in the inbox past what groupguard took is kept: events before it
    /// are not delivered again after a restart.
    pub cursor: Option<PathBuf>,
    /// Where every attempt is written.
    pub outbox: PathBuf,
    /// What the platform can do in groups not named in `groups`.
    pub capabilities: Capabilities,
    /// What it can do in particular groups.
    pub groups: BTreeMap<GroupId, Capabilities>,
    /// Action name → the permission whose lack makes the platform refuse it (403).
    pub forbidden: BTreeMap<String, String>,
    /// Action name → how many first attempts answer 429.
    pub rate_limited: BTreeMap<String, u32>,
    /// Action name → how many first attempts answer 503.
    pub server_errors: BTreeMap<String, u32>,
    /// The retry-after of the 429s.
    pub retry_after: Duration,
    /// Abort the process at the first action, after it was stored but before it is done.
    pub crash_before_execute: bool,
    /// Abort the process right after carrying out the first action, before it is recorded.
    pub crash_after_execute: bool,
    /// Report the platform as not connected, for this reason.
    pub disconnected: Option<String>,
}

fn capabilities(field: &str, names: &[String], errors: &mut Vec<String>) -> Capabilities {
    names.iter().fold(Capabilities::none(), |caps, name| {
        match name.parse::<Capability>() {
            Ok(c) => caps.grant(c),
            Err(e) => {
                errors.push(format!("{field}: {e}"));
                caps
            }
        }
    })
}

fn action_names(field: &str, names: impl Iterator<Item = String>, errors: &mut Vec<String>) {
    for name in names {
        if name.parse::<Capability>().is_err() {
            errors.push(format!("{field}.{name}: unknown action"));
        }
    }
}

impl RawTestingConfig {
    pub fn check(self, errors: &mut Vec<String>) -> TestingConfig {
        let global = match &self.capabilities {
            Some(names) => capabilities("testing.capabilities", names, errors),
            None => Capabilities::all(),
        };
        let groups = self
            .groups
            .iter()
            .map(|(group, names)| {
                let field = format!("testing.groups.{group}");
                (
                    GroupId::new(group.as_str()),
                    capabilities(&field, names, errors),
                )
            })
            .collect();
        action_names("testing.forbidden", self.forbidden.keys().cloned(), errors);
        action_names(
            "testing.rate_limited",
            self.rate_limited.keys().cloned(),
            errors,
        );
        action_names(
            "testing.server_errors",
            self.server_errors.keys().cloned(),
            errors,
        );
        let retry_after = match self.retry_after.as_deref().map(duration_text::parse) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                errors.push(format!("testing.retry_after: {e}"));
                Duration::from_secs(1)
            }
            None => Duration::from_secs(1),
        };
        TestingConfig {
            inbox: self.inbox,
            cursor: self.cursor,
            outbox: self.outbox,
            capabilities: global,
            groups,
            forbidden: self.forbidden,
            rate_limited: self.rate_limited,
            server_errors: self.server_errors,
            retry_after,
            crash_before_execute: self.crash_before_execute,
            crash_after_execute: self.crash_after_execute,
            disconnected: self.disconnected,
        }
    }
}

/// The test platform: one executor per platform, sharing its state.
#[derive(Debug)]
pub struct TestPlatform {
    state: Arc<TestState>,
}

/// What the executors share: the outbox file, attempts and the keys done.
#[derive(Debug)]
struct TestState {
    config: TestingConfig,
    clock: Arc<dyn Clock>,
    outbox: Mutex<std::fs::File>,
    /// Attempts per action name, for the injected 429s and 503s.
    attempts: Mutex<BTreeMap<String, u32>>,
    /// Idempotency keys carried out, read back from the outbox file at start.
    done: Mutex<HashSet<String>>,
}

impl TestPlatform {
    /// Opens the outbox file and remembers the keys it records as done.
    pub fn open(config: TestingConfig, clock: Arc<dyn Clock>) -> std::io::Result<TestPlatform> {
        Ok(TestPlatform {
            state: Arc::new(TestState::open(config, clock)?),
        })
    }
}

impl TestState {
    fn open(config: TestingConfig, clock: Arc<dyn Clock>) -> std::io::Result<TestState> {
        let done = std::fs::read_to_string(&config.outbox)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["result"] == "done")
            .filter_map(|line| line["key"].as_str().map(str::to_owned))
            .collect();
        let outbox = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.outbox)?;
        Ok(TestState {
            config,
            clock,
            outbox: Mutex::new(outbox),
            attempts: Mutex::new(BTreeMap::new()),
            done: Mutex::new(done),
        })
    }

    /// Appends one line in a single write, so a reader never sees half of it.
    fn write(&self, mut line: Value) {
        line["at"] = json!(self.clock.now().millis());
        let mut text = line.to_string();
        text.push('\n');
        let mut file = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.write_all(text.as_bytes());
    }

    /// The attempt number of this action name, counting this one.
    fn attempt(&self, name: &str) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let n = attempts.entry(name.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// The injected failure of this attempt, if any.
    fn failure(&self, name: &str) -> Option<AdapterError> {
        if let Some(permission) = self.config.forbidden.get(name) {
            return Some(AdapterError::new(
                AdapterErrorKind::Forbidden {
                    permission: Some(permission.clone()),
                },
                "403 Missing Permissions",
            ));
        }
        let attempt = self.attempt(name);
        if self
            .config
            .rate_limited
            .get(name)
            .is_some_and(|&n| attempt <= n)
        {
            return Some(AdapterError::new(
                AdapterErrorKind::RateLimited {
                    retry_after: self.config.retry_after,
                },
                "429 Too Many Requests",
            ));
        }
        let served = self.config.rate_limited.get(name).copied().unwrap_or(0);
        if self
            .config
            .server_errors
            .get(name)
            .is_some_and(|&n| attempt <= served + n)
        {
            return Some(AdapterError::new(
                AdapterErrorKind::Transient,
                "503 Service Unavailable",
            ));
        }
        None
    }
}

/// The test platform's executor for one platform.
#[derive(Debug)]
pub struct TestExecutor {
    platform: Platform,
    shared: Arc<TestState>,
}

/// The name the configuration uses for an action's capability.
fn capability_name(request: &ActionRequest) -> &'static str {
    Capability::needed_for(&request.action).map_or("blacklist", Capability::as_str)
}

#[async_trait]
impl ActionExecutor for TestExecutor {
    fn platform(&self) -> Platform {
        self.platform
    }

    async fn capabilities(&self, group: &GroupId) -> Capabilities {
        let config = &self.shared.config;
        let caps = config.groups.get(group).unwrap_or(&config.capabilities);
        Capability::ALL.into_iter().fold(caps.clone(), |caps, c| {
            if caps.has(c) {
                caps
            } else {
                caps.lack(c, Lacking::Unsupported(None))
            }
        })
    }

    async fn execute(&self, request: &ActionRequest) -> Result<(), AdapterError> {
        let shared = &self.shared;
        if shared.config.crash_before_execute {
            shared.write(json!({ "crash": "before", "key": request.key }));
            std::process::abort();
        }
        let name = capability_name(request);
        let failure = shared.failure(name);
        let repeated = failure.is_none()
            && !shared
                .done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(request.key.as_str().to_owned());
        let result = match (&failure, repeated) {
            (Some(e), _) => match e.kind {
                AdapterErrorKind::RateLimited { .. } => "rate_limited",
                AdapterErrorKind::Forbidden { .. } => "forbidden",
                _ => "server_error",
            },
            (None, true) => "duplicate",
            (None, false) => "done",
        };
        shared.write(json!({
            "key": request.key,
            "platform": self.platform,
            "group": request.group,
            "member": request.member,
            "message": request.message,
            "rule": request.rule,
            "action": request.action,
            "notify": request.notify,
            "case": request.case.as_ref().map(|c| json!({
                "member_name": c.member_name,
                "check": c.check.as_str(),
                "evidence": c.evidence,
                "excerpt": c.excerpt,
            })),
            "ban": request.ban,
            "result": result,
        }));
        if let Some(e) = failure {
            return Err(e);
        }
        if shared.config.crash_after_execute && !repeated {
            std::process::abort();
        }
        Ok(())
    }

    async fn reply(&self, to: &ReplyTo, reply: &Reply) -> Result<(), AdapterError> {
        let expired = to.handle.as_ref().is_some_and(|h| h.expose() == "expired");
        self.shared.write(json!({
            "platform": self.platform,
            "group": to.group,
            "to": to.sender,
            "message": to.message,
            "reply": reply.plain_text(),
            "title": reply.title,
            "ephemeral": reply.ephemeral,
            "result": if expired { "expired" } else { "done" },
        }));
        if expired {
            return Err(AdapterError::new(
                AdapterErrorKind::Expired,
                "the reply handle has expired",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Adapter for TestPlatform {
    fn name(&self) -> &'static str {
        "testing"
    }

    fn executors(&self) -> Vec<Arc<dyn ActionExecutor>> {
        Platform::ALL
            .into_iter()
            .map(|platform| {
                Arc::new(TestExecutor {
                    platform,
                    shared: Arc::clone(&self.state),
                }) as Arc<dyn ActionExecutor>
            })
            .collect()
    }

    fn readiness(&self) -> Readiness {
        match &self.state.config.disconnected {
            Some(why) => Readiness::NotReady(why.clone()),
            None => Readiness::Ready,
        }
    }

    async fn run(self: Arc<Self>, sink: Arc<dyn EventSink>, stop: watch::Receiver<bool>) {
        let config = &self.state.config;
        follow_inbox(config.inbox.clone(), config.cursor.clone(), sink, stop).await;
    }
}

/// The most events handed over in one push.
const PUSH_BATCH: usize = 1_000;

/// Follows the inbox file and pushes its events, up to [`PUSH_BATCH`] at a time, until `stop`
/// turns true. With a cursor file, the position past what groupguard has taken (durably) is
/// saved after each push and read back at start, like a sync position; without one, every
/// event is delivered again after a restart.
async fn follow_inbox(
    path: PathBuf,
    cursor: Option<PathBuf>,
    sink: Arc<dyn EventSink>,
    mut stop: watch::Receiver<bool>,
) {
    let mut offset: u64 = cursor
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    loop {
        if let Ok(mut file) = std::fs::File::open(&path)
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut reader = BufReader::new(file);
            loop {
                let (events, read, more) = read_events(&mut reader);
                if read == 0 {
                    break;
                }
                if sink.push_all(events).await.is_err() {
                    return;
                }
                offset += read;
                if let Some(cursor) = &cursor {
                    save_cursor(cursor, offset);
                }
                if !more {
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Up to [`PUSH_BATCH`] events from complete lines, how many bytes they took, and whether
/// more may follow at once: not after the end of the file or a line still being written
/// (read again from its start next time).
fn read_events(reader: &mut impl BufRead) -> (Vec<Event>, u64, bool) {
    let mut events = Vec::new();
    let mut read = 0;
    let mut line = String::new();
    while events.len() < PUSH_BATCH {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => read += n as u64,
            _ => return (events, read, false),
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(event) => events.push(event),
            Err(e) => tracing::warn!(error = %e, "test inbox: malformed event skipped"),
        }
    }
    (events, read, true)
}

fn save_cursor(path: &std::path::Path, offset: u64) {
    let temp = path.with_extension("tmp");
    let saved =
        std::fs::write(&temp, offset.to_string()).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = saved {
        tracing::warn!(error = %e, "test inbox: cannot save the cursor");
    }
}
