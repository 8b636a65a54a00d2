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
