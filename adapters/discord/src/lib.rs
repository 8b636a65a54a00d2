//! groupguard's Discord adapter on serenity: the gateway (identify, heartbeats, resume,
//! shards) and the guild cache come from serenity; its events become groupguard's events;
//! actions go out through [`rest::Rest`], which makes each moderation call exactly and keeps
//! Discord's rate limits. A group is a guild; a message id carries its channel.

pub mod automod;
pub mod config;
pub mod executor;
#[cfg(feature = "testing")]
pub mod fake;
pub mod mirror;
pub mod render;
pub mod rest;
pub mod slash;
pub mod translate;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::engine::RulesHandle;
use groupguard_core::model::{
    Event, EventId, EventKind, GroupChange, GroupId, Member, Platform, ReplyHandle, ReplyTo, Role,
    UserId,
};
use groupguard_core::platform::{ActionExecutor, BlacklistMirror, EventSink};
use groupguard_core::ports::Clock;
use reqwest::Method;
use serde_json::{Value, json};
use serenity::all::{
    Action as AutomodAction, ActionExecution, Cache, ClientBuilder, CommandInteraction, Context,
    EventHandler, GatewayIntents, Guild, GuildId, HttpBuilder, Interaction,
    Member as DiscordMember, Message, MessageUpdateEvent, Permissions, Ready, RoleId,
    UnavailableGuild, User, UserId as DiscordUserId,
};
use tokio::sync::watch;

use crate::config::{DiscordConfig, Shards};
use crate::executor::DiscordExecutor;
use crate::mirror::DiscordMirror;
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
/// An interaction not answered by then is deferred: Discord wants a first answer in 3 s.
const DEFER_AFTER: Duration = Duration::from_secs(2);
/// How long after a removal its audit-log entry is looked for again.
const AUDIT_LOG_LAG: Duration = Duration::from_millis(500);
/// How recent an audit-log entry must be to explain a removal.
const RECENT_MS: i64 = 30_000;
/// How long an interaction's token works.
const INTERACTION_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Where an unanswered interaction stands (answered ones are forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// Nothing sent yet: the answer is the first response.
    Pending,
    /// Deferred: the answer edits the original response.
    Deferred,
}

/// What the adapter's parts share.
#[derive(Debug)]
pub struct Inner {
    config: DiscordConfig,
    clock: Arc<dyn Clock>,
    rest: Rest,
    cache: OnceLock<Arc<Cache>>,
    bot: OnceLock<DiscordUserId>,
    application: OnceLock<u64>,
    not_ready: Mutex<Option<String>>,
    /// The rules, for suggesting rule ids.
    rules: RulesHandle,
    /// Guilds `/guard` was registered in since start-up.
    registered: Mutex<HashSet<GuildId>>,
    /// Interactions by id, and where their first answer stands.
    interactions: tokio::sync::Mutex<HashMap<u64, Ack>>,
    /// Members the bot banned in the last moments.
    recent_bans: Mutex<HashMap<DiscordUserId, std::time::Instant>>,
    /// The AutoMod rules the bot made, by id.
    automod_rules: Mutex<HashSet<u64>>,
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

    /// Registers `/guard` in a guild (once per start-up), or globally.
    async fn register_commands(&self, guild: Option<GuildId>) {
        let Some(app) = self.application.get() else {
            return;
        };
        if let Some(guild) = guild
            && !self
                .registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(guild)
        {
            return;
        }
        let path = match guild {
            Some(guild) => format!("/applications/{app}/guilds/{guild}/commands"),
            None => format!("/applications/{app}/commands"),
        };
        let commands = json!([slash::registration()]);
        match self
            .rest
            .call(Method::PUT, &path, Some(&commands), None)
            .await
        {
            Ok(_) => tracing::info!(?guild, "/guard registered"),
            Err(e) => {
                tracing::warn!(?guild, error = %e, "cannot register /guard");
                if let Some(guild) = guild {
                    self.registered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&guild);
                }
            }
        }
    }

    /// Answers an interaction at once (an error, suggestions).
    async fn respond(&self, id: u64, token: &str, answer: &Value) {
        let path = format!("/interactions/{id}/{token}/callback");
        if let Err(e) = self
            .rest
            .call(Method::POST, &path, Some(answer), None)
            .await
        {
            tracing::warn!(interaction = id, error = %e, "cannot answer an interaction");
        }
    }

    /// Defers an interaction still unanswered after [`DEFER_AFTER`]; privately, since its
    /// answer may be for the asker's eyes only.
    async fn defer_if_slow(self: Arc<Self>, id: u64, token: String) {
        tokio::time::sleep(DEFER_AFTER).await;
        let mut interactions = self.interactions.lock().await;
        if interactions.get(&id) != Some(&Ack::Pending) {
            return;
        }
        interactions.insert(id, Ack::Deferred);
        // Held while deferring: an answer waits for the deferral to land.
        self.respond(id, &token, &json!({"type": 5, "data": {"flags": 64}}))
            .await;
    }

    /// Who removed `user` from `guild` just now, from the audit log (`action`: 20 kick,
    /// 22 ban): read twice, since the entry can land a moment after the gateway event.
    /// Unknown without View Audit Log.
    async fn remover(&self, guild: GuildId, user: DiscordUserId, action: u8) -> Option<Member> {
        let path = format!("/guilds/{guild}/audit-logs?action_type={action}&limit=10");
        let now = self.clock.now().millis();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(AUDIT_LOG_LAG).await;
            }
            let log = match self.rest.call(Method::GET, &path, None, None).await {
                Ok(log) => log,
                Err(e) => {
                    tracing::debug!(%guild, error = %e, "cannot read the audit log");
                    return None;
                }
            };
            let entry = log["audit_log_entries"].as_array().and_then(|entries| {
                entries.iter().find(|e| {
                    let id = e["id"].as_str().and_then(|id| id.parse::<u64>().ok());
                    e["target_id"] == user.to_string()
                        && id.is_some_and(|id| {
                            (now - translate::account_created(id).millis()).abs() < RECENT_MS
                        })
                })
            });
            if let Some(by) = entry
                .and_then(|e| e["user_id"].as_str())
                .and_then(|id| id.parse::<u64>().ok())
            {
                let by = DiscordUserId::new(by);
                let roles = self
                    .cache
                    .get()
                    .and_then(|c| {
                        c.guild(guild)
                            .and_then(|g| g.members.get(&by).map(|m| m.roles.clone()))
                    })
                    .unwrap_or_default();
                let mut member = Member::new(by.to_string());
                member.role = self.role(guild, by, &roles);
                member.is_bot = Some(&by) == self.bot.get();
                return Some(member);
            }
        }
        None
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
    /// The adapter for `config`; it connects in [`Discord::run`]. `rules` are read to
    /// suggest rule ids while a slash command is typed.
    pub fn new(config: DiscordConfig, clock: Arc<dyn Clock>, rules: RulesHandle) -> Discord {
        Discord {
            inner: Arc::new(Inner {
                rest: Rest::new(&config.api_base, config.token.clone()),
                config,
                clock,
                cache: OnceLock::new(),
                bot: OnceLock::new(),
                application: OnceLock::new(),
                not_ready: Mutex::new(Some("connecting to the gateway".to_owned())),
                rules,
                registered: Mutex::new(HashSet::new()),
                interactions: tokio::sync::Mutex::new(HashMap::new()),
                recent_bans: Mutex::new(HashMap::new()),
                automod_rules: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The executor for Discord.
    pub fn executor(&self) -> Arc<dyn ActionExecutor> {
        Arc::new(DiscordExecutor::new(Arc::clone(&self.inner)))
    }

    /// The blacklist's mirror on Discord: listed members banned, the bot's bans lifted.
    pub fn mirror(&self) -> Arc<dyn BlacklistMirror> {
        Arc::new(DiscordMirror::new(Arc::clone(&self.inner)))
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
            if inner.cache.set(Arc::clone(&client.cache)).is_ok() {
                tokio::spawn(automod::run(Arc::clone(inner), stop.clone()));
            }
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
    /// A `/guard` interaction: handed on as the command line it stands for, answered where
    /// its token points; deferred if the answer is slow.
    async fn command(&self, command: CommandInteraction) {
        let id = command.id.get();
        let Some(guild) = command.guild_id else {
            let answer =
                json!({"type": 4, "data": {"content": "use /guard in a server", "flags": 64}});
            return self.inner.respond(id, &command.token, &answer).await;
        };
        let line = match slash::command_line(&command.data) {
            Ok(line) => line,
            Err(why) => {
                let answer =
                    json!({"type": 4, "data": {"content": render::escape(&why), "flags": 64}});
                return self.inner.respond(id, &command.token, &answer).await;
            }
        };
        let (permissions, roles) = command
            .member
            .as_ref()
            .map(|m| (m.permissions, m.roles.clone()))
            .unwrap_or_default();
        let role = match permissions {
            Some(p) => {
                let owner = self
                    .inner
                    .permissions(guild, command.user.id, &roles)
                    .is_some_and(|a| a.owner);
                translate::role_of(p, owner)
            }
            None => self.inner.role(guild, command.user.id, &roles),
        };
        self.inner
            .interactions
            .lock()
            .await
            .insert(id, Ack::Pending);
        tokio::spawn(Arc::clone(&self.inner).defer_if_slow(id, command.token.clone()));
        let now = self.inner.clock.now();
        let sender = UserId::from(command.user.id.to_string());
        let event = self.event(
            id.to_string(),
            guild,
            translate::member(&command.user, role, None),
            EventKind::Command {
                text: line,
                reply_to: ReplyTo {
                    group: GroupId::from(guild.to_string()),
                    sender,
                    message: None,
                    handle: Some(ReplyHandle::new(format!("{id}:{}", command.token))),
                    expires_at: Some(now.plus(INTERACTION_LIFETIME)),
                },
            },
        );
        self.push(event).await;
    }

    /// Rule ids starting with what is typed, for an option that suggests them.
    async fn suggest(&self, typing: &CommandInteraction) {
        let typed = slash::focused(&typing.data)
            .unwrap_or_default()
            .to_lowercase();
        let rules = self.inner.rules.rules();
        let choices: Vec<Value> = rules
            .config()
            .rules
            .iter()
            .map(|r| r.id.as_str())
            .filter(|id| id.to_lowercase().starts_with(&typed))
            .take(25)
            .map(|id| json!({"name": id, "value": id}))
            .collect();
        let answer = json!({"type": 8, "data": {"choices": choices}});
        self.inner
            .respond(typing.id.get(), &typing.token, &answer)
            .await;
    }

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
        let _ = self.inner.application.set(
            self.inner
                .config
                .application_id
                .unwrap_or(ready.application.id.get()),
        );
        if self.inner.config.global_commands {
            self.inner.register_commands(None).await;
        }
        self.inner.set_not_ready(None);
        tracing::info!(user = %ready.user.id, guilds = ready.guilds.len(), "connected to the Discord gateway");
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        self.inner.register_commands(Some(guild.id)).await;
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

    async fn auto_moderation_action_execution(&self, _ctx: Context, execution: ActionExecution) {
        // One event per action: the block stands for the execution.
        if !matches!(execution.action, AutomodAction::BlockMessage { .. })
            || !self.inner.is_automod_rule(execution.rule_id.get())
        {
            return;
        }
        let guild = execution.guild_id;
        let roles = self
            .inner
            .cache
            .get()
            .and_then(|c| {
                c.guild(guild)
                    .and_then(|g| g.members.get(&execution.user_id).map(|m| m.roles.clone()))
            })
            .unwrap_or_default();
        let role = self.inner.role(guild, execution.user_id, &roles);
        let mut member = Member::new(execution.user_id.to_string());
        member.role = role;
        member.account_created = Some(translate::account_created(execution.user_id.get()));
        let mut message = groupguard_core::model::Message::text(execution.content.clone());
        message.blocked = true;
        message.id = execution.channel_id.map(translate::blocked_message_id);
        let now = self.inner.clock.now();
        let event = self.event(
            format!(
                "automod:{}:{}:{}",
                execution.rule_id,
                execution.user_id,
                now.millis()
            ),
            guild,
            member,
            EventKind::MessagePosted(message),
        );
        self.push(event).await;
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(command) => self.command(command).await,
            Interaction::Autocomplete(typing) => self.suggest(&typing).await,
            _ => {}
        }
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
        let (what, kind) = match self.inner.remover(guild, user.id, 20).await {
            Some(by) => (
                "kick",
                EventKind::MemberRemoved {
                    by: Some(by),
                    banned: false,
                },
            ),
            None => ("leave", EventKind::MemberLeft),
        };
        let event = self.event(
            format!("{guild}:{}:{what}:{now}", user.id),
            guild,
            translate::member(&user, Role::Member, None),
            kind,
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
                by: self.inner.remover(guild, user.id, 22).await,
                banned: true,
            },
        );
        self.push(event).await;
    }
}
