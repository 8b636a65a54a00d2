//! PostgreSQL: one fresh database per test on the server `./scripts/test` starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use groupguard_core::engine::Engine;
use groupguard_core::model::Platform;
use groupguard_core::ports::{
    ActionResult, ConfigStore, Edit, Recorded, ViolationQuery, ViolationStore,
};
use groupguard_core::rule::Rule;
use groupguard_core::rulefile;
use groupguard_core::testing::{EventFactory, T0, member};
use groupguard_sql::SqlStore;
use sqlx::Connection;

fn server() -> String {
    std::env::var("GROUPGUARD_TEST_POSTGRES")
        .expect("GROUPGUARD_TEST_POSTGRES is not set: run ./scripts/test, which starts PostgreSQL")
}

/// The URL of a new, empty database.
async fn fresh_url() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = server();
    let name = format!(
        "gg_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .expect("PostgreSQL is reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("a test database");
    admin.close().await.ok();
    let (base, _) = server.rsplit_once('/').expect("a database URL");
    format!("{base}/{name}")
}

async fn fresh() -> SqlStore {
    SqlStore::open(&fresh_url().await)
        .await
        .expect("the PostgreSQL store opens")
}

groupguard_core::store_conformance_tests!(fresh());

#[tokio::test]
async fn migrations_apply_once_and_rerunning_them_is_a_no_op() {
    let url = fresh_url().await;
    let store = SqlStore::open(&url).await.unwrap();
    store
        .put_rule(Rule::new("kept"), &Edit::new("import".parse().unwrap(), T0))
        .await
        .unwrap();
    store.close().await;
    let again = SqlStore::open(&url).await.unwrap();
    assert_eq!(again.config().await.unwrap().rules.len(), 1);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .unwrap()
    .filter(|f| f.as_ref().unwrap().path().extension() == Some("sql".as_ref()))
    .count();
    assert_eq!(
        applied as usize, files,
        "one row per migration file, not per opening"
    );
}

#[tokio::test]
async fn concurrent_recordings_of_one_event_write_it_once() {
    let store = Arc::new(fresh().await);
    let set = rulefile::parse("[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\nladder = [\"delete+warn\"]\n").unwrap();
    let mut engine = Engine::new(groupguard_core::engine::Live::compile(set).unwrap());
    let event = EventFactory::new(Platform::WeCom, "g").text(&member("u"), "代购");
    let verdict = Arc::new(engine.evaluate(&event, event.at));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, verdict) = (Arc::clone(&store), Arc::clone(&verdict));
            tokio::spawn(async move { store.record(&verdict).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Recorded::New { .. }) {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(
        store
            .violations(&ViolationQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
}

#[tokio::test]
async fn concurrent_claimers_never_take_the_same_action() {
    let store = Arc::new(fresh().await);
    let set = rulefile::parse("[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\nladder = [\"delete+warn\"]\n").unwrap();
    let mut engine = Engine::new(groupguard_core::engine::Live::compile(set).unwrap());
    let mut f = EventFactory::new(Platform::WeCom, "g");
    for i in 0..200 {
        let event = f.text(&member(&format!("u{i}")), "代购");
        store
            .record(&engine.evaluate(&event, event.at))
            .await
            .unwrap();
    }
    let now = T0.plus(Duration::from_secs(60));
    let lease = now.plus(Duration::from_secs(60));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_actions(now, lease, 7).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    for action in batch {
                        store
                            .finish_action(action.id, ActionResult::Done)
                            .await
                            .unwrap();
                        mine.push(action.id);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        (claimed, all.len()),
        (400, 400),
        "every action exactly once"
    );
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_rule_edits_get_distinct_versions() {
    let store = Arc::new(fresh().await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut rule = Rule::new("ads");
                rule.name = format!("edit {i}");
                rule.phone = Some(Default::default());
                store
                    .put_rule(rule, &Edit::new("import".parse().unwrap(), T0))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
    assert_eq!(store.revision().await.unwrap(), 20);
    assert_eq!(store.rule_versions(&"ads".into()).await.unwrap().len(), 20);
}
