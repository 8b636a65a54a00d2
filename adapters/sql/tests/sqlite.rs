//! The store conformance suite on real SQLite files.

use std::sync::atomic::{AtomicUsize, Ordering};

use groupguard_sql::SqlStore;

/// A fresh database file for each test.
async fn fresh() -> SqlStore {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sqlite-conformance");
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join(format!(
        "{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&file);
    SqlStore::open(&format!("sqlite://{}", file.display()))
        .await
        .expect("the SQLite store opens")
}

groupguard_core::store_conformance_tests!(fresh());
