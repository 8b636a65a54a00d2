//! `groupguard run` end to end through the test platform: events in through the inbox file,
//! actions out through the outbox file, records in SQLite (and PostgreSQL).

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use groupguard_core::model::Platform;
use groupguard_core::ports::{
    ActionState, AuditStore, ConfigStore, ListStore, ViolationQuery, ViolationStore,
};
use groupguard_sql::SqlStore;
use serde_json::{Value, json};

use crate::bot::{Bot, fresh_dir, http_get};

const RULES: &str = "!guard config import
[[rules]]
id = \"ads\"
keywords = { substrings = [\"代购\", \"加微信\"] }
ladder = [\"delete+warn\", \"kick\"]
";

/// [`RULES`] with another ladder.
fn with_ladder(rungs: &str) -> String {
    RULES.replace("\"delete+warn\", \"kick\"", rungs)
}

impl Bot {
    /// Waits until `/metrics` has `line`, up to 20 seconds.
    fn wait_metric(&self, line: &str) {
        let started = Instant::now();
        let mut metrics = String::new();
        while started.elapsed() < Duration::from_secs(20) {
            metrics = http_get(self.port, "/metrics").unwrap_or_default();
            if metrics.contains(line) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for `{line}` in\n{metrics}");
    }

    /// Waits for a crashed process to be gone.
    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts a bot; `extra` is appended to the `[testing]` section, `top` to the top level.
    fn start(top: &str, extra: &str) -> Bot {
        let mut bot = Bot::configured(top, extra);
        bot.spawn();
        bot
    }

    /// A bot's directory and configuration, not started.
    fn configured(top: &str, extra: &str) -> Bot {
        let dir = fresh_dir();
        let sections = format!(
            "[testing]\ninbox = \"{inbox}\"\noutbox = \"{outbox}\"\n{extra}\n",
            inbox = dir.join("inbox.jsonl").display(),
            outbox = dir.join("outbox.jsonl").display(),
        );
        Bot::new(dir, top, &sections)
    }
    /// Appends `events` to the inbox in one write, so a burst arrives all at once.
    fn push(&self, events: &[Value]) {
        let mut lines = String::new();
        for event in events {
            lines.push_str(&event.to_string());
            lines.push('\n');
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("inbox.jsonl"))
            .and_then(|mut inbox| inbox.write_all(lines.as_bytes()))
            .unwrap();
    }

    /// Every complete line of the outbox file (the bot may be writing the last one).
    fn outbox(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("outbox.jsonl")).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the outbox satisfies `done`, up to 20 seconds.
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            let lines = self.outbox();
            if done(&lines) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; outbox: {:#?}\nlog:\n{}",
            self.outbox(),
            self.log()
        );
    }
}

fn admin_says(id: &str, text: &str) -> Value {
    json!({"id": id, "at": 0, "platform": "wecom", "group": "g1",
           "member": {"id": "boss", "role": "admin"}, "type": "message", "message": {"text": text}})
}

fn says(id: &str, who: &str, group: &str, text: &str) -> Value {
    json!({"id": id, "at": 0, "platform": "wecom", "group": group,
           "member": {"id": who}, "type": "message", "message": {"text": text}})
}

fn actions<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["action"]["type"] == name)
        .collect()
}

/// Answers delivered.
fn replies(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l.get("reply").is_some() && l["result"] == "done")
        .collect()
}

/// Attempts at an action that the platform carried out.
fn done<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    actions(lines, name)
        .into_iter()
        .filter(|l| l["result"] == "done")
        .collect()
}

/// Admin notices carried out whose text starts with `prefix`.
fn notices<'a>(lines: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    done(lines, "notify_admins")
        .into_iter()
        .filter(|l| {
            l["action"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with(prefix))
        })
        .collect()
}

fn event(id: &str, member: Value, group: &str, kind: Value) -> Value {
    let mut event = json!({"id": id, "at": 0, "platform": "wecom", "group": group});
    event["member"] = member;
    if let Value::Object(fields) = kind {
        for (k, v) in fields {
            event[k] = v;
        }
    }
    event
}

#[tokio::test]
async fn a_violation_is_recorded_and_acted_on_once_even_when_redelivered() {
    let mut bot = Bot::start("", "");
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    let spam = says("m1", "spammer", "g1", "专业代购");
    bot.push(&[
        spam.clone(),
        spam.clone(),
        says("m2", "friend", "g1", "hello"),
    ]);
    let lines = bot.wait_for("delete and warn", |l| !actions(l, "warn").is_empty());
    assert_eq!(actions(&lines, "delete_message").len(), 1);
    assert_eq!(
        actions(&lines, "delete_message")[0]["action"]["message"],
        "m1"
    );
    bot.push(&[says("m3", "spammer", "g1", "加微信")]);
    let lines = bot.wait_for("the kick", |l| !actions(l, "kick").is_empty());
    assert_eq!(
        actions(&lines, "warn").len(),
        1,
        "one warning, however often m1 was delivered"
    );
    bot.stop();

    let store = bot.store().await;
    let violations = store.violations(&ViolationQuery::default()).await.unwrap();
    assert_eq!(violations.len(), 2);
    let first = &violations[1];
    assert_eq!(first.record.event.as_str(), "m1");
    let states: Vec<(&str, &ActionState)> =
        first.outcomes.iter().map(|(a, s)| (a.name(), s)).collect();
    assert_eq!(
        states,
        [("delete", &ActionState::Done), ("warn", &ActionState::Done)]
    );
    assert!(
        store
            .verdict(Platform::WeCom, "m2")
            .await
            .unwrap()
            .is_some(),
        "clean messages are recorded for why"
    );
}

#[tokio::test]
async fn an_action_stored_before_a_crash_runs_once_after_the_restart() {
    let mut bot = Bot::start("", "crash_before_execute = true");
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    bot.push(&[says("m1", "spammer", "g1", "代购")]);
    bot.wait_for("the crash", |l| l.iter().any(|x| x.get("crash").is_some()));
    bot.reap();
    bot.config = bot.config.replace("crash_before_execute = true", "");
    bot.spawn();
    let lines = bot.wait_for("delete and warn after the restart", |l| {
        !actions(l, "warn").is_empty()
    });
    assert_eq!(actions(&lines, "delete_message").len(), 1);
    assert_eq!(actions(&lines, "warn").len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        actions(&bot.outbox(), "warn").len(),
        1,
        "still once after the lease would have run out"
    );
    bot.stop();
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let mut bot = Bot::start("", "rate_limited = { warn = 1 }\nretry_after = \"1s\"");
    bot.push(&[admin_says("c1", RULES), says("m1", "spammer", "g1", "代购")]);
    let lines = bot.wait_for("the retried warning", |l| {
        actions(l, "warn").iter().any(|w| w["result"] == "done")
    });
    let warns = actions(&lines, "warn");
    assert_eq!(warns.len(), 2);
    assert_eq!(warns[0]["result"], "rate_limited");
    let waited = warns[1]["at"].as_i64().unwrap() - warns[0]["at"].as_i64().unwrap();
    assert!(waited >= 1000, "retried after {waited} ms");
    bot.stop();
    let store = bot.store().await;
    let violation = &store.violations(&ViolationQuery::default()).await.unwrap()[0];
    assert!(
        violation
            .outcomes
            .iter()
            .all(|(_, s)| *s == ActionState::Done)
    );
}

#[tokio::test]
async fn what_a_platform_cannot_do_is_handed_to_its_admins() {
    let mut bot = Bot::start("", "capabilities = [\"delete\", \"warn\", \"notify\"]");
    bot.push(&[
        admin_says("c1", &with_ladder("\"kick\"")),
        says("m1", "spammer", "g1", "代购"),
    ]);
    let lines = bot.wait_for("the admins' notice", |l| {
        !actions(l, "notify_admins").is_empty()
    });
    assert!(actions(&lines, "kick").is_empty());
    let notice = actions(&lines, "notify_admins")[0]["action"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        notice,
        "rule ads asks to remove spammer from the group, which groupguard cannot do on wecom: please do it by hand"
    );
    // The admins see the violation to judge it by.
    assert_eq!(
        actions(&lines, "notify_admins")[0]["case"],
        json!({ "member_name": null, "check": "keyword", "evidence": "`代购`", "excerpt": "代购" })
    );
    bot.stop();
    let store = bot.store().await;
    let violation = &store.violations(&ViolationQuery::default()).await.unwrap()[0];
    assert_eq!(
        violation.outcomes[0].1,
        ActionState::Replaced {
            note: "wecom cannot remove spammer from the group; admins were asked to".to_owned()
        }
    );
}

#[tokio::test]
async fn a_raid_alert_fires_once_per_window() {
    let mut bot = Bot::start("[raid]\nmembers = 3\nwindow = \"60s\"\nlockdown = true", "");
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    let raid: Vec<Value> = (1..=5)
        .map(|i| says(&format!("r{i}"), &format!("burner{i}"), "g1", "代购"))
        .chain([says("o1", "burner9", "g2", "代购")])
        .collect();
    bot.push(&raid);
    let lines = bot.wait_for("six warnings, the alert and the lockdown", |l| {
        actions(l, "warn").len() == 6 && !actions(l, "lockdown").is_empty()
    });
    let alerts = notices(&lines, "raid alert");
    assert_eq!(alerts.len(), 1, "{lines:#?}");
    assert_eq!(
        alerts[0]["action"]["text"],
        "raid alert: 3 members broke rules in g1 within 1m"
    );
    assert_eq!(alerts[0]["group"], "g1");
    assert_eq!(done(&lines, "lockdown").len(), 1);
    assert_eq!(done(&lines, "lockdown")[0]["group"], "g1");
    bot.stop();
}

#[tokio::test]
async fn a_raid_alert_lost_to_a_server_error_is_retried_and_delivered_once() {
    let mut bot = Bot::start(
        "[raid]\nmembers = 2\nwindow = \"60s\"",
        "server_errors = { notify = 1 }",
    );
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    bot.push(&[
        says("r1", "burner1", "g1", "代购"),
        says("r2", "burner2", "g1", "代购"),
        says("r3", "burner3", "g1", "代购"),
    ]);
    let lines = bot.wait_for("the alert, after one 503", |l| {
        !notices(l, "raid alert").is_empty()
    });
    let attempts: Vec<&Value> = actions(&lines, "notify_admins");
    assert_eq!(attempts.len(), 2, "{lines:#?}");
    assert_eq!(attempts[0]["result"], "server_error");
    assert_eq!(
        attempts[0]["key"], attempts[1]["key"],
        "one key on every attempt"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        notices(&bot.outbox(), "raid alert").len(),
        1,
        "delivered once"
    );
    bot.stop();
    let store = bot.store().await;
    let violations = store.violations(&ViolationQuery::default()).await.unwrap();
    let raised_it = violations
        .iter()
        .find(|v| v.record.member.as_str() == "burner2")
        .unwrap();
    assert!(
        raised_it
            .outcomes
            .iter()
            .any(|(a, s)| a.name() == "notify" && *s == ActionState::Done),
        "the alert is recorded with the violation that raised it: {raised_it:#?}"
    );
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let mut bot = Bot::start("", "");
    bot.push(&[
        admin_says("c1", RULES),
        says("m1", "spammer", "g1", "代购"),
        says("m2", "friend", "g1", "hi"),
    ]);
    bot.wait_for("the warning", |l| !actions(l, "warn").is_empty());
    for line in [
        "groupguard_events_total{platform=\"wecom\",kind=\"message\"} 3",
        "groupguard_decisions_total{outcome=\"violation\"} 1",
        "groupguard_violations_total{check=\"keyword\"} 1",
        "groupguard_actions_total{action=\"warn\",result=\"done\"} 1",
        "groupguard_commands_total{outcome=\"ok\"} 1",
        "groupguard_replies_total{outcome=\"done\"} 1",
        "groupguard_evaluate_seconds_count 3",
        "groupguard_outbox_depth 0",
    ] {
        bot.wait_metric(line);
    }
    assert!(http_get(bot.port, "/healthz").unwrap().ends_with("ok\n"));
    bot.stop();
}

#[test]
fn configuration_errors_are_all_listed() {
    let dir = fresh_dir();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[http]\nlisten = \"nowhere\"\n[log]\nformat = \"xml\"\n[testing]\ninbox = \"i\"\noutbox = \"o\"\ncapabilities = [\"teleport\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "the configuration has 3 problems:\n  http.listen: `nowhere` is not an address like 127.0.0.1:8080\n  \
         log.format: `xml` is not text or json\n  testing.capabilities: unknown capability `teleport`: expected delete, warn, timeout, kick, notify or lockdown\n"
    );
}

#[test]
fn without_a_platform_run_says_what_to_configure() {
    let out = Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .arg("run")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "no chat platform is configured: add an adapter section to the config file (adapters in this build: wecom, matrix, discord, testing). \
         `groupguard simulate` works without one.\n"
    );
}

/// A new database on the test PostgreSQL server, its URL.
async fn fresh_postgres_database(name: &str) -> String {
    use sqlx::Connection as _;
    let server = std::env::var("GROUPGUARD_TEST_POSTGRES")
        .expect("GROUPGUARD_TEST_POSTGRES is not set: run ./scripts/test, which starts PostgreSQL");
    let name = format!("gg_{name}_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{}/{name}", server.rsplit_once('/').unwrap().0)
}

#[tokio::test]
async fn records_go_to_postgresql_when_database_url_says_so() {
    let url = fresh_postgres_database("service").await;
    let mut bot = Bot::start(&format!("database_url = \"{url}\""), "");
    bot.push(&[admin_says("c1", RULES), says("m1", "spammer", "g1", "代购")]);
    bot.wait_for("the warning", |l| !actions(l, "warn").is_empty());
    bot.stop();
    let store = SqlStore::open(&url).await.unwrap();
    assert_eq!(
        store
            .violations(&ViolationQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_warning_carried_out_just_before_a_crash_is_not_shown_twice() {
    let mut bot = Bot::start("", "crash_after_execute = true");
    bot.push(&[admin_says("c1", &with_ladder("\"warn\""))]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    bot.push(&[says("m1", "spammer", "g1", "代购")]);
    bot.wait_for("the warning", |l| !done(l, "warn").is_empty());
    bot.reap();
    bot.config = bot.config.replace("crash_after_execute = true", "");
    bot.spawn();
    let lines = bot.wait_for("the warning attempted again after the restart", |l| {
        actions(l, "warn").len() == 2
    });
    let warns = actions(&lines, "warn");
    assert_eq!(warns[1]["result"], "duplicate", "{lines:#?}");
    assert_eq!(warns[0]["key"], warns[1]["key"]);
    assert_eq!(done(&lines, "warn").len(), 1, "the member saw one warning");
    bot.stop();
    let store = bot.store().await;
    let violation = &store.violations(&ViolationQuery::default()).await.unwrap()[0];
    assert_eq!(violation.outcomes[0].1, ActionState::Done);
}

#[tokio::test]
async fn a_forbidden_kick_becomes_one_notice_naming_the_permission() {
    let mut bot = Bot::start("", "forbidden = { kick = \"Kick Members\" }");
    bot.push(&[
        admin_says("c1", &with_ladder("\"kick\"")),
        says("m1", "spammer", "g1", "代购"),
    ]);
    let lines = bot.wait_for("the admins' notice", |l| {
        !done(l, "notify_admins").is_empty()
    });
    assert_eq!(actions(&lines, "kick").len(), 1);
    assert_eq!(actions(&lines, "kick")[0]["result"], "forbidden");
    let notices = done(&lines, "notify_admins");
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0]["action"]["text"],
        "rule ads asks to remove spammer from the group, which groupguard may not do here: \
         grant groupguard Kick Members, or do it by hand"
    );
    assert_ne!(notices[0]["key"], actions(&lines, "kick")[0]["key"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(done(&bot.outbox(), "notify_admins").len(), 1, "one notice");
    bot.stop();
    let store = bot.store().await;
    let violation = &store.violations(&ViolationQuery::default()).await.unwrap()[0];
    assert_eq!(
        violation.outcomes[0].1,
        ActionState::Replaced {
            note:
                "groupguard lacks Kick Members; admins were asked to remove spammer from the group"
                    .to_owned()
        }
    );
}

#[tokio::test]
async fn one_violation_kicks_in_one_group_and_asks_the_owner_in_another() {
    let mut bot = Bot::start(
        "",
        "[testing.groups]\ng2 = [\"delete\", \"warn\", \"notify\"]",
    );
    bot.push(&[
        admin_says("c1", &with_ladder("\"kick\"")),
        event(
            "g2-created",
            json!({"id": "zhang"}),
            "g2",
            json!({"type": "group", "change": {"type": "created", "name": "VIP", "owner": "zhang", "admins": ["li"]}}),
        ),
        says("m1", "spammer1", "g1", "代购"),
        says("m2", "spammer2", "g2", "代购"),
    ]);
    let lines = bot.wait_for("a kick and a notice", |l| {
        !done(l, "kick").is_empty() && !done(l, "notify_admins").is_empty()
    });
    let kicks = done(&lines, "kick");
    assert_eq!(kicks.len(), 1);
    assert_eq!(kicks[0]["group"], "g1");
    assert_eq!(kicks[0]["member"], "spammer1");
    assert_eq!(kicks[0]["message"], "m1");
    let notice = done(&lines, "notify_admins")[0];
    assert_eq!(notice["group"], "g2");
    assert_eq!(
        notice["notify"],
        json!({"owner": "zhang", "admins": ["li"]})
    );
    assert_eq!(
        notice["action"]["text"],
        "rule ads asks to remove spammer2 from the group, which groupguard cannot do on wecom: please do it by hand"
    );
    bot.stop();
}

#[tokio::test]
async fn a_slow_change_holds_only_the_events_of_its_own_group() {
    let mut bot = Bot::start("", "");
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the first import's answer", |l| replies(l).len() == 1);
    // An import of 50,000 keywords takes a while to check, compile and store.
    let words: Vec<String> = (0..50_000).map(|i| format!("\"词{i:05}\"")).collect();
    let large = RULES.replace("\"加微信\"", &format!("\"加微信\", {}", words.join(", ")));
    bot.push(&[
        admin_says("c2", &large),
        says("m1", "spammer", "g2", "专业代购"),
        says("m2", "other", "g1", "看看词12345"),
    ]);
    let lines = bot.wait_for("the large import's answer", |l| replies(l).len() == 2);
    let answered = lines
        .iter()
        .rposition(|l| l.get("reply").is_some())
        .expect("an answer");
    let deleted = |message: &str, lines: &[Value]| {
        lines.iter().position(|l| {
            l["action"]["type"] == "delete_message" && l["action"]["message"] == message
        })
    };
    // Another group's message was judged under the rules in force while the import ran.
    assert!(
        deleted("m1", &lines).is_some_and(|at| at < answered),
        "m1 was dealt with before the import was answered: {lines:#?}"
    );
    // The import's own group waited for it: its next message was judged under the new rules.
    let lines = bot.wait_for("m2 deleted", |l| deleted("m2", l).is_some());
    assert!(deleted("m2", &lines) > Some(answered));
    bot.stop();
}

fn command(id: &str, text: &str, reply_to: Value) -> Value {
    let mut kind = json!({"type": "command", "text": text});
    kind["reply_to"] = reply_to;
    event(id, json!({"id": "boss", "role": "admin"}), "g1", kind)
}

#[tokio::test]
async fn answers_reach_their_reply_to_and_expired_ones_are_dropped() {
    let mut bot = Bot::start("", "");
    bot.push(&[
        command(
            "c1",
            "!guard rule create ads No ads",
            json!({"handle": "tok-1", "expires_at": "2999-01-01T00:00:00Z"}),
        ),
        command("c2", "!guard rule list", json!({"message": "thread-1"})),
    ]);
    let lines = bot.wait_for("two answers", |l| replies(l).len() == 2);
    let answers = replies(&lines);
    assert_eq!(answers[0]["to"], "boss");
    assert_eq!(answers[0]["group"], "g1");
    assert_eq!(answers[0]["message"], "c1");
    assert_eq!(
        answers[0]["reply"],
        "rule ads: created, disabled until it has checks and is enabled (version 1)"
    );
    assert_eq!(
        answers[0]["ephemeral"], false,
        "changes are shown to the group"
    );
    assert_eq!(answers[1]["message"], "thread-1");
    assert_eq!(answers[1]["reply"], "ads [disabled] No ads — no checks");
    assert_eq!(answers[1]["ephemeral"], true, "lists are for the asker");

    bot.push(&[
        command(
            "c3",
            "!guard rule list",
            json!({"handle": "tok-3", "expires_at": "2020-01-01T00:00:00Z"}),
        ),
        command("c4", "!guard rule list", json!({"handle": "expired"})),
        command("c5", "!guard help rule list", json!({})),
    ]);
    let lines = bot.wait_for("the answer after the expired ones", |l| {
        replies(l).len() == 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    let lines_later = bot.outbox();
    assert_eq!(
        lines_later.len(),
        lines.len(),
        "nothing is retried: {lines_later:#?}"
    );
    let attempts: Vec<&Value> = lines.iter().filter(|l| l.get("reply").is_some()).collect();
    assert_eq!(
        attempts.len(),
        4,
        "c3 is never attempted, c4 once: {attempts:#?}"
    );
    assert_eq!(attempts[2]["message"], "c4");
    assert_eq!(attempts[2]["result"], "expired");
    assert_eq!(attempts[3]["message"], "c5");
    let log = bot.log();
    assert_eq!(
        log.matches("a command's answer was dropped: its reply handle had expired")
            .count(),
        2,
        "{log}"
    );
    assert!(
        !log.contains("tok-1") && !log.contains("tok-3"),
        "handles never reach the log"
    );
    for line in [
        "groupguard_replies_total{outcome=\"done\"} 3",
        "groupguard_replies_total{outcome=\"expired\"} 2",
    ] {
        bot.wait_metric(line);
    }
    bot.stop();
}

const GATE: &str = "!guard config import
[settings]
blacklist_manual_removals = \"org\"

[[rules]]
id = \"gate\"
blacklist = { on_join = true, on_message = true }
ladder = [\"kick\"]
";

#[tokio::test]
async fn a_removal_by_an_admin_is_blacklisted_when_the_setting_is_on() {
    let mut bot = Bot::start("", "");
    bot.push(&[
        admin_says("c1", GATE),
        event(
            "x1",
            json!({"id": "troll"}),
            "g1",
            json!({"type": "remove", "by": {"id": "boss", "name": "Boss", "role": "admin"}, "banned": true}),
        ),
        event("x2", json!({"id": "friend"}), "g1", json!({"type": "leave"})),
        event(
            "x3",
            json!({"id": "noisy"}),
            "g1",
            json!({"type": "remove", "by": {"id": "otherbot", "bot": true}}),
        ),
        event("x4", json!({"id": "troll"}), "g2", json!({"type": "join"})),
        event("x5", json!({"id": "friend"}), "g2", json!({"type": "join"})),
    ]);
    let lines = bot.wait_for("the troll kicked from g2", |l| !done(l, "kick").is_empty());
    let kicks = done(&lines, "kick");
    assert_eq!(kicks.len(), 1);
    assert_eq!(kicks[0]["member"], "troll");
    assert_eq!(kicks[0]["group"], "g2");
    bot.stop();
    let store = bot.store().await;
    let entries = store.blacklist_page(None, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].member.to_string(), "wecom:troll");
    assert_eq!(entries[0].owner, None);
    assert_eq!(entries[0].source.to_string(), "moderator:wecom:boss");
    assert_eq!(entries[0].reason, "banned by Boss in wecom:g1");
}

#[tokio::test]
async fn groups_register_themselves_and_rules_follow_their_tags() {
    let mut bot = Bot::start("", "");
    let created = json!({"type": "group", "change": {"type": "created", "name": "VIP 群", "owner": "zhang", "home_org": "wwAcme"}});
    bot.push(&[
        admin_says(
            "c1",
            "!guard config import\n[[rules]]\nid = \"vip\"\nscope = { tags = [\"vip\"] }\nkeywords = { substrings = [\"代购\"] }\nladder = [\"warn\"]\n",
        ),
        event("g9-created", json!({"id": "zhang"}), "g9", created),
        says("m1", "spammer", "g9", "代购"),
        admin_says("c2", "!guard group tag add vip --group g9"),
    ]);
    // A change made in one group reaches another one's events once it is in force, which
    // its answer tells.
    bot.wait_for("both answers", |l| replies(l).len() == 2);
    bot.push(&[
        says("m2", "spammer", "g9", "代购 again"),
        event(
            "g9-renamed",
            json!({"id": "zhang"}),
            "g9",
            json!({"type": "group", "change": {"type": "renamed", "name": "VIP 2群"}}),
        ),
    ]);
    let lines = bot.wait_for("the warning after the tag", |l| !done(l, "warn").is_empty());
    let warns = done(&lines, "warn");
    assert_eq!(warns.len(), 1);
    assert_eq!(
        warns[0]["message"], "m2",
        "untagged, the group's first message was fine"
    );
    bot.wait_metric("groupguard_group_changes_total 2");
    bot.stop();
    let store = bot.store().await;
    let config = store.config().await.unwrap();
    let group = config
        .groups
        .iter()
        .find(|g| g.id.to_string() == "wecom:g9")
        .unwrap();
    assert_eq!(group.name.as_deref(), Some("VIP 2群"));
    assert_eq!(group.owner.as_ref().unwrap().as_str(), "zhang");
    assert_eq!(group.home_org.as_ref().unwrap().as_str(), "wwAcme");
    assert_eq!(group.tags, ["vip"]);
    let audit = store.audit_page(None, 10).await.unwrap();
    assert_eq!(audit[0].by.to_string(), "platform:wecom", "the rename");
}

#[tokio::test]
async fn readiness_names_an_adapter_that_is_not_connected() {
    let mut bot = Bot::configured("", "disconnected = \"gateway closed\"");
    bot.expect_ready = false;
    bot.spawn();
    let started = Instant::now();
    let mut answer = String::new();
    while started.elapsed() < Duration::from_secs(10) {
        answer = http_get(bot.port, "/readyz").unwrap_or_default();
        if answer.contains("testing:") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(answer.split(' ').nth(1), Some("503"), "{answer}");
    assert!(
        answer.ends_with("not ready\ntesting: not connected: gateway closed\n"),
        "{answer}"
    );
    bot.stop();
}

#[tokio::test]
async fn a_kick_keeps_out_a_blacklisted_member_where_the_platform_can() {
    let mut bot = Bot::start("", "");
    let rules = "!guard config import
[[rules]]
id = \"ads\"
keywords = { substrings = [\"代购\"] }
ladder = [\"kick\", \"kick+blacklist\"]

[[rules]]
id = \"banned\"
blacklist = { on_join = true }
ladder = [\"kick\"]
";
    bot.push(&[
        admin_says("c1", rules),
        admin_says("c2", "!guard blacklist add wecom:troll known spammer"),
        event("j1", json!({"id": "troll"}), "g1", json!({"type": "join"})),
        says("m1", "spammer", "g1", "代购"),
        says("m2", "spammer", "g1", "代购"),
    ]);
    let lines = bot.wait_for("three kicks", |l| done(l, "kick").len() == 3);
    let bans: Vec<(&str, bool)> = done(&lines, "kick")
        .iter()
        .map(|l| (l["member"].as_str().unwrap(), l["ban"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        bans,
        [("troll", true), ("spammer", false), ("spammer", true)],
        "blacklisted, a first offence, and the offence that blacklists"
    );
    bot.stop();
}

fn matrix_event(id: &str, who: &str, group: &str, kind: Value) -> Value {
    let mut event = event(id, json!({"id": who}), group, kind);
    event["platform"] = json!("matrix");
    event
}

#[tokio::test]
async fn a_followed_ban_list_bans_servers_by_pattern_and_lifts_only_its_own_entries() {
    let mut bot = Bot::start("", "");
    let rules = "!guard config import
[[rules]]
id = \"banned\"
blacklist = { on_join = true }
ladder = [\"kick\"]
";
    let list = |id: &str, change: Value| {
        matrix_event(
            id,
            "@mod:example.org",
            "!policies:example.org",
            json!({"type": "list", "list": change}),
        )
    };
    let join =
        |id: &str, who: &str| matrix_event(id, who, "!room:example.org", json!({"type": "join"}));
    bot.push(&[
        admin_says("c1", rules),
        admin_says(
            "c2",
            "!guard blacklist add matrix:@alice:example.org by a moderator",
        ),
        list(
            "l1",
            json!({"type": "ban", "member": "@*:spam.example", "reason": "spam server"}),
        ),
        list(
            "l2",
            json!({"type": "ban", "member": "@alice:example.org", "reason": "also listed"}),
        ),
        join("j1", "@eve:spam.example"),
    ]);
    let lines = bot.wait_for("the kick of a spam-server user", |l| {
        done(l, "kick").len() == 1
    });
    assert_eq!(done(&lines, "kick")[0]["member"], "@eve:spam.example");
    assert_eq!(done(&lines, "kick")[0]["ban"], true);
    bot.push(&[
        list("l3", json!({"type": "lift", "member": "@*:spam.example"})),
        list(
            "l4",
            json!({"type": "lift", "member": "@alice:example.org"}),
        ),
        join("j2", "@joe:spam.example"),
        join("j3", "@alice:example.org"),
    ]);
    let lines = bot.wait_for("the moderator's entry still enforced", |l| {
        done(l, "kick").len() == 2
    });
    let kicked: Vec<&str> = done(&lines, "kick")
        .iter()
        .map(|l| l["member"].as_str().unwrap())
        .collect();
    assert_eq!(
        kicked,
        ["@eve:spam.example", "@alice:example.org"],
        "the lifted pattern lets @joe in"
    );
    bot.stop();
    let store = bot.store().await;
    let entries = store.blacklist_page(None, 10).await.unwrap();
    let sources: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {}", e.member, e.source))
        .collect();
    assert_eq!(sources, ["matrix:@alice:example.org moderator:wecom:boss"]);
}

/// How many events a crash test sends: `GROUPGUARD_CRASH_BURST`, else 20,000.
fn crash_burst() -> usize {
    std::env::var("GROUPGUARD_CRASH_BURST")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

/// `n` messages in 50 groups from 500 members, one in twenty with an ad word.
fn burst(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let text = if i % 20 == 0 {
                format!("专业代购 {i}")
            } else {
                format!("hello {i}")
            };
            says(
                &format!("b{i}"),
                &format!("member{}", (i * 7) % 500),
                &format!("g{}", i % 50),
                &text,
            )
        })
        .collect()
}

/// Gives the bot the rules and a burst of `n` messages, and returns once `decided` of them are.
fn start_burst(bot: &Bot, n: usize, decided: usize) {
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    bot.push(&burst(n));
    let started = Instant::now();
    while counter(bot, "groupguard_decisions_total") < decided as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the burst was not decided: {}",
            bot.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The sum of a counter's samples in `/metrics`.
fn counter(bot: &Bot, name: &str) -> u64 {
    http_get(bot.port, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One number from the bot's database.
async fn number(url: &str, sql: &str) -> i64 {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::Row::get::<i64, _>(&row, 0)
}

/// Waits up to two minutes for `sql` to count `expected`.
async fn wait_number(bot: &Bot, url: &str, sql: &str, expected: i64) {
    let started = Instant::now();
    let mut last = -1;
    while started.elapsed() < Duration::from_secs(120) {
        last = number(url, sql).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "`{sql}` stayed at {last}, not {expected}; log:\n{}",
        bot.log()
    );
}

/// Waits until the burst of `n` (and the rules' command) is recorded and every action done.
async fn wait_settled(bot: &Bot, url: &str, n: usize) {
    wait_number(
        bot,
        url,
        "SELECT COUNT(*) FROM processed_events",
        n as i64 + 1,
    )
    .await;
    wait_number(
        bot,
        url,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
        0,
    )
    .await;
}

/// Sends a burst, kills the bot (SIGKILL) once a quarter of it is decided, starts it again,
/// and checks that every event was decided, every violation recorded once and every action
/// carried out once. With a cursor, the test platform delivers again only what groupguard
/// had not taken: what it had taken and not decided must come back from the journal.
async fn crash_mid_burst(database_url: Option<String>, cursor: bool) {
    let database = database_url
        .as_ref()
        .map(|url| format!("database_url = \"{url}\"\n"))
        .unwrap_or_default();
    let top = format!("{database}[rate_limits]\nwecom = 100000\n");
    let mut bot = Bot::configured(&top, if cursor { "cursor = \"CURSOR\"" } else { "" });
    let cursor_file = bot.dir.join("cursor");
    bot.config = bot.config.replace("CURSOR", cursor_file.to_str().unwrap());
    let url = database_url.unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            bot.dir.join("data").join("groupguard.db").display()
        )
    });
    bot.spawn();
    let n = crash_burst();
    let violating = n.div_ceil(20);
    start_burst(&bot, n, n / 4);
    let mut child = bot.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let decided_before = number(&url, "SELECT COUNT(*) FROM processed_events").await - 1;
    let journaled = undecided_in_journal(&bot, &url).await;
    assert!(
        (decided_before as usize) < n,
        "killed mid-burst: {decided_before} of {n} decided"
    );

    bot.spawn();
    wait_settled(&bot, &url, n).await;
    let replayed = counter(&bot, "groupguard_replayed_events_total");
    bot.stop();

    if cursor {
        assert!(
            journaled > 0 && replayed as i64 == journaled,
            "the events taken and not decided came from the journal: {journaled} journaled, {replayed} replayed"
        );
    }
    each_once(&bot, &url, violating).await;
}

/// The events in the journal of a bot that was killed, each once, that it had not recorded.
async fn undecided_in_journal(bot: &Bot, url: &str) -> i64 {
    let mut undecided = 0;
    for id in journal_entries(bot) {
        let id = id.replace('\'', "''");
        undecided += 1 - number(
            url,
            &format!("SELECT COUNT(*) FROM processed_events WHERE event_id = '{id}'"),
        )
        .await;
    }
    undecided
}

/// The ids of the events in a bot's inbound journal, each once. A segment's last line may be
/// torn by the kill (an append that was never acknowledged); the bot drops it too.
fn journal_entries(bot: &Bot) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    for segment in journal_segments(bot) {
        let text = std::fs::read_to_string(segment).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Value>(line) {
                Ok(event) => {
                    ids.insert(event["id"].as_str().unwrap().to_owned());
                }
                Err(e) => assert!(
                    i + 1 == lines.len() && !text.ends_with('\n'),
                    "only a torn last line may not parse: {e}"
                ),
            }
        }
    }
    ids
}

/// The segment files of a bot's inbound journal.
fn journal_segments(bot: &Bot) -> Vec<std::path::PathBuf> {
    let dir = bot.dir.join("data").join("journal");
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl") && !p.ends_with("unreadable.jsonl"))
        .collect();
    segments.sort();
    segments
}

/// Every violation was recorded once, every action carried out once, and the journal is
/// empty.
async fn each_once(bot: &Bot, url: &str, violating: usize) {
    assert_eq!(journal_segments(bot), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        number(url, "SELECT COUNT(*) FROM violations").await,
        violating as i64,
        "each violation recorded once"
    );
    assert_eq!(
        number(url, "SELECT COUNT(DISTINCT event_id) FROM violations").await,
        violating as i64
    );
    let actions = number(url, "SELECT COUNT(*) FROM outbox").await;
    assert_eq!(
        number(url, "SELECT COUNT(*) FROM outbox WHERE state = 'done'").await,
        actions
    );
    let lines = bot.outbox();
    let mut done: Vec<&str> = lines
        .iter()
        .filter(|l| l["result"] == "done" && l.get("action").is_some())
        .filter_map(|l| l["key"].as_str())
        .collect();
    let carried_out = done.len();
    done.sort_unstable();
    done.dedup();
    assert_eq!(carried_out, done.len(), "no action carried out twice");
    assert_eq!(carried_out as i64, actions, "every action carried out");
    assert!(
        actions >= violating as i64,
        "a deletion and a warning, or a kick, per violation"
    );
}

#[tokio::test]
async fn a_crash_mid_burst_loses_no_event_taken_and_repeats_nothing() {
    crash_mid_burst(None, true).await;
}

#[tokio::test]
async fn a_crash_mid_burst_with_everything_delivered_again_repeats_nothing() {
    crash_mid_burst(None, false).await;
}

#[tokio::test]
async fn a_crash_mid_burst_on_postgresql_loses_nothing_and_repeats_nothing() {
    crash_mid_burst(Some(fresh_postgres_database("crash").await), true).await;
}

/// A PostgreSQL server of a test's own, to stop and start again.
struct OwnPostgres {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
    /// Runs a command as the postgres user when the tests run as root.
    runner: Vec<&'static str>,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let bin = std::env::var("GROUPGUARD_TEST_PG_BIN").expect(
            "GROUPGUARD_TEST_PG_BIN is not set: run ./scripts/test, which installs PostgreSQL",
        );
        // Under /tmp: the server's user must reach it.
        let dir = std::env::temp_dir().join(format!(
            "groupguard-own-pg-{}-{}",
            std::process::id(),
            crate::bot::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let runner = if root {
            assert!(
                Command::new("chown")
                    .args(["postgres", dir.to_str().unwrap()])
                    .status()
                    .unwrap()
                    .success()
            );
            vec!["runuser", "-u", "postgres", "--"]
        } else {
            Vec::new()
        };
        let server = OwnPostgres {
            bin: bin.into(),
            dir,
            port: crate::bot::free_port(),
            runner,
        };
        let data = server.dir.join("data");
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ],
        );
        server.pg_ctl("start");
        server
    }

    /// One of the server's programs, run as its user.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match self.runner.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&program);
                command
            }
            None => Command::new(&program),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server, or stops it at once (`-m immediate`: as a crash would).
    fn pg_ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut args = vec!["-D", data.to_str().unwrap(), "-w", "-t", "60"];
        match action {
            "start" => args.extend(["-l", log.to_str().unwrap(), "-o", &options, "start"]),
            _ => args.extend(["-m", "immediate", "stop"]),
        }
        self.run("pg_ctl", &args);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_postgresql_restart_mid_burst_loses_nothing_and_repeats_nothing() {
    let server = OwnPostgres::start();
    let url = server.url();
    let mut bot = Bot::configured(
        &format!("database_url = \"{url}\"\n[rate_limits]\nwecom = 100000\n"),
        "",
    );
    bot.spawn();
    let n = crash_burst();
    start_burst(&bot, n, n / 5);
    server.pg_ctl("stop");
    let stopped = Instant::now();
    while counter(&bot, "groupguard_store_retries_total") < 2 {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "no failed write while the database was down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let waiting = counter(&bot, "groupguard_decisions_total");
    assert!(
        waiting < n as u64,
        "stopped mid-burst: {waiting} of {n} decided"
    );
    server.pg_ctl("start");
    wait_settled(&bot, &url, n).await;
    bot.stop();
    each_once(&bot, &url, n.div_ceil(20)).await;
}

#[tokio::test]
async fn a_journal_entry_that_cannot_be_read_does_not_stop_new_events() {
    let mut bot = Bot::start("", "");
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l).len() == 1);
    bot.stop();
    // What a crash leaves: a segment with an entry another version wrote, and a readable
    // one behind it, which is still decided first.
    let taken = says("m0", "spammer", "g2", "加微信");
    std::fs::write(
        bot.dir
            .join("data")
            .join("journal")
            .join("000000000001.jsonl"),
        format!("{{\"written by\": \"another version\"}}\n{taken}\n"),
    )
    .unwrap();
    // Without redelivery of what came before: only the new message arrives.
    std::fs::remove_file(bot.dir.join("inbox.jsonl")).unwrap();
    bot.spawn();
    bot.push(&[says("m1", "promoter", "g1", "代购")]);
    let lines = bot.wait_for("both deletions", |l| {
        actions(l, "delete_message").len() == 2
    });
    bot.stop();
    let deleted: Vec<&Value> = actions(&lines, "delete_message")
        .iter()
        .map(|l| &l["action"]["message"])
        .collect();
    assert_eq!(deleted, [&json!("m0"), &json!("m1")], "the journal's first");
    assert!(
        bot.log()
            .contains("an entry of the inbound journal cannot be read"),
        "the problem is logged"
    );
    assert_eq!(
        std::fs::read_to_string(
            bot.dir
                .join("data")
                .join("journal")
                .join("unreadable.jsonl")
        )
        .unwrap(),
        "{\"written by\": \"another version\"}\n",
        "the entry is kept for a fixed version to read"
    );
    assert!(journal_segments(&bot).is_empty());
}
