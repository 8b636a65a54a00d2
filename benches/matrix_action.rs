//! Time to action on Matrix against a local Synapse (`scripts/synapse-test-server.sh start`,
//! then `eval "$(scripts/synapse-test-server.sh env)"`): the release `groupguard run`, one
//! message at a time from sending it to its redaction being visible to the sender; then a
//! burst from four senders as fast as Synapse takes them, and how long the bot needs to
//! redact every spam message in it.
//!
//! `cargo bench -p groupguard --bench matrix_action`

use std::sync::Arc;
use std::time::{Duration, Instant};

use groupguard_matrix::testing::{Homeserver, User};
use serde_json::{Value, json};

#[allow(dead_code)]
mod support;

fn main() {
    let runtime = support::runtime();
    runtime.block_on(run());
}

fn redacted(event: &Value) -> bool {
    event["unsigned"]["redacted_because"].is_object()
}

async fn until_redacted(user: &User, room: &str, id: &str, since: Instant) -> Duration {
    loop {
        if redacted(&user.event(room, id).await) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "no redaction in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn run() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    let (samples, burst) = if support::full_run() {
        (300, 1000)
    } else {
        (3, 20)
    };
    let owner = server.register("owner").await;
    let bot = server.register("guard").await;
    let senders = [
        server.register("eve").await,
        server.register("mallory").await,
        server.register("trudy").await,
        server.register("oscar").await,
    ];

    let dir = support::fresh_dir("matrix-bench");
    // One spam message per sender at a time would climb the ladder: delete only, every time.
    let rules =
        "[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\nladder = [\"delete\"]\n";
    support::import_rules(&dir, None, rules);
    let port = support::free_port();
    let config = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
         [rate_limits]\nmatrix = 1000\n[matrix]\nhomeserver = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n",
        dir.join("data").display(),
        server.url,
        bot.id,
        bot.password
    );
    let process = support::start_bot(&dir, &config);

    let mut levels = json!({ &bot.id: 100 });
    for sender in &senders {
        levels[&sender.id] = json!(0);
    }
    let room = owner.create_room(&[&bot.id], levels, "10").await;
    let started = Instant::now();
    while owner.membership(&room, &bot.id).await.as_deref() != Some("join") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bot did not join"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for sender in &senders {
        owner.invite(&room, &sender.id).await;
        assert_eq!(sender.join(&room).await.0, 200);
    }

    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let sender = &senders[i % senders.len()];
        let sent = Instant::now();
        let id = sender.say(&room, &format!("代购 {i}")).await;
        latencies.push(until_redacted(sender, &room, &id, sent).await);
    }

    // A burst: four senders in parallel, one message in ten spam.
    let room = Arc::new(room);
    let senders = Arc::new(senders);
    let sent_at = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|s| {
            let (room, senders) = (Arc::clone(&room), Arc::clone(&senders));
            tokio::spawn(async move {
                let mut spam = Vec::new();
                for i in (s..burst).step_by(4) {
                    let text = if i % 10 == 0 {
                        format!("代购 {i}")
                    } else {
                        format!("hello {i}")
                    };
                    let id = senders[s].say(&room, &text).await;
                    if i % 10 == 0 {
                        spam.push(id);
                    }
                }
                spam
            })
        })
        .collect();
    let mut spam = Vec::new();
    for task in tasks {
        spam.extend(task.await.expect("a sender"));
    }
    let sending = sent_at.elapsed();
    for id in &spam {
        until_redacted(&owner, &room, id, sent_at).await;
    }
    let all_redacted = sent_at.elapsed();

    support::stop_bot(process);
    let _ = std::fs::remove_dir_all(&dir);

    support::percentiles(
        "message sent → redaction seen by the sender",
        "messages",
        latencies,
    );
    println!(
        "burst: {burst} messages from 4 senders sent in {:.2} s ({:.0} msg/s into Synapse); all {} spam messages redacted {:.2} s after the first was sent",
        sending.as_secs_f64(),
        burst as f64 / sending.as_secs_f64(),
        spam.len(),
        all_redacted.as_secs_f64()
    );
}
