//! Carrying out actions in Matrix rooms with the bot's own power level: redactions, kicks,
//! warnings (a notice replying to the message), notices to the management room, lockdowns.
//! What the bot's power level does not allow is declared per room, naming the level to grant.
//! Sends and redactions carry transaction ids derived from the action's idempotency key, so a
//! retried action shows once.

use std::sync::Arc;

use async_trait::async_trait;
use groupguard_core::model::{GroupId, Platform, ReplyTo};
use groupguard_core::platform::{
    ActionExecutor, ActionRequest, AdapterError, AdapterErrorKind, Capabilities, Capability,
    IdempotencyKey, Lacking,
};
use groupguard_core::reply::Reply;
use groupguard_core::verdict::Action;
use matrix_sdk::Room;
use matrix_sdk::ruma::events::room::join_rules::{JoinRule, RoomJoinRulesEventContent};
use matrix_sdk::ruma::events::{MessageLikeEventType, StateEventType};
use matrix_sdk::ruma::{Int, OwnedTransactionId, RoomId, UserId};
use serde_json::Value;

use crate::Inner;
use crate::render;
use crate::timeouts::Muted;

/// The executor.
#[derive(Debug)]
pub struct MatrixExecutor {
    inner: Arc<Inner>,
}

impl MatrixExecutor {
    pub(crate) fn new(inner: Arc<Inner>) -> MatrixExecutor {
        MatrixExecutor { inner }
    }

    fn room(&self, group: &GroupId) -> Result<Room, AdapterError> {
        let client = self.inner.client()?;
        let id = <&RoomId>::try_from(group.as_str()).map_err(|_| {
            AdapterError::new(
                AdapterErrorKind::Protocol,
                format!("`{group}` is not a room id"),
            )
        })?;
        client.get_room(id).ok_or_else(|| {
            AdapterError::new(
                AdapterErrorKind::NotFound,
                format!("the bot is not in {group}"),
            )
        })
    }

    /// Sends `content` as `m.room.message` with a transaction id of `key` and `op`.
    async fn send(
        room: &Room,
        content: Value,
        key: &IdempotencyKey,
        op: &str,
    ) -> Result<(), AdapterError> {
        room.send_raw("m.room.message", content)
            .with_transaction_id(&txn(key, op))
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    /// Where admin notices go: the management room, else the room itself.
    fn notice_room(&self, group: &GroupId) -> Result<Room, AdapterError> {
        match self.inner.management_room() {
            Some(room) => Ok(room),
            None => self.room(group),
        }
    }
}

/// A transaction id for one operation of an action: Synapse keys transactions per room
/// across endpoints, so the operation is part of it.
fn txn(key: &IdempotencyKey, op: &str) -> OwnedTransactionId {
    format!("{key}-{op}").into()
}

/// An SDK error as the port's kind: rate limits with their wait, "not in the room" as
/// already done, a refusal as a missing permission, server and network trouble as passing.
pub(crate) fn classify(error: &dyn MatrixError) -> AdapterError {
    let message = error.to_string();
    let Some(api) = error.api_error() else {
        return AdapterError::new(AdapterErrorKind::Transient, message);
    };
    let status = api.status_code.as_u16();
    let (code, text) = match &api.body {
        matrix_sdk::ruma::api::error::ErrorBody::Standard(body) => {
            (body.kind.errcode().to_string(), body.message.clone())
        }
        _ => (String::new(), String::new()),
    };
    let kind = match status {
        429 => {
            let retry_after = match &api.body {
                matrix_sdk::ruma::api::error::ErrorBody::Standard(body) => match &body.kind {
                    matrix_sdk::ruma::api::error::ErrorKind::LimitExceeded(data) => {
                        match data.retry_after {
                            Some(matrix_sdk::ruma::api::error::RetryAfter::Delay(d)) => d,
                            _ => std::time::Duration::from_secs(1),
                        }
                    }
                    _ => std::time::Duration::from_secs(1),
                },
                _ => std::time::Duration::from_secs(1),
            };
            AdapterErrorKind::RateLimited { retry_after }
        }
        403 if text.contains("not in the room") || text.contains("not in room") => {
            AdapterErrorKind::NotFound
        }
        403 => AdapterErrorKind::Forbidden { permission: None },
        404 => AdapterErrorKind::NotFound,
        500..=599 => AdapterErrorKind::Transient,
        _ => AdapterErrorKind::Protocol,
    };
    AdapterError::new(
        kind,
        format!("{status} {code}: {text}")
            .trim_end_matches(": ")
            .to_owned(),
    )
}

/// The SDK's two error types, alike for [`classify`].
pub(crate) trait MatrixError: std::fmt::Display {
    fn api_error(&self) -> Option<&matrix_sdk::ruma::api::error::Error>;
}

impl MatrixError for matrix_sdk::Error {
    fn api_error(&self) -> Option<&matrix_sdk::ruma::api::error::Error> {
        self.as_client_api_error()
    }
}

impl MatrixError for matrix_sdk::HttpError {
    fn api_error(&self) -> Option<&matrix_sdk::ruma::api::error::Error> {
        self.as_client_api_error()
    }
}

/// What the bot lacks, as the power level to grant it.
fn lacking(what: &str, needed: Int) -> Lacking {
    Lacking::Permission(format!("power level {needed} ({what})"))
}

#[async_trait]
impl ActionExecutor for MatrixExecutor {
    fn platform(&self) -> Platform {
        Platform::Matrix
    }

    async fn capabilities(&self, group: &GroupId) -> Capabilities {
        let Ok(room) = self.room(group) else {
            return Capabilities::none().grant(Capability::Notify);
        };
        let Ok(levels) = room.power_levels().await else {
            return Capabilities::none().grant(Capability::Notify);
        };
        let Some(bot) = self
            .inner
            .client()
            .ok()
            .and_then(|c| c.user_id().map(ToOwned::to_owned))
        else {
            return Capabilities::none();
        };
        let mut caps = Capabilities::none();
        let mut check = |capability: Capability, allowed: bool, what: &str, needed: Int| {
            caps = if allowed {
                std::mem::take(&mut caps).grant(capability)
            } else {
                std::mem::take(&mut caps).lack(capability, lacking(what, needed))
            };
        };
        check(
            Capability::Delete,
            levels.user_can_redact_event_of_other(&bot),
            "to redact others' messages",
            levels.redact,
        );
        // Kicks of blacklisted members are bans: both levels are needed.
        check(
            Capability::Kick,
            levels.user_can_kick(&bot) && levels.user_can_ban(&bot),
            "to kick and ban",
            levels.kick.max(levels.ban),
        );
        let message_level = levels
            .events
            .get(&MessageLikeEventType::RoomMessage.into())
            .copied()
            .unwrap_or(levels.events_default);
        check(
            Capability::Warn,
            levels.user_can_send_message(&bot, MessageLikeEventType::RoomMessage),
            "to post warnings",
            message_level,
        );
        let state_level = |kind: StateEventType| {
            levels
                .events
                .get(&kind.into())
                .copied()
                .unwrap_or(levels.state_default)
        };
        check(
            Capability::Lockdown,
            levels.user_can_send_state(&bot, StateEventType::RoomJoinRules),
            "to change who may join",
            state_level(StateEventType::RoomJoinRules),
        );
        check(
            Capability::Timeout,
            levels.user_can_send_state(&bot, StateEventType::RoomPowerLevels),
            "to change power levels, for timeouts",
            state_level(StateEventType::RoomPowerLevels),
        );
        let notify = self.inner.management_room().is_some()
            || levels.user_can_send_message(&bot, MessageLikeEventType::RoomMessage);
        if notify {
            caps.grant(Capability::Notify)
        } else {
            caps.lack(
                Capability::Notify,
                Lacking::Unsupported(Some(
                    "no management room, and the bot may not post in the room".to_owned(),
                )),
            )
        }
    }

    async fn execute(&self, request: &ActionRequest) -> Result<(), AdapterError> {
        let reason = request.audit_reason();
        match &request.action {
            Action::DeleteMessage { message } => {
                let room = self.room(&request.group)?;
                let event =
                    <&matrix_sdk::ruma::EventId>::try_from(message.as_str()).map_err(|_| {
                        AdapterError::new(
                            AdapterErrorKind::Protocol,
                            format!("`{message}` is not an event id"),
                        )
                    })?;
                room.redact(event, Some(&reason), Some(txn(&request.key, "redact")))
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(())
            }
            Action::Warn { text } => {
                let room = self.room(&request.group)?;
                let html = render::escape(text);
                let content = render::notice(
                    text,
                    &html,
                    request.message.as_ref().map(|m| m.as_str()),
                    &[request.member.as_str()],
                );
                Self::send(&room, content, &request.key, "warn").await
            }
            Action::Kick => {
                let room = self.room(&request.group)?;
                let user = <&UserId>::try_from(request.member.as_str()).map_err(|_| {
                    AdapterError::new(
                        AdapterErrorKind::Protocol,
                        format!("`{}` is not a user id", request.member),
                    )
                })?;
                if request.ban {
                    // Blacklisted: banned, so the homeserver refuses them coming back.
                    return room
                        .ban_user(user, Some(&reason))
                        .await
                        .map_err(|e| classify(&e));
                }
                room.kick_user(user, Some(&reason))
                    .await
                    .map_err(|e| classify(&e))
            }
            Action::NotifyAdmins { text } => {
                let room = self.notice_room(&request.group)?;
                let (plain, html) = render::admin_notice(request, text);
                Self::send(
                    &room,
                    render::notice(&plain, &html, None, &[]),
                    &request.key,
                    "notify",
                )
                .await
            }
            Action::Timeout { duration } => {
                let room = self.room(&request.group)?;
                let user = <&UserId>::try_from(request.member.as_str()).map_err(|_| {
                    AdapterError::new(
                        AdapterErrorKind::Protocol,
                        format!("`{}` is not a user id", request.member),
                    )
                })?;
                let levels = room.power_levels().await.map_err(|e| {
                    AdapterError::new(
                        AdapterErrorKind::Transient,
                        format!("cannot read the power levels: {e}"),
                    )
                })?;
                let muted = levels.events_default - Int::from(1);
                // Saved before the level drops: a crash in between still restores it.
                let until = self.inner.clock.now().plus(*duration).millis();
                self.inner
                    .timeouts
                    .add(Muted {
                        room: request.group.to_string(),
                        user: request.member.to_string(),
                        previous: levels.users.get(user).map(|l| i64::from(*l)),
                        until,
                    })
                    .map_err(|e| {
                        AdapterError::new(
                            AdapterErrorKind::Transient,
                            format!("cannot record the timeout: {e}"),
                        )
                    })?;
                room.update_power_levels(vec![(user, muted)])
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(())
            }
            Action::Lockdown => {
                let room = self.room(&request.group)?;
                room.send_state_event(RoomJoinRulesEventContent::new(JoinRule::Invite))
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(())
            }
            other => Err(AdapterError::new(
                AdapterErrorKind::Unsupported,
                format!("Matrix cannot {} yet", other.name()),
            )),
        }
    }

    async fn reply(&self, to: &ReplyTo, reply: &Reply) -> Result<(), AdapterError> {
        let room = self.room(&to.group)?;
        let content = render::notice(
            &reply.plain_text(),
            &render::reply_html(reply),
            to.message.as_ref().map(|m| m.as_str()),
            &[to.sender.as_str()],
        );
        // Keyed to the command: a retried answer is sent once.
        let command = to.message.as_ref().map_or("", |m| m.as_str());
        let key = IdempotencyKey::for_action(Platform::Matrix, &command.into(), 0);
        Self::send(&room, content, &key, "reply").await
    }
}
