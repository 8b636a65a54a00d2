//! Recording decisions: 200,000 verdicts of clean messages (one rule not matched, as most
//! traffic is) stored in batches of 512 with `record_all`, into a fresh SQLite file (and into
//! PostgreSQL when `GROUPGUARD_TEST_POSTGRES` names a server), timed per event.
//!
//! Run: `cargo bench -p groupguard-sql --bench record` (`BENCH_EVENTS` changes the count).

use std::time::Instant;

use groupguard_core::model::Platform;
use groupguard_core::ports::{Recorded, ViolationStore};
use groupguard_core::time::Timestamp;
use groupguard_core::verdict::{Outcome, RuleOutcome, Verdict};
use groupguard_sql::SqlStore;

/// Decisions per transaction, as the dispatcher's group commit writes them.
const BATCH: usize = 512;

fn clean_verdict(i: usize) -> Verdict {
    let id = format!("$event{i:010}:example.org");
    Verdict {
        event: id.clone().into(),
        message: Some(id.into()),
        at: Timestamp(1_795_251_600_000 + i as i64),
        platform: Platform::Matrix,
        group: format!("!room{}:example.org", i % 500).into(),
        member: format!("@member{}:example.org", i % 5_000).into(),
        outcomes: vec![RuleOutcome {
            rule: "ads".into(),
            result: Outcome::NotMatched,
        }],
        actions: Vec::new(),
        violations: Vec::new(),
    }
}

async fn record(name: &str, store: &SqlStore, verdicts: &[Verdict]) {
    let t = Instant::now();
    for batch in verdicts.chunks(BATCH) {
        let recorded = store.record_all(batch).await.expect("the batch is stored");
        assert!(recorded.iter().all(|r| matches!(r, Recorded::New { .. })));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name}: {} clean decisions recorded in {secs:.2} s: {:.1} µs each, {:.0}/s",
        verdicts.len(),
        secs * 1e6 / verdicts.len() as f64,
        verdicts.len() as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a quick version.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 200_000 });
    let verdicts: Vec<Verdict> = (0..n).map(clean_verdict).collect();

    let dir = std::env::temp_dir().join(format!("groupguard-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let store = SqlStore::open(&format!("sqlite://{}", dir.join("record.db").display()))
        .await
        .expect("SQLite opens");
    record("SQLite", &store, &verdicts).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    if let Ok(server) = std::env::var("GROUPGUARD_TEST_POSTGRES") {
        let store = SqlStore::open(&server).await.expect("PostgreSQL opens");
        // Event ids of their own, so a database used before holds none of them.
        let run = std::process::id();
        let verdicts: Vec<Verdict> = verdicts
            .into_iter()
            .map(|mut v| {
                v.event = format!("{run}{}", v.event).into();
                v
            })
            .collect();
        record("PostgreSQL", &store, &verdicts).await;
    }
}
