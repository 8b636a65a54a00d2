//! The test platform (feature `testing`): events come from a JSONL file that tests append to,
//! and every attempt to act is appended to another, so end-to-end tests can drive the real
//! binary. It can pretend to lack capabilities, answer 429 with a retry-after, and crash the
//! process before carrying out an action.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::model::{Event, GroupId, Platform, duration_text};
use groupguard_core::ports::{
    ActionExecutor, AdapterError, AdapterErrorKind, Capabilities, EventSink, OutboxAction,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::dispatch::now;

/// `[testing]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestingConfig {
    inbox: PathBuf,
    outbox: PathBuf,
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    rate_limited: BTreeMap<String, u32>,
    retry_after: Option<String>,
    #[serde(default)]
    crash_before_execute: bool,
}

/// The test platform's settings.
#[derive(Debug, Clone)]
pub struct TestingConfig {
    /// Events to read, one JSON per line, followed as it grows.
    pub inbox: PathBuf,
    /// Where every attempt is written.
    pub outbox: PathBuf,
    /// What the platform can do.
    pub capabilities: Capabilities,
    /// Action name → how many first attempts answer 429.
    pub rate_limited: BTreeMap<String, u32>,
    /// The retry-after of those answers.
    pub retry_after: Duration,
    /// Abort the process at the first action, after it was stored but before it is done.
    pub crash_before_execute: bool,
}

impl RawTestingConfig {
    pub fn check(self, errors: &mut Vec<String>) -> TestingConfig {
        let mut capabilities = Capabilities::ALL;
        if let Some(names) = self.capabilities {
            capabilities = Capabilities::default();
            for name in names {
                match name.as_str() {
                    "delete" => capabilities.delete = true,
                    "warn" => capabilities.warn = true,
                    "timeout" => capabilities.timeout = true,
                    "kick" => capabilities.kick = true,
                    "notify" => capabilities.notify = true,
                    "lockdown" => capabilities.lockdown = true,
                    other => errors.push(format!(
                        "testing.capabilities: unknown capability `{other}`"
                    )),
                }
            }
        }
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
            outbox: self.outbox,
            capabilities,
            rate_limited: self.rate_limited,
            retry_after,
            crash_before_execute: self.crash_before_execute,
        }
    }
}

/// The test platform's executor, one per platform, sharing the outbox file.
#[derive(Debug)]
pub struct TestExecutor {
    platform: Platform,
    config: TestingConfig,
    attempts: Arc<Mutex<BTreeMap<String, u32>>>,
    outbox: Arc<Mutex<std::fs::File>>,
}

impl TestExecutor {
    /// Executors for every platform.
    pub fn all(config: &TestingConfig) -> std::io::Result<Vec<TestExecutor>> {
        let outbox = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.outbox)?,
        ));
        let attempts = Arc::new(Mutex::new(BTreeMap::new()));
        Ok(Platform::ALL
            .into_iter()
            .map(|platform| TestExecutor {
                platform,
                config: config.clone(),
                attempts: Arc::clone(&attempts),
                outbox: Arc::clone(&outbox),
            })
            .collect())
    }

    fn write(&self, line: &serde_json::Value) {
        let mut file = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(file, "{line}");
        let _ = file.flush();
    }
}

#[async_trait]
impl ActionExecutor for TestExecutor {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities
    }

    async fn execute(&self, action: &OutboxAction) -> Result<(), AdapterError> {
        if self.config.crash_before_execute {
            self.write(&json!({ "crash": action.id }));
            std::process::abort();
        }
        let name = action.action.name();
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = attempts.entry(name.to_owned()).or_default();
            *n += 1;
            *n
        };
        let limited = self
            .config
            .rate_limited
            .get(name)
            .is_some_and(|&first| attempt <= first);
        self.write(&json!({
            "at": now().millis(),
            "id": action.id,
            "platform": self.platform,
            "group": action.group,
            "member": action.member,
            "rule": action.rule,
            "action": action.action,
            "result": if limited { "rate_limited" } else { "done" },
        }));
        if limited {
            return Err(AdapterError::new(
                AdapterErrorKind::RateLimited {
                    retry_after: self.config.retry_after,
                },
                "429 Too Many Requests",
            ));
        }
        Ok(())
    }

    async fn reply(&self, group: &GroupId, text: &str) -> Result<(), AdapterError> {
        self.write(&json!({ "at": now().millis(), "platform": self.platform, "group": group, "reply": text }));
        Ok(())
    }

    async fn lockdown(&self, group: &GroupId) -> Result<(), AdapterError> {
        self.write(&json!({ "at": now().millis(), "platform": self.platform, "group": group, "lockdown": true }));
        Ok(())
    }
}

/// Follows the inbox file and pushes each event, until `stop` turns true.
pub async fn follow_inbox(
    path: PathBuf,
    sink: Arc<dyn EventSink>,
    mut stop: watch::Receiver<bool>,
) {
    let mut offset = 0u64;
    let mut pending = String::new();
    loop {
        if let Ok(mut file) = std::fs::File::open(&path)
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut reader = BufReader::new(file);
            loop {
                let mut chunk = String::new();
                match reader.read_line(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        offset += n as u64;
                        pending.push_str(&chunk);
                        if !pending.ends_with('\n') {
                            continue;
                        }
                        let line = std::mem::take(&mut pending);
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<Event>(&line) {
                            Ok(event) => {
                                if sink.push(event).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "test inbox: malformed event skipped")
                            }
                        }
                    }
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
