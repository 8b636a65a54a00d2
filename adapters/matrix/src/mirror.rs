//! The blacklist on Matrix: groupguard's own org-wide entries published to `policy_room` as
//! `m.policy.rule.user` bans (so Mjolnir, Draupnir and Meowlnir can follow groupguard), listed
//! members banned from every room the bot protects, and the bans the bot made lifted once the
//! member is no longer listed.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use groupguard_core::model::{MemberRef, Platform, Role, UserId};
use groupguard_core::platform::{
    AdapterError, AdapterErrorKind, BlacklistMirror, BlacklistSnapshot,
};
use matrix_sdk::deserialized_responses::RawAnySyncOrStrippedState;
use matrix_sdk::ruma::events::StateEventType;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::{Room, RoomMemberships};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::Inner;
use crate::executor::classify;
use crate::policy::{self, Ban, PUBLISHED_TYPE};

/// A ban younger than this is left alone even when the member is not listed: the blacklist
/// entry of the violation that caused it may still be on its way.
const SETTLING_MS: i64 = 10_000;

/// The mirror.
#[derive(Debug)]
pub struct MatrixMirror {
    inner: Arc<Inner>,
    /// The rules the bot has published, by state key; read from the room once.
    published: Mutex<Option<HashMap<String, Ban>>>,
}

impl MatrixMirror {
    pub(crate) fn new(inner: Arc<Inner>) -> MatrixMirror {
        MatrixMirror {
            inner,
            published: Mutex::new(None),
        }
    }

    /// Makes the bot's rules in the policy room equal groupguard's own entries.
    async fn publish(&self, room: &Room, snapshot: &BlacklistSnapshot) -> Result<(), AdapterError> {
        let mut published = self.published.lock().await;
        let published = match &mut *published {
            Some(published) => published,
            None => published.insert(self.read_published(room).await?),
        };
        let wanted: HashMap<String, Ban> = snapshot
            .own
            .iter()
            .map(|e| {
                let member = e.member.id.as_str();
                let ban = Ban {
                    member: member.to_owned(),
                    reason: e.reason.clone(),
                };
                (policy::state_key(member), ban)
            })
            .collect();
        for (key, ban) in &wanted {
            if published.get(key) == Some(ban) {
                continue;
            }
            room.send_state_event_raw(
                PUBLISHED_TYPE,
                key,
                policy::published(&ban.member, &ban.reason),
            )
            .await
            .map_err(|e| classify(&e))?;
            published.insert(key.clone(), ban.clone());
            tracing::info!(member = %ban.member, "ban published to the policy room");
        }
        let gone: Vec<String> = published
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            // An empty rule is how a policy list withdraws one.
            room.send_state_event_raw(PUBLISHED_TYPE, &key, json!({}))
                .await
                .map_err(|e| classify(&e))?;
            if let Some(ban) = published.remove(&key) {
                tracing::info!(member = %ban.member, "ban withdrawn from the policy room");
            }
        }
        Ok(())
    }

    /// The bans the bot has in the policy room's state; rules others wrote are theirs.
    async fn read_published(&self, room: &Room) -> Result<HashMap<String, Ban>, AdapterError> {
        let bot = self.inner.config.user.as_str();
        let events = room
            .get_state_events(StateEventType::from(PUBLISHED_TYPE))
            .await
            .map_err(|e| {
                AdapterError::new(
                    AdapterErrorKind::Transient,
                    format!("cannot read the policy room: {e}"),
                )
            })?;
        Ok(events
            .into_iter()
            .filter_map(|raw| match raw {
                RawAnySyncOrStrippedState::Sync(raw) => raw.deserialize_as::<Value>().ok(),
                RawAnySyncOrStrippedState::Stripped(_) => None,
            })
            .filter(|event| event["sender"] == bot)
            .filter_map(|event| {
                let key = event["state_key"].as_str()?.to_owned();
                Some((key, policy::published_ban(&event["content"])?))
            })
            .collect())
    }

    /// Bans listed members still in the bot's rooms (those with moderator power or more are
    /// left to humans) and lifts the bans the bot made for members no longer listed; `false`
    /// when a ban was too recent to judge yet.
    async fn enforce(&self, snapshot: &BlacklistSnapshot) -> Result<bool, AdapterError> {
        let client = self.inner.client()?;
        let Some(bot) = client.user_id() else {
            return Ok(false);
        };
        let mut in_step = true;
        for room in client.joined_rooms() {
            if self.inner.is_special(room.room_id()) {
                continue;
            }
            let Ok(levels) = room.power_levels().await else {
                continue;
            };
            if !levels.user_can_ban(bot) {
                continue;
            }
            let members = match room
                .members_no_sync(RoomMemberships::JOIN | RoomMemberships::BAN)
                .await
            {
                Ok(members) => members,
                Err(e) => {
                    tracing::warn!(room = %room.room_id(), error = %e, "cannot read a room's members");
                    continue;
                }
            };
            let creators = room.creators().unwrap_or_default();
            let owner = creators.first().map(|c| UserId::from(c.as_str()));
            for member in members {
                let user = member.user_id();
                let who = MemberRef::new(Platform::Matrix, user.as_str());
                let entry = |owner: Option<&UserId>| {
                    snapshot
                        .index
                        .entry(&who, owner)
                        .filter(|e| e.is_active(snapshot.now))
                };
                let listed = entry(None).or_else(|| owner.as_ref().and_then(|o| entry(Some(o))));
                let event = member.event();
                match (member.membership(), listed) {
                    (MembershipState::Join, Some(entry)) => {
                        if user == bot
                            || crate::role_of(Some(&levels), &creators, user.as_str())
                                >= Role::Moderator
                        {
                            continue;
                        }
                        let reason = format!("groupguard: blacklisted: {}", entry.reason);
                        room.ban_user(user, Some(&reason))
                            .await
                            .map_err(|e| classify(&e))?;
                        tracing::info!(room = %room.room_id(), member = %user, "banned: on the blacklist");
                    }
                    (MembershipState::Ban, None) if event.sender() == bot => {
                        let settled = event.origin_server_ts().is_some_and(|at| {
                            i64::from(at.get()) + SETTLING_MS <= snapshot.now.millis()
                        });
                        if !settled {
                            in_step = false;
                            continue;
                        }
                        room.unban_user(user, Some("groupguard: no longer on the blacklist"))
                            .await
                            .map_err(|e| classify(&e))?;
                        tracing::info!(room = %room.room_id(), member = %user, "unbanned: no longer on the blacklist");
                    }
                    _ => {}
                }
            }
        }
        Ok(in_step)
    }
}

#[async_trait]
impl BlacklistMirror for MatrixMirror {
    fn platform(&self) -> Platform {
        Platform::Matrix
    }

    async fn mirror(&self, snapshot: &BlacklistSnapshot) -> Result<bool, AdapterError> {
        // Until the first sync the rooms' state is not known.
        if let Some(why) = self.inner.not_ready() {
            return Err(AdapterError::new(AdapterErrorKind::Transient, why));
        }
        if let Some(room) = self.inner.publish_room() {
            self.publish(&room, snapshot).await?;
        }
        self.enforce(snapshot).await
    }
}
