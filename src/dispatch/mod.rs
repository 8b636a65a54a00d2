//! The dispatcher: events in, decisions stored, actions out.
//!
//! Adapters push events into a bounded channel ([`journal::Sink`]). A task stores them in the
//! inbound journal, answers each push once its events are durable (so the platform may
//! forget them) and queues them in order ([`journal::run`]); at start-up the events the
//! last run journaled and did not decide go first. One task judges them in order
//! ([`events::run`]): redelivered events are dropped, the engine decides, a raid alert joins
//! the verdict's actions. Changes run beside it on a task of their own ([`changes::run`]):
//! `!guard` commands run and are answered where their `ReplyTo` points, group changes are
//! stored, removals by admins are blacklisted when the settings say so. Judging never waits
//! for a change (a large operator's recompile takes a good part of a second): only the
//! events of the group it came from wait, and after a ban everyone's. The verdicts, their
//! violation records and enforce actions are stored together by a recorder task (group
//! commit: each transaction holds what was decided while the last one committed), their
//! events leaving the journal once it lands. Another task ([`outbox::run`]) claims stored
//! actions and carries them out through each platform's executor with their idempotency
//! key: within a per-platform budget, retried, or handed to the group's admins as the core's
//! delivery rules say. Because actions live in the store until they are finished, a restart
//! resumes them.

pub mod changes;
pub mod events;
pub mod journal;
pub mod journal_file;
pub mod mirror;
pub mod outbox;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use groupguard_core::command::load_rules;
use groupguard_core::delivery::backoff;
use groupguard_core::engine::RulesHandle;
use groupguard_core::model::{MemberRef, Platform};
use groupguard_core::platform::ActionExecutor;
use groupguard_core::ports::{Clock, Edit, Store, StoreError};
use groupguard_core::raid::RaidPolicy;
use groupguard_core::rule::BlacklistEntry;
use tokio::sync::{Mutex, Notify, watch};

use crate::config::DispatcherConfig;
use crate::metrics::Metrics;

/// What the dispatcher's tasks share.
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// Events received and not yet decided and stored.
    pub journal: journal_file::FileJournal,
    pub rules: RulesHandle,
    pub executors: HashMap<Platform, Arc<dyn ActionExecutor>>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub dispatcher: DispatcherConfig,
    pub raid: RaidPolicy,
    pub limits: HashMap<Platform, RateLimiter>,
    /// Woken when new actions are stored.
    pub outbox_wake: Notify,
    /// The store's configuration revision the running rules reflect.
    pub revision: AtomicU64,
    /// Turns true when groupguard is shutting down.
    pub stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Whether groupguard is shutting down.
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Runs a change to the stored configuration made by this instance, then marks the new
    /// revision as seen, unless the running rules were already behind (then the reloader
    /// catches up as usual).
    async fn own_change<T>(
        &self,
        change: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let before = self.store.revision().await.ok();
        let result = change.await;
        if let (Some(before), Ok(after)) = (before, self.store.revision().await) {
            let _ =
                self.revision
                    .compare_exchange(before, after, Ordering::Relaxed, Ordering::Relaxed);
        }
        result
    }

    /// Adds a blacklist entry to the store and to the running index.
    async fn blacklist(&self, entry: BlacklistEntry, edit: &Edit) -> Result<(), StoreError> {
        self.own_change(async {
            self.store.add_blacklist(entry.clone(), edit).await?;
            self.rules.change_blacklist(&[entry], &[]);
            Ok(())
        })
        .await
    }

    /// Removes an org-wide blacklist entry from the store and from the running index.
    async fn unblacklist(&self, member: &MemberRef, edit: &Edit) -> Result<(), StoreError> {
        self.own_change(async {
            self.store.remove_blacklist(member, None, edit).await?;
            self.rules.change_blacklist(&[], &[(member.clone(), None)]);
            Ok(())
        })
        .await
    }
}

/// The longest pause between attempts at a store write that keeps failing.
const MAX_STORE_WAIT: Duration = Duration::from_secs(5);

/// Runs a store write until it succeeds, pausing longer after each failure (the disk full,
/// the database restarting): meanwhile the queues fill and the adapters wait. `None` when
/// groupguard starts shutting down while the store still fails.
async fn until_stored<T, E, F, Fut>(shared: &Shared, failure: &str, mut write: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match write().await {
            Ok(done) => return Some(done),
            Err(e) => {
                attempt += 1;
                shared.metrics.store_retries.inc();
                if shared.stopping() {
                    tracing::error!(error = %e, "{failure}; giving up: shutting down");
                    return None;
                }
                tracing::error!(error = %e, attempt, "{failure}; trying again");
                tokio::time::sleep(backoff(attempt).min(MAX_STORE_WAIT)).await;
            }
        }
    }
}

/// Spaces out calls to one platform: at most `rate` per second. A global budget per
/// platform; per-route limits are the adapters' and their SDKs'.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    pub fn per_second(rate: f64) -> RateLimiter {
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for this call's turn.
    async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// How often recorded events past `dispatcher.keep_events` are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Forgets recorded events older than `dispatcher.keep_events`, and journal entries of
/// recorded events, at start-up and then every hour.
pub async fn run_pruner(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let before = shared.clock.now().minus(shared.dispatcher.keep_events);
        match shared.store.prune_events(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "old recorded events forgotten"),
            Err(e) => tracing::warn!(error = %e, "cannot prune recorded events"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Follows configuration changes made by other instances sharing the database.
pub async fn run_reloader(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.dispatcher.reload_every) => {}
            _ = stop.changed() => return,
        }
        let Ok(revision) = shared.store.revision().await else {
            continue;
        };
        if revision == shared.revision.load(Ordering::Relaxed) {
            continue;
        }
        match load_rules(shared.store.as_ref()).await {
            Ok(live) => {
                shared.rules.replace(live);
                shared.revision.store(revision, Ordering::Relaxed);
                tracing::info!(revision, "configuration reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "the stored configuration does not compile; keeping the running rules")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_limiter_spaces_calls_evenly() {
        let limiter = RateLimiter::per_second(4.0);
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            limiter.acquire().await;
            at.push(start.elapsed().as_millis());
        }
        assert_eq!(at, [0, 250, 500, 750, 1000]);
    }
}
