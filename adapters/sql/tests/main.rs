//! The store conformance suite and store-specific tests on real SQLite files and a real
//! PostgreSQL server (`GROUPGUARD_TEST_POSTGRES`, set by `./scripts/test`).

mod postgres;
mod sqlite;
