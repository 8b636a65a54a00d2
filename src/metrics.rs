//! Prometheus metrics: what happened, how long it took, what is waiting.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub platform: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnjudgedLabels {
    pub platform: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
    pub result: String,
}

/// Every metric the service exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Events received, by platform and kind.
    pub events: Family<EventLabels, Counter>,
    /// Redelivered events dropped.
    pub duplicates: Counter,
    /// Events an adapter received but could not judge, by platform and reason (Matrix:
    /// `undecryptable`), as the adapters count them.
    pub unjudged: Family<UnjudgedLabels, Counter>,
    /// Decisions, by outcome (`violation`, `clean`).
    pub decisions: Family<OutcomeLabels, Counter>,
    /// Violations, by the check that matched first.
    pub violations: Family<CheckLabels, Counter>,
    /// Action attempts, by action and result (`done`, `retry`, `failed`, `replaced`).
    pub actions: Family<ActionLabels, Counter>,
    /// Commands, by result (`ok`, `refused`).
    pub commands: Family<OutcomeLabels, Counter>,
    /// Command answers, by result (`done`, `expired`, `failed`).
    pub replies: Family<OutcomeLabels, Counter>,
    /// Group registrations and changes stored from the platforms.
    pub group_changes: Counter,
    /// Raid alerts raised.
    pub raid_alerts: Counter,
    /// Time to judge an event.
    pub evaluate_seconds: Histogram,
    /// Time to carry out an action on a platform.
    pub action_seconds: Histogram,
    /// Actions waiting in the outbox.
    pub outbox_depth: Gauge,
    /// Events waiting to be judged.
    pub queue_depth: Gauge,
    /// Decisions per store transaction.
    pub batch_size: Histogram,
    /// Time to store a batch of decisions.
    pub commit_seconds: Histogram,
    /// Time from a decision to its record being committed.
    pub durable_seconds: Histogram,
    /// Time to write a batch of received events to the inbound journal.
    pub journal_seconds: Histogram,
    /// Journal writes and decision commits that failed and are being retried.
    pub store_retries: Counter,
    /// Events decided after a restart from the inbound journal.
    pub replayed: Counter,
    /// Events in the inbound journal whose decisions are not stored yet.
    pub journal_pending: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("groupguard");
        let events = Family::<EventLabels, Counter>::default();
        let duplicates = Counter::default();
        let unjudged = Family::<UnjudgedLabels, Counter>::default();
        let decisions = Family::<OutcomeLabels, Counter>::default();
        let violations = Family::<CheckLabels, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let commands = Family::<OutcomeLabels, Counter>::default();
        let replies = Family::<OutcomeLabels, Counter>::default();
        let group_changes = Counter::default();
        let raid_alerts = Counter::default();
        // 1 µs to ~16 s.
        let evaluate_seconds = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        let action_seconds = Histogram::new(exponential_buckets(1e-3, 2.0, 15));
        let outbox_depth = Gauge::default();
        let queue_depth = Gauge::default();
        // 1 to 2,048 decisions.
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        // 0.1 ms to ~3 s.
        let commit_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 15));
        // 50 µs to ~10 s, fine enough (×1.5) to read p50 and p99 off.
        let durable_seconds = Histogram::new(exponential_buckets(5e-5, 1.5, 30));
        let journal_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 15));
        let store_retries = Counter::default();
        let replayed = Counter::default();
        let journal_pending = Gauge::default();
        registry.register("events", "Events received", events.clone());
        registry.register(
            "duplicate_events",
            "Redelivered events dropped",
            duplicates.clone(),
        );
        registry.register(
            "unjudged_events",
            "Events received but not judged, by platform and reason",
            unjudged.clone(),
        );
        registry.register("decisions", "Decisions by outcome", decisions.clone());
        registry.register(
            "violations",
            "Violations by first matching check",
            violations.clone(),
        );
        registry.register(
            "actions",
            "Action attempts by action and result",
            actions.clone(),
        );
        registry.register("commands", "Chat commands by result", commands.clone());
        registry.register("replies", "Command answers by result", replies.clone());
        registry.register(
            "group_changes",
            "Group registrations and changes stored from the platforms",
            group_changes.clone(),
        );
        registry.register("raid_alerts", "Raid alerts raised", raid_alerts.clone());
        registry.register(
            "evaluate_seconds",
            "Time to judge an event",
            evaluate_seconds.clone(),
        );
        registry.register(
            "action_seconds",
            "Time to carry out an action",
            action_seconds.clone(),
        );
        registry.register(
            "outbox_depth",
            "Actions waiting to be carried out",
            outbox_depth.clone(),
        );
        registry.register(
            "queue_depth",
            "Events waiting to be judged",
            queue_depth.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Decisions per store transaction",
            batch_size.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to store a batch of decisions",
            commit_seconds.clone(),
        );
        registry.register(
            "durable_seconds",
            "Time from a decision to its record being committed",
            durable_seconds.clone(),
        );
        registry.register(
            "journal_seconds",
            "Time to write a batch of received events to the inbound journal",
            journal_seconds.clone(),
        );
        registry.register(
            "store_retries",
            "Journal writes and decision commits that failed and were retried",
            store_retries.clone(),
        );
        registry.register(
            "replayed_events",
            "Events received before a restart and decided after it, from the inbound journal",
            replayed.clone(),
        );
        registry.register(
            "journal_pending_events",
            "Events in the inbound journal whose decisions are not stored yet",
            journal_pending.clone(),
        );
        Metrics {
            registry,
            events,
            duplicates,
            unjudged,
            decisions,
            violations,
            actions,
            commands,
            replies,
            group_changes,
            raid_alerts,
            evaluate_seconds,
            action_seconds,
            outbox_depth,
            queue_depth,
            batch_size,
            commit_seconds,
            durable_seconds,
            journal_seconds,
            store_retries,
            replayed,
            journal_pending,
        }
    }

    /// Counts an action attempt.
    pub fn action(&self, action: &str, result: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
