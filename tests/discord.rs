//! `groupguard run` with the Discord adapter against the loopback Discord (REST + gateway):
//! the real serenity client, dispatches played by the fake, and exactly the REST calls the
//! bot makes read back from it.

use std::time::Duration;

use groupguard_core::ports::{ListStore, ViolationStore};
use groupguard_discord::fake::{Call, FakeDiscord, FakeGuild, FakeMember, member_json};
use serde_json::{Value, json};

use crate::bot::{Bot, fresh_dir};

const GUILD: u64 = 1_100_000_000_000_000_001;
const CHANNEL: u64 = 1_200_000_000_000_000_002;
const LOG: u64 = 1_200_000_000_000_000_099;
const OWNER: u64 = 1_300_000_000_000_000_001;
const MODERATOR: u64 = 1_300_000_000_000_000_002;
const EVE: u64 = 1_300_000_000_000_000_005;
const TROLL: u64 = 1_300_000_000_000_000_007;
const LURKER: u64 = 1_300_000_000_000_000_008;
/// Manage Messages, Kick, Ban, Moderate Members, Send Messages, Manage Guild (for AutoMod).
const MODERATION: u64 = 0x2000 | 0x2 | 0x4 | 0x100_0000_0000 | 0x800 | 0x20;

const RULES: &str = "[[rules]]
id = \"ads\"
keywords = { substrings = [\"加我微信\", \"buy followers\"] }
ladder = [\"delete+warn\", \"delete+warn\", \"delete+kick\"]

[[rules]]
id = \"no-video\"
banned_kinds = [\"video\"]
ladder = [\"delete+notify\"]

[[rules]]
id = \"banned\"
blacklist = { on_join = true }
ladder = [\"kick\"]

[[rules]]
id = \"fresh-accounts\"
invites = { refuse_other_orgs = false, min_account_age = \"7d\" }
ladder = [\"kick\"]
";

fn moderator_role() -> u64 {
    GUILD.wrapping_add(MODERATOR % 1_000_000).wrapping_add(7)
}

async fn start() -> (FakeDiscord, Bot) {
    let fake = FakeDiscord::start(vec![FakeGuild {
        id: GUILD,
        name: "club".to_owned(),
        owner: OWNER,
        channel: CHANNEL,
        bot_permissions: MODERATION,
        members: vec![
            FakeMember {
                id: MODERATOR,
                name: "mod".to_owned(),
                permissions: 0x2,
            },
            FakeMember {
                id: LURKER,
                name: "lurker".to_owned(),
                permissions: 0,
            },
        ],
    }])
    .await;
    let dir = fresh_dir();
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args(["config", "import", dir.join("rules.toml").to_str().unwrap()])
        .env("GROUPGUARD_DATA_DIR", dir.join("data"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let sections = format!(
        "[discord]\ntoken = \"fake-token\"\nlog_channel = \"{LOG}\"\napi_base = \"{}\"\ngateway = \"{}\"\n",
        fake.base, fake.gateway
    );
    let mut bot = Bot::new(dir, "", &sections);
    tokio::task::block_in_place(|| bot.spawn());
    (fake, bot)
}

fn author(id: u64) -> Value {
    json!({"id": id.to_string(), "username": format!("user{id}"), "discriminator": "0",
           "global_name": null, "avatar": null})
}

fn message(id: u64, from: u64, roles: &[u64], content: &str) -> Value {
    json!({
        "id": id.to_string(), "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string(),
        "author": author(from), "content": content,
        "timestamp": "2026-11-18T11:06:40.000000+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": [], "pinned": false, "type": 0,
        "member": {"roles": roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
                   "joined_at": "2026-11-01T00:00:00.000000+00:00", "deaf": false,
                   "mute": false, "flags": 0}
    })
}

/// Waits for the calls to satisfy `done`; fails with the calls and the bot's log.
async fn calls_until(
    fake: &FakeDiscord,
    bot: &Bot,
    what: &str,
    done: impl Fn(&[Call]) -> bool,
) -> Vec<Call> {
    match fake.wait_for_calls(Duration::from_secs(15), done).await {
        Ok(calls) => calls,
        Err(calls) => panic!(
            "timed out waiting for {what}\ncalls: {:#?}\nlog:\n{}",
            calls.iter().map(Call::route).collect::<Vec<_>>(),
            bot.log()
        ),
    }
}

fn routes(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::route).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_is_deleted_and_warned_once_even_when_dispatched_twice() {
    let (fake, mut bot) = start().await;
    let spam = fake.snowflake();
    let dispatch = message(spam, EVE, &[], "加我微信 for cheap followers");
    fake.dispatch("MESSAGE_CREATE", dispatch.clone());
    let calls = calls_until(&fake, &bot, "the deletion and the warning", |c| {
        c.len() >= 2
    })
    .await;
    let delete = format!("DELETE /channels/{CHANNEL}/messages/{spam}");
    let post = format!("POST /channels/{CHANNEL}/messages");
    let mut seen = routes(&calls);
    seen.sort();
    assert_eq!(seen, [delete.clone(), post]);
    let delete_call = calls.iter().find(|c| c.route() == delete).unwrap();
    assert_eq!(delete_call.reason.as_deref(), Some("groupguard: rule ads"));
    let warning = &fake.messages()[0];
    assert!(
        warning["content"]
            .as_str()
            .unwrap()
            .starts_with(&format!("<@{EVE}>")),
        "{warning}"
    );
    assert_eq!(warning["enforce_nonce"], true);

    // The same dispatch again (a resumed session replays it): nothing more happens.
    fake.dispatch("MESSAGE_CREATE", dispatch);
    let clean = fake.snowflake();
    fake.dispatch("MESSAGE_CREATE", message(clean, EVE, &[], "hello all"));
    let video = fake.snowflake();
    let mut clip = message(video, EVE, &[], "");
    clip["attachments"] = json!([{"id": "1600000000000000002", "filename": "clip.mp4",
        "size": 1_048_576, "url": "https://cdn.discordapp.com/clip.mp4",
        "proxy_url": "https://media.discordapp.net/clip.mp4", "content_type": "video/mp4"}]);
    fake.dispatch("MESSAGE_CREATE", clip);
    // The video is deleted and the log channel told; the clean message and the replay not.
    let calls = calls_until(&fake, &bot, "the video's deletion and notice", |c| {
        c.len() >= 4
    })
    .await;
    let later: Vec<String> = routes(&calls[2..]);
    assert!(
        later.contains(&format!("DELETE /channels/{CHANNEL}/messages/{video}")),
        "{later:?}"
    );
    assert!(
        later.contains(&format!("POST /channels/{LOG}/messages")),
        "{later:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.actions().len(), 4, "{:?}", routes(&fake.actions()));
    let notice = fake.messages()[1]["content"].as_str().unwrap().to_owned();
    assert!(
        notice.contains("no-video") && notice.contains(&format!("<@{EVE}>")),
        "{notice}"
    );
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_blacklists_and_the_member_is_banned_on_join_a_plain_member_is_refused() {
    let (fake, mut bot) = start().await;
    let command = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(
            command,
            MODERATOR,
            &[moderator_role()],
            &format!("!guard blacklist add discord:{TROLL} raids other servers"),
        ),
    );
    calls_until(&fake, &bot, "the answer", |c| c.len() == 1).await;
    let answer = &fake.messages()[0];
    assert_eq!(
        answer["message_reference"]["message_id"],
        command.to_string()
    );
    assert!(
        answer["content"].as_str().unwrap().contains("blacklist"),
        "{answer}"
    );

    fake.dispatch(
        "GUILD_MEMBER_ADD",
        member_json(TROLL, "troll", None, Some(GUILD)),
    );
    let calls = calls_until(&fake, &bot, "the ban", |c| c.len() == 2).await;
    assert_eq!(
        calls[1].route(),
        format!("PUT /guilds/{GUILD}/bans/{TROLL}")
    );
    assert_eq!(calls[1].body, json!({"delete_message_seconds": 86_400}));

    let refused = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(refused, EVE, &[], "!guard rule delete ads"),
    );
    calls_until(&fake, &bot, "the refusal", |c| c.len() == 3).await;
    let refusal = fake.messages()[1]["content"].as_str().unwrap().to_owned();
    assert!(
        refusal.contains("moderator") || refusal.contains("admin"),
        "{refusal}"
    );
    // The rule still holds.
    let spam = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(spam, EVE, &[], "buy followers here"),
    );
    calls_until(&fake, &bot, "the rule still enforced", |c| {
        c.iter()
            .any(|c| c.route() == format!("DELETE /channels/{CHANNEL}/messages/{spam}"))
    })
    .await;
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_runs_and_a_read_is_answered_privately() {
    let (fake, mut bot) = start().await;
    let id = fake.snowflake();
    fake.dispatch(
        "INTERACTION_CREATE",
        json!({
            "id": id.to_string(), "application_id": "1000000000000000002", "type": 2,
            "token": "slash-token", "version": 1, "guild_id": GUILD.to_string(),
            "channel_id": CHANNEL.to_string(), "locale": "en-US", "entitlements": [],
            "attachment_size_limit": 8_388_608, "authorizing_integration_owners": {},
            "member": {"user": author(OWNER), "roles": [],
                       "joined_at": "2026-11-01T00:00:00.000000+00:00", "deaf": false,
                       "mute": false, "flags": 0, "permissions": "8"},
            "data": {"id": "6", "name": "guard", "type": 1, "options": [
                {"type": 2, "name": "rule", "options": [{"type": 1, "name": "list", "options": []}]}]}
        }),
    );
    let calls = calls_until(&fake, &bot, "the answer", |c| {
        c.iter().any(|c| c.path.contains("slash-token"))
    })
    .await;
    let answer = calls
        .iter()
        .find(|c| c.path.contains("slash-token"))
        .unwrap();
    assert_eq!(
        answer.route(),
        format!("POST /interactions/{id}/slash-token/callback")
    );
    assert_eq!(answer.body["type"], 4);
    assert_eq!(
        answer.body["data"]["flags"], 64,
        "a read is for the asker's eyes"
    );
    let content = answer.body["data"]["content"].as_str().unwrap();
    assert!(
        content.contains("ads") && content.contains("no-video"),
        "{content}"
    );
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_made_today_is_removed_on_join_an_old_one_stays() {
    let (fake, mut bot) = start().await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A Discord id carries its account's creation time (ms since 2015) in its top bits.
    let fresh = (now_ms - 1_420_070_400_000 - 3_600_000) << 22;
    fake.dispatch(
        "GUILD_MEMBER_ADD",
        member_json(EVE, "eve", None, Some(GUILD)),
    );
    fake.dispatch(
        "GUILD_MEMBER_ADD",
        member_json(fresh, "fresh", None, Some(GUILD)),
    );
    let calls = calls_until(&fake, &bot, "the new account's removal", |c| !c.is_empty()).await;
    assert_eq!(
        calls[0].route(),
        format!("DELETE /guilds/{GUILD}/members/{fresh}")
    );
    assert_eq!(
        calls[0].reason.as_deref(),
        Some("groupguard: rule fresh-accounts")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.actions().len(),
        1,
        "the old account stays: {:?}",
        routes(&fake.actions())
    );
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderators_kick_found_in_the_audit_log_blacklists_with_manual_removals_on() {
    let (fake, mut bot) = start().await;
    let setting = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(setting, OWNER, &[], "!guard settings manual-removals org"),
    );
    calls_until(&fake, &bot, "the setting's answer", |c| c.len() == 1).await;
    // A moderator kicks Eve by hand; Discord logs it and tells the bot she is gone.
    fake.audit(20, MODERATOR, EVE);
    fake.dispatch(
        "GUILD_MEMBER_REMOVE",
        json!({"guild_id": GUILD.to_string(), "user": author(EVE)}),
    );
    // She comes back: now blacklisted by the moderator's hand, she is banned.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.dispatch(
        "GUILD_MEMBER_ADD",
        member_json(EVE, "eve", None, Some(GUILD)),
    );
    let calls = calls_until(&fake, &bot, "the ban on her return", |c| c.len() == 2).await;
    assert_eq!(calls[1].route(), format!("PUT /guilds/{GUILD}/bans/{EVE}"));
    bot.stop();
    let store = bot.store().await;
    let entries = store.blacklist_page(None, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].source.to_string(),
        format!("moderator:discord:{MODERATOR}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_member_already_inside_is_banned_and_unbanned_when_removed_from_the_list() {
    let (fake, mut bot) = start().await;
    let add = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(
            add,
            MODERATOR,
            &[moderator_role()],
            &format!("!guard blacklist add discord:{LURKER} selling accounts"),
        ),
    );
    let calls = calls_until(&fake, &bot, "the ban of the member inside", |c| {
        c.iter()
            .any(|c| c.route() == format!("PUT /guilds/{GUILD}/bans/{LURKER}"))
    })
    .await;
    let ban = calls
        .iter()
        .find(|c| c.route() == format!("PUT /guilds/{GUILD}/bans/{LURKER}"))
        .unwrap();
    assert_eq!(
        ban.reason.as_deref(),
        Some("groupguard: blacklisted: selling accounts")
    );
    // A ban someone else made is not groupguard's to lift.
    fake.ban_by_hand(TROLL, "raiding");
    let remove = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(
            remove,
            MODERATOR,
            &[moderator_role()],
            &format!("!guard blacklist remove discord:{LURKER}"),
        ),
    );
    calls_until(&fake, &bot, "the unban", |c| {
        c.iter()
            .any(|c| c.route() == format!("DELETE /guilds/{GUILD}/bans/{LURKER}"))
    })
    .await;
    assert_eq!(fake.bans(), [(TROLL, Some("raiding".to_owned()))]);
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_sends_its_notices_to_its_own_channel() {
    let (fake, mut bot) = start().await;
    let own = 1_200_000_000_000_000_077u64;
    let set = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(set, OWNER, &[], &format!("!guard group notices <#{own}>")),
    );
    calls_until(&fake, &bot, "the answer", |c| c.len() == 1).await;
    let video = fake.snowflake();
    let mut clip = message(video, EVE, &[], "");
    clip["attachments"] = json!([{"id": "1600000000000000003", "filename": "clip.mp4",
        "size": 1_048_576, "url": "https://cdn.discordapp.com/clip.mp4",
        "proxy_url": "https://media.discordapp.net/clip.mp4", "content_type": "video/mp4"}]);
    fake.dispatch("MESSAGE_CREATE", clip);
    let calls = calls_until(&fake, &bot, "the notice", |c| c.len() == 3).await;
    let notices: Vec<String> = routes(&calls)
        .into_iter()
        .filter(|r| r.ends_with("/messages") && r.starts_with("POST"))
        .collect();
    assert_eq!(
        notices,
        [
            format!("POST /channels/{CHANNEL}/messages"),
            format!("POST /channels/{own}/messages")
        ],
        "the answer in the channel, the notice in the guild's own log channel"
    );
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_rules_are_mirrored_into_automod_its_blocks_climb_the_ladder_and_off_removes_them()
{
    let (fake, mut bot) = start().await;
    let human = fake.add_automod_rule(GUILD, "No invites");
    let on = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(on, OWNER, &[], "!guard group automod on"),
    );
    let wait = |what: &'static str, done: fn(&[Value]) -> bool| {
        let fake = fake.clone();
        let log = bot.log();
        async move {
            let started = std::time::Instant::now();
            while !done(&fake.automod_rules()) {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "timed out waiting for {what}: {:#?}\n{log}",
                    fake.automod_rules()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            fake.automod_rules()
        }
    };
    let rules = wait("the mirrored rule", |r| r.len() == 2).await;
    let mirrored = rules
        .iter()
        .find(|r| r["name"] == "groupguard: ads")
        .unwrap();
    assert_eq!(
        mirrored["trigger_metadata"]["keyword_filter"],
        json!(["*加我微信*", "*buy followers*"])
    );
    assert_eq!(
        mirrored["actions"][0]["type"], 1,
        "Discord blocks the message"
    );
    let automod_id = mirrored["id"].as_str().unwrap().to_owned();

    // A rule edited in groupguard is edited in AutoMod.
    let add = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(add, OWNER, &[], "!guard rule set ads keywords add 代购"),
    );
    wait("the edited rule", |r| {
        r.iter().any(|r| {
            r["name"] == "groupguard: ads"
                && r["trigger_metadata"]["keyword_filter"]
                    .as_array()
                    .is_some_and(|k| k.len() == 3)
        })
    })
    .await;

    // Two blocked messages by Eve: recorded as violations, the ladder warns twice, and
    // nothing is deleted (there is nothing to delete).
    for _ in 0..2 {
        fake.dispatch(
            "AUTO_MODERATION_ACTION_EXECUTION",
            json!({"guild_id": GUILD.to_string(), "action": {"type": 1, "metadata": {}},
                   "rule_id": automod_id, "rule_trigger_type": 1,
                   "user_id": EVE.to_string(), "channel_id": CHANNEL.to_string(),
                   "content": "加我微信 now", "matched_keyword": "*加我微信*",
                   "matched_content": "加我微信"}),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = calls_until(&fake, &bot, "two warnings", |c| {
        c.iter()
            .filter(|c| {
                c.route() == format!("POST /channels/{CHANNEL}/messages")
                    && c.body["content"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&format!("<@{EVE}>")))
            })
            .count()
            == 2
    })
    .await;
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "DELETE" && c.path.contains("/messages/")),
        "{:?}",
        routes(&calls)
    );
    let warning = calls
        .iter()
        .find(|c| {
            c.body["content"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("<@{EVE}>")))
        })
        .unwrap();
    assert!(
        warning.body.get("message_reference").is_none(),
        "{}",
        warning.body
    );

    // Off: the bot's AutoMod rule goes, the one a person made stays.
    let off = fake.snowflake();
    fake.dispatch(
        "MESSAGE_CREATE",
        message(off, OWNER, &[], "!guard group automod off"),
    );
    let rules = wait("the mirrored rule removed", |r| r.len() == 1).await;
    assert_eq!(rules[0]["id"], human.to_string());
    tokio::task::block_in_place(|| bot.stop());
    let store = bot.store().await;
    let violations = store
        .violations(&groupguard_core::ports::ViolationQuery::default())
        .await
        .unwrap();
    assert_eq!(violations.len(), 2, "each block is a violation");
}
