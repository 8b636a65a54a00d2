//! Time to action on Discord through the loopback Discord: the release `groupguard run` with
//! the real serenity client, one spam message at a time from its MESSAGE_CREATE dispatch to
//! the DELETE request reaching the fake; then a burst of messages (one in twenty spam) as fast
//! as the fake's gateway sends them, and how long until every spam message is deleted.
//!
//! `cargo bench -p groupguard --bench discord_action`

use std::time::{Duration, Instant};

use groupguard_discord::fake::{FakeDiscord, FakeGuild};

#[allow(dead_code)]
mod support;
use serde_json::{Value, json};

const GUILD: u64 = 1_100_000_000_000_000_001;
const CHANNEL: u64 = 1_200_000_000_000_000_002;
/// Manage Messages, Kick, Ban, Moderate Members, Send Messages.
const MODERATION: u64 = 0x2000 | 0x2 | 0x4 | 0x100_0000_0000 | 0x800;

fn main() {
    let runtime = support::runtime();
    runtime.block_on(run());
}

fn message(id: u64, author: u64, content: &str) -> Value {
    json!({
        "id": id.to_string(), "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string(),
        "author": {"id": author.to_string(), "username": "someone", "discriminator": "0",
                   "global_name": null, "avatar": null},
        "content": content, "timestamp": "2026-11-18T11:06:40.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
        "member": {"roles": [], "joined_at": "2026-11-01T00:00:00.000000+00:00",
                   "deaf": false, "mute": false, "flags": 0}
    })
}

/// When the fake received the deletion of `message`, waiting up to a minute.
async fn deleted_at(fake: &FakeDiscord, message: u64) -> Duration {
    let path = format!("/channels/{CHANNEL}/messages/{message}");
    let started = Instant::now();
    loop {
        if let Some(call) = fake
            .calls()
            .iter()
            .rev()
            .find(|c| c.method == "DELETE" && c.path == path)
        {
            return call.at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no deletion in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run() {
    let (samples, burst) = if support::full_run() {
        (300, 20_000)
    } else {
        (3, 100)
    };
    let fake = FakeDiscord::start(vec![FakeGuild {
        id: GUILD,
        name: "club".to_owned(),
        owner: 1,
        channel: CHANNEL,
        bot_permissions: MODERATION,
        members: Vec::new(),
    }])
    .await;
    let dir = support::fresh_dir("discord-bench");
    // Each spam message from its own author would climb the ladder otherwise: delete only.
    let rules =
        "[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\nladder = [\"delete\"]\n";
    support::import_rules(&dir, None, rules);
    let port = support::free_port();
    let config = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
         [rate_limits]\ndiscord = 100000\n[discord]\ntoken = \"bench\"\napi_base = \"{}\"\ngateway = \"{}\"\n",
        dir.join("data").display(),
        fake.base,
        fake.gateway
    );
    let process = support::start_bot(&dir, &config);
    let started = Instant::now();
    while fake.identifies().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bot did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let id = fake.snowflake();
        let sent = fake.elapsed();
        fake.dispatch(
            "MESSAGE_CREATE",
            message(id, 2_000_000 + i as u64, &format!("代购 {i}")),
        );
        latencies.push(deleted_at(&fake, id).await - sent);
    }

    let sent = fake.elapsed();
    let mut last_spam = 0;
    for i in 0..burst {
        let id = fake.snowflake();
        let text = if i % 20 == 0 {
            last_spam = id;
            format!("代购 {i}")
        } else {
            format!("hello {i}")
        };
        fake.dispatch("MESSAGE_CREATE", message(id, 3_000_000 + i as u64, &text));
    }
    let dispatched = fake.elapsed() - sent;
    let last = deleted_at(&fake, last_spam).await - sent;
    let spam_deleted = fake
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE" && c.at >= sent)
        .count();

    support::stop_bot(process);
    let _ = std::fs::remove_dir_all(&dir);

    support::percentiles(
        "MESSAGE_CREATE dispatched → DELETE received",
        "messages",
        latencies,
    );
    println!(
        "burst: {burst} messages dispatched in {:.2} s; the last spam message deleted {:.2} s after the first dispatch ({:.0} messages/s judged, {spam_deleted} deletions)",
        dispatched.as_secs_f64(),
        last.as_secs_f64(),
        burst as f64 / last.as_secs_f64()
    );
}
