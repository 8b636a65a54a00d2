//! Golden tests for every shape stored as JSON (rule bodies, settings, audit changes, verdicts
//! for `why`, evidence, actions): the checked-in fixtures were written by groupguard, and
//! must read back and write out unchanged, so a renamed field cannot orphan stored data.

use groupguard_core::ports::Change;
use groupguard_core::rule::{Rule, Settings};
use groupguard_core::verdict::{Action, Evidence, Outcome, Verdict};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/stored/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads a fixture as `T` and checks it writes back to the same JSON.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let stored = fixture(name);
    let value: T = serde_json::from_value(stored.clone())
        .unwrap_or_else(|e| panic!("{name} no longer reads: {e}"));
    let written = serde_json::to_value(&value).unwrap();
    assert_eq!(written, stored, "{name} is written in another shape now");
    value
}

#[test]
fn rule_bodies_read_back() {
    let rule: Rule = round_trip("rule.json");
    assert_eq!(rule.id.as_str(), "all");
    assert_eq!(rule.ladder.len(), 4);
    assert!(rule.keywords.is_some() && rule.links.is_some() && rule.invites.is_some());
}

#[test]
fn settings_read_back() {
    let settings: Settings = round_trip("settings.json");
    assert_eq!(settings.home_orgs.len(), 2);
    assert_eq!(
        settings.blacklist_manual_removals,
        groupguard_core::rule::ManualRemovals::Personal
    );
}

#[test]
fn audit_changes_read_back_and_can_still_be_undone() {
    let changes: Vec<Change> = round_trip("changes.json");
    assert_eq!(changes.len(), 7, "one of each kind of change");
    let undoable = changes.iter().filter(|c| c.inverse().is_ok()).count();
    assert_eq!(undoable, 5, "imports cannot be undone, the rest can");
}

#[test]
fn verdicts_read_back_for_why() {
    let verdicts: Vec<Verdict> = round_trip("verdicts.json");
    let first = &verdicts[0];
    assert!(matches!(first.outcome("all"), Some(Outcome::Matched(_))));
    assert_eq!(first.violations.len(), 1);
    assert!(
        first.actions.iter().any(|a| a.key.is_some()),
        "a raid alert's own idempotency key is kept"
    );
    assert_eq!(verdicts.len(), 3);
}

#[test]
fn evidence_and_actions_read_back() {
    let evidence: Vec<Evidence> = round_trip("evidence.json");
    assert_eq!(evidence.len(), 10, "every kind of evidence");
    let actions: Vec<Action> = round_trip("actions.json");
    let names: Vec<&str> = actions.iter().map(Action::name).collect();
    assert_eq!(
        names,
        [
            "delete",
            "warn",
            "timeout",
            "kick",
            "blacklist",
            "blacklist",
            "notify",
            "review",
            "lockdown"
        ]
    );
}
