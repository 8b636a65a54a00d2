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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
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

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: {} messages, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}

async fn run() {
    let Some(server) = Homeserver::from_env() else {
        return;
    };
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants a quick run.
    let full = std::env::args().any(|a| a == "--bench");
    let (samples, burst) = if full { (300, 1000) } else { (3, 20) };
    let owner = server.register("owner").await;
    let bot = server.register("guard").await;
    let senders = [
        server.register("eve").await,
        server.register("mallory").await,
        server.register("trudy").await,
        server.register("oscar").await,
    ];

    let dir = std::env::temp_dir().join(format!("groupguard-matrix-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    // One spam message per sender at a time would climb the ladder: delete only, every time.
    let rules =
        "[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\nladder = [\"delete\"]\n";
    std::fs::write(dir.join("rules.toml"), rules).expect("the rules");
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args([
            "config",
            "import",
            dir.join("rules.toml").to_str().expect("a path"),
        ])
        .env("GROUPGUARD_DATA_DIR", dir.join("data"))
        .env_remove("DATABASE_URL")
        .output()
        .expect("the import runs");
    assert!(imported.status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let config = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
         [rate_limits]\nmatrix = 1000\n[matrix]\nhomeserver = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n",
        dir.join("data").display(),
        server.url,
        bot.id,
        bot.password
    );
    std::fs::write(dir.join("config.toml"), config).expect("the config");
    let mut process = std::process::Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args([
            "run",
            "--config",
            dir.join("config.toml").to_str().expect("a path"),
        ])
        .env_remove("DATABASE_URL")
        .stderr(std::fs::File::create(dir.join("log")).expect("a log file"))
        .spawn()
        .expect("the bot starts");

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

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status();
    let _ = process.wait();
    let _ = std::fs::remove_dir_all(&dir);

    percentiles("message sent → redaction seen by the sender", latencies);
    println!(
        "burst: {burst} messages from 4 senders sent in {:.2} s ({:.0} msg/s into Synapse); all {} spam messages redacted {:.2} s after the first was sent",
        sending.as_secs_f64(),
        burst as f64 / sending.as_secs_f64(),
        spam.len(),
        all_redacted.as_secs_f64()
    );
}
