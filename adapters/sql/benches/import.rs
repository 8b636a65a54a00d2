//! Bulk blacklist import: 2,000,000 entries into a fresh SQLite file (and into PostgreSQL
//! when `GROUPGUARD_TEST_POSTGRES` names a server), timed, with the resulting database size.
//!
//! Run: `cargo bench -p groupguard-sql --bench import` (`BENCH_ENTRIES` changes the count).

use std::time::Instant;

use groupguard_core::model::{MemberRef, Platform};
use groupguard_core::ports::{Edit, ListStore};
use groupguard_core::rule::{BlacklistEntry, Source};
use groupguard_core::time::Timestamp;
use groupguard_sql::SqlStore;

fn entries(n: usize) -> Vec<BlacklistEntry> {
    (0..n)
        .map(|i| BlacklistEntry {
            member: MemberRef::new(Platform::WeCom, format!("wmExternal{i:08}")),
            owner: (i % 10 == 0).then(|| format!("owner{}", i % 97).into()),
            reason: "imported from the enterprise blacklist".to_owned(),
            source: Source::Import,
            created_at: Timestamp(1_795_251_600_000),
            expires_at: None,
        })
        .collect()
}

async fn import(store: &SqlStore, n: usize) -> f64 {
    let edit = Edit::new(Source::Import, Timestamp(1_795_251_600_000));
    let list = entries(n);
    let t = Instant::now();
    let written = store
        .import_blacklist(list, &edit)
        .await
        .expect("the import succeeds");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(written as usize, n);
    assert_eq!(store.blacklist_len().await.expect("a count") as usize, n);
    secs
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a quick version.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 2_000_000 });

    let dir = std::env::temp_dir().join(format!("groupguard-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("import.db");
    let store = SqlStore::open(&format!("sqlite://{}", file.display()))
        .await
        .expect("SQLite opens");
    let secs = import(&store, n).await;
    let t = Instant::now();
    let live = groupguard_core::command::load_rules(&store)
        .await
        .expect("the rules load");
    let reload = t.elapsed().as_secs_f64();
    assert_eq!(live.blacklist().len(), n);
    let live = std::sync::Arc::new(live);
    let t = Instant::now();
    groupguard_core::command::reload_configuration(&store, &live)
        .await
        .expect("the config compiles");
    let rule_change = t.elapsed().as_secs_f64();
    let t = Instant::now();
    live.change_blacklist(&entries(1), &[]);
    let list_change = t.elapsed().as_secs_f64();
    assert_eq!(live.blacklist().len(), n);
    store.close().await;
    let size: u64 = std::fs::read_dir(&dir)
        .expect("the directory")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "SQLite: {n} blacklist entries imported in {secs:.1} s ({:.0} entries/s), database {:.0} MB ({:.0} bytes per entry); \
         full reload (read and compile everything) {reload:.2} s; \
         a rule change reloads in {:.0} ms, a blacklist change in {:.0} ms",
        n as f64 / secs,
        size as f64 / 1e6,
        size as f64 / n as f64,
        rule_change * 1e3,
        list_change * 1e3
    );
    std::fs::remove_dir_all(&dir).ok();

    if let Ok(server) = std::env::var("GROUPGUARD_TEST_POSTGRES") {
        let store = SqlStore::open(&server).await.expect("PostgreSQL opens");
        let secs = import(&store, n).await;
        println!(
            "PostgreSQL: {n} blacklist entries imported in {secs:.1} s ({:.0} entries/s)",
            n as f64 / secs
        );
    }
}
