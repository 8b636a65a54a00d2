//! The inbound journal's writer: what the adapters hand over is appended together (group
//! commit), each push is answered once its events are durable, and the events then go on to
//! the event task in the order they came. At start-up, what the last run journaled and did
//! not decide goes first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use groupguard_core::model::Event;
use groupguard_core::platform::{EventSink, PushError, SinkClosed};
use tokio::sync::{mpsc, oneshot};

use super::journal_file::{EventKey, key_of};
use super::{Shared, until_stored};

/// The most events journaled in one transaction.
const MAX_BATCH: usize = 2048;

/// Events handed over by one push, and who waits for them to be durable.
#[derive(Debug)]
pub struct Handover {
    events: Vec<Event>,
    durable: oneshot::Sender<()>,
}

/// Adapters' way in: a bounded queue to the journal writer.
#[derive(Debug, Clone)]
pub struct Sink(mpsc::Sender<Handover>);

impl Sink {
    /// A sink taking up to `capacity` pushes ahead of the writer, and the writer's end.
    pub fn channel(capacity: usize) -> (Sink, mpsc::Receiver<Handover>) {
        let (sender, receiver) = mpsc::channel(capacity);
        (Sink(sender), receiver)
    }
}

#[async_trait]
impl EventSink for Sink {
    async fn push(&self, event: Event) -> Result<(), SinkClosed> {
        self.push_all(vec![event]).await
    }

    async fn push_all(&self, events: Vec<Event>) -> Result<(), SinkClosed> {
        if events.is_empty() {
            return Ok(());
        }
        let (durable, stored) = oneshot::channel();
        self.0
            .send(Handover { events, durable })
            .await
            .map_err(|_| SinkClosed)?;
        // Dropped unanswered: groupguard stopped before the events were stored.
        stored.await.map_err(|_| SinkClosed)
    }

    async fn push_within(&self, event: Event, wait: Duration) -> Result<(), PushError> {
        match tokio::time::timeout(wait, self.push(event)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(PushError::Full),
        }
    }
}

/// Queues `replayed` (what the journal held at start-up and the store has not recorded)
/// first, then journals what is handed over and queues it for the event task, until every
/// sink is gone.
pub async fn run(
    shared: Arc<Shared>,
    replayed: Vec<Event>,
    mut handovers: mpsc::Receiver<Handover>,
    queue: mpsc::Sender<Event>,
) {
    if replay(&shared, replayed, &queue).await.is_err() {
        return;
    }
    while let Some(first) = handovers.recv().await {
        let mut events = first.events;
        let mut waiting = vec![first.durable];
        while events.len() < MAX_BATCH {
            match handovers.try_recv() {
                Ok(next) => {
                    events.extend(next.events);
                    waiting.push(next.durable);
                }
                Err(_) => break,
            }
        }
        let stored = until_stored(
            &shared,
            "received events could not be journaled",
            || async {
                let started = Instant::now();
                let result = shared.journal.append(&events).await;
                shared
                    .metrics
                    .journal_seconds
                    .observe(started.elapsed().as_secs_f64());
                result
            },
        )
        .await;
        if stored.is_none() {
            // Shutting down with the journal failing: the pushes fail, and the platforms
            // deliver these events again.
            return;
        }
        shared
            .metrics
            .journal_pending
            .set(shared.journal.pending() as i64);
        for durable in waiting {
            let _ = durable.send(());
        }
        // Waits while the event task is behind: the pushes after these wait too.
        for event in events {
            if queue.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Queues the events the journal held at start-up, first; those the store recorded before
/// the crash (their journal entry outlived the commit) are released instead.
async fn replay(
    shared: &Shared,
    events: Vec<Event>,
    queue: &mpsc::Sender<Event>,
) -> Result<(), SinkClosed> {
    if events.is_empty() {
        return Ok(());
    }
    let keys: Vec<EventKey> = events.iter().map(key_of).collect();
    let Some(recorded) = until_stored(
        shared,
        "cannot tell which journaled events were recorded",
        || shared.store.seen_among(&keys),
    )
    .await
    else {
        return Err(SinkClosed);
    };
    if let Err(e) = shared
        .journal
        .release(&recorded.iter().cloned().collect::<Vec<_>>())
    {
        tracing::warn!(error = %e, "journaled events already recorded stay for the next start");
    }
    let undecided: Vec<Event> = events
        .into_iter()
        .zip(keys)
        .filter(|(_, key)| !recorded.contains(key))
        .map(|(event, _)| event)
        .collect();
    if !undecided.is_empty() {
        tracing::info!(
            events = undecided.len(),
            "deciding the events received before the restart first"
        );
    }
    for event in undecided {
        shared.metrics.replayed.inc();
        queue.send(event).await.map_err(|_| SinkClosed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupguard_core::model::Platform;
    use groupguard_core::testing::{EventFactory, member};

    #[tokio::test(start_paused = true)]
    async fn a_push_returns_once_durable_and_says_busy_when_not_stored_in_time() {
        let (sink, mut handovers) = Sink::channel(4);
        let mut events = EventFactory::new(Platform::WeCom, "g1");
        let first = events.text(&member("a"), "one");
        let writer = tokio::spawn(async move {
            let handover = handovers.recv().await.unwrap();
            // Stored after 3 s: a push waiting 1 s gives up, one waiting 4 s does not.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = handover.durable.send(());
            let second = handovers.recv().await.unwrap();
            let _ = second.durable.send(());
            (handover.events, second.events, handovers)
        });
        let started = tokio::time::Instant::now();
        assert_eq!(
            sink.push_within(first.clone(), Duration::from_secs(1))
                .await,
            Err(PushError::Full)
        );
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        let second = events.text(&member("a"), "two");
        sink.push_within(second.clone(), Duration::from_secs(4))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let (taken, then, handovers) = writer.await.unwrap();
        assert_eq!((taken, then), (vec![first], vec![second]));
        drop(handovers);
        let third = events.text(&member("a"), "three");
        assert_eq!(
            sink.push_within(third, Duration::from_secs(1)).await,
            Err(PushError::Closed)
        );
    }

    #[tokio::test]
    async fn a_push_dropped_before_it_was_stored_fails() {
        let (sink, mut handovers) = Sink::channel(4);
        let event = EventFactory::new(Platform::WeCom, "g1").text(&member("a"), "one");
        tokio::spawn(async move { drop(handovers.recv().await) });
        assert_eq!(sink.push(event).await, Err(SinkClosed));
    }
}
