//! groupguard's Discord adapter on serenity: the gateway (identify, heartbeats, resume,
//! shards) and the guild cache come from serenity; its events become groupguard's events;
//! actions go out through [`rest::Rest`], which makes each moderation call exactly and keeps
//! Discord's rate limits. A group is a guild; a message id carries its channel.

pub mod config;
pub mod executor;
#[cfg(feature = "testing")]
pub mod fake;
pub mod render;
pub mod rest;
pub mod translate;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::model::{
    Event, EventId, EventKind, GroupChange, GroupId, Member, Platform, Role, UserId,
};
use groupguard_core::platform::{ActionExecutor, EventSink};
use groupguard_core::ports::Clock;
use serenity::all::{
    Cache, ClientBuilder, Context, EventHandler, GatewayIntents, Guild, GuildId, HttpBuilder,
    Member as DiscordMember, Message, MessageUpdateEvent, Permissions, Ready, RoleId,
    UnavailableGuild, User, UserId as DiscordUserId,
};
use tokio::sync::watch;

use crate::config::{DiscordConfig, Shards};
use crate::executor::DiscordExecutor;
use crate::rest::Rest;

/// What the bot asks the gateway for.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MEMBERS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::GUILD_MODERATION
        | GatewayIntents::AUTO_MODERATION_EXECUTION
}

/// How long to wait before connecting again after the gateway failed.
const RETRY: Duration = Duration::from_secs(5);

/// What the adapter's parts share.
#[derive(Debug)]
pub struct Inner {
    config: DiscordConfig,
    clock: Arc<dyn Clock>,
    rest: Rest,
    cache: OnceLock<Arc<Cache>>,
    bot: OnceLock<DiscordUserId>,
    not_ready: Mutex<Option<String>>,
}

impl Inner {
    fn set_not_ready(&self, why: Option<String>) {
        *self.not_ready.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// A member's permissions in a guild and whether they own it, from the cache.
    fn permissions(&self, guild: GuildId, user: DiscordUserId, roles: &[RoleId]) -> Option<Access> {
        let cache = self.cache.get()?;
        let guild = cache.guild(guild)?;
        Some(access(&guild, user, roles))
    }

    /// A member's role in a guild; `Member` when the guild is not cached yet.
    fn role(&self, guild: GuildId, user: DiscordUserId, roles: &[RoleId]) -> Role {
        self.permissions(guild, user, roles)
            .map_or(Role::Member, |a| translate::role_of(a.permissions, a.owner))
    }
}

/// What a member may do in a guild.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// Their permissions from @everyone and their roles.
    pub permissions: Permissions,
    /// They own the guild.
    pub owner: bool,
    /// The position of their highest role (a bot acts only on members below its own).
    pub top_role: u16,
}

/// A member's access from the guild's roles.
pub fn access(guild: &Guild, user: DiscordUserId, roles: &[RoleId]) -> Access {
    let everyone = guild
        .roles
        .get(&RoleId::new(guild.id.get()))
        .map_or(Permissions::empty(), |r| r.permissions);
    let mut access = Access {
        permissions: everyone,
        owner: guild.owner_id == user,
        top_role: 0,
    };
    for role in roles.iter().filter_map(|r| guild.roles.get(r)) {
        access.permissions |= role.permissions;
        access.top_role = access.top_role.max(role.position);
    }
    access
}

/// The Discord adapter.
#[derive(Debug, Clone)]
pub struct Discord {
    inner: Arc<Inner>,
}

impl Discord {
    /// The adapter for `config`; it connects in [`Discord::run`].
    pub fn new(config: DiscordConfig, clock: Arc<dyn Clock>) -> Discord {
        Discord {
            inner: Arc::new(Inner {
                rest: Rest::new(&config.api_base, config.token.clone()),
                config,
                clock,
                cache: OnceLock::new(),
                bot: OnceLock::new(),
                not_ready: Mutex::new(Some("connecting to the gateway".to_owned())),
            }),
        }
    }

    /// The executor for Discord.
    pub fn executor(&self) -> Arc<dyn ActionExecutor> {
        Arc::new(DiscordExecutor::new(Arc::clone(&self.inner)))
    }

    /// `Ok` while connected; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        match &*self
            .inner
            .not_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Connects to the gateway and pushes events until `stop`.
    pub async fn run(&self, sink: Arc<dyn EventSink>, mut stop: watch::Receiver<bool>) {
        let inner = &self.inner;
        loop {
            let mut http = HttpBuilder::new(inner.config.token.expose());
            if !inner.config.is_discord() {
                // serenity reaches another API only with its own rate limiter off; the
                // moderation calls keep Discord's limits in `rest` either way.
                http = http
                    .proxy(inner.config.api_base.as_str())
                    .ratelimiter_disabled(true);
            }
            let handler = Handler {
                inner: Arc::clone(inner),
                sink: Arc::clone(&sink),
            };
            let client = ClientBuilder::new_with_http(http.build(), intents())
                .event_handler(handler)
                .await;
            let mut client = match client {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the Discord client; trying again");
                    inner.set_not_ready(Some(format!("cannot start: {e}")));
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => continue,
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            };
            if let Some(gateway) = &inner.config.gateway {
                *client.ws_url.lock().await = gateway.clone();
            }
            let _ = inner.cache.set(Arc::clone(&client.cache));
            let shards = Arc::clone(&client.shard_manager);
            let ended = tokio::select! {
                r = async {
                    match &inner.config.shards {
                        Shards::Auto => client.start_autosharded().await,
                        Shards::Range { range, total } => client.start_shard_range(range.clone(), *total).await,
                    }
                } => Some(r),
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(result) = ended else {
                shards.shutdown_all().await;
                return;
            };
            let why = match result {
                Ok(()) => "the gateway connection ended".to_owned(),
                Err(e) => format!("gateway: {e}"),
            };
            tracing::warn!(why, "Discord gateway stopped; connecting again");
            inner.set_not_ready(Some(why));
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// serenity's handler: translates and pushes.
struct Handler {
    inner: Arc<Inner>,
    sink: Arc<dyn EventSink>,
}

impl Handler {
    async fn push(&self, event: Event) {
        if self.sink.push(event).await.is_err() {
            tracing::debug!("an event arrived while shutting down");
        }
    }

    fn event(&self, id: String, guild: GuildId, member: Member, kind: EventKind) -> Event {
        Event {
            id: EventId::new(id),
            at: self.inner.clock.now(),
            platform: Platform::Discord,
            group: GroupId::from(guild.to_string()),
            member,
            kind,
        }
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.inner.bot.set(ready.user.id);
        self.inner.set_not_ready(None);
        tracing::info!(user = %ready.user.id, guilds = ready.guilds.len(), "connected to the Discord gateway");
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let admins = guild
            .members
            .values()
            .filter(|m| m.user.id != guild.owner_id && !m.user.bot)
            .filter(|m| {
                let a = access(&guild, m.user.id, &m.roles);
                translate::role_of(a.permissions, a.owner) == Role::Admin
            })
            .map(|m| UserId::from(m.user.id.to_string()))
            .collect();
        let owner = UserId::from(guild.owner_id.to_string());
        let joined = translate::timestamp(&guild.joined_at).millis();
        let event = self.event(
            format!("{}:registered:{joined}", guild.id),
            guild.id,
            Member::new(owner.clone()),
            EventKind::GroupChanged(GroupChange::Created {
                name: Some(guild.name.clone()),
                owner: Some(owner),
                home_org: None,
                admins,
            }),
        );
        self.push(event).await;
    }

    async fn guild_delete(
        &self,
        _ctx: Context,
        incomplete: UnavailableGuild,
        _full: Option<Guild>,
    ) {
        // Unavailable is an outage; otherwise the bot was removed.
        if incomplete.unavailable {
            return;
        }
        let now = self.inner.clock.now().millis();
        let bot = self
            .inner
            .bot
            .get()
            .map(ToString::to_string)
            .unwrap_or_default();
        let event = self.event(
            format!("{}:left:{now}", incomplete.id),
            incomplete.id,
            Member::new(bot),
            EventKind::GroupChanged(GroupChange::Dismissed),
        );
        self.push(event).await;
    }

    async fn message(&self, _ctx: Context, message: Message) {
        let Some(guild) = message.guild_id else {
            return;
        };
        if Some(&message.author.id) == self.inner.bot.get() {
            return;
        }
        let roles = message
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        let role = self.inner.role(guild, message.author.id, &roles);
        if let Some(event) = translate::message(&message, role) {
            self.push(event).await;
        }
    }

    async fn message_update(
        &self,
        _ctx: Context,
        _old: Option<Message>,
        _new: Option<Message>,
        update: MessageUpdateEvent,
    ) {
        let (Some(guild), Some(author)) = (update.guild_id, update.author.as_ref()) else {
            return;
        };
        let roles = update
            .member
            .as_ref()
            .and_then(|m| m.as_ref().map(|m| m.roles.clone()))
            .unwrap_or_default();
        let role = self.inner.role(guild, author.id, &roles);
        if let Some(event) = translate::edit(&update, role) {
            self.push(event).await;
        }
    }

    async fn guild_member_addition(&self, _ctx: Context, member: DiscordMember) {
        if member.user.bot && Some(&member.user.id) == self.inner.bot.get() {
            return;
        }
        let role = self
            .inner
            .role(member.guild_id, member.user.id, &member.roles);
        let joined = member.joined_at.as_ref().map(translate::timestamp);
        let event = self.event(
            format!(
                "{}:{}:join:{}",
                member.guild_id,
                member.user.id,
                joined.map_or(0, |t| t.millis())
            ),
            member.guild_id,
            translate::member(&member.user, role, joined),
            EventKind::MemberJoined {
                inviter: None,
                scene: groupguard_core::model::JoinScene::Unknown,
            },
        );
        self.push(event).await;
    }

    async fn guild_member_removal(
        &self,
        _ctx: Context,
        guild: GuildId,
        user: User,
        _member: Option<DiscordMember>,
    ) {
        let now = self.inner.clock.now().millis();
        let event = self.event(
            format!("{guild}:{}:leave:{now}", user.id),
            guild,
            translate::member(&user, Role::Member, None),
            EventKind::MemberLeft,
        );
        self.push(event).await;
    }

    async fn guild_ban_addition(&self, _ctx: Context, guild: GuildId, user: User) {
        let now = self.inner.clock.now().millis();
        let event = self.event(
            format!("{guild}:{}:ban:{now}", user.id),
            guild,
            translate::member(&user, Role::Member, None),
            EventKind::MemberRemoved {
                by: None,
                banned: true,
            },
        );
        self.push(event).await;
    }
}
