//! Changes beside judging: `!guard` commands, group and list changes and removals by admins
//! write to the store, and most put new rules or a new blacklist in force, which at a large
//! operator's scale takes a good part of a second. They run one at a time, in the order they
//! came, on a task of their own ([`run`]) while the event task goes on judging with the rules
//! in force. The events of the group a change came from wait for it ([`Held`]), so each
//! group's events are still judged in the order they came, each after its changes; a ban
//! holds every group's events until it is in force.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use groupguard_core::command::{Context, execute, parse, put_group, reply};
use groupguard_core::delivery::backoff;
use groupguard_core::model::{
    Event, EventId, EventKind, GroupChange, GroupId, GroupRef, ListChange, Member, MemberRef,
    Platform, ReplyTo,
};
use groupguard_core::platform::AdapterErrorKind;
use groupguard_core::ports::{Edit, StoreError};
use groupguard_core::reply::Reply;
use groupguard_core::rule::{BlacklistEntry, GroupConfig, ManualRemovals, Source};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::Shared;
use crate::metrics::OutcomeLabels;

/// Attempts at delivering a command's answer before it is given up.
const REPLY_ATTEMPTS: u32 = 4;

/// A change to make, once what was decided before it is stored.
pub struct Change {
    pub event: Event,
    pub stored_before: oneshot::Receiver<()>,
}

/// Makes each change it is given, in order, and hands its event back to be judged.
pub async fn run(
    shared: Arc<Shared>,
    mut todo: mpsc::UnboundedReceiver<Change>,
    done: mpsc::UnboundedSender<Event>,
) {
    let mut replies = JoinSet::new();
    while let Some(Change {
        event,
        stored_before,
    }) = todo.recv().await
    {
        // A command reads what was decided before it (violations, counters): stored first.
        // Told nothing, the recorder stopped with groupguard, and the change goes ahead.
        let _ = stored_before.await;
        apply(&shared, &event, &mut replies).await;
        if done.send(event).is_err() {
            break;
        }
        while replies.try_join_next().is_some() {}
    }
    while replies.join_next().await.is_some() {}
}

/// Makes the change `event` brings: a command run and answered, a group change stored, a
/// ban list followed, a removal by an admin blacklisted.
async fn apply(shared: &Arc<Shared>, event: &Event, replies: &mut JoinSet<()>) {
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
}

/// A group, on its platform.
type GroupKey = (Platform, GroupId);

fn group_of(event: &Event) -> GroupKey {
    (event.platform, event.group.clone())
}

/// The events held behind changes under way: a group's behind its change; everyone's behind
/// a ban (a ban list's or an admin's removal, which changes no rule and is quick), so nobody
/// it bans gets in anywhere after it.
#[derive(Default)]
pub struct Held {
    groups: HashMap<GroupKey, VecDeque<Event>>,
    everything: Option<VecDeque<Event>>,
    /// A ban that came while its own group waited for a change: what came after it is held
    /// already, and it goes ahead of that once its group's turn comes.
    ban_waiting: Option<(Platform, EventId)>,
    len: usize,
}

/// Whether the change `event` brings holds every group's events rather than its own group's.
fn holds_everything(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::ListChanged(_) | EventKind::MemberRemoved { by: Some(_), .. }
    )
}

impl Held {
    /// Whether nothing is held, and no change is under way.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.everything.is_none()
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Holds `event` behind the change it has to wait for; gives it back when there is none.
    pub fn join(&mut self, event: Event) -> Option<Event> {
        // Most of the time no change is under way, and an event is judged without a lookup.
        if self.is_empty() {
            return Some(event);
        }
        let waited = self
            .ban_waiting
            .as_ref()
            .is_some_and(|(platform, id)| *platform == event.platform && *id == event.id);
        if let Some(everything) = self.everything.as_mut().filter(|_| !waited) {
            everything.push_back(event);
            self.len += 1;
            return None;
        }
        let Some(group) = self.groups.get_mut(&group_of(&event)) else {
            return Some(event);
        };
        if holds_everything(&event) {
            self.everything.get_or_insert_default();
            self.ban_waiting = Some((event.platform, event.id.clone()));
        }
        group.push_back(event);
        self.len += 1;
        None
    }

    /// Holds what comes after `event`, whose change begins.
    pub fn begin(&mut self, event: &Event) {
        if holds_everything(event) {
            self.everything.get_or_insert_default();
            self.ban_waiting = None;
        } else {
            self.groups.entry(group_of(event)).or_default();
        }
    }

    /// The events `changed`, whose change is made, held, in the order they came.
    pub fn release(&mut self, changed: &Event) -> VecDeque<Event> {
        let held = if holds_everything(changed) {
            self.everything.take()
        } else {
            self.groups.remove(&group_of(changed))
        };
        let held = held.unwrap_or_default();
        self.len -= held.len();
        held
    }
}

/// Whether handling `event` writes to the store besides its decision.
pub fn changes_state(event: &Event) -> bool {
    command(event).is_some()
        || matches!(
            event.kind,
            EventKind::GroupChanged(_)
                | EventKind::ListChanged(_)
                | EventKind::MemberRemoved { by: Some(_), .. }
        )
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
    // The running rules are let go before the change swaps them: the swap frees them.
    let next = {
        let rules = shared.rules.rules();
        let current = rules.group(&id);
        let next = GroupConfig::changed(current, &id, change);
        if next.as_ref() == current {
            return;
        }
        next
    };
    let edit = Edit::new(Source::Platform(event.platform), shared.clock.now());
    let store = shared.store.as_ref();
    let result = shared
        .own_change(async {
            put_group(store, &shared.rules, &id, next, &edit)
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

#[cfg(test)]
mod tests {
    use groupguard_core::model::Message;
    use groupguard_core::testing::{T0, member, with_role};

    use super::*;

    fn event(id: &str, group: &str, kind: EventKind) -> Event {
        Event {
            id: EventId::new(id),
            at: T0,
            platform: Platform::WeCom,
            group: GroupId::new(group),
            member: member("someone"),
            kind,
        }
    }

    fn says(id: &str, group: &str, text: &str) -> Event {
        event(id, group, EventKind::MessagePosted(Message::text(text)))
    }

    fn ban(id: &str, group: &str) -> Event {
        let by = with_role("boss", groupguard_core::model::Role::Admin);
        event(
            id,
            group,
            EventKind::MemberRemoved {
                by: Some(by),
                banned: true,
            },
        )
    }

    fn ids(events: VecDeque<Event>) -> Vec<String> {
        events.into_iter().map(|e| e.id.to_string()).collect()
    }

    #[test]
    fn a_command_holds_the_events_of_its_own_group_only() {
        let mut held = Held::default();
        let command = says("c1", "g1", "!guard rule list");
        held.begin(&command);
        assert!(held.join(says("m1", "g2", "hi")).is_some());
        assert!(held.join(says("m2", "g1", "hi")).is_none());
        assert!(held.join(says("m3", "g1", "again")).is_none());
        assert_eq!(held.len(), 2);
        assert_eq!(ids(held.release(&command)), ["m2", "m3"]);
        assert!(held.is_empty());
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn a_ban_holds_every_groups_events_until_it_is_in_force() {
        let mut held = Held::default();
        let removal = ban("x1", "g1");
        held.begin(&removal);
        assert!(held.join(says("m1", "g2", "hi")).is_none());
        assert!(held.join(says("m2", "g1", "hi")).is_none());
        assert_eq!(ids(held.release(&removal)), ["m1", "m2"]);
        assert!(held.is_empty());
    }

    #[test]
    fn a_ban_behind_a_command_of_its_group_holds_what_came_after_it_and_goes_first() {
        let mut held = Held::default();
        let command = says("c1", "g1", "!guard rule list");
        held.begin(&command);
        assert!(held.join(ban("x1", "g1")).is_none());
        assert!(
            held.join(says("m1", "g2", "hi")).is_none(),
            "held though the ban waits for the command"
        );
        let released = held.release(&command);
        assert_eq!(ids(released.clone()), ["x1"]);
        let removal = released.into_iter().next().unwrap();
        let removal = held.join(removal).expect("the ban goes ahead");
        held.begin(&removal);
        assert!(held.join(says("m2", "g3", "hi")).is_none());
        assert_eq!(ids(held.release(&removal)), ["m1", "m2"]);
        assert!(held.is_empty());
    }
}
