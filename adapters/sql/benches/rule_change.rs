//! A rule change at a large WeCom operator's scale, through the chat command an admin types,
//! against a SQLite file: 20,000 tagged groups, one rule of 100,000 keywords scoped by tags,
//! 50 rules scoped to 400 explicit groups each and one naming all 20,000. Measures start-up
//! (read and compile), the command `rule set words keywords add …` (validate, store, reload),
//! when the next decision first sees the new keyword, the longest decision of an engine
//! judging messages all the while on another thread, and how much the database grows per edit.
//!
//! Run: `cargo bench -p groupguard-sql --bench rule_change` (`cargo test --benches` runs a
//! smaller version).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use groupguard_core::command::{Context, execute, load_rules, parse};
use groupguard_core::engine::Engine;
use groupguard_core::model::{Event, EventId, EventKind, GroupId, Member, Message, Platform, Role};
use groupguard_core::ports::{ConfigStore, Edit};
use groupguard_core::rule::Source;
use groupguard_core::rulefile;
use groupguard_core::time::Timestamp;
use groupguard_sql::SqlStore;

// The bot's allocator: the engine thread never waits on an allocator lock that the thread
// compiling the new rules holds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: Timestamp = Timestamp(1_795_251_600_000);

/// The operator's rule file, as TOML.
fn rule_file(groups: usize, keywords: usize) -> String {
    let group = |i: usize| format!("\"wecom:wrGroup{i:05}\"");
    let mut out = String::new();
    for i in 0..groups {
        let kind = if i % 2 == 0 { "vip" } else { "retail" };
        out += &format!(
            "[[groups]]\nid = {}\ntags = [\"region{}\", \"{kind}\"]\n",
            group(i),
            i % 20
        );
    }
    // Distinct 3-character words of common CJK characters, from a fixed sequence.
    let mut state = 0x5EEDu64;
    let mut words = std::collections::BTreeSet::new();
    while words.len() < keywords {
        let word: String = (0..3)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                char::from_u32(0x4E00 + (state >> 33) as u32 % 3000).unwrap_or('字')
            })
            .collect();
        words.insert(format!("\"{word}\""));
    }
    let words: Vec<String> = words.into_iter().collect();
    out += &format!(
        "[[rules]]\nid = \"words\"\nscope = {{ tags = [\"retail\", \"vip\"] }}\nkeywords = {{ substrings = [{}] }}\n",
        words.join(", ")
    );
    let per_rule = (groups / 50).min(400);
    for r in 0..50 {
        let scope: Vec<String> = (0..per_rule).map(|j| group(r * per_rule + j)).collect();
        out += &format!(
            "[[rules]]\nid = \"explicit{r}\"\nscope = {{ groups = [{}] }}\nphone = {{ kinds = [\"mobile\"] }}\n",
            scope.join(", ")
        );
    }
    let all: Vec<String> = (0..groups).map(group).collect();
    out += &format!(
        "[[rules]]\nid = \"every-group\"\nscope = {{ groups = [{}] }}\nphone = {{ kinds = [\"mobile\"] }}\n",
        all.join(", ")
    );
    out
}

fn message(i: u64, text: &str) -> Event {
    Event {
        id: EventId::new(format!("e{i}")),
        at: T0,
        platform: Platform::WeCom,
        group: GroupId::new(format!("wrGroup{:05}", i % 1_000)),
        member: Member::new(format!("m{}", i % 5_000)),
        kind: EventKind::MessagePosted(Message::text(text)),
    }
}

/// How often this thread waited (on a lock, say) and how often the system took its core away
/// for another thread: its voluntary and involuntary context switches, from `/proc`.
fn switches() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let count = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (
        count("voluntary_ctxt_switches"),
        count("nonvoluntary_ctxt_switches"),
    )
}

fn database_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // As the bot does: transparent huge pages off (see its `keep_pages_small`).
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        println!("transparent huge pages stay on: {error}");
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a quick version.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (groups, keywords) = if quick {
        (2_000, 10_000)
    } else {
        (20_000, 100_000)
    };
    let dir = std::env::temp_dir().join(format!("groupguard-rule-change-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let url = format!("sqlite://{}", dir.join("rules.db").display());
    let store = SqlStore::open(&url).await.expect("SQLite opens");
    let set = rulefile::parse(&rule_file(groups, keywords)).expect("the rule file parses");
    store
        .replace_config(set, &Edit::new(Source::Import, T0))
        .await
        .expect("the rules import");
    // Closed and opened again, so the size below is of the database file alone.
    store.close().await;
    let imported = database_bytes(&dir);
    let store = SqlStore::open(&url).await.expect("SQLite opens again");

    let t = Instant::now();
    let handle = Arc::new(load_rules(&store).await.expect("the rules load"));
    let start_up = t.elapsed();

    // An engine judging messages on its own thread, each decision timed, until told to stop;
    // it notes when the new keyword first counts.
    let stop = Arc::new(AtomicBool::new(false));
    let judge = {
        let (handle, stop) = (Arc::clone(&handle), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut engine = Engine::with_handle(handle);
            let (mut longest, mut decisions, mut seen) = (Duration::ZERO, 0u64, None);
            while !stop.load(Ordering::Relaxed) {
                let probe = decisions % 2 == 0;
                let text = if probe {
                    "快来看新增的词语吧"
                } else {
                    "今天天气不错，大家好"
                };
                let t = Instant::now();
                let verdict = engine.evaluate(&message(decisions, text), T0);
                longest = longest.max(t.elapsed());
                if probe && seen.is_none() && verdict.matched().next().is_some() {
                    seen = Some(Instant::now());
                }
                decisions += 1;
            }
            (longest, decisions, seen, switches())
        })
    };
    std::thread::sleep(Duration::from_millis(200));

    let admin = Member {
        role: Role::Admin,
        ..Member::new("boss")
    };
    let group = GroupId::new("wrGroup00000");
    let ctx = Context {
        store: &store,
        rules: &handle,
        platform: Platform::WeCom,
        group: &group,
        actor: &admin,
        now: T0,
    };
    let command = parse(
        "!guard rule set words keywords add 新增的词",
        Platform::WeCom,
    )
    .expect("the command parses");
    let t = Instant::now();
    execute(&command, &ctx).await.expect("the keyword is added");
    let answered = t.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (longest, decisions, seen, (waited, preempted)) = judge.join().expect("the judging thread");
    let visible = seen.map(|s| s.saturating_duration_since(t));
    let second = parse(
        "!guard rule set words keywords add 又一个词",
        Platform::WeCom,
    )
    .expect("the command parses");
    execute(&second, &ctx)
        .await
        .expect("a second keyword is added");
    store.close().await;
    let growth = database_bytes(&dir).saturating_sub(imported);
    println!(
        "operator scale ({groups} groups, {keywords} keywords), SQLite: start-up (read and compile) {:.0} ms; \
         `rule set words keywords add` answered in {:.0} ms, the next decisions saw the keyword after {}; \
         {decisions} decisions on another thread meanwhile, the longest {:.2} ms (that thread waited \
         {waited} times, and the system gave its core to another thread {preempted} times); \
         the database grew by {:.2} MB over two such edits",
        start_up.as_secs_f64() * 1e3,
        answered.as_secs_f64() * 1e3,
        visible.map_or("never".to_owned(), |v| format!(
            "{:.0} ms",
            v.as_secs_f64() * 1e3
        )),
        longest.as_secs_f64() * 1e3,
        growth as f64 / 1e6,
    );
    assert!(visible.is_some(), "the new keyword takes effect");
    std::fs::remove_dir_all(&dir).ok();
}
