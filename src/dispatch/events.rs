//! The event task: judges events in arrival order and stores what they lead to.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use groupguard_core::engine::Engine;
use groupguard_core::model::{Event, Platform};
use groupguard_core::ports::Recorded;
use groupguard_core::raid::RaidDetector;
use groupguard_core::verdict::Verdict;
use tokio::sync::{Notify, mpsc, oneshot};

use super::changes::{self, Change, Held, changes_state};
use super::journal_file::key_of;
use super::{Shared, until_stored};
use crate::metrics::{CheckLabels, EventLabels, OutcomeLabels};

/// The most events read from the queue at once (their redelivery is checked together).
const MAX_READ: usize = 512;

/// Events held behind changes under way before reading more waits for them.
const MAX_HELD: usize = 10_000;

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
/// waits for the changes under way, the decisions still being stored and the answers still
/// being delivered. Changes (see [`changes`]) run beside judging; the events of a group
/// with one under way wait for it.
pub async fn run(shared: Arc<Shared>, mut engine: Engine, mut events: mpsc::Receiver<Event>) {
    let handover = Arc::new(Handover::default());
    let recorder = tokio::spawn(record_batches(Arc::clone(&shared), Arc::clone(&handover)));
    let (todo, changes_todo) = mpsc::unbounded_channel();
    let (changes_done, mut done) = mpsc::unbounded_channel();
    let changer = tokio::spawn(changes::run(
        Arc::clone(&shared),
        changes_todo,
        changes_done,
    ));
    let mut judge = Judge {
        shared: &shared,
        engine: &mut engine,
        raids: RaidDetector::default(),
        batch: Batch::default(),
        handover: &handover,
        todo,
        held: Held::default(),
        decided: Decided::default(),
    };
    loop {
        while let Ok(changed) = done.try_recv() {
            judge.after_change(changed).await;
        }
        // A change that cannot finish (the store unreachable) stops the reading here, as a
        // full recorder does, rather than holding ever more events in memory.
        while judge.held.len() >= MAX_HELD {
            let Some(changed) = done.recv().await else {
                break;
            };
            judge.after_change(changed).await;
        }
        // What is queued now, up to a batch: redelivery is checked for all of it at once.
        let mut group = Vec::new();
        match events.try_recv() {
            Ok(event) => group.push(event),
            Err(mpsc::error::TryRecvError::Empty) => {
                shared.metrics.queue_depth.set(0);
                judge.handover.give(&mut judge.batch).await;
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => group.push(event),
                        None => break,
                    },
                    Some(changed) = done.recv() => {
                        judge.after_change(changed).await;
                        continue;
                    }
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
            .filter(|key| !judge.decided.contains(key))
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
            if judge.decided.contains(&key) || stored.contains(&key) {
                shared.metrics.duplicates.inc();
                tracing::debug!(event = %event.id, "redelivered event dropped");
                // A redelivery of an event still waiting leaves the journal with it.
                if !judge.decided.waits(&key) {
                    judge.batch.dropped.push(key);
                }
                continue;
            }
            judge.take(event).await;
        }
    }
    // The changes under way are made and the events behind them judged.
    while !judge.held.is_empty() {
        let Some(changed) = done.recv().await else {
            break;
        };
        judge.after_change(changed).await;
    }
    let Judge {
        mut batch, todo, ..
    } = judge;
    drop(todo);
    if let Err(e) = changer.await {
        tracing::error!(error = %e, "the change task stopped");
    }
    handover.give(&mut batch).await;
    handover.close();
    if let Err(e) = recorder.await {
        tracing::error!(error = %e, "the recorder stopped");
    }
    tracing::info!("event queue drained");
}

/// The event task's judging: in arrival order, but for the events of a group with a change
/// under way, which wait for it.
struct Judge<'a> {
    shared: &'a Arc<Shared>,
    engine: &'a mut Engine,
    raids: RaidDetector,
    batch: Batch,
    handover: &'a Handover,
    /// To the change task.
    todo: mpsc::UnboundedSender<Change>,
    held: Held,
    decided: Decided,
}

impl Judge<'_> {
    /// Judges `event` now, or starts the change it brings, or puts it behind its group's.
    async fn take(&mut self, event: Event) {
        let key = key_of(&event);
        let Some(event) = self.held.join(event) else {
            self.decided.wait(key);
            return;
        };
        if changes_state(&event) {
            self.decided.wait(key);
            self.begin_change(event).await;
        } else {
            self.decide(&event);
            self.decided.insert(key);
            if self.batch.verdicts.len() >= HAND_OVER {
                self.handover.give(&mut self.batch).await;
            }
        }
    }

    /// Hands the change `event` brings to the change task, once what was decided before it is
    /// on its way to the store.
    async fn begin_change(&mut self, event: Event) {
        self.held.begin(&event);
        let (stored, stored_before) = oneshot::channel();
        self.batch.stored.push(stored);
        self.handover.give(&mut self.batch).await;
        let change = Change {
            event,
            stored_before,
        };
        if let Err(mpsc::error::SendError(change)) = self.todo.send(change) {
            // The change task is gone (it failed): the event is judged without its change.
            tracing::error!(event = %change.event.id, "a change could not be made: the change task stopped");
            Box::pin(self.after_change(change.event)).await;
        }
    }

    /// Judges `changed`, whose change is made, and stores the decision right away; then takes
    /// the events held behind it, in the order they came.
    async fn after_change(&mut self, changed: Event) {
        self.decide(&changed);
        self.decided.insert(key_of(&changed));
        self.handover.give(&mut self.batch).await;
        for event in self.held.release(&changed) {
            Box::pin(self.take(event)).await;
        }
    }

    /// The engine's verdict on `event`, and a raid alert it sets off, for the recorder.
    fn decide(&mut self, event: &Event) {
        let now = self.shared.clock.now();
        let started = Instant::now();
        let mut verdict = self.engine.evaluate(event, now);
        self.shared
            .metrics
            .evaluate_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(alert) = self.raids.observe(&self.shared.raid, &verdict) {
            self.shared.metrics.raid_alerts.inc();
            tracing::warn!(group = %event.group, platform = %event.platform, "raid alert");
            verdict.actions.extend(alert);
        }
        self.batch.verdicts.push(verdict);
        self.batch.decided.push(Instant::now());
    }
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
    /// Taken and not decided yet: behind a change, or bringing one.
    waiting: HashSet<(Platform, String)>,
}

impl Decided {
    /// Whether the event was decided lately or waits to be.
    fn contains(&self, key: &(Platform, String)) -> bool {
        self.keys.contains(key) || self.waiting.contains(key)
    }

    fn waits(&self, key: &(Platform, String)) -> bool {
        self.waiting.contains(key)
    }

    fn wait(&mut self, key: (Platform, String)) {
        self.waiting.insert(key);
    }

    fn insert(&mut self, key: (Platform, String)) {
        self.waiting.remove(&key);
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
