//! The service end to end: the release `groupguard run` fed through the test platform's inbox
//! (500 groups, 5,000 members, one message in twenty violating a keyword or link rule),
//! timed from the burst's first line to the last decision stored. Reports events per second
//! and the time from each decision to its record being committed (p50, p99 from
//! `groupguard_durable_seconds`, as the upper bound of the histogram bucket they fall in).
//!
//! Then a rule change at a large operator's scale while messages flow: an admin adds a
//! keyword by chat command to a rule of 100,000 keywords while other groups post a message
//! every millisecond, and how long each of those waited for its decision (from the line
//! written to the verdict taken, the inbox's polling included), during the change and
//! overall; and how long a group the platform reports created holds its first message.
//!
//! SQLite: `cargo bench -p groupguard --features testing --bench service`
//! PostgreSQL: the same with `GROUPGUARD_BENCH_POSTGRES=postgres://user@host:port/db` (a
//! server whose databases the bench may create; it makes a fresh one). With
//! `GROUPGUARD_BENCH_CLEAN=1` no message violates.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

#[allow(dead_code)]
mod support;

const GROUPS: usize = 500;
const MEMBERS: usize = 5_000;

const RULES: &str = r#"
[[rules]]
id = "ads"
keywords = { substrings = ["加微信", "代购", "刷单", "兼职日结", "免费领取"], words = ["telegram", "whatsapp"] }
links = { mode = "allow_listed_only", allow = ["example.com"] }
phone = { kinds = ["mobile"] }
ladder = ["delete+warn", "delete+warn", "delete+kick"]
"#;

fn main() {
    let runtime = support::runtime();
    let full = support::full_run();
    let events = if full { 200_000 } else { 2_000 };
    let database = std::env::var("GROUPGUARD_BENCH_POSTGRES")
        .ok()
        .map(|server| runtime.block_on(fresh_database(&server)));
    let store = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let change = change_while_messages_flow(full, database.as_deref());
    let report = run(events, database.as_deref());
    println!(
        "{store}: {events} events ({} violating) decided and stored in {:.2} s: {:.0} events/s; \
         decision → durable p50 ≤ {:.1} ms, p99 ≤ {:.1} ms; {} commits taking {:.2} s, \
         journal writes {:.2} s, actions {:.2} s",
        report.violating,
        report.elapsed.as_secs_f64(),
        events as f64 / report.elapsed.as_secs_f64(),
        report.p50 * 1e3,
        report.p99 * 1e3,
        report.commits,
        report.commit_seconds,
        report.journal_seconds,
        report.action_seconds,
    );
    println!(
        "{store}: a chat command adding a keyword to a rule of {} keywords took {} ms; {} \
         messages of other groups came meanwhile, each decided within {} ms of coming (p50 {} \
         ms); {} messages in all, the slowest decided after {} ms; a new group's first message \
         was decided {} ms after the group was reported created",
        change.keywords,
        change.answered_ms,
        change.during.len(),
        change.during.iter().max().copied().unwrap_or_default(),
        percentile(&change.during, 0.5),
        change.all.len(),
        change.all.iter().max().copied().unwrap_or_default(),
        change.new_group_ms,
    );
}

struct Change {
    keywords: usize,
    answered_ms: i64,
    /// How long after its group was reported created a group's first message was decided.
    new_group_ms: i64,
    /// How long after coming each message was decided, in ms: those that came while the
    /// command ran, and all.
    during: Vec<i64>,
    all: Vec<i64>,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The large operator's keyword rule changed by chat command in one group while the others
/// post.
fn change_while_messages_flow(full: bool, database_url: Option<&str>) -> Change {
    let (keywords, messages) = if full { (100_000, 3_000) } else { (2_000, 300) };
    let dir = support::fresh_dir("service-change-bench");
    let words: Vec<String> = (0..keywords)
        .map(|i| format!("\"{}\"", operator_keyword(i)))
        .collect();
    let rules = format!(
        "{RULES}\n[[rules]]\nid = \"words\"\nkeywords = {{ substrings = [{}] }}\nladder = [\"delete+warn\"]\n",
        words.join(", ")
    );
    let (bot, port, inbox) = start(&dir, database_url, &rules);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&inbox)
        .expect("the inbox");
    let mut written = Vec::with_capacity(messages);
    let (mut command_at, mut new_group_at) = (0, 0);
    let started = Instant::now();
    for i in 0..messages {
        if i == messages / 3 {
            let command = json!({
                "id": "command", "at": 0, "platform": "wecom", "group": "wrAdmins",
                "member": {"id": "boss", "role": "admin"}, "type": "message",
                "message": {"text": "!guard rule set words keywords add 新增的词"},
            });
            command_at = now_ms();
            writeln!(file, "{command}").expect("the inbox");
        }
        if i == messages * 2 / 3 {
            // A group the platform reports created, and its first message right after.
            let created = json!({
                "id": "created", "at": 0, "platform": "wecom", "group": "wrNewGroup",
                "member": {"id": "owner"}, "type": "group",
                "change": {"type": "created", "name": "新群", "owner": "owner"},
            });
            let first = json!({
                "id": "first", "at": 0, "platform": "wecom", "group": "wrNewGroup",
                "member": {"id": "newcomer"}, "type": "message", "message": {"text": "大家好"},
            });
            new_group_at = now_ms();
            writeln!(file, "{created}\n{first}").expect("the inbox");
        }
        let event = json!({
            "id": format!("m{i}"), "at": 0, "platform": "wecom",
            "group": format!("wrGroup{}", i % GROUPS),
            "member": {"id": format!("wmPoster{i}")},
            "type": "message", "message": {"text": format!("代购名牌包 第 {i} 条")},
        });
        written.push(now_ms());
        writeln!(file, "{event}").expect("the inbox");
        // One message a millisecond.
        let due = Duration::from_millis(i as u64 + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    drop(file);
    let mut metrics = String::new();
    let waited = Instant::now();
    while counter(&metrics, "groupguard_decisions_total") < (messages + 3) as f64 {
        assert!(
            waited.elapsed() < Duration::from_secs(300),
            "not every event was decided in 5 minutes; last metrics:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(20));
        metrics = support::http_get(port, "/metrics").unwrap_or_default();
    }
    support::stop_bot(bot);
    // When each event was decided: the time its verdict was taken at.
    let url = database_url.map_or_else(
        || format!("sqlite://{}", dir.join("data/groupguard.db").display()),
        str::to_owned,
    );
    let decided: std::collections::HashMap<String, i64> = support::runtime().block_on(async {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&url)
            .await
            .expect("the database");
        sqlx::query_as::<_, (String, i64)>("SELECT event_id, at FROM processed_events")
            .fetch_all(&mut db)
            .await
            .expect("the decisions")
            .into_iter()
            .collect()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let answered = decided.get("command").copied().unwrap_or_default();
    let waits = |during: bool| {
        let mut waits: Vec<i64> = written
            .iter()
            .enumerate()
            .filter(|(_, at)| !during || (command_at..=answered).contains(*at))
            .map(|(i, at)| decided.get(&format!("m{i}")).map_or(i64::MAX, |d| d - at))
            .collect();
        waits.sort_unstable();
        waits
    };
    Change {
        keywords,
        answered_ms: answered - command_at,
        new_group_ms: decided.get("first").copied().unwrap_or_default() - new_group_at,
        during: waits(true),
        all: waits(false),
    }
}

/// The `i`-th of the operator's keywords: three to five characters of a small alphabet.
fn operator_keyword(i: usize) -> String {
    const CHARS: [char; 24] = [
        '优', '惠', '券', '返', '利', '投', '资', '理', '财', '赚', '钱', '快', '招', '聘', '高',
        '薪', '日', '结', '私', '信', '群', '号', '码', '领',
    ];
    let mut n = i + 24 * 24;
    let mut word = String::new();
    while n > 0 {
        word.push(CHARS[n % 24]);
        n /= 24;
    }
    word
}

/// A new database on `server`, its URL.
async fn fresh_database(server: &str) -> String {
    use sqlx::Connection as _;
    let name = format!("gg_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("the PostgreSQL server answers");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("a database");
    format!("{}/{name}", server.rsplit_once('/').expect("a URL").0)
}

struct Report {
    violating: usize,
    elapsed: Duration,
    p50: f64,
    p99: f64,
    commits: u64,
    commit_seconds: f64,
    journal_seconds: f64,
    action_seconds: f64,
}

/// The burst: one message per line, every twentieth violating (none with
/// `GROUPGUARD_BENCH_CLEAN` set).
fn burst(events: usize) -> (String, usize) {
    let clean = std::env::var_os("GROUPGUARD_BENCH_CLEAN").is_some();
    let mut lines = String::with_capacity(events * 200);
    let mut violating = 0;
    for i in 0..events {
        let text = match if clean { 1 } else { i % 20 } {
            0 => {
                violating += 1;
                match (i / 20) % 3 {
                    0 => format!("代购名牌包 私聊 {i}"),
                    1 => format!("see https://spam{i}.example.net/offer"),
                    _ => format!("加微信 13800{:06} 领红包", i % 1_000_000),
                }
            }
            _ => format!("今天的活动几点开始？第 {i} 条 see you at the shop"),
        };
        let event = json!({
            "id": format!("e{i}"), "at": 0, "platform": "wecom",
            "group": format!("wrGroup{}", i % GROUPS),
            "member": {"id": format!("wmMember{}", (i * 7) % MEMBERS)},
            "type": "message", "message": {"text": text},
        });
        lines.push_str(&event.to_string());
        lines.push('\n');
    }
    (lines, violating)
}

/// The sum of a counter family's samples in a metrics text.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The upper bound of the bucket holding quantile `q` of a histogram in a metrics text.
fn quantile(metrics: &str, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().ok()?, count.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= total * q)
        .map_or(f64::NAN, |b| b.0)
}

/// `groupguard run` in `dir` with `rules` imported and the test platform: the bot, its HTTP
/// port and its inbox.
fn start(
    dir: &std::path::Path,
    database_url: Option<&str>,
    rules: &str,
) -> (std::process::Child, u16, std::path::PathBuf) {
    support::import_rules(dir, database_url, rules);
    let port = support::free_port();
    let database = database_url
        .map(|url| format!("database_url = \"{url}\"\n"))
        .unwrap_or_default();
    let inbox = dir.join("inbox.jsonl");
    let config = format!(
        "data_dir = \"{}\"\n{database}[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
         [rate_limits]\nwecom = 100000\n[testing]\ninbox = \"{}\"\noutbox = \"{}\"\n",
        dir.join("data").display(),
        inbox.display(),
        dir.join("outbox.jsonl").display(),
    );
    let bot = support::start_bot(dir, &config);
    support::wait_ready(port);
    (bot, port, inbox)
}

fn run(events: usize, database_url: Option<&str>) -> Report {
    let dir = support::fresh_dir("service-bench");
    let (bot, port, inbox) = start(&dir, database_url, RULES);
    let (lines, violating) = burst(events);
    let started = Instant::now();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&inbox)
        .and_then(|mut f| f.write_all(lines.as_bytes()))
        .expect("the inbox");
    let mut metrics = String::new();
    while counter(&metrics, "groupguard_decisions_total") < events as f64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not every event was decided in 10 minutes; last metrics:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(10));
        metrics = support::http_get(port, "/metrics").unwrap_or_default();
    }
    let elapsed = started.elapsed();
    support::stop_bot(bot);
    let _ = std::fs::remove_dir_all(&dir);
    Report {
        violating,
        elapsed,
        p50: quantile(&metrics, "groupguard_durable_seconds", 0.5),
        p99: quantile(&metrics, "groupguard_durable_seconds", 0.99),
        commits: counter(&metrics, "groupguard_commit_seconds_count") as u64,
        commit_seconds: counter(&metrics, "groupguard_commit_seconds_sum"),
        journal_seconds: counter(&metrics, "groupguard_journal_seconds_sum"),
        action_seconds: counter(&metrics, "groupguard_action_seconds_sum"),
    }
}
