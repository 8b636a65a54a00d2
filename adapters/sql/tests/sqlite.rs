//! SQLite: one fresh database file per test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use groupguard_core::ports::{ConfigStore, Edit};
use groupguard_core::rule::Rule;
use groupguard_core::testing::T0;
use groupguard_sql::SqlStore;

fn fresh_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sqlite-store");
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join(format!(
        "{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&file);
    file
}

async fn fresh() -> SqlStore {
    SqlStore::open(&format!("sqlite://{}", fresh_path().display()))
        .await
        .expect("the SQLite store opens")
}

groupguard_core::store_conformance_tests!(fresh());

#[tokio::test]
async fn the_file_is_created_and_reopening_migrates_nothing_and_keeps_data() {
    let path = fresh_path();
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::open(&url).await.unwrap();
    assert!(path.exists());
    let mut rule = Rule::new("ads");
    rule.phone = Some(Default::default());
    let edit = Edit::new("import".parse().unwrap(), T0);
    store.put_rule(rule.clone(), &edit).await.unwrap();
    store.close().await;
    let again = SqlStore::open(&url).await.unwrap();
    assert_eq!(again.config().await.unwrap().rules, [rule]);
    assert_eq!(again.revision().await.unwrap(), 1);
}

#[tokio::test]
async fn bad_urls_are_refused_without_echoing_them() {
    let err = SqlStore::open("mysql://user:secret@host/db")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database URL: use sqlite://PATH or postgres://USER@HOST/DB"
    );
    let err = SqlStore::open("sqlite:///nonexistent-dir/x/y.db")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot open the database");
}

#[tokio::test]
async fn a_restart_forgets_no_warning() {
    use groupguard_core::engine::{Engine, Live};
    use groupguard_core::model::Platform;
    use groupguard_core::ports::ViolationStore;
    use groupguard_core::rulefile;
    use groupguard_core::testing::{EventFactory, member};

    let rules = || {
        let set =
            rulefile::parse("[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\n")
                .unwrap();
        Live::compile(set).unwrap()
    };
    let path = fresh_path();
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::open(&url).await.unwrap();
    let mut engine = Engine::new(rules());
    let mut f = EventFactory::new(Platform::WeCom, "g");
    for _ in 0..3 {
        let event = f.text(&member("u"), "代购");
        store
            .record(&engine.evaluate(&event, event.at))
            .await
            .unwrap();
        f.advance(std::time::Duration::from_secs(60));
    }
    store.close().await;

    let store = SqlStore::open(&url).await.unwrap();
    let mut restarted = Engine::new(rules());
    let restored = restarted.restore_ladders(&store, f.now()).await.unwrap();
    assert_eq!(restored, 3);
    let event = f.text(&member("u"), "代购");
    let verdict = restarted.evaluate(&event, event.at);
    let names: Vec<&str> = verdict.actions.iter().map(|a| a.action.name()).collect();
    assert_eq!(
        names,
        ["kick"],
        "three warnings before the restart, so the fourth violation kicks"
    );
}

/// A new database at `path` with the migrations before `version` applied, as an older
/// groupguard left it.
async fn migrated_until(path: &std::path::Path, version: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    let old = path.with_extension("migrations");
    std::fs::create_dir_all(&old).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for file in std::fs::read_dir(&all).unwrap() {
        let name = file.unwrap().file_name();
        if name.to_string_lossy().as_ref() < version {
            std::fs::copy(all.join(&name), old.join(&name)).unwrap();
        }
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    conn
}

/// Events recorded before migration 0007 moved processed events into a rowid table are
/// still recognised as redeliveries, and their verdicts still answer `why`.
#[tokio::test]
async fn events_recorded_before_the_rowid_migration_stay_recorded() {
    use groupguard_core::model::Platform;
    use groupguard_core::ports::ViolationStore;
    use groupguard_core::verdict::Verdict;
    use sqlx::Connection as _;

    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../core/tests/fixtures/stored/verdicts.json");
    let verdicts: Vec<Verdict> =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let verdict = &verdicts[0];
    let path = fresh_path();
    let mut conn = migrated_until(&path, "0007").await;
    sqlx::query(
        "INSERT INTO processed_events (platform, event_id, at, message_id, verdict) \
         VALUES (?, ?, ?, 'message-1', ?), (?, 'older', 0, NULL, NULL)",
    )
    .bind(verdict.platform.as_str())
    .bind(verdict.event.to_string())
    .bind(verdict.at.millis())
    .bind(serde_json::to_string(verdict).unwrap())
    .bind(verdict.platform.as_str())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = SqlStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(
        store
            .seen(verdict.platform, verdict.event.as_str())
            .await
            .unwrap()
    );
    assert!(store.seen(verdict.platform, "older").await.unwrap());
    assert!(!store.seen(Platform::Discord, "older").await.unwrap());
    let why = store.verdict(verdict.platform, "message-1").await.unwrap();
    assert_eq!(why.as_ref(), Some(verdict));
    let again = store.record(verdict).await.unwrap();
    assert_eq!(again, groupguard_core::ports::Recorded::Duplicate);
}

/// An outbox written before migration 0003 (idempotency keys, message ids, group admins)
/// still runs after it: pending actions get a key from their id and the message of their
/// event, groups get no admins.
#[tokio::test]
async fn actions_queued_before_the_platform_port_migration_still_run() {
    use groupguard_core::model::{GroupRef, Platform};
    use groupguard_core::ports::ViolationStore;
    use sqlx::Connection as _;

    let path = fresh_path();
    let url = format!("sqlite://{}", path.display());
    let mut conn = migrated_until(&path, "0003").await;
    sqlx::raw_sql(
        "INSERT INTO processed_events (platform, event_id, at, message_id) VALUES ('wecom', 'e1', 0, 'm1');
         INSERT INTO violations (event_id, at, platform, group_id, member, rule_id, check_kind, evidence, excerpt, mode, actions)
           VALUES ('e1', 0, 'wecom', 'g1', 'spammer', 'ads', 'keyword', '{\"type\":\"kind\",\"kind\":\"text\"}', '', 'enforce', '[]');
         INSERT INTO outbox (violation_id, rule_id, platform, group_id, member, action, state, attempts, due_at, lease_until)
           VALUES (1, 'ads', 'wecom', 'g1', 'spammer', '{\"type\":\"kick\"}', 'pending', 0, 0, -1);
         INSERT INTO groups (platform, id, name, tags, home_org, owner) VALUES ('wecom', 'g1', 'Shop', '[]', NULL, 'zhang');",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = SqlStore::open(&url).await.unwrap();
    let claimed = store
        .claim_actions(T0, T0.plus(std::time::Duration::from_secs(30)), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].key.as_str(), "a1");
    assert_eq!(claimed[0].message.as_ref().unwrap().as_str(), "m1");
    let config = store.config().await.unwrap();
    assert_eq!(config.groups[0].id, GroupRef::new(Platform::WeCom, "g1"));
    assert!(config.groups[0].admins.is_empty());
}

/// Rows holding the JSON shapes groupguard stores (`core/tests/fixtures/stored`), written
/// straight into the tables, read back through the store: rules and settings, `why`, the
/// violation list and `audit undo` keep working on data written before any change of code.
#[tokio::test]
async fn stored_json_rows_read_back_through_the_store() {
    use groupguard_core::model::Platform;
    use groupguard_core::ports::{AuditStore, Change, ViolationQuery, ViolationStore};
    use groupguard_core::rule::{Rule, Settings};
    use groupguard_core::time::Timestamp;
    use groupguard_core::verdict::{Action, Evidence, Verdict};
    use sqlx::Connection as _;

    let fixture = |name: &str| -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../core/tests/fixtures/stored")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let rule: Rule = serde_json::from_value(fixture("rule.json")).unwrap();
    let settings: Settings = serde_json::from_value(fixture("settings.json")).unwrap();
    let changes = fixture("changes.json");
    let verdict: Verdict = serde_json::from_value(fixture("verdicts.json")[0].clone()).unwrap();
    let evidence = &fixture("evidence.json")[0];
    let actions = fixture("actions.json");

    let path = fresh_path();
    let url = format!("sqlite://{}", path.display());
    SqlStore::open(&url).await.unwrap().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut body = fixture("rule.json");
    body["scope"]["groups"] = serde_json::json!([]);
    let now = Timestamp(verdict.at.millis() + 3_600_000);
    let rows: [(&str, Vec<String>); 6] = [
        (
            "INSERT INTO rules (id, position, version, body) VALUES ('all', 0, 1, ?)",
            vec![body.to_string()],
        ),
        (
            "INSERT INTO rule_groups (rule_id, position, platform, group_id) VALUES ('all', 0, 'wecom', 'g1')",
            vec![],
        ),
        (
            "INSERT INTO settings (id, body) VALUES (1, ?)",
            vec![fixture("settings.json").to_string()],
        ),
        (
            "INSERT INTO audit_log (at, by_source, change) VALUES (?, 'moderator:wecom:admin', ?)",
            vec![verdict.at.millis().to_string(), changes[1].to_string()],
        ),
        (
            "INSERT INTO processed_events (platform, event_id, at, message_id, verdict) VALUES ('wecom', 'e1', ?, 'e1', ?)",
            vec![
                verdict.at.millis().to_string(),
                fixture("verdicts.json")[0].to_string(),
            ],
        ),
        (
            "INSERT INTO violations (event_id, at, platform, group_id, member, rule_id, check_kind, evidence, excerpt, mode, actions) \
             VALUES ('e1', ?, 'wecom', 'g1', 'spammer', 'all', 'keyword', ?, '请加 微 信', 'enforce', ?)",
            vec![
                verdict.at.millis().to_string(),
                evidence.to_string(),
                actions.to_string(),
            ],
        ),
    ];
    for (sql, binds) in rows {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = match b.parse::<i64>() {
                Ok(n) => query.bind(n),
                Err(_) => query.bind(b),
            };
        }
        query.execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqlStore::open(&url).await.unwrap();
    let config = store.config().await.unwrap();
    assert_eq!(config.rules, [rule]);
    assert_eq!(config.settings, settings);
    assert_eq!(
        store.verdict(Platform::WeCom, "e1").await.unwrap(),
        Some(verdict)
    );
    let listed = &store.violations(&ViolationQuery::default()).await.unwrap()[0];
    assert_eq!(
        listed.record.evidence,
        serde_json::from_value::<Evidence>(evidence.clone()).unwrap()
    );
    assert_eq!(
        listed.record.actions,
        serde_json::from_value::<Vec<Action>>(actions).unwrap()
    );
    let audit = store.audit_page(None, 10).await.unwrap();
    assert!(matches!(audit[0].change, Change::Rule { .. }));
    let undone = store
        .undo(
            audit[0].id,
            &Edit::new("moderator:wecom:admin".parse().unwrap(), now),
        )
        .await
        .unwrap();
    assert!(matches!(undone.change, Change::Rule { after: None, .. }));
    assert!(
        store.config().await.unwrap().rules.is_empty(),
        "undoing the creation deletes it"
    );
}
