//! `groupguard run` end to end through the test platform: events in through the inbox file,
//! actions out through the outbox file, records in SQLite (and PostgreSQL).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use groupguard_core::model::Platform;
use groupguard_core::ports::{ActionState, ViolationQuery, ViolationStore};
use groupguard_sql::SqlStore;
use serde_json::{Value, json};

const RULES: &str = "!guard config import
[[rules]]
id = \"ads\"
keywords = { substrings = [\"代购\", \"加微信\"] }
ladder = [\"delete+warn\", \"kick\"]
";

/// A running bot with its own directory, database and port.
struct Bot {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    config: String,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "service-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Bot {
    /// Starts a bot; `extra` is appended to the `[testing]` section, `top` to the top level.
    fn start(top: &str, extra: &str) -> Bot {
        let dir = fresh_dir();
        let port = free_port();
        let config = format!(
            "data_dir = \"{data}\"\n{top}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[dispatcher]\nlease = \"1s\"\n\
             [testing]\ninbox = \"{inbox}\"\noutbox = \"{outbox}\"\n{extra}\n",
            data = dir.join("data").display(),
            inbox = dir.join("inbox.jsonl").display(),
            outbox = dir.join("outbox.jsonl").display(),
        );
        let mut bot = Bot {
            child: None,
            dir,
            port,
            config,
        };
        bot.spawn();
        bot
    }

    fn spawn(&mut self) {
        let path = self.dir.join("config.toml");
        std::fs::write(&path, &self.config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_groupguard"))
            .args(["run", "--config", path.to_str().unwrap()])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the bot starts");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if http_get(self.port, "/readyz").is_some_and(|r| r.split(' ').nth(1) == Some("200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the bot did not become ready:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn push(&self, events: &[Value]) {
        let mut inbox = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("inbox.jsonl"))
            .unwrap();
        for event in events {
            writeln!(inbox, "{event}").unwrap();
        }
    }

    fn outbox(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("outbox.jsonl"))
            .unwrap_or_default()
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

    /// Stops with SIGTERM and waits for a clean exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "the bot exits cleanly on SIGTERM: {status}\n{}",
                self.log()
            );
        }
    }

    /// Waits for a crashed process to be gone.
    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    async fn store(&self) -> SqlStore {
        SqlStore::open(&format!(
            "sqlite://{}",
            self.dir.join("data").join("groupguard.db").display()
        ))
        .await
        .unwrap()
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
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

fn replies(lines: &[Value]) -> usize {
    lines.iter().filter(|l| l.get("reply").is_some()).count()
}

#[tokio::test]
async fn a_violation_is_recorded_and_acted_on_once_even_when_redelivered() {
    let mut bot = Bot::start("", "");
    bot.push(&[admin_says("c1", RULES)]);
    bot.wait_for("the import's answer", |l| replies(l) == 1);
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
    bot.wait_for("the import's answer", |l| replies(l) == 1);
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
        admin_says(
            "c1",
            &RULES.replace("\"delete+warn\", \"kick\"", "\"kick\""),
        ),
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
    bot.wait_for("the import's answer", |l| replies(l) == 1);
    let raid: Vec<Value> = (1..=5)
        .map(|i| says(&format!("r{i}"), &format!("burner{i}"), "g1", "代购"))
        .chain([says("o1", "burner9", "g2", "代购")])
        .collect();
    bot.push(&raid);
    let lines = bot.wait_for("five warnings", |l| actions(l, "warn").len() == 6);
    let alerts: Vec<&Value> = actions(&lines, "notify_admins")
        .into_iter()
        .filter(|a| {
            a["action"]["text"]
                .as_str()
                .unwrap()
                .starts_with("raid alert")
        })
        .collect();
    assert_eq!(alerts.len(), 1, "{lines:#?}");
    assert_eq!(
        alerts[0]["action"]["text"],
        "raid alert: 3 members broke rules in g1 within 1m"
    );
    assert_eq!(
        lines.iter().filter(|l| l.get("lockdown").is_some()).count(),
        1
    );
    bot.stop();
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
    let metrics = http_get(bot.port, "/metrics").unwrap();
    for line in [
        "groupguard_events_total{platform=\"wecom\",kind=\"message\"} 3",
        "groupguard_decisions_total{outcome=\"violation\"} 1",
        "groupguard_violations_total{check=\"keyword\"} 1",
        "groupguard_actions_total{action=\"warn\",result=\"done\"} 1",
        "groupguard_commands_total{outcome=\"ok\"} 1",
        "groupguard_evaluate_seconds_count 3",
        "groupguard_outbox_depth 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
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
         log.format: `xml` is not text or json\n  testing.capabilities: unknown capability `teleport`\n"
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
        "no chat platform is configured: add an adapter section to the config file (adapters in this build: testing). \
         `groupguard simulate` works without one.\n"
    );
}

#[tokio::test]
async fn records_go_to_postgresql_when_database_url_says_so() {
    use sqlx::Connection as _;
    let server = std::env::var("GROUPGUARD_TEST_POSTGRES")
        .expect("GROUPGUARD_TEST_POSTGRES is not set: run ./scripts/test, which starts PostgreSQL");
    let name = format!("gg_service_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
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
