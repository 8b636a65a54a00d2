//! The command suite: chat commands against a store, and their effect on the next decision.

use super::*;

/// Runs one command line as `actor` in group `g1` and renders the outcome or the error.
async fn run(
    store: &impl Store,
    rules: &crate::engine::RulesHandle,
    actor: &crate::model::Member,
    line: &str,
) -> Result<String, String> {
    use crate::command::{Context, execute, parse, render};
    let invocation = parse(line, Platform::WeCom).map_err(|e| e.to_string())?;
    let group = crate::model::GroupId::new("g1");
    let ctx = Context {
        store,
        rules,
        platform: Platform::WeCom,
        group: &group,
        actor,
        now: T0,
    };
    execute(&invocation, &ctx)
        .await
        .map(|o| render(&o))
        .map_err(|e| e.to_string())
}

fn admin() -> crate::model::Member {
    crate::testing::with_role("boss", crate::model::Role::Admin)
}

fn engine_for(rules: &crate::engine::RulesHandle) -> Engine {
    Engine::with_handle(std::sync::Arc::clone(rules))
}

fn handle() -> crate::engine::RulesHandle {
    std::sync::Arc::new(crate::engine::Live::default())
}

fn matched(engine: &mut Engine, text: &str) -> Vec<String> {
    let event = EventFactory::new(Platform::WeCom, "g1").text(&member("customer"), text);
    engine
        .evaluate(&event, event.at)
        .matched()
        .map(|(rule, _)| rule.to_string())
        .collect()
}

/// A rule built from chat judges the very next message.
pub async fn commands_change_the_next_decision(store: &impl Store) {
    let rules = handle();
    let mut engine = engine_for(&rules);
    let boss = admin();
    assert_eq!(
        run(store, &rules, &boss, "!guard rule create ads No ads")
            .await
            .unwrap(),
        "rule ads: created, disabled until it has checks and is enabled (version 1)"
    );
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard rule set ads keywords add 代购 加微信"
        )
        .await
        .unwrap(),
        "rule ads: added 2 keywords, 2 in all (version 2)"
    );
    assert!(
        matched(&mut engine, "专业代购").is_empty(),
        "still disabled"
    );
    run(store, &rules, &boss, "!guard rule enable ads")
        .await
        .unwrap();
    assert_eq!(matched(&mut engine, "专业代购"), ["ads"]);
    run(
        store,
        &rules,
        &boss,
        "!guard rule set ads keywords remove 代购",
    )
    .await
    .unwrap();
    assert!(matched(&mut engine, "专业代购").is_empty());
    assert_eq!(matched(&mut engine, "加 微 信"), ["ads"]);
    assert!(matched(&mut engine, "加薇信").is_empty(), "as written");
    run(store, &rules, &boss, "!guard rule set ads homophones on")
        .await
        .unwrap();
    assert_eq!(matched(&mut engine, "加薇信"), ["ads"], "by sound");
    assert_eq!(
        run(store, &rules, &boss, "!guard rule list").await.unwrap(),
        "ads [enforce] No ads — keywords"
    );
}

/// Commands above a member's role are refused and change nothing.
pub async fn members_without_permission_are_refused(store: &impl Store) {
    let rules = handle();
    let customer = member("customer");
    let moderator = crate::testing::with_role("mod", crate::model::Role::Moderator);
    assert_eq!(
        run(store, &rules, &customer, "!guard rule create ads")
            .await
            .unwrap_err(),
        "only admins and above can run `rule create`; you are a member"
    );
    assert_eq!(
        run(store, &rules, &moderator, "!guard rule delete ads")
            .await
            .unwrap_err(),
        "only admins and above can run `rule delete`; you are a moderator"
    );
    assert!(
        run(store, &rules, &customer, "!guard help").await.is_ok(),
        "everyone may ask for help"
    );
    assert!(store.config().await.unwrap().rules.is_empty());
    assert!(store.audit_page(None, 10).await.unwrap().is_empty());
}

/// A deleted rule comes back with audit undo, and judges messages again.
pub async fn undo_restores_a_deleted_rule(store: &impl Store) {
    let rules = handle();
    let mut engine = engine_for(&rules);
    let boss = admin();
    for line in [
        "!guard rule create ads",
        "!guard rule set ads phone on",
        "!guard rule enable ads",
    ] {
        run(store, &rules, &boss, line).await.unwrap();
    }
    assert_eq!(matched(&mut engine, "call 13812345678"), ["ads"]);
    run(store, &rules, &boss, "!guard rule delete ads")
        .await
        .unwrap();
    assert!(matched(&mut engine, "call 13812345678").is_empty());
    let log = run(store, &rules, &boss, "!guard audit list")
        .await
        .unwrap();
    let first = log.lines().next().unwrap();
    assert!(
        first.ends_with("moderator:wecom:boss: rule ads deleted"),
        "{log}"
    );
    let id = first.trim_start_matches('#').split(' ').next().unwrap();
    let undone = run(store, &rules, &boss, &format!("!guard audit undo {id}"))
        .await
        .unwrap();
    assert!(undone.ends_with("rule ads created"), "{undone}");
    assert_eq!(matched(&mut engine, "call 13812345678"), ["ads"]);
    assert!(
        run(store, &rules, &boss, &format!("!guard audit undo {id}"))
            .await
            .unwrap_err()
            .contains("was already undone")
    );
}

/// Unknown rules and changes that would break the configuration are explained.
pub async fn commands_explain_what_went_wrong(store: &impl Store) {
    let rules = handle();
    let boss = admin();
    // An invocation the parser would never make: the handler says so, and changes nothing.
    let group = crate::model::GroupId::new("g1");
    let ctx = crate::command::Context {
        store,
        rules: &rules,
        platform: Platform::WeCom,
        group: &group,
        actor: &boss,
        now: T0,
    };
    let invocation = crate::command::Invocation {
        command: crate::command::CommandId::RuleDelete,
        args: crate::command::Args::default(),
    };
    assert_eq!(
        crate::command::execute(&invocation, &ctx)
            .await
            .unwrap_err()
            .to_string(),
        "internal error: the command has no <rule>; please report it"
    );
    assert_eq!(
        run(store, &rules, &boss, "!guard rule enable ghost")
            .await
            .unwrap_err(),
        "unknown rule `ghost`: !guard rule list shows the rules"
    );
    run(store, &rules, &boss, "!guard rule create ads")
        .await
        .unwrap();
    assert_eq!(
        run(store, &rules, &boss, "!guard rule enable ads")
            .await
            .unwrap_err(),
        "nothing was changed: rules[0]: rule `ads` has no checks: add keywords, regex, phone, links, \
         mini_programs, banned_kinds, flood, duplicates, invites or blacklist"
    );
    assert_eq!(
        run(store, &rules, &boss, "!guard rule set ads flood 500 10s")
            .await
            .unwrap_err(),
        "nothing was changed: rules[0].flood.messages: must be between 1 and 100"
    );
    assert_eq!(
        run(store, &rules, &boss, "!guard rule create ads")
            .await
            .unwrap_err(),
        "rule `ads` already exists"
    );
    assert_eq!(
        run(store, &rules, &boss, "!guard blacklist remove wmNobody")
            .await
            .unwrap_err(),
        "blacklist entry `wecom:wmNobody` does not exist"
    );
    assert_eq!(
        store.rule_versions(&"ads".into()).await.unwrap().len(),
        1,
        "refused changes save nothing"
    );
}

/// Templates, lists, violations, exports, stats, why and config round trips.
pub async fn templates_lists_and_reports(store: &impl Store) {
    let rules = handle();
    let mut engine = engine_for(&rules);
    let boss = admin();
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard template apply retail --tag shops"
        )
        .await
        .unwrap(),
        "template retail: 4 rules for groups tagged shops: retail-ads, retail-links, retail-media, retail-flood"
    );
    assert!(
        matched(&mut engine, "加微信").is_empty(),
        "g1 is not tagged yet"
    );
    assert_eq!(
        run(store, &rules, &boss, "!guard group tag add shops")
            .await
            .unwrap(),
        "wecom:g1 tags: shops"
    );
    assert_eq!(matched(&mut engine, "加微信"), ["retail-ads"]);
    assert_eq!(
        run(store, &rules, &boss, "!guard group org wwAcme")
            .await
            .unwrap(),
        "wecom:g1 belongs to wwAcme: invite-ban refuses members of other organisations"
    );
    let groups = store.config().await.unwrap().groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (
            groups[0].home_org.as_ref().map(|o| o.as_str()),
            &groups[0].tags
        ),
        (Some("wwAcme"), &vec!["shops".to_owned()]),
        "the tags stay"
    );

    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard blacklist add wmTroll spam --expires 30d"
        )
        .await
        .unwrap(),
        "wecom:wmTroll is on the org-wide blacklist"
    );
    let listed = run(store, &rules, &boss, "!guard blacklist list")
        .await
        .unwrap();
    assert_eq!(
        listed,
        "wecom:wmTroll: spam — moderator:wecom:boss until 2026-12-21 09:00"
    );
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard blacklist import\nwecom:a spam\nnot-a-ref"
        )
        .await
        .unwrap_err(),
        "nothing was changed: line 2: `not-a-ref` is not of the form platform:id (for example wecom:wmAbc)"
    );
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard blacklist import\nwecom:a spam\nwecom:b"
        )
        .await
        .unwrap(),
        "2 entries imported into the org-wide blacklist"
    );
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard whitelist add customer partner --rule retail-ads"
        )
        .await
        .unwrap(),
        "wecom:customer is exempt from rule retail-ads"
    );
    assert!(
        matched(&mut engine, "加微信").is_empty(),
        "the whitelist applies at once"
    );
    run(store, &rules, &boss, "!guard whitelist remove customer")
        .await
        .unwrap();

    let event = EventFactory::new(Platform::WeCom, "g1").text(&member("spammer"), "加微信");
    let verdict = engine.evaluate(&event, event.at);
    store.record(&verdict).await.unwrap();
    let listed = run(
        store,
        &rules,
        &boss,
        "!guard violations list --rule retail-ads",
    )
    .await
    .unwrap();
    assert_eq!(
        listed,
        "#1 2026-11-21 09:00 g1 spammer retail-ads: keyword `加微信` [delete pending, warn pending]"
    );
    let csv = run(store, &rules, &boss, "!guard violations export csv")
        .await
        .unwrap();
    assert!(
        csv.starts_with("violations.csv\nid,at,platform,group,member"),
        "{csv}"
    );
    assert!(
        csv.contains(",retail-ads,keyword,`加微信`,加微信,enforce,delete;warn,pending;pending"),
        "{csv}"
    );
    let stats = run(store, &rules, &boss, "!guard stats 7 --group g1")
        .await
        .unwrap();
    assert_eq!(
        stats,
        "the last 7 days\n2026-11-21 wecom:g1: 1 violations by 1 members, 0% of them joined in the last 24 h\ntop checks: keyword 1"
    );
    let why = run(store, &rules, &boss, &format!("!guard why {}", event.id))
        .await
        .unwrap();
    assert!(
        why.contains("retail-ads: matched keyword `加微信` — violation 1, delete+warn"),
        "{why}"
    );
    assert!(why.contains("retail-media: not matched"), "{why}");
    assert_eq!(
        run(store, &rules, &boss, "!guard why nope")
            .await
            .unwrap_err(),
        "no decision is recorded for `nope`: give the id of a message or event the bot saw"
    );

    let exported = run(store, &rules, &boss, "!guard config export")
        .await
        .unwrap();
    let file = exported.strip_prefix("groupguard.toml\n").unwrap();
    run(store, &rules, &boss, "!guard rule delete retail-media")
        .await
        .unwrap();
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            &format!("!guard config import\n{file}")
        )
        .await
        .unwrap(),
        "configuration replaced: 4 rules, 1 groups"
    );
    assert_eq!(store.config().await.unwrap().rules.len(), 4);
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard config import\n[[rules]]\nid = \"x\"\nphone = { kinds = [] }\n"
        )
        .await
        .unwrap_err(),
        "nothing was changed: line 3, column 19: rules[0].phone.kinds: choose at least one of mobile, landline, international"
    );
}

/// Settings changed from chat are stored and reach the running rules.
pub async fn settings_change_from_chat(store: &impl Store) {
    use crate::rule::ManualRemovals;
    let rules = handle();
    let boss = admin();
    assert_eq!(
        run(
            store,
            &rules,
            &boss,
            "!guard settings manual-removals personal"
        )
        .await
        .unwrap(),
        "members kicked or banned by an admin by hand now go on the group owner's blacklist"
    );
    assert_eq!(
        store
            .config()
            .await
            .unwrap()
            .settings
            .blacklist_manual_removals,
        ManualRemovals::Personal
    );
    assert_eq!(
        rules.rules().config().settings.blacklist_manual_removals,
        ManualRemovals::Personal
    );
    let moderator = crate::testing::with_role("mod", crate::model::Role::Moderator);
    assert!(
        run(
            store,
            &rules,
            &moderator,
            "!guard settings manual-removals off"
        )
        .await
        .unwrap_err()
        .contains("admin"),
        "moderators may not change settings"
    );
}
