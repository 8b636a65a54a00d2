//! Carrying out actions in guilds with the bot's permissions: deletions, timeouts (at most
//! the 28 days Discord allows), kicks, bans, warnings and notices to the log channel. What
//! the bot's permissions do not allow is declared per guild, naming the permission; a member
//! whose highest role is not below the bot's is refused before Discord is asked. Messages
//! carry the action's key as `nonce` with `enforce_nonce`, so a retried send shows once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::model::{GroupId, GroupRef, MessageId, Platform, ReplyTo};
use groupguard_core::platform::{
    ActionExecutor, ActionRequest, AdapterError, AdapterErrorKind, Capabilities, Capability,
    IdempotencyKey, Lacking,
};
use groupguard_core::reply::Reply;
use groupguard_core::verdict::Action;
use reqwest::Method;
use serde_json::{Value, json};
use serenity::all::{GuildId, Permissions, UserId as DiscordUserId};

use crate::render;
use crate::translate::{blocked_channel, parse_message_id};
use crate::{Access, Ack, Inner, access};

/// The longest timeout Discord allows.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(28 * 24 * 3_600);
/// Why admin notices cannot be sent.
const NO_LOG_CHANNEL: &str =
    "no log channel: set one with !guard group notices #channel, or [discord] log_channel";
/// How much of a banned member's recent history the ban deletes.
pub const BAN_DELETES_SECONDS: u32 = 86_400;

/// The executor.
#[derive(Debug)]
pub struct DiscordExecutor {
    inner: Arc<Inner>,
}

fn protocol(message: String) -> AdapterError {
    AdapterError::new(AdapterErrorKind::Protocol, message)
}

fn snowflake(what: &str, id: &str) -> Result<u64, AdapterError> {
    id.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| protocol(format!("`{id}` is not a Discord {what} id")))
}

/// A refusal from Discord, naming the permission the action needs.
fn needs(permission: &str) -> impl Fn(AdapterError) -> AdapterError + '_ {
    move |mut e| {
        if let AdapterErrorKind::Forbidden { permission: named } = &mut e.kind {
            *named = Some(permission.to_owned());
        }
        e
    }
}

impl DiscordExecutor {
    pub(crate) fn new(inner: Arc<Inner>) -> DiscordExecutor {
        DiscordExecutor { inner }
    }

    /// The bot's and `member`'s access in the guild, from the cache.
    fn accesses(&self, guild: u64, member: Option<u64>) -> Option<(Access, Option<Access>)> {
        let cache = self.inner.cache.get()?;
        let bot = *self.inner.bot.get()?;
        let guild = cache.guild(GuildId::new(guild))?;
        let of = |user: DiscordUserId| {
            guild
                .members
                .get(&user)
                .map(|m| access(&guild, user, &m.roles))
        };
        Some((of(bot)?, member.and_then(|m| of(DiscordUserId::new(m)))))
    }

    /// Refuses to act on the guild's owner, or on a member the bot's roles do not outrank:
    /// Discord would refuse too.
    fn outranks(&self, guild: u64, member: u64) -> Result<(), AdapterError> {
        let owner = self
            .inner
            .cache
            .get()
            .and_then(|c| c.guild(GuildId::new(guild)).map(|g| g.owner_id.get()));
        if owner == Some(member) {
            return Err(AdapterError::new(
                AdapterErrorKind::Unsupported,
                "nobody can kick, ban or time out a guild's owner",
            ));
        }
        let Some((bot, Some(target))) = self.accesses(guild, Some(member)) else {
            return Ok(());
        };
        if target.top_role >= bot.top_role {
            return Err(AdapterError::new(
                AdapterErrorKind::Forbidden {
                    permission: Some(
                        "groupguard's role placed above the member's highest role".to_owned(),
                    ),
                },
                format!("member {member} is not below the bot's highest role"),
            ));
        }
        Ok(())
    }

    /// Posts a message with the action's key as its nonce.
    async fn send(
        &self,
        channel: u64,
        mut message: Value,
        nonce: String,
    ) -> Result<(), AdapterError> {
        message["nonce"] = json!(nonce);
        message["enforce_nonce"] = json!(true);
        self.inner
            .rest
            .call(
                Method::POST,
                &format!("/channels/{channel}/messages"),
                Some(&message),
                None,
            )
            .await
            .map_err(needs("Send Messages"))?;
        Ok(())
    }

    /// The channel a message id names.
    fn channel_of(message: Option<&MessageId>) -> Result<(u64, Option<u64>), AdapterError> {
        let message = message.ok_or_else(|| protocol("no message to answer".to_owned()))?;
        if let Some(channel) = blocked_channel(message.as_str()) {
            return Ok((channel.get(), None));
        }
        let (channel, id) = parse_message_id(message.as_str())
            .ok_or_else(|| protocol(format!("`{message}` is not channel/message")))?;
        Ok((channel.get(), Some(id.get())))
    }

    /// Answers a slash command: the first response while it is unanswered, else an edit of
    /// the deferred one (and, for an answer meant for everyone, a follow-up in the channel,
    /// since a deferral is private). A token past its 15 minutes is expired.
    async fn answer_interaction(&self, handle: &str, reply: &Reply) -> Result<(), AdapterError> {
        let expired = |mut e: AdapterError| {
            if matches!(
                e.kind,
                AdapterErrorKind::NotFound | AdapterErrorKind::Protocol
            ) {
                e.kind = AdapterErrorKind::Expired;
            }
            e
        };
        let (id, token) = handle
            .split_once(':')
            .and_then(|(id, token)| Some((id.parse::<u64>().ok()?, token)))
            .ok_or_else(|| protocol("a malformed interaction handle".to_owned()))?;
        let content = render::reply(reply);
        let flags = if reply.ephemeral { 64 } else { 0 };
        let rest = &self.inner.rest;
        let mut interactions = self.inner.interactions.lock().await;
        let state = interactions.get(&id).copied();
        if state == Some(Ack::Pending) {
            // Held while answering, so the deferral cannot cross it.
            let answer = json!({"type": 4, "data": {"content": content, "flags": flags,
                                                     "allowed_mentions": {"parse": []}}});
            rest.call(
                Method::POST,
                &format!("/interactions/{id}/{token}/callback"),
                Some(&answer),
                None,
            )
            .await
            .map_err(expired)?;
            interactions.remove(&id);
            return Ok(());
        }
        drop(interactions);
        let app =
            self.inner.application.get().ok_or_else(|| {
                AdapterError::new(AdapterErrorKind::Transient, "not connected yet")
            })?;
        rest.call(
            Method::PATCH,
            &format!("/webhooks/{app}/{token}/messages/@original"),
            Some(&json!({"content": content, "allowed_mentions": {"parse": []}})),
            None,
        )
        .await
        .map_err(expired)?;
        if state == Some(Ack::Deferred) && !reply.ephemeral {
            rest.call(
                Method::POST,
                &format!("/webhooks/{app}/{token}"),
                Some(&json!({"content": content, "allowed_mentions": {"parse": []}})),
                None,
            )
            .await
            .map_err(expired)?;
        }
        self.inner.interactions.lock().await.remove(&id);
        Ok(())
    }

    /// Where a guild's admin notices go: the channel set with `group notices`, else the
    /// default `log_channel`.
    fn notice_channel(&self, guild: u64) -> Option<u64> {
        let group = GroupRef::new(Platform::Discord, guild.to_string());
        self.inner
            .rules
            .rules()
            .group(&group)
            .and_then(|g| g.notices.as_deref().and_then(|c| c.parse().ok()))
            .or(self.inner.config.log_channel)
    }

    fn guild_name(&self, guild: u64) -> Option<String> {
        let cache = self.inner.cache.get()?;
        cache.guild(GuildId::new(guild)).map(|g| g.name.clone())
    }
}

/// A nonce for one operation of an action: the key (22 characters) and the operation's
/// letter, within Discord's 25.
fn nonce(key: &IdempotencyKey, op: char) -> String {
    format!("{key}{op}")
}

#[async_trait]
impl ActionExecutor for DiscordExecutor {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    async fn capabilities(&self, group: &GroupId) -> Capabilities {
        let notify = group
            .as_str()
            .parse::<u64>()
            .ok()
            .and_then(|g| self.notice_channel(g))
            .is_some();
        let with_notify = |caps: Capabilities| {
            if notify {
                caps.grant(Capability::Notify)
            } else {
                caps.lack(
                    Capability::Notify,
                    Lacking::Unsupported(Some(NO_LOG_CHANNEL.to_owned())),
                )
            }
        };
        let Some((bot, _)) = group
            .as_str()
            .parse::<u64>()
            .ok()
            .and_then(|g| self.accesses(g, None))
        else {
            return with_notify(Capabilities::none());
        };
        let has = |p: Permissions| {
            bot.permissions.contains(Permissions::ADMINISTRATOR) || bot.permissions.contains(p)
        };
        let mut caps = Capabilities::none();
        for (capability, permission, name) in [
            (
                Capability::Delete,
                Permissions::MANAGE_MESSAGES,
                "Manage Messages",
            ),
            (
                Capability::Timeout,
                Permissions::MODERATE_MEMBERS,
                "Moderate Members",
            ),
            (
                Capability::Kick,
                Permissions::KICK_MEMBERS | Permissions::BAN_MEMBERS,
                "Kick Members and Ban Members",
            ),
            (
                Capability::Warn,
                Permissions::SEND_MESSAGES,
                "Send Messages",
            ),
        ] {
            caps = if has(permission)
                || (capability == Capability::Warn && self.inner.config.warn_by_dm)
            {
                caps.grant(capability)
            } else {
                caps.lack(capability, Lacking::Permission(name.to_owned()))
            };
        }
        caps = caps.lack(
            Capability::Lockdown,
            Lacking::Unsupported(Some(
                "a raid lockdown is not carried out on Discord yet".to_owned(),
            )),
        );
        with_notify(caps)
    }

    async fn execute(&self, request: &ActionRequest) -> Result<(), AdapterError> {
        let rest = &self.inner.rest;
        let reason = request.audit_reason();
        let guild = snowflake("guild", request.group.as_str())?;
        match &request.action {
            Action::DeleteMessage { message } => {
                let (channel, id) = parse_message_id(message.as_str())
                    .ok_or_else(|| protocol(format!("`{message}` is not channel/message")))?;
                rest.call(
                    Method::DELETE,
                    &format!("/channels/{channel}/messages/{id}"),
                    None,
                    Some(&reason),
                )
                .await
                .map_err(needs("Manage Messages"))?;
                Ok(())
            }
            Action::Warn { text } => {
                let member = snowflake("user", request.member.as_str())?;
                let content = render::warning(request.member.as_str(), text);
                let mentions = json!({"users": [request.member.as_str()]});
                if self.inner.config.warn_by_dm {
                    let dm = rest
                        .call(
                            Method::POST,
                            "/users/@me/channels",
                            Some(&json!({"recipient_id": member.to_string()})),
                            None,
                        )
                        .await?;
                    let channel = snowflake("channel", dm["id"].as_str().unwrap_or_default())?;
                    return self
                        .send(
                            channel,
                            json!({"content": content}),
                            nonce(&request.key, 'w'),
                        )
                        .await;
                }
                let (channel, id) = Self::channel_of(request.message.as_ref())?;
                let mut message = json!({"content": content, "allowed_mentions": mentions});
                if let Some(id) = id {
                    // The warned message may be deleted by now: reply without requiring it.
                    message["message_reference"] =
                        json!({"message_id": id.to_string(), "fail_if_not_exists": false});
                }
                self.send(channel, message, nonce(&request.key, 'w')).await
            }
            Action::Timeout { duration } => {
                let member = snowflake("user", request.member.as_str())?;
                self.outranks(guild, member)?;
                let until = self
                    .inner
                    .clock
                    .now()
                    .plus((*duration).min(MAX_TIMEOUT))
                    .millis();
                let until = serenity::model::Timestamp::from_millis(until)
                    .ok()
                    .and_then(|t| t.to_rfc3339())
                    .ok_or_else(|| protocol(format!("cannot write {until} as a time")))?;
                rest.call(
                    Method::PATCH,
                    &format!("/guilds/{guild}/members/{member}"),
                    Some(&json!({"communication_disabled_until": until})),
                    Some(&reason),
                )
                .await
                .map_err(needs("Moderate Members"))?;
                Ok(())
            }
            Action::Kick => {
                let member = snowflake("user", request.member.as_str())?;
                self.outranks(guild, member)?;
                if request.ban {
                    rest.call(
                        Method::PUT,
                        &format!("/guilds/{guild}/bans/{member}"),
                        Some(&json!({"delete_message_seconds": BAN_DELETES_SECONDS})),
                        Some(&reason),
                    )
                    .await
                    .map_err(needs("Ban Members"))?;
                    self.inner.banned_now(member);
                } else {
                    rest.call(
                        Method::DELETE,
                        &format!("/guilds/{guild}/members/{member}"),
                        None,
                        Some(&reason),
                    )
                    .await
                    .map_err(needs("Kick Members"))?;
                }
                Ok(())
            }
            Action::NotifyAdmins { text } => {
                let channel = self.notice_channel(guild).ok_or_else(|| {
                    AdapterError::new(AdapterErrorKind::Unsupported, NO_LOG_CHANNEL)
                })?;
                let name = self.guild_name(guild);
                let content = render::notice(request, name.as_deref(), text);
                self.send(
                    channel,
                    json!({"content": content, "allowed_mentions": {"parse": []}}),
                    nonce(&request.key, 'n'),
                )
                .await
            }
            other => Err(AdapterError::new(
                AdapterErrorKind::Unsupported,
                format!("Discord cannot {} yet", other.name()),
            )),
        }
    }

    async fn reply(&self, to: &ReplyTo, reply: &Reply) -> Result<(), AdapterError> {
        if let Some(handle) = &to.handle {
            return self.answer_interaction(handle.expose(), reply).await;
        }
        let (channel, id) = Self::channel_of(to.message.as_ref())?;
        let mut message = json!({
            "content": render::reply(reply),
            "allowed_mentions": {"users": [to.sender.as_str()]},
        });
        if let Some(id) = id {
            message["message_reference"] =
                json!({"message_id": id.to_string(), "fail_if_not_exists": false});
        }
        // Keyed to the command: a retried answer is sent once.
        let command = to.message.as_ref().map_or("", |m| m.as_str());
        let key = IdempotencyKey::for_action(Platform::Discord, &command.into(), 0);
        self.send(channel, message, nonce(&key, 'r')).await
    }
}
