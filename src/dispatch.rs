//! The dispatcher: events in, decisions stored, actions out.
//!
//! Adapters push events into a bounded channel ([`Sink`]). One task judges them in order
//! ([`run_events`]): redelivered events are dropped, `!guard` commands run, the engine
//! decides, and the verdict, its violation records and its enforce actions are stored in
//! one transaction. Another task ([`run_outbox`]) claims stored actions and carries them out
//! through each platform's executor: rate-limited per platform, retried with the platform's
//! retry-after or exponential backoff, and replaced by an admin notification where the
//! platform cannot do the action. Because actions live in the store until they are finished,
//! a restart resumes them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use groupguard_core::command::{Context, execute, load_rules, parse, render};
use groupguard_core::engine::{Engine, RulesHandle};
use groupguard_core::model::{
    Event, EventKind, GroupId, MemberRef, Platform, Timestamp, duration_millis,
};
use groupguard_core::ports::{
    ActionExecutor, ActionResult, AdapterErrorKind, Edit, EventSink, OutboxAction, Recorded,
    SinkClosed, Store,
};
use groupguard_core::rule::{BlacklistEntry, Source};
use groupguard_core::verdict::Action;
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::config::{DispatcherConfig, RaidConfig};
use crate::metrics::{CheckLabels, EventLabels, Metrics, OutcomeLabels};

/// The wall clock, read only here at the edge; the engine gets it passed in.
pub fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(duration_millis(since_epoch))
}

/// Adapters' way in: a bounded queue to the event task.
#[derive(Debug, Clone)]
pub struct Sink(pub mpsc::Sender<Event>);

#[async_trait]
impl EventSink for Sink {
    async fn push(&self, event: Event) -> Result<(), SinkClosed> {
        self.0.send(event).await.map_err(|_| SinkClosed)
    }
}

/// What the dispatcher's tasks share.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub rules: RulesHandle,
    pub executors: HashMap<Platform, Arc<dyn ActionExecutor>>,
    pub metrics: Arc<Metrics>,
    pub dispatcher: DispatcherConfig,
    pub raid: RaidConfig,
    pub limits: HashMap<Platform, RateLimiter>,
    /// Woken when new actions are stored.
    pub outbox_wake: Notify,
    /// The store's configuration revision the running rules reflect.
    pub revision: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

/// Spaces out calls to one platform: at most `rate` per second.
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

/// The text of a `!guard` command, if the event is one.
fn command_text(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::Command { text } => Some(text),
        EventKind::MessagePosted(m) => {
            let text = m.text.trim_start();
            let is_command = groupguard_core::command::PREFIXES.iter().any(|p| {
                text.get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
            });
            is_command.then_some(text)
        }
        _ => None,
    }
}

fn kind_name(event: &Event) -> &'static str {
    match event.kind {
        EventKind::MessagePosted(_) => "message",
        EventKind::MessageEdited(_) => "edit",
        EventKind::MemberJoined { .. } => "join",
        EventKind::MemberLeft => "leave",
        EventKind::Command { .. } => "command",
    }
}

/// Judges events in arrival order until every sender is gone and the queue is empty.
pub async fn run_events(
    shared: Arc<Shared>,
    mut engine: Engine,
    mut events: mpsc::Receiver<Event>,
) {
    let mut raids = RaidDetector::default();
    while let Some(event) = events.recv().await {
        handle_event(&shared, &mut engine, &mut raids, &event).await;
    }
    tracing::info!("event queue drained");
}

async fn handle_event(
    shared: &Shared,
    engine: &mut Engine,
    raids: &mut RaidDetector,
    event: &Event,
) {
    shared
        .metrics
        .events
        .get_or_create(&EventLabels {
            platform: event.platform.to_string(),
            kind: kind_name(event).to_owned(),
        })
        .inc();
    match shared.store.seen(event.platform, event.id.as_str()).await {
        Ok(true) => {
            shared.metrics.duplicates.inc();
            tracing::debug!(event = %event.id, "redelivered event dropped");
            return;
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot check for redelivery; judging anyway"),
    }
    if let Some(text) = command_text(event) {
        run_command(shared, event, text).await;
    }
    let now = now();
    let started = Instant::now();
    let verdict = engine.evaluate(event, now);
    shared
        .metrics
        .evaluate_seconds
        .observe(started.elapsed().as_secs_f64());
    match shared.store.record(&verdict).await {
        Ok(Recorded::Duplicate) => {
            shared.metrics.duplicates.inc();
            return;
        }
        Ok(Recorded::New { actions, .. }) => {
            if !actions.is_empty() {
                shared.outbox_wake.notify_one();
            }
        }
        Err(e) => {
            tracing::error!(error = %e, event = %event.id, "the decision could not be stored; its actions are lost");
            return;
        }
    }
    let outcome = if verdict.violations.is_empty() {
        "clean"
    } else {
        "violation"
    };
    shared
        .metrics
        .decisions
        .get_or_create(&OutcomeLabels {
            outcome: outcome.to_owned(),
        })
        .inc();
    for record in &verdict.violations {
        shared
            .metrics
            .violations
            .get_or_create(&CheckLabels {
                check: record.check.to_string(),
            })
            .inc();
        tracing::info!(
            rule = %record.rule, check = %record.check, group = %record.group, member = %record.member,
            mode = %record.mode, "violation"
        );
    }
    if verdict
        .violations
        .iter()
        .any(|v| v.mode == groupguard_core::rule::Mode::Enforce)
        && let Some(count) = raids.observe(
            &shared.raid,
            event.platform,
            &event.group,
            event.member.id.as_str(),
            now,
        )
    {
        raise_raid_alert(shared, event.platform, &event.group, count).await;
    }
}

/// After this instance changed the store and its running rules, marks the new revision as
/// seen, unless the rules were already behind (then the reloader catches up as usual).
async fn note_own_change(shared: &Shared, before: Option<u64>) {
    if let (Some(before), Ok(after)) = (before, shared.store.revision().await) {
        let _ =
            shared
                .revision
                .compare_exchange(before, after, Ordering::Relaxed, Ordering::Relaxed);
    }
}

async fn run_command(shared: &Shared, event: &Event, text: &str) {
    let before = shared.store.revision().await.ok();
    let answer = match parse(text, event.platform) {
        Err(e) => Err(e.to_string()),
        Ok(invocation) => {
            let ctx = Context {
                store: shared.store.as_ref(),
                rules: &shared.rules,
                platform: event.platform,
                group: &event.group,
                actor: &event.member,
                now: now(),
            };
            match execute(&invocation, &ctx).await {
                Ok(outcome) => Ok(render(&outcome)),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    note_own_change(shared, before).await;
    let result = if answer.is_ok() { "ok" } else { "refused" };
    shared
        .metrics
        .commands
        .get_or_create(&OutcomeLabels {
            outcome: result.to_owned(),
        })
        .inc();
    let text = answer.unwrap_or_else(|e| e);
    if let Some(executor) = shared.executors.get(&event.platform)
        && let Err(e) = executor.reply(&event.group, &text).await
    {
        tracing::warn!(error = %e, "cannot post a command's answer");
    }
}

/// Counts distinct violators per group in a sliding window.
#[derive(Debug, Default)]
struct RaidDetector {
    groups: HashMap<(Platform, String), GroupWindow>,
}

/// Recent violations (time, member) of one group, and when the next alert may be raised.
#[derive(Debug, Default)]
struct GroupWindow {
    recent: VecDeque<(i64, String)>,
    quiet_until: i64,
}

impl RaidDetector {
    /// Records a violation; returns the number of violators when this one starts a raid
    /// alert (at most once per window).
    fn observe(
        &mut self,
        config: &RaidConfig,
        platform: Platform,
        group: &GroupId,
        member: &str,
        now: Timestamp,
    ) -> Option<usize> {
        let window = duration_millis(config.window);
        let GroupWindow {
            recent,
            quiet_until,
        } = self
            .groups
            .entry((platform, group.to_string()))
            .or_default();
        recent.push_back((now.millis(), member.to_owned()));
        while recent
            .front()
            .is_some_and(|(at, _)| *at <= now.millis() - window)
        {
            recent.pop_front();
        }
        let violators: HashSet<&str> = recent.iter().map(|(_, m)| m.as_str()).collect();
        if violators.len() >= config.members as usize && now.millis() >= *quiet_until {
            *quiet_until = now.millis() + window;
            return Some(violators.len());
        }
        None
    }
}

async fn raise_raid_alert(shared: &Shared, platform: Platform, group: &GroupId, violators: usize) {
    shared.metrics.raid_alerts.inc();
    tracing::warn!(%group, violators, "raid alert");
    let Some(executor) = shared.executors.get(&platform) else {
        return;
    };
    let alert = OutboxAction {
        id: 0,
        violation: 0,
        rule: "raid".into(),
        platform,
        group: group.clone(),
        member: "".into(),
        action: Action::NotifyAdmins {
            text: format!(
                "raid alert: {violators} members broke rules in {group} within {}",
                humantime::format_duration(shared.raid.window)
            ),
        },
        state: groupguard_core::ports::ActionState::Pending,
        attempts: 1,
    };
    if let Err(e) = executor.execute(&alert).await {
        tracing::warn!(error = %e, "cannot send the raid alert");
    }
    if shared.raid.lockdown
        && executor.capabilities().lockdown
        && let Err(e) = executor.lockdown(group).await
    {
        tracing::warn!(error = %e, "cannot lock the group down");
    }
}

/// Carries out stored actions until `stop` turns true, then finishes those already due.
pub async fn run_outbox(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = now();
        let lease = now.plus(shared.dispatcher.lease);
        let claimed = match shared.store.claim_actions(now, lease, 32).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        let idle = claimed.is_empty();
        for action in claimed {
            carry_out(&shared, action).await;
        }
        if let Ok(depth) = shared.store.outbox_depth().await {
            shared.metrics.outbox_depth.set(depth as i64);
        }
        if !idle {
            continue;
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = shared.outbox_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("outbox drained");
}

async fn finish(shared: &Shared, action: &OutboxAction, result: ActionResult) {
    let label = match &result {
        ActionResult::Done => "done",
        ActionResult::Retry { .. } => "retry",
        ActionResult::Failed { .. } => "failed",
        ActionResult::Replaced { .. } => "replaced",
    };
    shared.metrics.action(action.action.name(), label);
    if let ActionResult::Failed { error } = &result {
        tracing::warn!(action = action.action.name(), member = %action.member, %error, "action failed");
    }
    if let Err(e) = shared.store.finish_action(action.id, result).await {
        tracing::error!(error = %e, id = action.id, "cannot record how an action ended");
    }
}

async fn carry_out(shared: &Shared, action: OutboxAction) {
    if let Action::Blacklist {
        owner,
        reason,
        expires_at,
    } = &action.action
    {
        let entry = BlacklistEntry {
            member: MemberRef::new(action.platform, action.member.clone()),
            owner: owner.clone(),
            reason: reason.clone(),
            source: Source::Rule(action.rule.clone()),
            created_at: now(),
            expires_at: *expires_at,
        };
        let edit = Edit::new(Source::Rule(action.rule.clone()), now());
        let before = shared.store.revision().await.ok();
        let result = match shared.store.add_blacklist(entry.clone(), &edit).await {
            Ok(()) => {
                let next = shared.rules.load().with_blacklist_changes(&[entry], &[]);
                shared.rules.store(Arc::new(next));
                note_own_change(shared, before).await;
                ActionResult::Done
            }
            Err(e) => ActionResult::Failed {
                error: e.to_string(),
            },
        };
        return finish(shared, &action, result).await;
    }
    let Some(executor) = shared.executors.get(&action.platform) else {
        let error = format!("no {} adapter is running", action.platform);
        return finish(shared, &action, ActionResult::Failed { error }).await;
    };
    if !executor.capabilities().supports(&action.action) {
        return fall_back(shared, executor.as_ref(), &action).await;
    }
    if let Some(limiter) = shared.limits.get(&action.platform) {
        limiter.acquire().await;
    }
    let mut attempt = action.clone();
    if let Action::QueueReview { summary } = &action.action {
        attempt.action = Action::NotifyAdmins {
            text: format!("please review: {summary}"),
        };
    }
    let started = Instant::now();
    let outcome = executor.execute(&attempt).await;
    shared
        .metrics
        .action_seconds
        .observe(started.elapsed().as_secs_f64());
    let result = match outcome {
        Ok(()) => ActionResult::Done,
        Err(e) => match e.kind {
            AdapterErrorKind::NotFound if matches!(action.action, Action::DeleteMessage { .. }) => {
                ActionResult::Done
            }
            AdapterErrorKind::Unsupported => {
                return fall_back(shared, executor.as_ref(), &action).await;
            }
            AdapterErrorKind::RateLimited { retry_after } => {
                retry(shared, &action, e.message, retry_after)
            }
            AdapterErrorKind::Transient => {
                let backoff =
                    Duration::from_secs(1 << action.attempts.clamp(1, 8).saturating_sub(1))
                        .min(Duration::from_secs(300));
                retry(shared, &action, e.message, backoff)
            }
            _ => ActionResult::Failed { error: e.message },
        },
    };
    finish(shared, &action, result).await;
}

fn retry(shared: &Shared, action: &OutboxAction, error: String, after: Duration) -> ActionResult {
    if action.attempts >= shared.dispatcher.max_attempts {
        return ActionResult::Failed {
            error: format!("{error} (gave up after {} attempts)", action.attempts),
        };
    }
    ActionResult::Retry {
        error,
        at: now().plus(after),
    }
}

/// The platform cannot do this: ask the group's admins to, and record that.
async fn fall_back(shared: &Shared, executor: &dyn ActionExecutor, action: &OutboxAction) {
    let verb = match &action.action {
        Action::DeleteMessage { message } => format!("delete message {message}"),
        Action::Timeout { duration } => format!(
            "mute {} for {}",
            action.member,
            humantime::format_duration(*duration)
        ),
        Action::Kick => format!("remove {} from the group", action.member),
        other => other.name().to_owned(),
    };
    if !executor.capabilities().notify {
        let error = format!("{} cannot {verb} or notify admins", action.platform);
        return finish(shared, action, ActionResult::Failed { error }).await;
    }
    let mut notice = action.clone();
    notice.action = Action::NotifyAdmins {
        text: format!(
            "rule {} asks to {verb}, which groupguard cannot do on {}: please do it by hand",
            action.rule, action.platform
        ),
    };
    let result = match executor.execute(&notice).await {
        Ok(()) => ActionResult::Replaced {
            note: format!("{} cannot {verb}; admins were asked to", action.platform),
        },
        Err(e) => retry(shared, action, e.message, Duration::from_secs(5)),
    };
    finish(shared, action, result).await;
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
            Ok(rules) => {
                shared.rules.store(Arc::new(rules));
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

    #[test]
    fn a_raid_is_announced_once_per_window_and_per_group() {
        let config = RaidConfig {
            members: 3,
            window: Duration::from_secs(60),
            lockdown: false,
        };
        let mut raids = RaidDetector::default();
        let g1 = GroupId::new("g1");
        let g2 = GroupId::new("g2");
        let t = |s: i64| Timestamp(1_000_000 + s * 1000);
        let mut seen = |group: &GroupId, member: &str, s: i64| {
            raids.observe(&config, Platform::WeCom, group, member, t(s))
        };
        assert_eq!(seen(&g1, "a", 0), None);
        assert_eq!(
            seen(&g1, "a", 1),
            None,
            "the same member twice is one violator"
        );
        assert_eq!(seen(&g1, "b", 2), None);
        assert_eq!(seen(&g2, "c", 3), None, "other groups do not count");
        assert_eq!(seen(&g1, "c", 4), Some(3));
        assert_eq!(seen(&g1, "d", 5), None, "one alert per window");
        assert_eq!(seen(&g1, "x", 70), None);
        assert_eq!(seen(&g1, "y", 71), None);
        assert_eq!(seen(&g1, "z", 72), Some(3), "a new window, a new alert");
    }
}
