//! The service end to end: the release `groupguard run` fed through the test platform's inbox
//! (500 groups, 5,000 members, one message in twenty violating a keyword or link rule),
//! timed from the burst's first line to the last decision stored. Reports events per second
//! and the time from each decision to its record being committed (p50, p99 from
//! `groupguard_durable_seconds`, as the upper bound of the histogram bucket they fall in).
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

fn run(events: usize, database_url: Option<&str>) -> Report {
    let dir = support::fresh_dir("service-bench");
    support::import_rules(&dir, database_url, RULES);
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
    let bot = support::start_bot(&dir, &config);
    support::wait_ready(port);
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
