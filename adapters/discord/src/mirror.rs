//! The blacklist on Discord: listed members still in a guild are banned there (moderators and
//! admins are left to humans), and bans groupguard made (their audit-log reason starts with
//! `groupguard`) are lifted once the member is no longer listed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use groupguard_core::model::{MemberRef, Platform, Role, UserId};
use groupguard_core::platform::{AdapterError, BlacklistMirror, BlacklistSnapshot};
use reqwest::Method;
use serde_json::json;
use serenity::all::{GuildId, UserId as DiscordUserId};

use crate::executor::BAN_DELETES_SECONDS;
use crate::{Inner, access, translate};

/// A ban younger than this is left alone even when the member is not listed: the blacklist
/// entry of the violation that caused it may still be on its way.
pub const SETTLING: Duration = Duration::from_secs(5);
/// Bans read per page.
const PAGE: usize = 1_000;

/// The mirror.
#[derive(Debug)]
pub struct DiscordMirror {
    inner: Arc<Inner>,
}

impl DiscordMirror {
    pub(crate) fn new(inner: Arc<Inner>) -> DiscordMirror {
        DiscordMirror { inner }
    }

    /// Whether the blacklist keeps `user` out of a guild owned by `owner`.
    fn listed(snapshot: &BlacklistSnapshot, user: u64, owner: Option<&UserId>) -> Option<String> {
        let who = MemberRef::new(Platform::Discord, user.to_string());
        let active = |owner: Option<&UserId>| {
            snapshot
                .index
                .entry(&who, owner)
                .filter(|e| e.is_active(snapshot.now))
                .map(|e| e.reason.to_string())
        };
        active(None).or_else(|| owner.and_then(|o| active(Some(o))))
    }

    /// The users a guild's bans made by groupguard keep out.
    async fn our_bans(&self, guild: GuildId) -> Result<Vec<u64>, AdapterError> {
        let mut ours = Vec::new();
        let mut after = 0u64;
        loop {
            let page = self
                .inner
                .rest
                .call(
                    Method::GET,
                    &format!("/guilds/{guild}/bans?limit={PAGE}&after={after}"),
                    None,
                    None,
                )
                .await?;
            let bans = page.as_array().cloned().unwrap_or_default();
            for ban in &bans {
                let user = ban["user"]["id"]
                    .as_str()
                    .and_then(|id| id.parse::<u64>().ok());
                if let Some(user) = user {
                    after = after.max(user);
                    if ban["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("groupguard"))
                    {
                        ours.push(user);
                    }
                }
            }
            if bans.len() < PAGE {
                return Ok(ours);
            }
        }
    }
}

#[async_trait]
impl BlacklistMirror for DiscordMirror {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    async fn mirror(&self, snapshot: &BlacklistSnapshot) -> Result<bool, AdapterError> {
        let Some(cache) = self.inner.cache.get() else {
            return Ok(false);
        };
        let Some(bot) = self.inner.bot.get().copied() else {
            return Ok(false);
        };
        let mut in_step = true;
        for guild in cache.guilds() {
            // What to do, read from the cache before any call.
            let (owner, to_ban) = {
                let Some(g) = cache.guild(guild) else {
                    continue;
                };
                let Some(me) = g.members.get(&bot) else {
                    continue;
                };
                let mine = access(&g, bot, &me.roles);
                if !mine
                    .permissions
                    .contains(serenity::all::Permissions::BAN_MEMBERS)
                    && !mine
                        .permissions
                        .contains(serenity::all::Permissions::ADMINISTRATOR)
                {
                    continue;
                }
                let owner = UserId::from(g.owner_id.to_string());
                let to_ban: Vec<(u64, String)> = g
                    .members
                    .values()
                    .filter(|m| m.user.id != bot && !m.user.bot)
                    .filter(|m| {
                        let a = access(&g, m.user.id, &m.roles);
                        translate::role_of(a.permissions, a.owner) < Role::Moderator
                            && a.top_role < mine.top_role
                    })
                    .filter_map(|m| {
                        Self::listed(snapshot, m.user.id.get(), Some(&owner))
                            .map(|reason| (m.user.id.get(), reason))
                    })
                    .collect();
                (owner, to_ban)
            };
            for (user, reason) in to_ban {
                self.inner
                    .rest
                    .call(
                        Method::PUT,
                        &format!("/guilds/{guild}/bans/{user}"),
                        Some(&json!({"delete_message_seconds": BAN_DELETES_SECONDS})),
                        Some(&format!("groupguard: blacklisted: {reason}")),
                    )
                    .await?;
                self.inner.banned_now(user);
                tracing::info!(%guild, user, "banned: on the blacklist");
            }
            for user in self.our_bans(guild).await? {
                if Self::listed(snapshot, user, Some(&owner)).is_some() {
                    continue;
                }
                if self.inner.banned_within(user, SETTLING) {
                    in_step = false;
                    continue;
                }
                self.inner
                    .rest
                    .call(
                        Method::DELETE,
                        &format!("/guilds/{guild}/bans/{user}"),
                        None,
                        Some("groupguard: no longer on the blacklist"),
                    )
                    .await?;
                tracing::info!(%guild, user, "unbanned: no longer on the blacklist");
            }
        }
        Ok(in_step)
    }
}

impl Inner {
    /// Notes that the bot banned `user` now.
    pub(crate) fn banned_now(&self, user: u64) {
        let mut bans = self.recent_bans.lock().unwrap_or_else(|p| p.into_inner());
        bans.retain(|_, at| at.elapsed() < SETTLING);
        bans.insert(DiscordUserId::new(user), Instant::now());
    }

    /// Whether the bot banned `user` within `window`.
    fn banned_within(&self, user: u64, window: Duration) -> bool {
        self.recent_bans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&DiscordUserId::new(user))
            .is_some_and(|at| at.elapsed() < window)
    }
}
