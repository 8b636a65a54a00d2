//! The event task: judges events in arrival order and stores what they lead to.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use groupguard_core::command::{Context, execute, parse, reload_configuration, reply};
use groupguard_core::delivery::backoff;
use groupguard_core::engine::Engine;
use groupguard_core::model::{
    Event, EventKind, GroupChange, GroupRef, ListChange, Member, MemberRef, Platform, ReplyTo,
};
use groupguard_core::platform::AdapterErrorKind;
use groupguard_core::ports::{Edit, Recorded, StoreError};
use groupguard_core::raid::RaidDetector;
use groupguard_core::reply::Reply;
use groupguard_core::rule::{BlacklistEntry, GroupConfig, ManualRemovals, Source};
use groupguard_core::verdict::Verdict;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use super::journal_file::key_of;
use super::{Shared, until_stored};
use crate::metrics::{CheckLabels, EventLabels, OutcomeLabels};

/// Attempts at delivering a command's answer before it is given up.
const REPLY_ATTEMPTS: u32 = 4;

/// The most events read from the queue at once (their redelivery is checked together).
const MAX_READ: usize = 512;

/// Decisions handed to the recorder together.
const HAND_OVER: usize = 64;

/// Decisions waiting for the recorder before judging pauses: with the one being committed,
/// this bounds how long a decision waits to be stored.
const MAX_WAITING: usize = 512;

/// Decisions taken and not yet stored.
#[derive(Default)]
struct Batch {
    verdicts: Vec<Verdict>,
    /// When each of them was taken.
    decided: Vec<Instant>,
    /// Redeliveries dropped, to release from the journal with the batch.
    dropped: Vec<(Platform, String)>,
    /// Told when the batch is stored (or left to the journal at shutdown).
    stored: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.verdicts.is_empty() && self.dropped.is_empty() && self.stored.is_empty()
    }

    fn append(&mut self, other: &mut Batch) {
        self.verdicts.append(&mut other.verdicts);
        self.decided.append(&mut other.decided);
        self.dropped.append(&mut other.dropped);
        self.stored.append(&mut other.stored);
    }
}

/// Decisions on their way from the event task to the recorder. The recorder takes all that
/// wait whenever it is free, so each transaction holds what was decided while the one
/// before it committed: batches grow when the store is slow and shrink when it is idle.
#[derive(Default)]
struct Handover {
    waiting: Mutex<Waiting>,
    /// Told when decisions (or the end) are handed over.
    filled: Notify,
    /// Told when the recorder takes what waits.
    taken: Notify,
}

#[derive(Default)]
struct Waiting {
    batch: Batch,
    /// No more decisions will come.
    closed: bool,
}

impl Handover {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `batch` over; waits while the recorder has [`MAX_WAITING`] decisions waiting.
    async fn give(&self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let was_empty = {
            let mut waiting = self.lock();
            let was_empty = waiting.batch.is_empty();
            waiting.batch.append(batch);
            was_empty
        };
        if was_empty {
            self.filled.notify_one();
        }
        while self.lock().batch.verdicts.len() >= MAX_WAITING {
            self.taken.notified().await;
        }
    }

    /// Everything waiting, once there is something; `None` when the event task is done and
    /// nothing waits.
    async fn take(&self) -> Option<Batch> {
        loop {
            let (batch, closed) = {
                let mut waiting = self.lock();
                (std::mem::take(&mut waiting.batch), waiting.closed)
            };
            if !batch.is_empty() {
                self.taken.notify_one();
                return Some(batch);
            }
            if closed {
                return None;
            }
            self.filled.notified().await;
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_one();
    }
}

/// Judges events in arrival order until every sender is gone and the queue is empty, then
/// waits for the decisions still being stored and the answers still being delivered.
pub async fn run(shared: Arc<Shared>, mut engine: Engine, mut events: mpsc::Receiver<Event>) {
    let handover = Arc::new(Handover::default());
    let recorder = tokio::spawn(record_batches(Arc::clone(&shared), Arc::clone(&handover)));
    let mut raids = RaidDetector::default();
    let mut replies = JoinSet::new();
    let mut batch = Batch::default();
    let mut decided = Decided::default();
    loop {
        // What is queued now, up to a batch: redelivery is checked for all of it at once.
        let mut group = Vec::new();
        match events.try_recv() {
            Ok(event) => group.push(event),
            Err(mpsc::error::TryRecvError::Empty) => {
                shared.metrics.queue_depth.set(0);
                handover.give(&mut batch).await;
                match events.recv().await {
                    Some(event) => group.push(event),
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
        while group.len() < MAX_READ {
            match events.try_recv() {
                Ok(event) => group.push(event),
                Err(_) => break,
            }
        }
        shared.metrics.queue_depth.set(events.len() as i64);
        let unknown: Vec<(Platform, String)> = group
            .iter()
            .map(key_of)
            .filter(|key| !decided.contains(key))
            .collect();
        let stored = match shared.store.seen_among(&unknown).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "cannot check for redelivery; judging anyway");
                HashSet::new()
            }
        };
        for event in group {
            shared
                .metrics
                .events
                .get_or_create(&EventLabels {
                    platform: event.platform.to_string(),
                    kind: event.kind.name().to_owned(),
                })
                .inc();
            let key = key_of(&event);
            if decided.contains(&key) || stored.contains(&key) {
                shared.metrics.duplicates.inc();
                tracing::debug!(event = %event.id, "redelivered event dropped");
                batch.dropped.push(key);
                continue;
            }
            // Commands, group and list changes and removals write as they are handled:
            // what was decided before them is stored first, and their own decision right
            // after.
            let writes = changes_state(&event);
            if writes {
                until_all_stored(&handover, &mut batch).await;
            }
            handle(
                &shared,
                &mut engine,
                &mut raids,
                &mut replies,
                &mut batch,
                &event,
            )
            .await;
            decided.insert(key);
            if writes || batch.verdicts.len() >= HAND_OVER {
                handover.give(&mut batch).await;
            }
        }
        while replies.try_join_next().is_some() {}
    }
    handover.give(&mut batch).await;
    handover.close();
    if let Err(e) = recorder.await {
        tracing::error!(error = %e, "the recorder stopped");
    }
    while replies.join_next().await.is_some() {}
    tracing::info!("event queue drained");
}

/// How many decided events are remembered in memory, so that a redelivery soon after is
/// caught without asking the store (a decision taken is stored: its commit is tried until
/// it lands or groupguard stops).
const RECENT_EVENTS: usize = 100_000;

/// The events decided last, oldest first.
#[derive(Default)]
struct Decided {
    order: VecDeque<(Platform, String)>,
    keys: HashSet<(Platform, String)>,
}

impl Decided {
    fn contains(&self, key: &(Platform, String)) -> bool {
        self.keys.contains(key)
    }

    fn insert(&mut self, key: (Platform, String)) {
        if self.keys.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > RECENT_EVENTS {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }
}

/// Whether handling `event` writes to the store besides its decision.
fn changes_state(event: &Event) -> bool {
    command(event).is_some()
        || matches!(
            event.kind,
            EventKind::GroupChanged(_)
                | EventKind::ListChanged(_)
                | EventKind::MemberRemoved { by: Some(_), .. }
        )
}

/// Hands the batch over and waits until everything decided so far is stored.
async fn until_all_stored(handover: &Handover, batch: &mut Batch) {
    let (stored, done) = oneshot::channel();
    batch.stored.push(stored);
    handover.give(batch).await;
    let _ = done.await;
}

/// Stores batches in the order they were decided and wakes the outbox for their actions.
/// A commit that fails (the disk full, the database restarting) is tried again with the
/// same decisions until the store takes them: no event is judged twice, and a commit that
/// landed after all is recognised by its event ids. Meanwhile judging pauses, the queue
/// fills and the adapters wait. Once stored, a batch's events and the redeliveries dropped
/// with it leave the journal.
async fn record_batches(shared: Arc<Shared>, handover: Arc<Handover>) {
    while let Some(batch) = handover.take().await {
        let recorded =
            batch.verdicts.is_empty() || record(&shared, &batch.verdicts, batch.decided).await;
        if recorded {
            let mut done = batch.dropped;
            done.extend(
                batch
                    .verdicts
                    .iter()
                    .map(|v| (v.platform, v.event.to_string())),
            );
            if let Err(e) = shared.journal.release(&done) {
                // They are read back and found recorded at the next start.
                tracing::warn!(error = %e, "stored events could not leave the journal");
            }
            shared
                .metrics
                .journal_pending
                .set(shared.journal.pending() as i64);
        }
        for stored in batch.stored {
            let _ = stored.send(());
        }
    }
}

/// Records decisions taken at `decided`; `false` when they could not be stored before
/// shutdown.
async fn record(shared: &Shared, verdicts: &[Verdict], decided: Vec<Instant>) -> bool {
    let Some(recorded) = until_stored(shared, "decisions could not be stored", || async {
        let started = Instant::now();
        let result = shared.store.record_all(verdicts).await;
        shared
            .metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    })
    .await
    else {
        // Shutting down: the events wait in the journal and are decided at the next start.
        return false;
    };
    shared.metrics.batch_size.observe(verdicts.len() as f64);
    for at in decided {
        shared
            .metrics
            .durable_seconds
            .observe(at.elapsed().as_secs_f64());
    }
    let mut queued_actions = false;
    for (verdict, recorded) in verdicts.iter().zip(recorded) {
        match recorded {
            Recorded::Duplicate => {
                shared.metrics.duplicates.inc();
            }
            Recorded::New { actions, .. } => {
                queued_actions |= !actions.is_empty();
                count_decision(shared, verdict);
            }
        }
    }
    if queued_actions {
        shared.outbox_wake.notify_one();
    }
    true
}

/// Counts a stored decision and logs its violations.
fn count_decision(shared: &Shared, verdict: &Verdict) {
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
}

/// The command in an event and where its answer goes: a command event, or a message that
/// starts with `!guard` (answered in the group, replying to the message).
fn command(event: &Event) -> Option<(&str, ReplyTo)> {
    match &event.kind {
        EventKind::Command { text, reply_to } => Some((text, reply_to.clone())),
        EventKind::MessagePosted(m) => {
            let text = m.text.trim_start();
            let is_command = groupguard_core::command::PREFIXES.iter().any(|p| {
                text.get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
            });
            is_command.then(|| {
                let to = ReplyTo::in_group(
                    event.group.clone(),
                    event.member.id.clone(),
                    event.message_id(),
                );
                (text, to)
            })
        }
        _ => None,
    }
}

async fn handle(
    shared: &Arc<Shared>,
    engine: &mut Engine,
    raids: &mut RaidDetector,
    replies: &mut JoinSet<()>,
    batch: &mut Batch,
    event: &Event,
) {
    match &event.kind {
        EventKind::GroupChanged(change) => sync_group(shared, event, change).await,
        EventKind::ListChanged(change) => follow_list(shared, event, change).await,
        EventKind::MemberRemoved {
            by: Some(by),
            banned,
        } => blacklist_removal(shared, event, by, *banned).await,
        _ => {}
    }
    if let Some((text, reply_to)) = command(event) {
        let answer = run_command(shared, event, text).await;
        replies.spawn(deliver_reply(
            Arc::clone(shared),
            event.platform,
            reply_to,
            answer,
        ));
    }
    let now = shared.clock.now();
    let started = Instant::now();
    let mut verdict = engine.evaluate(event, now);
    shared
        .metrics
        .evaluate_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Some(alert) = raids.observe(&shared.raid, &verdict) {
        shared.metrics.raid_alerts.inc();
        tracing::warn!(group = %event.group, platform = %event.platform, "raid alert");
        verdict.actions.extend(alert);
    }
    batch.verdicts.push(verdict);
    batch.decided.push(Instant::now());
}

/// Runs a command and returns its answer (a refusal says why).
async fn run_command(shared: &Shared, event: &Event, text: &str) -> Reply {
    let answer = match parse(text, event.platform) {
        Err(e) => Err(e.to_string()),
        Ok(invocation) => {
            let ctx = Context {
                store: shared.store.as_ref(),
                rules: &shared.rules,
                platform: event.platform,
                group: &event.group,
                actor: &event.member,
                now: shared.clock.now(),
            };
            shared
                .own_change(async { Ok::<_, StoreError>(execute(&invocation, &ctx).await) })
                .await
                .unwrap_or_else(|e| Err(e.into()))
                .map_err(|e| e.to_string())
        }
    };
    let result = if answer.is_ok() { "ok" } else { "refused" };
    shared
        .metrics
        .commands
        .get_or_create(&OutcomeLabels {
            outcome: result.to_owned(),
        })
        .inc();
    match answer {
        Ok(outcome) => reply(&outcome),
        Err(refusal) => Reply::text(refusal).private(),
    }
}

/// Delivers a command's answer where `to` points: retried a few times while the platform is
/// busy, never past the handle's expiry; an expired or refused answer is logged and dropped.
async fn deliver_reply(shared: Arc<Shared>, platform: Platform, to: ReplyTo, answer: Reply) {
    let count = |result: &str| {
        shared
            .metrics
            .replies
            .get_or_create(&OutcomeLabels {
                outcome: result.to_owned(),
            })
            .inc();
    };
    let Some(executor) = shared.executors.get(&platform) else {
        tracing::warn!(%platform, "no adapter to answer a command");
        count("failed");
        return;
    };
    for attempt in 1..=REPLY_ATTEMPTS {
        if to.expired(shared.clock.now()) {
            tracing::warn!(group = %to.group, sender = %to.sender, "a command's answer was dropped: its reply handle had expired");
            count("expired");
            return;
        }
        let wait = match executor.reply(&to, &answer).await {
            Ok(()) => {
                count("done");
                return;
            }
            Err(e) => match e.kind {
                AdapterErrorKind::RateLimited { retry_after } => retry_after,
                AdapterErrorKind::Transient => backoff(attempt),
                AdapterErrorKind::Expired => {
                    tracing::warn!(group = %to.group, sender = %to.sender, error = %e, "a command's answer was dropped: its reply handle had expired");
                    count("expired");
                    return;
                }
                _ => {
                    tracing::warn!(group = %to.group, error = %e, "a command's answer could not be delivered");
                    count("failed");
                    return;
                }
            },
        };
        if attempt < REPLY_ATTEMPTS {
            tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
        }
    }
    tracing::warn!(group = %to.group, "a command's answer was given up after {REPLY_ATTEMPTS} attempts");
    count("failed");
}

/// Stores what the platform says about a group (registration, name, owner, admins), so
/// admin notices reach the right people and tags can be added to it.
async fn sync_group(shared: &Shared, event: &Event, change: &GroupChange) {
    let id = GroupRef::new(event.platform, event.group.clone());
    let rules = shared.rules.rules();
    let current = rules.group(&id);
    let next = GroupConfig::changed(current, &id, change);
    if next.as_ref() == current {
        return;
    }
    let edit = Edit::new(Source::Platform(event.platform), shared.clock.now());
    let store = shared.store.as_ref();
    let result = shared
        .own_change(async {
            match next {
                Some(group) => store.put_group(group, &edit).await?,
                None => store.delete_group(&id, &edit).await?,
            }
            reload_configuration(store, &shared.rules)
                .await
                .map_err(|e| StoreError::Refused(e.to_string()))
        })
        .await;
    match result {
        Ok(()) => {
            shared.metrics.group_changes.inc();
            tracing::info!(group = %id, ?change, "group updated from the platform");
        }
        Err(e) => tracing::error!(group = %id, error = %e, "cannot store a group change"),
    }
}

/// A shared ban list the bot follows changed: a ban becomes an org-wide blacklist entry with
/// the list as its source (an entry a moderator or a rule made stays theirs), and a lifted
/// ban removes the entry only when that list made it.
async fn follow_list(shared: &Shared, event: &Event, change: &ListChange) {
    let list = GroupRef::new(event.platform, event.group.clone());
    let source = Source::List(list.clone());
    let now = shared.clock.now();
    let edit = Edit::new(source.clone(), now);
    let (member, result) = match change {
        ListChange::Ban { member, reason } => {
            let member = MemberRef::new(event.platform, member.clone());
            let reason = if reason.is_empty() {
                format!("banned by {list}")
            } else {
                reason.clone()
            };
            // Another source's entry stays theirs; the same ban read again changes nothing.
            if let Some(entry) = shared.rules.blacklist().entry(&member, None)
                && entry.is_active(now)
                && (entry.source != source || *entry.reason == *reason)
            {
                return;
            }
            let entry = BlacklistEntry {
                member: member.clone(),
                owner: None,
                reason,
                source,
                created_at: now,
                expires_at: None,
            };
            (member, shared.blacklist(entry, &edit).await)
        }
        ListChange::Lift { member } => {
            let member = MemberRef::new(event.platform, member.clone());
            let ours = shared
                .rules
                .blacklist()
                .entry(&member, None)
                .is_some_and(|entry| entry.source == source);
            if !ours {
                return;
            }
            let result = shared.unblacklist(&member, &edit).await;
            (member, result)
        }
    };
    match result {
        Ok(()) => tracing::info!(%member, %list, ?change, "ban list followed"),
        Err(e) => tracing::error!(%member, %list, error = %e, "cannot follow a ban list change"),
    }
}

/// With `blacklist_manual_removals` on, a member an admin removed by hand goes on the
/// blacklist with that admin as the source, so the removal holds in every group. Removals
/// by bots (groupguard's own kicks included) are left to the ladders.
async fn blacklist_removal(shared: &Shared, event: &Event, by: &Member, banned: bool) {
    let rules = shared.rules.rules();
    let policy = rules.config().settings.blacklist_manual_removals;
    if policy == ManualRemovals::Off || by.is_bot {
        return;
    }
    let group = GroupRef::new(event.platform, event.group.clone());
    let owner = match policy {
        ManualRemovals::Personal => match rules.group(&group).and_then(|g| g.owner.clone()) {
            Some(owner) => Some(owner),
            None => {
                tracing::warn!(%group, "a manual removal is not blacklisted: the group has no known owner for a personal list");
                return;
            }
        },
        _ => None,
    };
    let now = shared.clock.now();
    let member = MemberRef::new(event.platform, event.member.id.clone());
    if shared
        .rules
        .blacklist()
        .entry(&member, owner.as_ref())
        .is_some_and(|entry| entry.is_active(now))
    {
        return;
    }
    let admin = MemberRef::new(event.platform, by.id.clone());
    let entry = BlacklistEntry {
        member: member.clone(),
        owner,
        reason: format!(
            "{} by {} in {}",
            if banned { "banned" } else { "kicked" },
            by.label(),
            group
        ),
        source: Source::Moderator(admin.clone()),
        created_at: now,
        expires_at: None,
    };
    drop(rules);
    match shared
        .blacklist(entry, &Edit::new(Source::Moderator(admin), now))
        .await
    {
        Ok(()) => tracing::info!(%member, %group, "manual removal blacklisted"),
        Err(e) => tracing::error!(%member, error = %e, "cannot blacklist a manual removal"),
    }
}
