//! `groupguard run` with the Matrix adapter against a real Synapse (started by `scripts/test`,
//! which exports `SYNAPSE_URL` and `SYNAPSE_SECRET`): real users made by shared-secret
//! registration talk in real rooms, and the bot moderates them.

use std::time::{Duration, Instant};

use groupguard_matrix::testing::{Homeserver, User, encode};
use serde_json::{Value, json};

use crate::bot::{Bot, fresh_dir, http_get};

fn redacted(event: &Value) -> bool {
    event["unsigned"]["redacted_because"].is_object()
}

/// Notices from `bot` in the room's latest events.
async fn notices(reader: &User, room: &str, bot: &str) -> Vec<Value> {
    reader
        .messages(room)
        .await
        .into_iter()
        .filter(|e| e["sender"] == bot && e["content"]["msgtype"] == "m.notice")
        .collect()
}

/// Waits until `done` holds, up to 30 seconds.
async fn wait_until<F, Fut>(what: &str, bot: &Bot, done: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}\nlog:\n{}", bot.log());
}

const RULES: &str = "[[rules]]
id = \"ads\"
keywords = { substrings = [\"代购\", \"buy followers\"] }
ladder = [\"delete+warn\", \"delete+warn\", \"delete+warn\", \"delete+kick\"]

[[rules]]
id = \"no-images\"
banned_kinds = [\"image\"]
ladder = [\"delete\"]

[[rules]]
id = \"banned\"
blacklist = { on_join = true }
ladder = [\"kick\"]

[[rules]]
id = \"outsiders\"
invites = { refuse_other_orgs = true, allow_orgs = [\"partner.example\"] }
ladder = [\"kick\"]

[[rules]]
id = \"calm-down\"
keywords = { substrings = [\"all caps rage\"] }
ladder = [\"timeout:3s\"]
";

/// A bot logged in as `bot`, with [`RULES`] imported, `extra` added to `[matrix]`.
fn start_bot(server: &Homeserver, bot: &User, extra: &str) -> Bot {
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
        "[matrix]\nhomeserver = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n{extra}\n",
        server.url, bot.id, bot.password
    );
    let mut process = Bot::new(dir, "", &sections);
    tokio::task::block_in_place(|| process.spawn());
    process
}

/// A room (version 10) owned by `owner` with the bot (at `bot_level`) and `members` in it.
async fn room_with(
    owner: &User,
    bot: &User,
    bot_level: u32,
    members: &[(&User, u32)],
    process: &Bot,
) -> String {
    versioned_room_with("10", owner, bot, bot_level, members, process).await
}

/// [`room_with`] in a given room version.
async fn versioned_room_with(
    version: &str,
    owner: &User,
    bot: &User,
    bot_level: u32,
    members: &[(&User, u32)],
    process: &Bot,
) -> String {
    let mut levels = json!({ &bot.id: bot_level });
    for (member, level) in members {
        levels[&member.id] = json!(level);
    }
    let room = owner.create_room(&[&bot.id], levels, version).await;
    wait_until("the bot to join", process, || async {
        owner.membership(&room, &bot.id).await.as_deref() == Some("join")
    })
    .await;
    for (member, _) in members {
        owner.invite(&room, &member.id).await;
        assert_eq!(member.join(&room).await.0, 200);
    }
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_is_redacted_and_warned_and_the_fourth_violation_kicks() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[(&eve, 0)], &process).await;

    let first = eve.say(&room, "cheap 代购 here").await;
    wait_until("the redaction", &process, || async {
        redacted(&owner.event(&room, &first).await)
    })
    .await;
    wait_until("the warning", &process, || async {
        !notices(&owner, &room, &bot.id).await.is_empty()
    })
    .await;
    let warning = &notices(&owner, &room, &bot.id).await[0];
    assert_eq!(
        warning["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        first.as_str()
    );
    assert_eq!(
        warning["content"]["m.mentions"]["user_ids"][0],
        eve.id.as_str()
    );

    for text in ["buy followers now", "more 代购", "last 代购"] {
        eve.say(&room, text).await;
    }
    wait_until("the kick", &process, || async {
        owner.membership(&room, &eve.id).await.as_deref() == Some("leave")
    })
    .await;
    let kick = owner
        .messages(&room)
        .await
        .into_iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == eve.id.as_str());
    let kick = kick.expect("the kick event");
    assert_eq!(kick["sender"], bot.id.as_str());
    assert_eq!(kick["content"]["reason"], "groupguard: rule ads");
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_in_a_room_that_bans_them_and_edits_that_add_a_keyword_are_redacted() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[(&eve, 0)], &process).await;

    let image = eve
        .send(&room, json!({ "msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/cat", "info": { "mimetype": "image/png", "size": 100 } }))
        .await;
    let clean = eve.say(&room, "hello everyone").await;
    eve.send(
        &room,
        json!({ "msgtype": "m.text", "body": "* hello, buy followers here",
                "m.new_content": { "msgtype": "m.text", "body": "hello, buy followers here" },
                "m.relates_to": { "rel_type": "m.replace", "event_id": clean } }),
    )
    .await;
    wait_until("the image redacted", &process, || async {
        redacted(&owner.event(&room, &image).await)
    })
    .await;
    wait_until("the edited message redacted", &process, || async {
        redacted(&owner.event(&room, &clean).await)
    })
    .await;
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_s_command_works_and_a_plain_member_s_is_refused() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, moderator, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("mod").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[(&moderator, 50), (&eve, 0)], &process).await;

    let asked = moderator.say(&room, "!guard rule list").await;
    wait_until("the answer", &process, || async {
        !notices(&owner, &room, &bot.id).await.is_empty()
    })
    .await;
    let answer = &notices(&owner, &room, &bot.id).await[0];
    assert_eq!(
        answer["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        asked.as_str()
    );
    let body = answer["content"]["body"].as_str().unwrap();
    assert!(body.contains("ads") && body.contains("no-images"), "{body}");
    assert!(
        answer["content"]["formatted_body"]
            .as_str()
            .unwrap()
            .contains("ads")
    );

    eve.say(&room, "!guard rule delete ads").await;
    wait_until("the refusal", &process, || async {
        notices(&owner, &room, &bot.id).await.len() == 2
    })
    .await;
    let refusal = notices(&owner, &room, &bot.id).await[0]["content"]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(refusal.contains("only admins"), "{refusal}");
    // The rule is still there: a keyword is still redacted.
    let spam = eve.say(&room, "代购").await;
    wait_until("the redaction", &process, || async {
        redacted(&owner.event(&room, &spam).await)
    })
    .await;
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redact_power_the_management_room_gets_one_notice_naming_the_level() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve, stranger) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
        server.register("stranger").await,
    );
    let management = owner.create_room(&[&bot.id], json!({}), "10").await;
    let mut process = start_bot(
        &server,
        &bot,
        &format!(
            "management_room = \"{management}\"\ninvite_from = [\"{}\"]",
            owner.id
        ),
    );
    let room = room_with(&owner, &bot, 0, &[(&eve, 0)], &process).await;
    let spam = eve.say(&room, "代购代购").await;
    wait_until("the notice", &process, || async {
        !notices(&owner, &management, &bot.id).await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = notices(&owner, &management, &bot.id).await;
    let bodies: Vec<&str> = sent
        .iter()
        .filter_map(|n| n["content"]["body"].as_str())
        .collect();
    let redact: Vec<&&str> = bodies
        .iter()
        .filter(|b| b.contains("delete message"))
        .collect();
    assert_eq!(redact.len(), 1, "{bodies:#?}");
    assert!(
        redact[0].contains("power level 50 (to redact others' messages)"),
        "{}",
        redact[0]
    );
    assert!(redact[0].contains("evidence: `代购`"), "{}", redact[0]);
    assert!(!redacted(&owner.event(&room, &spam).await));

    // An invitation from someone not in invite_from is declined.
    let elsewhere = stranger.create_room(&[&bot.id], json!({}), "10").await;
    wait_until("the invitation declined", &process, || async {
        stranger.membership(&elsewhere, &bot.id).await.as_deref() == Some("leave")
    })
    .await;
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_user_is_banned_on_join_and_cannot_come_back() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, troll) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("troll").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[], &process).await;
    owner
        .say(
            &room,
            &format!("!guard blacklist add matrix:{} raids other rooms", troll.id),
        )
        .await;
    wait_until("the blacklist answer", &process, || async {
        !notices(&owner, &room, &bot.id).await.is_empty()
    })
    .await;
    owner.invite(&room, &troll.id).await;
    assert_eq!(troll.join(&room).await.0, 200);
    wait_until("the ban", &process, || async {
        owner.membership(&room, &troll.id).await.as_deref() == Some("ban")
    })
    .await;
    let (status, refusal) = troll.join(&room).await;
    assert_eq!(status, 403, "{refusal}");
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_room_version_12_the_creator_owns_the_room_and_moderation_works() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = versioned_room_with("12", &owner, &bot, 100, &[(&eve, 0)], &process).await;
    assert!(
        !room.contains(':'),
        "room ids have no server part from version 12: {room}"
    );
    let spam = eve.say(&room, "代购 cheap").await;
    wait_until("the redaction", &process, || async {
        redacted(&owner.event(&room, &spam).await)
    })
    .await;
    // The creator, absent from the power levels' users, is the owner: an admin command works.
    owner.say(&room, "!guard rule disable ads").await;
    wait_until("the answer", &process, || async {
        notices(&owner, &room, &bot.id).await.iter().any(|n| {
            n["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("disabled"))
        })
    })
    .await;
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_one_sync_is_moderated_in_full() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[(&eve, 0)], &process).await;
    // While the bot is down, 250 messages arrive: its next sync holds the last 100.
    tokio::task::block_in_place(|| process.stop());
    let mut spam = Vec::new();
    for i in 0..250 {
        let text = if i % 10 == 3 {
            format!("代购 {i}")
        } else {
            format!("hello {i}")
        };
        let id = eve.say(&room, &text).await;
        if i % 10 == 3 {
            spam.push(id);
        }
    }
    tokio::task::block_in_place(|| process.spawn());
    for id in &spam {
        wait_until("every spam message redacted", &process, || async {
            redacted(&owner.event(&room, id).await)
        })
        .await;
    }
    assert_eq!(spam.len(), 25);
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_mutes_and_a_restart_mid_timeout_still_restores_the_level() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[(&eve, 0)], &process).await;
    eve.say(&room, "ALL CAPS RAGE").await;
    wait_until("the timeout", &process, || async {
        owner.power_level(&room, &eve.id).await == Some(-1)
    })
    .await;
    let (status, _) = eve
        .call(
            reqwest::Method::PUT,
            &format!("/rooms/{}/send/m.room.message/muted1", encode(&room)),
            Some(json!({ "msgtype": "m.text", "body": "can I talk?" })),
        )
        .await;
    assert_eq!(status, 403, "a muted member cannot post");
    // Down across the end of the timeout: the level comes back when the bot does.
    tokio::task::block_in_place(|| process.stop());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(owner.power_level(&room, &eve.id).await, Some(-1));
    tokio::task::block_in_place(|| process.spawn());
    wait_until("the level restored", &process, || async {
        owner.power_level(&room, &eve.id).await.is_none()
    })
    .await;
    eve.say(&room, "thanks").await;
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_policy_list_bans_and_lifts_and_the_own_blacklist_is_published() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, spammer, troll, lurker) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("spamwave").await,
        server.register("troll").await,
        server.register("lurker").await,
    );
    // A Draupnir-style list someone else keeps, and the room groupguard publishes to.
    let follows = owner.create_room(&[&bot.id], json!({}), "10").await;
    let publishes = owner
        .create_room(&[&bot.id], json!({ &bot.id: 50 }), "10")
        .await;
    let server_name = spammer.id.split_once(':').unwrap().1;
    let glob = format!("@spamwave{}x*:{server_name}", std::process::id());
    let rule_key = format!("rule:{glob}");
    owner
        .set_state(
            &follows,
            "m.policy.rule.user",
            &rule_key,
            json!({ "entity": glob, "recommendation": "m.ban", "reason": "spam wave" }),
        )
        .await;
    let mut process = start_bot(
        &server,
        &bot,
        &format!("policy_rooms = [\"{follows}\"]\npolicy_room = \"{publishes}\""),
    );
    let room = room_with(&owner, &bot, 100, &[(&lurker, 0)], &process).await;

    // A rule added while the bot runs bans a member who is already in the room.
    owner
        .set_state(
            &follows,
            "m.policy.rule.user",
            &format!("rule:{}", lurker.id),
            json!({ "entity": lurker.id, "recommendation": "m.ban", "reason": "dm spam" }),
        )
        .await;
    wait_until("the member already inside banned", &process, || async {
        owner.membership(&room, &lurker.id).await.as_deref() == Some("ban")
    })
    .await;

    // The list's glob bans a user the list never named.
    owner.invite(&room, &spammer.id).await;
    assert_eq!(spammer.join(&room).await.0, 200);
    wait_until("the ban from the followed list", &process, || async {
        owner.membership(&room, &spammer.id).await.as_deref() == Some("ban")
    })
    .await;
    assert_eq!(spammer.join(&room).await.0, 403);

    // The list withdraws the rule: the bot lifts its ban and the user may come back.
    owner
        .set_state(&follows, "m.policy.rule.user", &rule_key, json!({}))
        .await;
    wait_until("the ban lifted", &process, || async {
        owner.membership(&room, &spammer.id).await.as_deref() == Some("leave")
    })
    .await;
    owner.invite(&room, &spammer.id).await;
    assert_eq!(spammer.join(&room).await.0, 200);

    // groupguard's own entries are published for other bots; followed ones are not.
    owner
        .say(
            &room,
            &format!("!guard blacklist add matrix:{} raids other rooms", troll.id),
        )
        .await;
    let troll_key = format!("rule:{}", troll.id);
    wait_until("the published ban", &process, || async {
        owner
            .state(&publishes, "m.policy.rule.user", &troll_key)
            .await
            .is_some()
    })
    .await;
    assert_eq!(
        owner
            .state(&publishes, "m.policy.rule.user", &troll_key)
            .await
            .unwrap(),
        json!({ "entity": troll.id, "recommendation": "m.ban", "reason": "raids other rooms" })
    );
    assert_eq!(
        owner
            .state(&publishes, "m.policy.rule.user", &rule_key)
            .await,
        None
    );
    owner
        .say(
            &room,
            &format!("!guard blacklist remove matrix:{}", troll.id),
        )
        .await;
    wait_until("the published ban withdrawn", &process, || async {
        owner
            .state(&publishes, "m.policy.rule.user", &troll_key)
            .await
            .is_some_and(|content| content == json!({}))
    })
    .await;
    assert_eq!(
        owner.membership(&room, &spammer.id).await.as_deref(),
        Some("join"),
        "the lifted list entry stays lifted"
    );
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_is_moderated_and_what_cannot_be_decrypted_is_logged() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[(&eve, 0)], &process).await;
    owner
        .set_state(
            &room,
            "m.room.encryption",
            "",
            json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
        )
        .await;
    let device = eve.encrypting_device(&fresh_dir().join("eve")).await;

    let spam = device.say(&room, "cheap 代购 here").await;
    let clean = device.say(&room, "see you at lunch").await;
    assert_eq!(
        owner.event(&room, &spam).await["type"],
        "m.room.encrypted",
        "the homeserver saw only ciphertext"
    );
    wait_until("the encrypted spam redacted", &process, || async {
        redacted(&owner.event(&room, &spam).await)
    })
    .await;
    assert!(!redacted(&owner.event(&room, &clean).await));

    // A message encrypted with a key the bot never got is counted and logged, not dropped
    // without a word.
    owner
        .send_event(
            &room,
            "m.room.encrypted",
            json!({ "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnA",
                     "sender_key": "x", "device_id": "NOPE", "session_id": "unknown-session" }),
        )
        .await;
    wait_until("the undecryptable event logged", &process, || async {
        process
            .log()
            .contains("an encrypted event could not be decrypted and was not judged")
    })
    .await;
    let metrics = http_get(process.port, "/metrics").unwrap();
    assert!(
        metrics.contains(
            r#"groupguard_unjudged_events_total{platform="matrix",reason="undecryptable"} 1"#
        ),
        "{metrics}"
    );
    tokio::task::block_in_place(|| process.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_a_homeserver_outside_the_allow_list_is_removed_on_join() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (owner, bot, eve) = (
        server.register("owner").await,
        server.register("guard").await,
        server.register("eve").await,
    );
    let mut process = start_bot(&server, &bot, "");
    let room = room_with(&owner, &bot, 100, &[], &process).await;
    // The room belongs to acme.example; every user of this test homeserver is an outsider.
    owner.say(&room, "!guard group org acme.example").await;
    wait_until("the answer", &process, || async {
        notices(&owner, &room, &bot.id).await.iter().any(|n| {
            n["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .contains("belongs to acme.example")
        })
    })
    .await;
    owner.invite(&room, &eve.id).await;
    assert_eq!(eve.join(&room).await.0, 200);
    wait_until("the outsider removed", &process, || async {
        owner.membership(&room, &eve.id).await.as_deref() == Some("leave")
    })
    .await;

    // Their homeserver allowed: they may stay.
    let home = eve.id.split_once(':').unwrap().1;
    owner
        .say(
            &room,
            &format!("!guard rule set outsiders orgs allow add {home}"),
        )
        .await;
    wait_until("the allow-list changed", &process, || async {
        notices(&owner, &room, &bot.id).await.len() >= 2
    })
    .await;
    owner.invite(&room, &eve.id).await;
    assert_eq!(eve.join(&room).await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        owner.membership(&room, &eve.id).await.as_deref(),
        Some("join"),
        "{}",
        process.log()
    );
    tokio::task::block_in_place(|| process.stop());
}
