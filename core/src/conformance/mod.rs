//! One behaviour for every store: each public function of [`store`] and [`commands`] is a
//! test that any [`Store`] must pass. [`crate::store_conformance_tests!`] turns them into
//! `#[tokio::test]`s for one store; a test of this module checks that its list names every
//! one of them.

mod commands;
mod store;

pub use commands::*;
pub use store::*;

use std::time::Duration;

use crate::engine::Engine;
use crate::lists::IndexedEntry;
use crate::model::{Event, GroupRef, JoinScene, MemberRef, Platform, RuleId, UserId};
use crate::ports::{
    ActionResult, ActionState, Change, Edit, Recorded, Store, StoreError, ViolationQuery,
};
use crate::rule::{BlacklistEntry, GroupConfig, Rule, Settings, Source, WhitelistEntry};
use crate::rulefile;
use crate::testing::{EventFactory, T0, member};
use crate::time::Timestamp;
use crate::verdict::{CheckKind, Verdict};

/// Generates one `#[tokio::test]` per conformance test for the store `$make` builds (an
/// expression evaluating to a future of a fresh, empty store).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@tests $make;
            rules_are_versioned_and_keep_large_scopes,
            long_keyword_lists_read_back_everywhere,
            deleted_rules_can_be_restored_for_72_hours,
            groups_settings_and_whitelist,
            missing_things_are_reported,
            blacklist_entries_page_in_key_order,
            blacklist_index_pages_hold_what_the_index_keeps,
            blacklist_splits_cut_the_list_into_even_runs,
            blacklist_import_replaces_and_is_atomic,
            removed_blacklist_entries_can_be_restored,
            config_import_replaces_everything_at_once,
            verdicts_are_recorded_once,
            verdicts_are_recorded_in_batches,
            outbox_actions_are_leased_and_finished,
            outbox_actions_carry_their_key_and_message,
            violations_are_queried_newest_first,
            day_stats_and_top_checks,
            ladder_history_and_event_pruning,
            commands_change_the_next_decision,
            members_without_permission_are_refused,
            undo_restores_a_deleted_rule,
            commands_explain_what_went_wrong,
            templates_lists_and_reports,
            settings_change_from_chat,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make.await;
                $crate::conformance::$name(&store).await;
            }
        )+
    };
}

pub(crate) fn edit(at: Timestamp) -> Edit {
    Edit::new("moderator:wecom:admin".parse().expect("valid source"), at)
}

pub(crate) fn rule(id: &str, keyword: &str) -> Rule {
    let mut rule = Rule::new(id);
    rule.keywords = Some(crate::rule::Keywords {
        substrings: vec![keyword.to_owned()],
        ..Default::default()
    });
    rule
}

pub(crate) fn entry(id: &str, owner: Option<&str>, at: Timestamp) -> BlacklistEntry {
    BlacklistEntry {
        member: MemberRef::new(Platform::WeCom, id),
        owner: owner.map(UserId::from),
        reason: format!("reason for {id}"),
        source: Source::Import,
        created_at: at,
        expires_at: None,
    }
}

pub(crate) fn group(id: &str) -> GroupRef {
    GroupRef::new(Platform::WeCom, id)
}

pub(crate) const RULES: &str = r#"
[[rules]]
id = "ads"
keywords = { substrings = ["代购"] }
ladder = ["delete+warn", "kick"]

[[rules]]
id = "trial"
mode = "shadow"
keywords = { substrings = ["代购", "刷单"] }
ladder = ["warn"]

[[rules]]
id = "gate"
invites = {}
ladder = ["kick"]
"#;

/// Verdicts from the real engine for a small scripted day.
pub(crate) fn verdicts() -> Vec<Verdict> {
    scripted_day().into_iter().map(|(_, v)| v).collect()
}

/// The events of a small scripted day, each with its verdict from the real engine.
pub(crate) fn scripted_day() -> Vec<(Event, Verdict)> {
    let set = rulefile::parse(&format!(
        "[settings]\nhome_orgs = {{ wecom = \"wwCorp\" }}\n{RULES}"
    ))
    .unwrap();
    let mut engine = Engine::new(crate::engine::Live::compile(set).unwrap());
    let mut shop = EventFactory::new(Platform::WeCom, "shop");
    let mut out = Vec::new();
    let mut newcomer = member("newcomer");
    newcomer.joined_at = Some(T0);
    let mut veteran = member("veteran");
    veteran.joined_at = Some(T0.minus(Duration::from_secs(30 * 86_400)));
    for (who, text) in [
        (&newcomer, "代购"),
        (&veteran, "hello"),
        (&veteran, "专业代购"),
        (&newcomer, "刷单"),
    ] {
        shop.advance(Duration::from_secs(60));
        let event = shop.text(who, text);
        let verdict = engine.evaluate(&event, event.at);
        out.push((event, verdict));
    }
    let mut other = shop.in_group("other");
    other.advance(Duration::from_secs(86_400));
    let mut spy = crate::testing::of_org("spy", "wwRival");
    spy.joined_at = Some(other.now());
    let event = other.join(&spy, None, JoinScene::QrCode);
    let verdict = engine.evaluate(&event, event.at);
    out.push((event, verdict));
    out
}

#[cfg(test)]
mod tests {
    /// Every `pub async fn` of the suites is in `store_conformance_tests!`'s list.
    #[test]
    fn the_macro_runs_every_test_of_the_suites() {
        let macro_text = include_str!("mod.rs");
        let listed = &macro_text[macro_text.find("@tests $make;").unwrap()..];
        let listed = &listed[..listed.find(");").unwrap()];
        let mut count = 0;
        for suite in [include_str!("store.rs"), include_str!("commands.rs")] {
            for line in suite.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = &rest[..rest.find('(').unwrap()];
                    count += 1;
                    assert!(
                        listed.contains(&format!("{name},")),
                        "`{name}` is missing from store_conformance_tests!"
                    );
                }
            }
        }
        assert_eq!(
            listed.matches(',').count(),
            count,
            "no name is listed twice or left over"
        );
    }
}
