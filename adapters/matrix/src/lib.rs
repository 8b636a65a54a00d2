//! groupguard's Matrix adapter on matrix-sdk: it logs in once (the session and device keys
//! live in the data directory), joins rooms its allowed inviters invite it to, syncs, turns
//! room events into groupguard's events (back-filling a limited sync so no message of a burst
//! escapes), and acts with its power level.

pub mod config;
pub mod executor;
pub mod mirror;
pub mod policy;
pub mod render;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timeouts;
pub mod translate;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use groupguard_core::model::{
    Event, EventId, EventKind, GroupChange, GroupId, ListChange, Member, OrgId, Platform, Role,
    UserId,
};
use groupguard_core::platform::{
    ActionExecutor, AdapterError, AdapterErrorKind, BlacklistMirror, EventSink,
};
use groupguard_core::ports::Clock;
use matrix_sdk::config::{SyncSettings, SyncToken};
use matrix_sdk::deserialized_responses::{
    RawAnySyncOrStrippedState, TimelineEvent, TimelineEventKind,
};
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::events::StateEventType;
use matrix_sdk::ruma::events::room::power_levels::{RoomPowerLevels, UserPowerLevel};
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, RoomId, RoomOrAliasId, UInt, int};
use matrix_sdk::sync::{State, SyncResponse};
use matrix_sdk::{Client, Room};
use serde_json::Value;
use tokio::sync::watch;

use crate::config::{MatrixConfig, server_of};
use crate::executor::MatrixExecutor;
use crate::mirror::MatrixMirror;
use crate::policy::PolicyRoom;
use crate::timeouts::Timeouts;

/// How long one sync waits for news.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeline events per room per sync (Synapse caps it at 100).
const TIMELINE_LIMIT: u32 = 100;
/// Pages of 100 events read back after a limited sync.
const BACKFILL_PAGES: usize = 10;
/// How long to wait before trying again after a failed login or sync.
const RETRY: Duration = Duration::from_secs(5);

/// What the adapter's parts share.
#[derive(Debug)]
pub struct Inner {
    config: MatrixConfig,
    clock: Arc<dyn Clock>,
    client: OnceLock<Client>,
    management: OnceLock<OwnedRoomId>,
    /// Where the org-wide blacklist is published.
    publish_room: OnceLock<OwnedRoomId>,
    /// Followed policy rooms.
    followed: OnceLock<HashSet<OwnedRoomId>>,
    /// Why the adapter is not connected, while it is not.
    not_ready: Mutex<Option<String>>,
    /// Members muted, and the levels to give back.
    timeouts: Timeouts,
    /// Encrypted events the bot could not decrypt, so did not judge.
    undecryptable: AtomicU64,
}

impl Inner {
    fn client(&self) -> Result<&Client, AdapterError> {
        self.client.get().ok_or_else(|| {
            AdapterError::new(
                AdapterErrorKind::Transient,
                "not connected to the homeserver yet",
            )
        })
    }

    fn management_room(&self) -> Option<Room> {
        let id = self.management.get()?;
        self.client.get()?.get_room(id)
    }

    /// The management room and policy rooms, which are not groups.
    fn is_special(&self, room: &RoomId) -> bool {
        self.management.get().is_some_and(|m| m == room)
            || self.publish_room.get().is_some_and(|p| p == room)
            || self.followed.get().is_some_and(|f| f.contains(room))
    }

    fn publish_room(&self) -> Option<Room> {
        let id = self.publish_room.get()?;
        self.client.get()?.get_room(id)
    }

    fn not_ready(&self) -> Option<String> {
        self.not_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_not_ready(&self, why: Option<String>) {
        *self.not_ready.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// The Matrix adapter.
#[derive(Debug, Clone)]
pub struct Matrix {
    inner: Arc<Inner>,
}

impl Matrix {
    /// The adapter for `config`; it connects in [`Matrix::run`].
    pub fn new(config: MatrixConfig, clock: Arc<dyn Clock>) -> Matrix {
        Matrix {
            inner: Arc::new(Inner {
                clock,
                client: OnceLock::new(),
                management: OnceLock::new(),
                publish_room: OnceLock::new(),
                followed: OnceLock::new(),
                not_ready: Mutex::new(Some("logging in".to_owned())),
                timeouts: Timeouts::load(config.store_dir.join("timeouts.json")),
                undecryptable: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// The executor for Matrix.
    pub fn executor(&self) -> Arc<dyn ActionExecutor> {
        Arc::new(MatrixExecutor::new(Arc::clone(&self.inner)))
    }

    /// The blacklist's mirror on Matrix: the policy room and the bot's bans.
    pub fn mirror(&self) -> Arc<dyn BlacklistMirror> {
        Arc::new(MatrixMirror::new(Arc::clone(&self.inner)))
    }

    /// How many encrypted events could not be decrypted, so were not judged.
    pub fn undecryptable(&self) -> u64 {
        self.inner.undecryptable.load(Ordering::Relaxed)
    }

    /// `Ok` while syncing; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        match self.inner.not_ready() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Logs in, then syncs and pushes events until `stop`.
    pub async fn run(&self, sink: Arc<dyn EventSink>, mut stop: watch::Receiver<bool>) {
        let inner = &self.inner;
        let (client, fresh) = loop {
            match session::connect(&inner.config).await {
                Ok(connected) => break connected,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot log in to Matrix; trying again");
                    inner.set_not_ready(Some(e.to_string()));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        };
        let client = inner.client.get_or_init(|| client).clone();
        tracing::info!(user = %inner.config.user, fresh, "logged in to Matrix");
        if let Some(room) = &inner.config.management_room {
            match join(&client, room).await {
                Ok(id) => {
                    let _ = inner.management.set(id);
                }
                Err(e) => tracing::warn!(room, error = %e, "cannot join the management room"),
            }
        }
        if let Some(room) = &inner.config.policy_room {
            match join(&client, room).await {
                Ok(id) => {
                    let _ = inner.publish_room.set(id);
                }
                Err(e) => tracing::warn!(room, error = %e, "cannot join the policy room"),
            }
        }
        let mut followed = HashMap::new();
        for room in &inner.config.policy_rooms {
            match join(&client, room).await {
                Ok(id) => {
                    followed.insert(id, PolicyRoom::default());
                }
                Err(e) => tracing::warn!(room, error = %e, "cannot join a followed policy room"),
            }
        }
        let _ = inner.followed.set(followed.keys().cloned().collect());
        tokio::spawn(restore_timeouts(Arc::clone(inner), stop.clone()));
        let mut syncer = Syncer {
            inner,
            client: &client,
            sink: &sink,
            registered: HashSet::new(),
            last_seen: HashMap::new(),
            followed,
            pending: Vec::new(),
        };
        if syncer.read_known_policies().await.is_err() {
            return;
        }
        // A new device's first sync returns history: rooms register, old messages are left.
        let mut history = fresh;
        // The SDK stores its sync token as soon as a response arrives; groupguard's own
        // position moves only past responses whose events are durable, so a crash in
        // between syncs them again.
        let position_file = inner.config.store_dir.join(POSITION_FILE);
        let mut position = std::fs::read_to_string(&position_file)
            .ok()
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        loop {
            let mut filter = FilterDefinition::default();
            filter.room.timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
            let settings = SyncSettings::default()
                .timeout(SYNC_TIMEOUT)
                .filter(Filter::FilterDefinition(filter))
                .token(SyncToken::from_optional_token(position.clone()));
            let response = tokio::select! {
                r = client.sync_once(settings) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match response {
                Ok(response) => {
                    inner.set_not_ready(None);
                    if syncer.handle(&response, history).await.is_err() {
                        return;
                    }
                    history = false;
                    save_position(&position_file, &response.next_batch);
                    position = Some(response.next_batch);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Matrix sync failed; trying again");
                    inner.set_not_ready(Some(format!("sync failed: {e}")));
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }
}

/// Where groupguard keeps its sync position, in the store directory.
const POSITION_FILE: &str = "sync-position";

/// Saves the sync position (written aside, then renamed: never half a token).
fn save_position(path: &std::path::Path, token: &str) {
    let temp = path.with_extension("tmp");
    let saved = std::fs::write(&temp, token).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = saved {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the Matrix sync position");
    }
}

/// Gives muted members their level back when their timeout ends, including timeouts that
/// ended while the bot was down.
async fn restore_timeouts(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        for muted in inner.timeouts.due(inner.clock.now().millis()) {
            let Ok(client) = inner.client() else { break };
            let (Ok(room_id), Ok(user)) = (
                <&RoomId>::try_from(muted.room.as_str()),
                <&matrix_sdk::ruma::UserId>::try_from(muted.user.as_str()),
            ) else {
                let _ = inner.timeouts.remove(&muted.room, &muted.user);
                continue;
            };
            let Some(room) = client.get_room(room_id) else {
                continue;
            };
            let level = match muted.previous {
                Some(level) => matrix_sdk::ruma::Int::new(level).unwrap_or_default(),
                None => match room.power_levels().await {
                    Ok(levels) => levels.users_default,
                    Err(_) => continue,
                },
            };
            match room.update_power_levels(vec![(user, level)]).await {
                Ok(_) => {
                    if let Err(e) = inner.timeouts.remove(&muted.room, &muted.user) {
                        tracing::error!(error = %e, "cannot record a restored timeout");
                    }
                    tracing::info!(room = %muted.room, user = %muted.user, "timeout ended: power level restored");
                }
                Err(e) => {
                    tracing::warn!(room = %muted.room, user = %muted.user, error = %e, "cannot restore a power level; trying again");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Joins a room by id or alias (a no-op when already in it); its id.
async fn join(client: &Client, room: &str) -> Result<OwnedRoomId, matrix_sdk::Error> {
    let id = <&RoomOrAliasId>::try_from(room).map_err(matrix_sdk::Error::from)?;
    Ok(client
        .join_room_by_id_or_alias(id, &[])
        .await?
        .room_id()
        .to_owned())
}

/// The dispatcher has stopped taking events.
struct Stopped;

/// Turns sync responses into events.
struct Syncer<'a> {
    inner: &'a Inner,
    client: &'a Client,
    sink: &'a Arc<dyn EventSink>,
    /// Rooms registered as groups since start-up.
    registered: HashSet<OwnedRoomId>,
    /// The last event judged per room, where back-filling stops.
    last_seen: HashMap<OwnedRoomId, OwnedEventId>,
    /// Followed policy rooms and the bans they hold.
    followed: HashMap<OwnedRoomId, PolicyRoom>,
    /// Events of the response being handled, handed over at its end.
    pending: Vec<Event>,
}

impl Syncer<'_> {
    /// Keeps an event for [`Syncer::hand_over`].
    fn push(&mut self, event: Event) {
        self.pending.push(event);
    }

    /// Hands the events of a sync response over, returning once they are durable: only then
    /// may the sync position move past them.
    async fn hand_over(&mut self) -> Result<(), Stopped> {
        let events = std::mem::take(&mut self.pending);
        self.sink.push_all(events).await.map_err(|_| Stopped)
    }

    async fn handle(&mut self, response: &SyncResponse, history: bool) -> Result<(), Stopped> {
        for (room_id, invite) in &response.rooms.invited {
            self.invited(room_id, &invite.invite_state.events).await;
        }
        // Rooms the bot left, or was removed from, stop being groups.
        for room_id in response.rooms.left.keys() {
            self.registered.remove(room_id);
            if !history {
                let now = self.inner.clock.now();
                self.push(Event {
                    id: EventId::new(format!("{room_id}:left:{}", now.millis())),
                    at: now,
                    platform: Platform::Matrix,
                    group: GroupId::from(room_id.as_str()),
                    member: Member::new(self.inner.config.user.as_str()),
                    kind: EventKind::GroupChanged(GroupChange::Dismissed),
                });
            }
        }
        for (room_id, update) in &response.rooms.joined {
            if self.followed.contains_key(room_id) {
                // State changes up to the timeline, then the timeline: every rule change in
                // order, the first sync's full state included.
                let State::Before(state) = &update.state else {
                    continue;
                };
                let events = state
                    .iter()
                    .filter_map(|raw| raw.deserialize_as::<Value>().ok())
                    .chain(
                        update
                            .timeline
                            .events
                            .iter()
                            .filter_map(|e| e.raw().deserialize_as::<Value>().ok()),
                    );
                for event in events.collect::<Vec<_>>() {
                    self.follow(room_id, &event);
                }
                continue;
            }
            // The bot's own published list is written, not moderated.
            if self.inner.publish_room.get() == Some(room_id) {
                continue;
            }
            let Some(room) = self.client.get_room(room_id) else {
                continue;
            };
            let management = self.inner.management.get() == Some(room_id);
            if !management && !self.registered.contains(room_id) {
                self.register(&room).await;
            }
            let timeline = &update.timeline;
            let last = timeline.events.last().and_then(TimelineEvent::event_id);
            if history {
                if let Some(last) = last {
                    self.last_seen.insert(room_id.clone(), last);
                }
                continue;
            }
            let mut events = Vec::new();
            if timeline.limited
                && let Some(prev_batch) = &timeline.prev_batch
            {
                events = self.backfill(&room, prev_batch).await;
            }
            events.extend(timeline.events.iter().cloned());
            self.judge(&room, events).await;
            if let Some(last) = last {
                self.last_seen.insert(room_id.clone(), last);
            }
        }
        self.hand_over().await
    }

    /// The rules of followed policy rooms as the last run left them (kept in the SDK's
    /// store), so changes made while the bot was down are told apart from what was known.
    /// Pushed again: the dispatcher drops what it already followed.
    async fn read_known_policies(&mut self) -> Result<(), Stopped> {
        let rooms: Vec<OwnedRoomId> = self.followed.keys().cloned().collect();
        for room_id in rooms {
            let Some(room) = self.client.get_room(&room_id) else {
                continue;
            };
            for kind in policy::RULE_TYPES {
                let events = match room.get_state_events(StateEventType::from(kind)).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(room = %room_id, error = %e, "cannot read a policy room's rules");
                        continue;
                    }
                };
                for raw in events {
                    if let RawAnySyncOrStrippedState::Sync(raw) = raw
                        && let Ok(event) = raw.deserialize_as::<Value>()
                    {
                        self.follow(&room_id, &event);
                    }
                }
            }
        }
        self.hand_over().await
    }

    /// Follows one state event or redaction of a policy room.
    fn follow(&mut self, room_id: &OwnedRoomId, event: &Value) {
        let Some(list) = self.followed.get_mut(room_id) else {
            return;
        };
        let changes = list.apply(event);
        let event_id = event["event_id"].as_str().unwrap_or_default();
        let sender = event["sender"].as_str().unwrap_or_default();
        for change in changes {
            let what = match &change {
                ListChange::Ban { .. } => "ban",
                ListChange::Lift { .. } => "lift",
            };
            let now = self.inner.clock.now();
            self.push(Event {
                id: EventId::new(format!("{event_id}:{what}")),
                at: now,
                platform: Platform::Matrix,
                group: GroupId::from(room_id.as_str()),
                member: Member::new(sender),
                kind: EventKind::ListChanged(change),
            });
        }
    }

    /// Joins when the inviter is allowed, declines otherwise.
    async fn invited(
        &self,
        room_id: &OwnedRoomId,
        state: &[matrix_sdk::ruma::serde::Raw<matrix_sdk::ruma::events::AnyStrippedStateEvent>],
    ) {
        let bot = self.inner.config.user.as_str();
        let inviter = state
            .iter()
            .filter_map(|raw| raw.deserialize_as::<Value>().ok())
            .find(|e| e["type"] == "m.room.member" && e["state_key"] == bot)
            .and_then(|e| e["sender"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let Some(room) = self.client.get_room(room_id) else {
            return;
        };
        if self.inner.config.may_invite(&inviter) {
            match room.join().await {
                Ok(()) => tracing::info!(room = %room_id, %inviter, "joined a room on invitation"),
                Err(e) => tracing::warn!(room = %room_id, error = %e, "cannot join a room"),
            }
        } else {
            tracing::info!(room = %room_id, %inviter, "invitation from someone not in invite_from declined");
            if let Err(e) = room.leave().await {
                tracing::warn!(room = %room_id, error = %e, "cannot decline an invitation");
            }
        }
    }

    /// Registers a room as a group: name, creator as owner, their homeserver as home
    /// organisation, the administrators.
    async fn register(&mut self, room: &Room) {
        let bot = self.inner.config.user.as_str();
        let creators = room.creators().unwrap_or_default();
        let owner = creators.first().map(|c| c.as_str().to_owned());
        let levels = room.power_levels().await.ok();
        let admins = levels
            .as_ref()
            .map(|l| {
                l.users
                    .iter()
                    .filter(|(user, level)| {
                        **level >= int!(100)
                            && Some(user.as_str()) != owner.as_deref()
                            && user.as_str() != bot
                    })
                    .map(|(user, _)| UserId::from(user.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let joined = match room
            .get_member_no_sync(self.client.user_id().expect("logged in"))
            .await
        {
            Ok(Some(member)) => member.event().event_id().map(ToString::to_string),
            _ => None,
        };
        let room_id = room.room_id();
        let home = owner
            .as_deref()
            .and_then(server_of)
            .or_else(|| server_of(bot))
            .map(OrgId::from);
        let now = self.inner.clock.now();
        self.push(Event {
            id: EventId::new(format!(
                "{room_id}:registered:{}",
                joined.unwrap_or_else(|| now.millis().to_string())
            )),
            at: now,
            platform: Platform::Matrix,
            group: GroupId::from(room_id.as_str()),
            member: Member::new(owner.as_deref().unwrap_or(bot)),
            kind: EventKind::GroupChanged(GroupChange::Created {
                name: room.name(),
                owner: owner.map(UserId::from),
                home_org: home,
                admins,
            }),
        });
        self.registered.insert(room_id.to_owned());
    }

    /// Events before a limited sync's timeline, oldest first, back to the last one judged.
    async fn backfill(&self, room: &Room, prev_batch: &str) -> Vec<TimelineEvent> {
        let stop_at = self.last_seen.get(room.room_id());
        let mut collected = Vec::new();
        let mut from = prev_batch.to_owned();
        'pages: for _ in 0..BACKFILL_PAGES {
            let mut options = MessagesOptions::backward().from(from.as_str());
            options.limit = UInt::from(TIMELINE_LIMIT);
            let page = match room.messages(options).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(room = %room.room_id(), error = %e, "cannot read back a limited sync; some messages were not judged");
                    break;
                }
            };
            for event in page.chunk {
                if stop_at.is_some() && event.event_id().as_ref() == stop_at {
                    break 'pages;
                }
                collected.push(event);
            }
            match page.end {
                Some(end) => from = end,
                None => break,
            }
        }
        if stop_at.is_none() {
            tracing::debug!(room = %room.room_id(), "back-filled without a known last event");
        }
        collected.reverse();
        collected
    }

    /// Translates and pushes a room's timeline events.
    async fn judge(&mut self, room: &Room, events: Vec<TimelineEvent>) {
        let levels = room.power_levels().await.ok();
        let creators = room.creators().unwrap_or_default();
        let role = |user: &str| -> Role { role_of(levels.as_ref(), &creators, user) };
        let management = self
            .inner
            .management
            .get()
            .is_some_and(|m| m == room.room_id());
        let ctx = translate::Context {
            room: room.room_id().as_str(),
            bot: self.inner.config.user.as_str(),
            role: &role,
            management,
        };
        for event in events {
            let json = match &event.kind {
                TimelineEventKind::UnableToDecrypt {
                    event: raw,
                    utd_info,
                } => {
                    let count = self.inner.undecryptable.fetch_add(1, Ordering::Relaxed) + 1;
                    let id = raw
                        .get_field::<String>("event_id")
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    tracing::warn!(room = %room.room_id(), event = %id, reason = ?utd_info.reason, count, "an encrypted event could not be decrypted and was not judged");
                    continue;
                }
                _ => match event.raw().deserialize_as::<Value>() {
                    Ok(json) => json,
                    Err(e) => {
                        tracing::warn!(room = %room.room_id(), error = %e, "a malformed event was not judged");
                        continue;
                    }
                },
            };
            if let Some(event) = translate::translate(&json, &ctx) {
                self.push(event);
            }
        }
    }
}

/// A user's role from the room's power levels: creators (unlimited power from room version
/// 12) own the room, 100 administers it, 50 moderates it.
fn role_of(
    levels: Option<&RoomPowerLevels>,
    creators: &[matrix_sdk::ruma::OwnedUserId],
    user: &str,
) -> Role {
    if creators.iter().any(|c| c.as_str() == user) {
        return Role::Owner;
    }
    let Some(levels) = levels else {
        return Role::Member;
    };
    let Ok(id) = <&matrix_sdk::ruma::UserId>::try_from(user) else {
        return Role::Member;
    };
    match levels.for_user(id) {
        UserPowerLevel::Infinite => Role::Owner,
        UserPowerLevel::Int(level) if level >= int!(100) => Role::Admin,
        UserPowerLevel::Int(level) if level >= int!(50) => Role::Moderator,
        UserPowerLevel::Int(_) => Role::Member,
        _ => Role::Member,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_power_levels() {
        assert_eq!(role_of(None, &[], "@a:x"), Role::Member);
        let creator: matrix_sdk::ruma::OwnedUserId = "@c:x".try_into().unwrap();
        assert_eq!(role_of(None, &[creator], "@c:x"), Role::Owner);
    }
}
