//! The real serenity client against the loopback Discord: identify, READY and GUILD_CREATE,
//! dispatches turned into events, a reconnect that resumes, and the executor's REST calls
//! with their exact bodies, including the failures Discord answers with.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::engine::Live;
use groupguard_core::model::{Event, EventKind, GroupChange, MessageKind, Platform, Role};
use groupguard_core::platform::{
    ActionRequest, AdapterErrorKind, Capability, EventSink, IdempotencyKey, Lacking, PushError,
    Recipients, SinkClosed,
};
use groupguard_core::ports::Clock;
use groupguard_core::reply::Reply;
use groupguard_core::rulefile;
use groupguard_core::time::Timestamp;
use groupguard_core::verdict::Action;
use groupguard_discord::Discord;
use groupguard_discord::config::RawDiscordConfig;
use groupguard_discord::fake::{APP_ID, FakeDiscord, FakeGuild, FakeMember, member_json};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, watch};

const GUILD: u64 = 1_100_000_000_000_000_001;
const CHANNEL: u64 = 1_200_000_000_000_000_002;
const OWNER: u64 = 1_300_000_000_000_000_001;
const MODERATOR: u64 = 1_300_000_000_000_000_002;
const EVE: u64 = 1_300_000_000_000_000_005;
const LOG: u64 = 1_200_000_000_000_000_099;
/// Rules whose ids `/guard` suggests.
const RULES: &str = "[[rules]]\nid = \"ads\"\nbanned_kinds = [\"video\"]\n\n[[rules]]\nid = \"adult\"\nbanned_kinds = [\"video\"]\n\n[[rules]]\nid = \"flood\"\nbanned_kinds = [\"video\"]\n";
/// Manage Messages, Kick, Ban, Moderate Members, Send Messages.
const MODERATION: u64 = 0x2000 | 0x2 | 0x4 | 0x100_0000_0000 | 0x800;

#[derive(Debug)]
struct Now;

impl Clock for Now {
    fn now(&self) -> Timestamp {
        Timestamp(1_795_000_000_000)
    }
}

#[derive(Debug)]
struct Channel(mpsc::Sender<Event>);

#[async_trait]
impl EventSink for Channel {
    async fn push(&self, event: Event) -> Result<(), SinkClosed> {
        self.0.send(event).await.map_err(|_| SinkClosed)
    }

    async fn push_within(&self, event: Event, _wait: Duration) -> Result<(), PushError> {
        self.0.send(event).await.map_err(|_| PushError::Closed)
    }
}

struct Running {
    fake: FakeDiscord,
    discord: Discord,
    events: Mutex<mpsc::Receiver<Event>>,
    stop: watch::Sender<bool>,
}

impl Running {
    async fn next(&self, what: &str) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.events.lock().await.recv())
            .await
            .unwrap_or_else(|_| panic!("no event: {what}"))
            .expect("the adapter is running")
    }
}

async fn start(bot_permissions: u64) -> Running {
    start_with(bot_permissions, "").await
}

/// [`start`] with more `[discord]` settings.
async fn start_with(bot_permissions: u64, extra: &str) -> Running {
    let fake = FakeDiscord::start(vec![FakeGuild {
        id: GUILD,
        name: "club".to_owned(),
        owner: OWNER,
        channel: CHANNEL,
        bot_permissions,
        members: vec![FakeMember {
            id: MODERATOR,
            name: "mod".to_owned(),
            permissions: 0x2,
        }],
    }])
    .await;
    let raw: RawDiscordConfig = toml::from_str(&format!(
        "token = \"fake-token\"\nlog_channel = \"{LOG}\"\napi_base = \"{}\"\ngateway = \"{}\"\n{extra}",
        fake.base, fake.gateway
    ))
    .unwrap();
    let mut errors = Vec::new();
    let config = raw.check(&|_| None, &mut errors).expect("a valid section");
    let rules = Arc::new(Live::compile(rulefile::parse(RULES).unwrap()).unwrap());
    let discord = Discord::new(config, Arc::new(Now), rules);
    let (sender, events) = mpsc::channel(100);
    let (stop, stopped) = watch::channel(false);
    let running = discord.clone();
    tokio::spawn(async move { running.run(Arc::new(Channel(sender)), stopped).await });
    let running = Running {
        fake,
        discord,
        events: Mutex::new(events),
        stop,
    };
    let registered = running.next("the guild registered").await;
    assert!(matches!(
        registered.kind,
        EventKind::GroupChanged(GroupChange::Created { .. })
    ));
    running
}

fn message_create(fake: &FakeDiscord, author: u64, roles: &[u64], content: &str) -> Value {
    json!({
        "id": fake.snowflake().to_string(), "channel_id": CHANNEL.to_string(),
        "guild_id": GUILD.to_string(),
        "author": {"id": author.to_string(), "username": "someone", "discriminator": "0",
                   "global_name": null, "avatar": null},
        "content": content, "timestamp": "2026-11-18T11:06:40.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
        "member": {"roles": roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
                   "joined_at": "2026-11-01T00:00:00.000000+00:00", "deaf": false,
                   "mute": false, "flags": 0}
    })
}

fn request(key_event: &str, action: Action) -> ActionRequest {
    ActionRequest {
        key: IdempotencyKey::for_action(Platform::Discord, &key_event.into(), 0),
        platform: Platform::Discord,
        group: GUILD.to_string().into(),
        member: EVE.to_string().into(),
        message: Some(format!("{CHANNEL}/1400000000000000010").into()),
        action,
        rule: "ads".into(),
        notify: Recipients::default(),
        case: None,
        ban: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_ready_and_guild_create_then_messages_joins_and_bans_become_events() {
    let running = start(MODERATION).await;
    let fake = &running.fake;
    let identify = &fake.identifies()[0];
    assert_eq!(
        identify["token"]
            .as_str()
            .unwrap()
            .trim_start_matches("Bot "),
        "fake-token"
    );
    // GUILDS, GUILD_MEMBERS, GUILD_MODERATION, GUILD_MESSAGES, MESSAGE_CONTENT, AUTO_MODERATION_EXECUTION.
    assert_eq!(identify["intents"], 1 | 2 | 4 | 512 | 32_768 | 2_097_152);
    assert!(running.discord.readiness().is_ok());

    fake.dispatch(
        "MESSAGE_CREATE",
        message_create(fake, EVE, &[], "加我微信 now"),
    );
    let event = running.next("the message").await;
    let EventKind::MessagePosted(message) = &event.kind else {
        panic!("{event:?}")
    };
    assert_eq!(message.kind, MessageKind::Text);
    assert_eq!(message.text, "加我微信 now");
    assert_eq!(event.member.role, Role::Member);
    assert_eq!(event.group.as_str(), GUILD.to_string());

    // The moderator's role (Kick Members) makes them a moderator.
    let role = GUILD.wrapping_add(MODERATOR % 1_000_000).wrapping_add(7);
    fake.dispatch(
        "MESSAGE_CREATE",
        message_create(fake, MODERATOR, &[role], "!guard rule list"),
    );
    assert_eq!(
        running.next("the moderator's message").await.member.role,
        Role::Moderator
    );

    fake.dispatch(
        "GUILD_MEMBER_ADD",
        member_json(EVE, "eve", None, Some(GUILD)),
    );
    let join = running.next("the join").await;
    assert!(matches!(join.kind, EventKind::MemberJoined { .. }));
    assert_eq!(join.member.id.as_str(), EVE.to_string());

    fake.dispatch(
        "GUILD_BAN_ADD",
        json!({"guild_id": GUILD.to_string(), "user": {"id": EVE.to_string(), "username": "eve",
               "discriminator": "0", "global_name": null, "avatar": null}}),
    );
    let ban = running.next("the ban").await;
    assert!(matches!(
        ban.kind,
        EventKind::MemberRemoved { banned: true, .. }
    ));

    // Asked to reconnect, serenity resumes the session and events keep coming.
    fake.reconnect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while fake.resumes() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a RESUME after op 7");
    let again = message_create(fake, EVE, &[], "after the reconnect");
    fake.dispatch("MESSAGE_CREATE", again.clone());
    fake.dispatch("MESSAGE_CREATE", again);
    let first = running.next("a message after the reconnect").await;
    let second = running.next("the duplicate dispatch").await;
    assert_eq!(first.id, second.id, "a redelivered dispatch keeps its id");
    let _ = running.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_makes_exactly_these_calls_and_classifies_discords_refusals() {
    let running = start(MODERATION).await;
    let fake = &running.fake;
    let executor = running.discord.executor();
    let caps = executor.capabilities(&GUILD.to_string().into()).await;
    for capability in [
        Capability::Delete,
        Capability::Warn,
        Capability::Timeout,
        Capability::Kick,
        Capability::Notify,
    ] {
        assert!(caps.has(capability), "{capability:?}");
    }

    let delete = request(
        "e1",
        Action::DeleteMessage {
            message: format!("{CHANNEL}/1400000000000000010").into(),
        },
    );
    executor.execute(&delete).await.unwrap();
    let warn = request(
        "e1w",
        Action::Warn {
            text: "no ads here".to_owned(),
        },
    );
    executor.execute(&warn).await.unwrap();
    // A retried warning (its answer lost) carries the same nonce: one message in the channel.
    executor.execute(&warn).await.unwrap();
    executor
        .execute(&request(
            "e2",
            Action::Timeout {
                duration: Duration::from_secs(60 * 24 * 3_600),
            },
        ))
        .await
        .unwrap();
    let mut ban = request("e3", Action::Kick);
    ban.ban = true;
    executor.execute(&ban).await.unwrap();
    executor
        .execute(&request("e4", Action::Kick))
        .await
        .unwrap();

    let calls = fake.actions();
    let routes: Vec<String> = calls.iter().map(|c| c.route()).collect();
    assert_eq!(
        routes,
        [
            format!("DELETE /channels/{CHANNEL}/messages/1400000000000000010"),
            format!("POST /channels/{CHANNEL}/messages"),
            format!("POST /channels/{CHANNEL}/messages"),
            format!("PATCH /guilds/{GUILD}/members/{EVE}"),
            format!("PUT /guilds/{GUILD}/bans/{EVE}"),
            format!("DELETE /guilds/{GUILD}/members/{EVE}"),
        ]
    );
    assert_eq!(calls[0].reason.as_deref(), Some("groupguard: rule ads"));
    assert_eq!(calls[1].body["nonce"], format!("{}w", warn.key));
    assert_eq!(calls[1].body["enforce_nonce"], true);
    assert_eq!(calls[1].body["content"], format!("<@{EVE}> no ads here"));
    assert_eq!(
        calls[1].body["message_reference"]["fail_if_not_exists"],
        false
    );
    assert_eq!(fake.messages().len(), 1, "the retried warning shows once");
    // 60 days asked, Discord allows 28.
    assert_eq!(
        calls[3].body,
        json!({"communication_disabled_until": "2026-12-16T11:06:40Z"})
    );
    assert_eq!(calls[4].body, json!({"delete_message_seconds": 86_400}));

    // Discord's refusals.
    fake.fail_next(
        "POST",
        "/messages",
        429,
        json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": false}),
    );
    let limited = executor.execute(&warn).await.unwrap_err();
    assert_eq!(
        limited.kind,
        AdapterErrorKind::RateLimited {
            retry_after: Duration::from_millis(250)
        }
    );
    fake.fail_next(
        "DELETE",
        "/messages/",
        403,
        json!({"message": "Missing Permissions", "code": 50013}),
    );
    let refused = executor.execute(&delete).await.unwrap_err();
    assert_eq!(
        refused.kind,
        AdapterErrorKind::Forbidden {
            permission: Some("Manage Messages".to_owned())
        }
    );
    fake.fail_next(
        "DELETE",
        "/messages/",
        404,
        json!({"message": "Unknown Message", "code": 10008}),
    );
    assert_eq!(
        executor.execute(&delete).await.unwrap_err().kind,
        AdapterErrorKind::NotFound
    );
    assert!(
        !fake.calls().iter().any(|c| c.unknown),
        "{:?}",
        fake.calls()
    );
    let _ = running.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permissions_the_capabilities_name_them_and_the_owner_is_never_acted_on() {
    let running = start(0x800).await;
    let executor = running.discord.executor();
    let caps = executor.capabilities(&GUILD.to_string().into()).await;
    assert_eq!(
        caps.check(&Action::DeleteMessage {
            message: format!("{CHANNEL}/1").into()
        }),
        Err(Lacking::Permission("Manage Messages".to_owned()))
    );
    assert_eq!(
        caps.check(&Action::Kick),
        Err(Lacking::Permission(
            "Kick Members and Ban Members".to_owned()
        ))
    );
    assert!(caps.has(Capability::Warn));

    let mut kick_owner = request("e9", Action::Kick);
    kick_owner.member = OWNER.to_string().into();
    let refused = executor.execute(&kick_owner).await.unwrap_err();
    assert_eq!(refused.kind, AdapterErrorKind::Unsupported);
    // The moderator's role sits below the bot's: a kick is asked of Discord, which refuses
    // without the permission, and the refusal names it.
    running.fake.fail_next(
        "DELETE",
        "/members/",
        403,
        json!({"message": "Missing Permissions", "code": 50013}),
    );
    let mut kick_moderator = request("e10", Action::Kick);
    kick_moderator.member = MODERATOR.to_string().into();
    assert_eq!(
        executor.execute(&kick_moderator).await.unwrap_err().kind,
        AdapterErrorKind::Forbidden {
            permission: Some("Kick Members".to_owned())
        }
    );
    let routes: Vec<String> = running.fake.actions().iter().map(|c| c.route()).collect();
    assert_eq!(
        routes,
        [format!("DELETE /guilds/{GUILD}/members/{MODERATOR}")],
        "the owner's kick was never asked of Discord"
    );
    let _ = running.stop.send(true);
}

fn interaction(fake: &FakeDiscord, kind: u8, permissions: &str, options: Value) -> (u64, Value) {
    let id = fake.snowflake();
    let payload = json!({
        "id": id.to_string(), "application_id": APP_ID.to_string(), "type": kind,
        "token": format!("token-{id}"), "version": 1, "guild_id": GUILD.to_string(),
        "channel_id": CHANNEL.to_string(), "locale": "en-US", "entitlements": [],
        "attachment_size_limit": 8_388_608, "authorizing_integration_owners": {},
        "member": {"user": {"id": MODERATOR.to_string(), "username": "mod", "discriminator": "0",
                            "global_name": null, "avatar": null},
                   "roles": [], "joined_at": "2026-11-01T00:00:00.000000+00:00", "deaf": false,
                   "mute": false, "flags": 0, "permissions": permissions},
        "data": {"id": "6", "name": "guard", "type": 1}
    });
    let mut payload = payload;
    payload["data"]["options"] = options;
    (id, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_is_registered_and_an_interaction_is_answered_at_once_or_deferred_when_slow() {
    let running = start(MODERATION).await;
    let fake = &running.fake;
    let registration = fake
        .calls()
        .into_iter()
        .find(|c| c.path == format!("/applications/{APP_ID}/guilds/{GUILD}/commands"))
        .expect("/guard registered when the guild is created");
    assert_eq!(registration.method, "PUT");
    assert_eq!(registration.body[0]["name"], "guard");
    assert_eq!(registration.body[0]["default_member_permissions"], "32");

    let (id, payload) = interaction(
        fake,
        2,
        "32",
        json!([{"type": 2, "name": "rule-set", "options": [{"type": 1, "name": "keywords-add",
            "options": [{"type": 3, "name": "rule", "value": "ads"},
                        {"type": 3, "name": "keywords", "value": "代购"}]}]}]),
    );
    fake.dispatch("INTERACTION_CREATE", payload);
    let event = running.next("the command").await;
    let EventKind::Command { text, reply_to } = &event.kind else {
        panic!("{event:?}")
    };
    assert_eq!(text, "!guard rule set ads keywords add 代购");
    assert_eq!(event.member.role, Role::Admin, "Manage Guild administers");
    let executor = running.discord.executor();
    executor
        .reply(reply_to, &Reply::text("rule ads: 1 keyword added"))
        .await
        .unwrap();
    let answer = fake
        .actions()
        .into_iter()
        .find(|c| c.path == format!("/interactions/{id}/token-{id}/callback"))
        .expect("answered");
    assert_eq!(answer.body["type"], 4);
    assert_eq!(
        answer.body["data"]["flags"], 0,
        "a change is shown to everyone"
    );
    assert_eq!(answer.body["data"]["content"], "rule ads: 1 keyword added");

    // Slow: deferred privately after 2 s, then the answer edits it and, being public, is
    // also posted for everyone.
    let (slow, payload) = interaction(
        fake,
        2,
        "32",
        json!([{"type": 1, "name": "stats", "options": []}]),
    );
    fake.dispatch("INTERACTION_CREATE", payload);
    let event = running.next("the slow command").await;
    let EventKind::Command { reply_to, .. } = &event.kind else {
        panic!("{event:?}")
    };
    fake.wait_for_calls(Duration::from_secs(5), |calls| {
        calls
            .iter()
            .any(|c| c.path == format!("/interactions/{slow}/token-{slow}/callback"))
    })
    .await
    .expect("a deferral within 3 s");
    executor
        .reply(reply_to, &Reply::text("a public answer"))
        .await
        .unwrap();
    let calls = fake.actions();
    let slow_calls: Vec<(String, Value)> = calls
        .iter()
        .filter(|c| c.path.contains(&format!("token-{slow}")))
        .map(|c| (c.route(), c.body.clone()))
        .collect();
    assert_eq!(
        slow_calls,
        [
            (
                format!("POST /interactions/{slow}/token-{slow}/callback"),
                json!({"type": 5, "data": {"flags": 64}})
            ),
            (
                format!("PATCH /webhooks/{APP_ID}/token-{slow}/messages/@original"),
                json!({"content": "a public answer", "allowed_mentions": {"parse": []}})
            ),
            (
                format!("POST /webhooks/{APP_ID}/token-{slow}"),
                json!({"content": "a public answer", "allowed_mentions": {"parse": []}})
            ),
        ]
    );

    // Rule ids are suggested as they are typed.
    let (typing, payload) = interaction(
        fake,
        4,
        "32",
        json!([{"type": 2, "name": "rule", "options": [{"type": 1, "name": "show",
            "options": [{"type": 3, "name": "rule", "value": "a", "focused": true}]}]}]),
    );
    fake.dispatch("INTERACTION_CREATE", payload);
    let calls = fake
        .wait_for_calls(Duration::from_secs(5), |calls| {
            calls
                .iter()
                .any(|c| c.path.contains(&format!("token-{typing}")))
        })
        .await
        .expect("suggestions");
    let suggestions = calls
        .iter()
        .find(|c| c.path.contains(&format!("token-{typing}")))
        .unwrap();
    assert_eq!(
        suggestions.body,
        json!({"type": 8, "data": {"choices": [{"name": "ads", "value": "ads"}, {"name": "adult", "value": "adult"}]}})
    );

    // An expired token: the answer is refused as expired, not retried.
    fake.fail_next(
        "PATCH",
        "/messages/@original",
        404,
        json!({"message": "Unknown Webhook", "code": 10015}),
    );
    let gone = executor
        .reply(reply_to, &Reply::text("too late"))
        .await
        .unwrap_err();
    assert_eq!(gone.kind, AdapterErrorKind::Expired);
    let _ = running.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_shard_range_identifies_as_that_shard_and_warnings_can_go_by_dm() {
    let running = start_with(MODERATION, "shards = \"1-1/2\"\nwarn_by_dm = true\n").await;
    let fake = &running.fake;
    assert_eq!(fake.identifies()[0]["shard"], json!([1, 2]));
    assert!(
        !fake.calls().iter().any(|c| c.path == "/gateway/bot"),
        "an explicit range needs no recommendation"
    );
    let executor = running.discord.executor();
    let warn = request(
        "dm1",
        Action::Warn {
            text: "please stop".to_owned(),
        },
    );
    executor.execute(&warn).await.unwrap();
    let calls = fake.actions();
    let routes: Vec<String> = calls.iter().map(|c| c.route()).collect();
    assert_eq!(routes[0], "POST /users/@me/channels");
    assert_eq!(calls[0].body, json!({"recipient_id": EVE.to_string()}));
    assert!(routes[1].starts_with("POST /channels/") && routes[1].ends_with("/messages"));
    assert_ne!(
        routes[1],
        format!("POST /channels/{CHANNEL}/messages"),
        "not in the channel"
    );
    assert_eq!(calls[1].body["nonce"], format!("{}w", warn.key));
    let _ = running.stop.send(true);
}
