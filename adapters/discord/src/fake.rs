//! A loopback Discord (feature `testing`): the REST routes a moderation bot calls and a
//! gateway that says HELLO, answers IDENTIFY with READY and a GUILD_CREATE per guild,
//! acknowledges heartbeats, resumes, and plays the dispatches a test sends. Every REST call is
//! recorded (method, path, query, audit-log reason, body); a call it does not know gets 404
//! and is recorded as unknown; a test can make the next matching call fail (429, 403, 404).
//! Messages sent with `enforce_nonce` are created once per nonce, as on Discord.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// The fake bot's user id.
pub const BOT_ID: u64 = 1_000_000_000_000_000_001;
/// The fake application's id.
pub const APP_ID: u64 = 1_000_000_000_000_000_002;
/// When the fake says guilds were joined.
const JOINED_AT: &str = "2026-11-01T00:00:00.000000+00:00";

/// A REST call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path after `/api/v10`.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `X-Audit-Log-Reason`, decoded.
    pub reason: Option<String>,
    /// The JSON body, or `Null`.
    pub body: Value,
    /// No route matched it.
    pub unknown: bool,
    /// When it arrived, since the fake started.
    pub at: Duration,
}

impl Call {
    /// `METHOD /path`, for assertions.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A member of a fake guild.
#[derive(Debug, Clone)]
pub struct FakeMember {
    /// The user id.
    pub id: u64,
    /// The user name.
    pub name: String,
    /// Its roles' permissions, combined into one role.
    pub permissions: u64,
}

/// A guild the fake bot is in.
#[derive(Debug, Clone)]
pub struct FakeGuild {
    /// The guild id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The owner.
    pub owner: u64,
    /// Its one text channel.
    pub channel: u64,
    /// The bot's permissions there.
    pub bot_permissions: u64,
    /// Other members with permissions beyond @everyone.
    pub members: Vec<FakeMember>,
}

/// A scripted answer for the next matching call.
#[derive(Debug, Clone)]
struct Failure {
    method: String,
    path_contains: String,
    status: u16,
    body: Value,
}

/// What the gateway sends down every open connection.
#[derive(Debug, Clone)]
enum Down {
    Dispatch(String, Value),
    Reconnect,
}

#[derive(Debug)]
struct Inner {
    guilds: Vec<FakeGuild>,
    gateway: String,
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<Failure>>,
    /// Messages created, by nonce where one was enforced.
    nonces: Mutex<HashMap<String, Value>>,
    created: Mutex<Vec<Value>>,
    identifies: Mutex<Vec<Value>>,
    audit_log: Mutex<Vec<Value>>,
    /// Bans in force: user and reason.
    bans: Mutex<Vec<(u64, Option<String>)>>,
    /// AutoMod rules of every guild.
    automod: Mutex<Vec<Value>>,
    resumes: AtomicU64,
    sequence: AtomicU64,
    ids: AtomicU64,
    down: broadcast::Sender<Down>,
    started: Instant,
}

/// The fake: its REST base URL and gateway URL, and what it saw.
#[derive(Debug, Clone)]
pub struct FakeDiscord {
    /// For `[discord] api_base`.
    pub base: String,
    /// For `[discord] gateway`.
    pub gateway: String,
    inner: Arc<Inner>,
}

fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": null,
           "avatar": null, "bot": bot})
}

fn role(id: u64, name: &str, permissions: u64, position: u32) -> Value {
    json!({"id": id.to_string(), "name": name, "color": 0, "hoist": false, "icon": null,
           "unicode_emoji": null, "position": position, "permissions": permissions.to_string(),
           "managed": false, "mentionable": false, "flags": 0,
           "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null}})
}

/// A guild member object; `role` is the member's one role, if any.
pub fn member_json(id: u64, name: &str, role: Option<u64>, guild: Option<u64>) -> Value {
    let mut member = json!({"user": user(id, name, id == BOT_ID), "nick": null, "avatar": null,
        "roles": role.map(|r| vec![r.to_string()]).unwrap_or_default(), "joined_at": JOINED_AT,
        "deaf": false, "mute": false, "flags": 0, "pending": false});
    if let Some(guild) = guild {
        member["guild_id"] = json!(guild.to_string());
    }
    member
}

/// A role id for a member's (or the bot's) role in a guild.
fn role_id(guild: u64, member: u64) -> u64 {
    guild.wrapping_add(member % 1_000_000).wrapping_add(7)
}

impl FakeGuild {
    /// The guild as GUILD_CREATE carries it (a full guild object, as serenity requires).
    pub fn to_json(&self) -> Value {
        // @everyone: view, send, read history.
        let mut roles = vec![role(self.id, "@everyone", 0x400 | 0x800 | 0x10000, 0)];
        let mut members = vec![member_json(
            BOT_ID,
            "groupguard",
            Some(role_id(self.id, BOT_ID)),
            None,
        )];
        roles.push(role(
            role_id(self.id, BOT_ID),
            "groupguard",
            self.bot_permissions,
            10,
        ));
        for m in &self.members {
            roles.push(role(role_id(self.id, m.id), &m.name, m.permissions, 5));
            members.push(member_json(
                m.id,
                &m.name,
                Some(role_id(self.id, m.id)),
                None,
            ));
        }
        let channel = json!({"id": self.channel.to_string(), "type": 0, "guild_id": self.id.to_string(),
            "name": "general", "position": 0, "permission_overwrites": [], "nsfw": false,
            "topic": null, "last_message_id": null, "parent_id": null, "rate_limit_per_user": 0});
        let mut guild = json!({
            "id": self.id.to_string(), "name": self.name, "icon": null, "icon_hash": null,
            "splash": null, "discovery_splash": null, "owner_id": self.owner.to_string(),
            "afk_channel_id": null, "afk_timeout": 300, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "roles": roles,
            "emojis": [], "features": [], "mfa_level": 0, "application_id": null,
            "system_channel_id": null, "system_channel_flags": 0, "rules_channel_id": null,
        });
        let rest = json!({
            "vanity_url_code": null, "description": null, "banner": null, "premium_tier": 0,
            "preferred_locale": "en-US", "public_updates_channel_id": null, "nsfw_level": 0,
            "stickers": [], "premium_progress_bar_enabled": false, "joined_at": JOINED_AT,
            "large": false, "unavailable": false, "member_count": members.len(),
            "voice_states": [], "members": members, "channels": [channel], "threads": [],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [], "safety_alerts_channel_id": null
        });
        if let (Some(guild), Value::Object(rest)) = (guild.as_object_mut(), rest) {
            guild.extend(rest);
        }
        guild
    }
}

impl FakeDiscord {
    /// Starts the fake on a free loopback port, the bot a member of `guilds`.
    pub async fn start(guilds: Vec<FakeGuild>) -> FakeDiscord {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address: SocketAddr = listener.local_addr().expect("bound");
        let gateway = format!("ws://{address}/ws");
        let (down, _) = broadcast::channel(65_536);
        let inner = Arc::new(Inner {
            guilds,
            gateway: gateway.clone(),
            calls: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            nonces: Mutex::new(HashMap::new()),
            created: Mutex::new(Vec::new()),
            identifies: Mutex::new(Vec::new()),
            audit_log: Mutex::new(Vec::new()),
            bans: Mutex::new(Vec::new()),
            automod: Mutex::new(Vec::new()),
            resumes: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
            ids: AtomicU64::new(1_900_000_000_000_000_000),
            down,
            started: Instant::now(),
        });
        let app = Router::new()
            .route("/ws", get(gateway_upgrade))
            .route("/api/v10/{*path}", any(rest))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDiscord {
            base: format!("http://{address}"),
            gateway,
            inner,
        }
    }

    /// Every REST call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().expect("calls").clone()
    }

    /// The calls that change something, but for command registration: what a moderation
    /// test asserts (reads such as the gateway bootstrap and the audit log are left out).
    pub fn actions(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method != "GET" && !c.path.starts_with("/applications/"))
            .collect()
    }

    /// Messages the bot created (a repeated nonce creates none), in order.
    pub fn messages(&self) -> Vec<Value> {
        self.inner.created.lock().expect("created").clone()
    }

    /// The IDENTIFY payloads received.
    pub fn identifies(&self) -> Vec<Value> {
        self.inner.identifies.lock().expect("identifies").clone()
    }

    /// How many times a session was resumed.
    pub fn resumes(&self) -> u64 {
        self.inner.resumes.load(Ordering::Relaxed)
    }

    /// The next call of `method` whose path contains `path_contains` gets `status` and `body`.
    pub fn fail_next(&self, method: &str, path_contains: &str, status: u16, body: Value) {
        self.inner.failures.lock().expect("failures").push(Failure {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            status,
            body,
        });
    }

    /// Sends a dispatch (`MESSAGE_CREATE`, …) down every open gateway connection.
    pub fn dispatch(&self, name: &str, data: Value) {
        let _ = self.inner.down.send(Down::Dispatch(name.to_owned(), data));
    }

    /// The bans in force: user and reason.
    pub fn bans(&self) -> Vec<(u64, Option<String>)> {
        self.inner.bans.lock().expect("bans").clone()
    }

    /// The AutoMod rules in force.
    pub fn automod_rules(&self) -> Vec<Value> {
        self.inner.automod.lock().expect("automod").clone()
    }

    /// An AutoMod rule someone made in Discord.
    pub fn add_automod_rule(&self, guild: u64, name: &str) -> u64 {
        let id = self.snowflake();
        self.inner.automod.lock().expect("automod").push(json!({
            "id": id.to_string(), "guild_id": guild.to_string(), "name": name,
            "creator_id": "1", "event_type": 1, "trigger_type": 1,
            "trigger_metadata": {"keyword_filter": ["*discord.gg*"], "regex_patterns": [], "allow_list": []},
            "actions": [{"type": 1, "metadata": {}}], "enabled": true,
            "exempt_roles": [], "exempt_channels": []
        }));
        id
    }

    /// A ban a moderator made by hand.
    pub fn ban_by_hand(&self, user: u64, reason: &str) {
        self.inner
            .bans
            .lock()
            .expect("bans")
            .push((user, Some(reason.to_owned())));
    }

    /// Records that `by` did `action` (20 kick, 22 ban) to `target` just now, for the audit
    /// log the bot reads.
    pub fn audit(&self, action: u8, by: u64, target: u64) {
        // An entry's id carries its time, as every Discord id does.
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            - crate::translate::DISCORD_EPOCH_MS as u64;
        let id = (since_epoch << 22) | (self.snowflake() & 0x3f_ffff);
        self.inner.audit_log.lock().expect("audit log").insert(
            0,
            json!({"id": id.to_string(), "action_type": action, "user_id": by.to_string(),
                   "target_id": target.to_string(), "changes": [], "reason": null}),
        );
    }

    /// Asks every connected client to reconnect (op 7).
    pub fn reconnect(&self) {
        let _ = self.inner.down.send(Down::Reconnect);
    }

    /// Waits until `done` holds for the calls, up to `within`; the calls then.
    pub async fn wait_for_calls(
        &self,
        within: Duration,
        done: impl Fn(&[Call]) -> bool,
    ) -> Result<Vec<Call>, Vec<Call>> {
        let started = Instant::now();
        loop {
            let calls = self.actions();
            if done(&calls) {
                return Ok(calls);
            }
            if started.elapsed() > within {
                return Err(calls);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh snowflake (message ids in tests).
    pub fn snowflake(&self) -> u64 {
        self.inner.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Time since the fake started, the clock of [`Call::at`].
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

fn decode_reason(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn rest(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/api/v10")
        .unwrap_or(uri.path())
        .to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut call = Call {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_owned),
        reason: headers
            .get("x-audit-log-reason")
            .and_then(|v| v.to_str().ok())
            .map(decode_reason),
        body: body.clone(),
        unknown: false,
        at: inner.started.elapsed(),
    };
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bot "));
    let failure = {
        let mut failures = inner.failures.lock().expect("failures");
        let found = failures
            .iter()
            .position(|f| f.method == call.method && path.contains(&f.path_contains));
        found.map(|i| failures.remove(i))
    };
    let (status, answer) = if !authorized {
        (401, json!({"message": "401: Unauthorized", "code": 0}))
    } else if let Some(failure) = failure {
        (failure.status, failure.body)
    } else {
        route(
            &inner,
            &method,
            &path,
            uri.query().unwrap_or_default(),
            call.reason.as_deref(),
            &body,
        )
        .unwrap_or_else(|| {
            call.unknown = true;
            (404, json!({"message": "404: Not Found", "code": 0}))
        })
    };
    inner.calls.lock().expect("calls").push(call);
    let mut response = json_response(status, &answer);
    if status == 429 {
        let retry = answer["retry_after"].as_f64().unwrap_or(1.0);
        if let Ok(value) = retry.to_string().parse() {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

/// The answer of a known route; `None` for an unknown one.
fn route(
    inner: &Inner,
    method: &Method,
    path: &str,
    query: &str,
    reason: Option<&str>,
    body: &Value,
) -> Option<(u16, Value)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = || inner.ids.fetch_add(1, Ordering::Relaxed).to_string();
    Some(match (method.as_str(), parts.as_slice()) {
        ("GET", ["gateway"]) => (200, json!({"url": inner.gateway})),
        ("GET", ["gateway", "bot"]) => (
            200,
            json!({"url": inner.gateway, "shards": 1, "session_start_limit":
                {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        ),
        ("GET", ["users", "@me"]) => (200, user(BOT_ID, "groupguard", true)),
        ("GET", ["guilds", _, "bans"]) => (
            200,
            Value::Array(
                inner
                    .bans
                    .lock()
                    .expect("bans")
                    .iter()
                    .map(|(user_id, reason)| json!({"user": user(*user_id, "banned", false), "reason": reason}))
                    .collect(),
            ),
        ),
        ("GET", ["guilds", _, "audit-logs"]) => {
            let action = query
                .split('&')
                .find_map(|p| p.strip_prefix("action_type="))
                .and_then(|a| a.parse::<u64>().ok());
            let entries: Vec<Value> = inner
                .audit_log
                .lock()
                .expect("audit log")
                .iter()
                .filter(|e| action.is_none_or(|a| e["action_type"] == a))
                .cloned()
                .collect();
            (
                200,
                json!({"audit_log_entries": entries, "users": [], "integrations": [],
                       "webhooks": [], "guild_scheduled_events": [], "threads": [],
                       "application_commands": [], "auto_moderation_rules": []}),
            )
        }
        ("POST", ["channels", channel, "messages"]) => {
            let nonce = body["nonce"].as_str().map(str::to_owned);
            if body["enforce_nonce"] == true
                && let Some(nonce) = &nonce
                && let Some(existing) = inner.nonces.lock().expect("nonces").get(nonce)
            {
                return Some((200, existing.clone()));
            }
            let mut message = body.clone();
            message["id"] = json!(id());
            message["channel_id"] = json!(*channel);
            message["author"] = user(BOT_ID, "groupguard", true);
            if let Some(nonce) = nonce {
                inner
                    .nonces
                    .lock()
                    .expect("nonces")
                    .insert(nonce, message.clone());
            }
            inner.created.lock().expect("created").push(message.clone());
            (200, message)
        }
        ("DELETE", ["channels", _, "messages", _])
        | ("DELETE", ["guilds", _, "members", _])

        | ("POST", ["interactions", _, _, "callback"]) => (204, Value::Null),
        ("PUT", ["guilds", _, "bans", banned]) => {
            let banned = banned.parse().unwrap_or(0);
            let mut bans = inner.bans.lock().expect("bans");
            bans.retain(|(u, _)| *u != banned);
            bans.push((banned, reason.map(str::to_owned)));
            (204, Value::Null)
        }
        ("DELETE", ["guilds", _, "bans", banned]) => {
            let banned = banned.parse().unwrap_or(0);
            let mut bans = inner.bans.lock().expect("bans");
            let before = bans.len();
            bans.retain(|(u, _)| *u != banned);
            if bans.len() == before {
                return Some((404, json!({"message": "Unknown Ban", "code": 10026})));
            }
            (204, Value::Null)
        }
        ("GET", ["guilds", guild, "auto-moderation", "rules"]) => {
            let rules: Vec<Value> = inner
                .automod
                .lock()
                .expect("automod")
                .iter()
                .filter(|r| r["guild_id"] == *guild)
                .cloned()
                .collect();
            (200, Value::Array(rules))
        }
        ("POST", ["guilds", guild, "auto-moderation", "rules"]) => {
            let mut rule = body.clone();
            rule["id"] = json!(id());
            rule["guild_id"] = json!(*guild);
            rule["creator_id"] = json!(BOT_ID.to_string());
            rule["exempt_roles"] = json!([]);
            rule["exempt_channels"] = json!([]);
            inner.automod.lock().expect("automod").push(rule.clone());
            (200, rule)
        }
        ("PATCH", ["guilds", _, "auto-moderation", "rules", rule_id]) => {
            let mut rules = inner.automod.lock().expect("automod");
            let Some(rule) = rules.iter_mut().find(|r| r["id"] == *rule_id) else {
                return Some((404, json!({"message": "Unknown auto moderation rule", "code": 10066})));
            };
            for (key, value) in body.as_object().into_iter().flatten() {
                rule[key] = value.clone();
            }
            (200, rule.clone())
        }
        ("DELETE", ["guilds", _, "auto-moderation", "rules", rule_id]) => {
            let mut rules = inner.automod.lock().expect("automod");
            let before = rules.len();
            rules.retain(|r| r["id"] != *rule_id);
            if rules.len() == before {
                return Some((404, json!({"message": "Unknown auto moderation rule", "code": 10066})));
            }
            (204, Value::Null)
        }
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            let mut message = body.clone();
            message["id"] = json!(id());
            inner.created.lock().expect("created").push(message.clone());
            (200, message)
        }
        ("PATCH", ["guilds", guild, "members", member]) => {
            let mut answer = member_json(member.parse().unwrap_or(0), "member", None, None);
            answer["guild_id"] = json!(*guild);
            answer["communication_disabled_until"] = body["communication_disabled_until"].clone();
            (200, answer)
        }
        ("POST", ["users", "@me", "channels"]) => (
            200,
            json!({"id": id(), "type": 1, "recipients": [user(
                body["recipient_id"].as_str().and_then(|r| r.parse().ok()).unwrap_or(0), "member", false)]}),
        ),
        ("PUT", ["applications", _, "commands"])
        | ("PUT", ["applications", _, "guilds", _, "commands"]) => {
            let commands: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut c| {
                    c["id"] = json!(id());
                    c["application_id"] = json!(APP_ID.to_string());
                    c["version"] = json!(id());
                    c
                })
                .collect();
            (200, Value::Array(commands))
        }
        _ => return None,
    })
}

async fn gateway_upgrade(State(inner): State<Arc<Inner>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| session(inner, socket))
}

fn frame(inner: &Inner, name: &str, data: &Value) -> WsMessage {
    let s = inner.sequence.fetch_add(1, Ordering::Relaxed) + 1;
    WsMessage::Text(
        json!({"op": 0, "s": s, "t": name, "d": data})
            .to_string()
            .into(),
    )
}

/// One gateway connection: HELLO, then IDENTIFY or RESUME, heartbeats, and the dispatches
/// the test sends.
async fn session(inner: Arc<Inner>, mut socket: WebSocket) {
    let mut down = inner.down.subscribe();
    let hello = json!({"op": 10, "s": null, "t": null, "d": {"heartbeat_interval": 41_250}});
    if socket
        .send(WsMessage::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(WsMessage::Text(text))) = incoming else { return };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                let replies = match payload["op"].as_u64() {
                    Some(1) => vec![WsMessage::Text(json!({"op": 11, "s": null, "t": null, "d": null}).to_string().into())],
                    Some(2) => {
                        inner.identifies.lock().expect("identifies").push(payload["d"].clone());
                        let shard = payload["d"]["shard"].clone();
                        let ready = json!({
                            "v": 10, "user": user(BOT_ID, "groupguard", true),
                            "guilds": inner.guilds.iter().map(|g| json!({"id": g.id.to_string(), "unavailable": true})).collect::<Vec<_>>(),
                            "session_id": "fake-session", "resume_gateway_url": inner.gateway,
                            "shard": if shard.is_array() { shard } else { json!([0, 1]) },
                            "application": {"id": APP_ID.to_string(), "flags": 0}
                        });
                        let mut frames = vec![frame(&inner, "READY", &ready)];
                        frames.extend(inner.guilds.iter().map(|g| frame(&inner, "GUILD_CREATE", &g.to_json())));
                        frames
                    }
                    Some(6) => {
                        inner.resumes.fetch_add(1, Ordering::Relaxed);
                        vec![frame(&inner, "RESUMED", &json!({}))]
                    }
                    _ => Vec::new(),
                };
                for reply in replies {
                    if socket.send(reply).await.is_err() {
                        return;
                    }
                }
            }
            next = down.recv() => {
                let message = match next {
                    Ok(Down::Dispatch(name, data)) => frame(&inner, &name, &data),
                    Ok(Down::Reconnect) => WsMessage::Text(json!({"op": 7, "s": null, "t": null, "d": null}).to_string().into()),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serenity::all::{Event, GatewayEvent};

    use super::*;

    #[test]
    fn the_guild_create_the_fake_sends_parses_as_a_full_guild() {
        let guild = FakeGuild {
            id: 11,
            name: "club".to_owned(),
            owner: 21,
            channel: 12,
            bot_permissions: 0x2000 | 0x2 | 0x4,
            members: vec![FakeMember {
                id: 22,
                name: "mod".to_owned(),
                permissions: 0x2,
            }],
        };
        let frame = json!({"op": 0, "s": 2, "t": "GUILD_CREATE", "d": guild.to_json()});
        match serde_json::from_value::<GatewayEvent>(frame).unwrap() {
            GatewayEvent::Dispatch(_, Event::GuildCreate(created)) => {
                assert_eq!(created.guild.members.len(), 2);
                assert_eq!(created.guild.roles.len(), 3);
            }
            other => panic!("not a full guild: {other:?}"),
        }
        let member = json!({"op": 0, "s": 3, "t": "GUILD_MEMBER_ADD", "d": member_json(23, "eve", None, Some(11))});
        assert!(matches!(
            serde_json::from_value::<GatewayEvent>(member).unwrap(),
            GatewayEvent::Dispatch(_, Event::GuildMemberAdd(_))
        ));
    }
}
