//! Recording decisions: 200,000 verdicts stored in batches of 512 with `record_all`, into a
//! fresh SQLite file (and into PostgreSQL when `GROUPGUARD_TEST_POSTGRES` names a server),
//! timed per event: once all clean (one rule not matched, as most traffic is), once with one
//! in twenty violating (a keyword: its violation, a delete and a warning queued).
//!
//! Run: `cargo bench -p groupguard-sql --bench record` (`BENCH_EVENTS` changes the count).

use std::time::Instant;

use groupguard_core::model::Platform;
use groupguard_core::ports::{Recorded, ViolationStore};
use groupguard_core::rule::Mode;
use groupguard_core::time::Timestamp;
use groupguard_core::verdict::{
    Action, CheckKind, Evidence, Outcomes, PlannedAction, Verdict, ViolationRecord,
};
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
        outcomes: Outcomes::none_matched(["ads".into()].into()),
        actions: Vec::new(),
        violations: Vec::new(),
    }
}

/// Every twentieth verdict violates: a keyword found, the message deleted and a warning.
fn verdict(i: usize) -> Verdict {
    let mut verdict = clean_verdict(i);
    if i % 20 != 19 {
        return verdict;
    }
    let message = verdict.message.clone().expect("a message");
    let record = ViolationRecord {
        event: verdict.event.clone(),
        at: verdict.at,
        platform: verdict.platform,
        group: verdict.group.clone(),
        member: verdict.member.clone(),
        member_name: Some("member".into()),
        member_joined_at: None,
        rule: "ads".into(),
        check: CheckKind::Keyword,
        evidence: Evidence::Term {
            term: "代购".into(),
            matched: "代购".into(),
            span: 6..12,
        },
        excerpt: "hello 代购 today".into(),
        actions: vec![
            Action::DeleteMessage { message },
            Action::Warn {
                text: "please keep it clean".into(),
            },
        ],
        mode: Mode::Enforce,
    };
    verdict.actions = record
        .actions
        .iter()
        .map(|action| PlannedAction {
            rule: "ads".into(),
            mode: Mode::Enforce,
            platform: verdict.platform,
            group: verdict.group.clone(),
            member: verdict.member.clone(),
            action: action.clone(),
            key: None,
        })
        .collect();
    verdict.violations = vec![record];
    verdict
}

async fn record(name: &str, store: &SqlStore, verdicts: &[Verdict]) {
    let t = Instant::now();
    for batch in verdicts.chunks(BATCH) {
        let recorded = store.record_all(batch).await.expect("the batch is stored");
        assert!(recorded.iter().all(|r| matches!(r, Recorded::New { .. })));
    }
    let secs = t.elapsed().as_secs_f64();
    let violating = verdicts.iter().filter(|v| !v.violations.is_empty()).count();
    println!(
        "{name}: {} decisions ({violating} violating) recorded in {secs:.2} s: {:.1} µs each, {:.0}/s",
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
    let clean: Vec<Verdict> = (0..n).map(clean_verdict).collect();
    let mixed: Vec<Verdict> = (0..n).map(verdict).collect();

    let dir = std::env::temp_dir().join(format!("groupguard-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    for (name, verdicts) in [("clean", &clean), ("mixed", &mixed)] {
        let file = dir.join(format!("{name}.db"));
        let store = SqlStore::open(&format!("sqlite://{}", file.display()))
            .await
            .expect("SQLite opens");
        record("SQLite", &store, verdicts).await;
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    if let Ok(server) = std::env::var("GROUPGUARD_TEST_POSTGRES") {
        let store = SqlStore::open(&server).await.expect("PostgreSQL opens");
        for (name, verdicts) in [("clean", clean), ("mixed", mixed)] {
            // Event ids of their own, so a database used before holds none of them.
            let run = format!("{}-{name}-", std::process::id());
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
}
