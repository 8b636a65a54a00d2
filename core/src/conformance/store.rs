//! The store suite: configuration, lists, audit, violations and the outbox.

use super::*;

/// A rule's versions grow with every save; its scope can name 20,000 groups.
pub async fn rules_are_versioned_and_keep_large_scopes(store: &impl Store) {
    let mut ads = rule("ads", "加微信");
    assert_eq!(store.put_rule(ads.clone(), &edit(T0)).await.unwrap(), 1);
    store
        .put_rule(rule("links", "t.me"), &edit(T0))
        .await
        .unwrap();
    ads.scope.groups = (0..20_000).map(|i| group(&format!("wr{i:05}"))).collect();
    ads.scope.tags = vec!["retail".to_owned(), "vip".to_owned()];
    ads.scope.platforms = vec![Platform::WeCom];
    let later = T0.plus(Duration::from_secs(60));
    assert_eq!(store.put_rule(ads.clone(), &edit(later)).await.unwrap(), 2);

    let config = store.config().await.unwrap();
    let ids: Vec<&str> = config.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["ads", "links"],
        "rules keep the order they were created in"
    );
    assert_eq!(config.rules[0], ads);
    let versions = store.rule_versions(&"ads".into()).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[0].version, versions[0].at), (1, T0));
    assert_eq!((versions[1].version, versions[1].at), (2, later));
    assert_eq!(versions[1].rule.scope.groups.len(), 20_000);
    assert!(versions[0].rule.scope.groups.is_empty());
    assert!(
        store
            .rule_versions(&"nope".into())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A long keyword list reads back exactly, in the rule, every version and the audit, and an
/// undo of an edit restores it.
pub async fn long_keyword_lists_read_back_everywhere(store: &impl Store) {
    let mut words = rule("words", "加微信");
    let list: Vec<String> = (0..3_000).map(|i| format!("词{i:05}")).collect();
    words.keywords.as_mut().unwrap().substrings = list.clone();
    store.put_rule(words.clone(), &edit(T0)).await.unwrap();
    let mut edited = words.clone();
    let keywords = edited.keywords.as_mut().unwrap();
    keywords.substrings.insert(1_500, "新词".to_owned());
    keywords.substrings.remove(10);
    keywords.words = (0..600).map(|i| format!("word{i}")).collect();
    store.put_rule(edited.clone(), &edit(T0)).await.unwrap();

    assert_eq!(store.config().await.unwrap().rules, [edited.clone()]);
    let versions = store.rule_versions(&"words".into()).await.unwrap();
    let stored: Vec<&Rule> = versions.iter().map(|v| &v.rule).collect();
    assert_eq!(stored, [&words, &edited]);
    let latest = store.audit_page(None, 1).await.unwrap().remove(0);
    match &latest.change {
        Change::Rule { before, after, .. } => {
            assert_eq!(before.as_deref(), Some(&words));
            assert_eq!(after.as_deref(), Some(&edited));
        }
        other => panic!("a rule change, not {other:?}"),
    }
    store.undo(latest.id, &edit(T0)).await.unwrap();
    assert_eq!(store.config().await.unwrap().rules, [words]);
}

/// Deleting a rule is audited; undo brings it back within 72 hours and only once.
pub async fn deleted_rules_can_be_restored_for_72_hours(store: &impl Store) {
    store
        .put_rule(rule("ads", "代购"), &edit(T0))
        .await
        .unwrap();
    store
        .put_rule(rule("spam", "刷单"), &edit(T0))
        .await
        .unwrap();
    let deleted_at = T0.plus(Duration::from_secs(3600));
    let revision = store.revision().await.unwrap();
    store
        .delete_rule(&"ads".into(), &edit(deleted_at))
        .await
        .unwrap();
    assert!(
        store.revision().await.unwrap() > revision,
        "a change moves the revision"
    );
    let revision = store.revision().await.unwrap();
    assert!(
        store
            .delete_rule(&"ads".into(), &edit(deleted_at))
            .await
            .is_err()
    );
    assert_eq!(
        store.revision().await.unwrap(),
        revision,
        "a refused change does not"
    );
    assert_eq!(store.config().await.unwrap().rules.len(), 1);

    let log = store.audit_page(None, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    let deletion = &log[0];
    assert!(
        matches!(&deletion.change, Change::Rule { id, before: Some(_), after: None } if id.as_str() == "ads")
    );
    assert_eq!(deletion.by.to_string(), "moderator:wecom:admin");
    assert_eq!(deletion.at, deleted_at);
    assert_eq!(
        store.audit_page(Some(log[1].id), 10).await.unwrap(),
        log[2..]
    );

    let restore_at = deleted_at.plus(Duration::from_secs(71 * 3600));
    let undo = store.undo(deletion.id, &edit(restore_at)).await.unwrap();
    assert!(matches!(
        &undo.change,
        Change::Rule {
            before: None,
            after: Some(_),
            ..
        }
    ));
    let ids: Vec<String> = store
        .config()
        .await
        .unwrap()
        .rules
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert!(ids.contains(&"ads".to_owned()));
    let again = store
        .undo(deletion.id, &edit(restore_at))
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!("change #{} was already undone by #{}", deletion.id, undo.id)
    );

    store.delete_rule(&"spam".into(), &edit(T0)).await.unwrap();
    let old = store.audit_page(None, 1).await.unwrap().remove(0);
    let too_late = store
        .undo(old.id, &edit(T0.plus(Duration::from_secs(73 * 3600))))
        .await
        .unwrap_err();
    assert_eq!(
        too_late.to_string(),
        format!(
            "change #{} is older than 72 hours and can no longer be undone",
            old.id
        )
    );
}

/// Groups, settings and whitelist entries are stored, replaced and removed.
pub async fn groups_settings_and_whitelist(store: &impl Store) {
    let mut shop = GroupConfig {
        id: group("wrShop"),
        name: Some("Shop".to_owned()),
        tags: vec!["retail".to_owned()],
        home_org: Some("wwCorp".into()),
        owner: Some("zhang".into()),
        admins: vec!["li".into(), "wang".into()],
        notices: None,
        native_filter: true,
    };
    store.put_group(shop.clone(), &edit(T0)).await.unwrap();
    let mut other = GroupConfig::new(GroupRef::new(Platform::Discord, "123"));
    other.notices = Some("1200000000000000099".to_owned());
    store.put_group(other.clone(), &edit(T0)).await.unwrap();
    shop.tags.push("vip".to_owned());
    store.put_group(shop.clone(), &edit(T0)).await.unwrap();
    let mut settings = Settings::default();
    settings.home_orgs.insert(Platform::WeCom, "wwCorp".into());
    settings.warn_template = Some("{member}: {rule}".to_owned());
    store
        .put_settings(settings.clone(), &edit(T0))
        .await
        .unwrap();
    let friend = WhitelistEntry {
        member: MemberRef::new(Platform::Matrix, "@friend:example.org"),
        reason: "partner".to_owned(),
        rules: vec!["ads".into()],
    };
    store
        .put_whitelist(friend.clone(), &edit(T0))
        .await
        .unwrap();

    let config = store.config().await.unwrap();
    assert_eq!(
        config.groups,
        [other.clone(), shop.clone()],
        "groups in (platform, id) order"
    );
    assert_eq!(config.settings, settings);
    assert_eq!(config.whitelist, std::slice::from_ref(&friend));
    assert!(config.blacklist.is_empty());

    store.delete_group(&shop.id, &edit(T0)).await.unwrap();
    store
        .remove_whitelist(&friend.member, &edit(T0))
        .await
        .unwrap();
    let config = store.config().await.unwrap();
    assert_eq!(config.groups, [other]);
    assert!(config.whitelist.is_empty());
    let log = store.audit_page(None, 2).await.unwrap();
    assert!(matches!(
        &log[0].change,
        Change::Whitelist { after: None, .. }
    ));
    assert!(matches!(&log[1].change, Change::Group { after: None, .. }));
}

/// Removing what is not there says what is missing; nothing is audited.
pub async fn missing_things_are_reported(store: &impl Store) {
    let e = edit(T0);
    let errors = [
        store.delete_rule(&"ghost".into(), &e).await.unwrap_err(),
        store.delete_group(&group("ghost"), &e).await.unwrap_err(),
        store
            .remove_whitelist(&MemberRef::new(Platform::WeCom, "ghost"), &e)
            .await
            .unwrap_err(),
        store
            .remove_blacklist(&MemberRef::new(Platform::WeCom, "ghost"), None, &e)
            .await
            .unwrap_err(),
        store.undo(42, &e).await.unwrap_err(),
        store
            .finish_action(42, ActionResult::Done)
            .await
            .unwrap_err(),
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "rule `ghost` does not exist",
            "group `wecom:ghost` does not exist",
            "whitelist entry `wecom:ghost` does not exist",
            "blacklist entry `wecom:ghost` does not exist",
            "audit entry `42` does not exist",
            "action `42` does not exist",
        ]
    );
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, StoreError::NotFound { .. }))
    );
    assert!(store.audit_page(None, 10).await.unwrap().is_empty());
}

/// Org-wide and personal entries are distinct; pages follow (platform, member, owner) order.
pub async fn blacklist_entries_page_in_key_order(store: &impl Store) {
    for (id, owner) in [("c", None), ("a", Some("zhang")), ("a", None), ("b", None)] {
        store
            .add_blacklist(entry(id, owner, T0), &edit(T0))
            .await
            .unwrap();
    }
    let mut discord = entry("z", None, T0);
    discord.member = MemberRef::new(Platform::Discord, "z");
    discord.expires_at = Some(T0.plus(Duration::from_secs(86_400)));
    store
        .add_blacklist(discord.clone(), &edit(T0))
        .await
        .unwrap();
    assert_eq!(store.blacklist_len().await.unwrap(), 5);

    let first = store.blacklist_page(None, 3).await.unwrap();
    let keys = |page: &[BlacklistEntry]| -> Vec<String> {
        page.iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e.member,
                    e.owner.as_ref().map_or("", |o| o.as_str())
                )
            })
            .collect()
    };
    assert_eq!(keys(&first), ["discord:z/", "wecom:a/", "wecom:a/zhang"]);
    assert_eq!(first[0], discord);
    let last = &first[2];
    let second = store
        .blacklist_page(Some((&last.member, last.owner.as_ref())), 3)
        .await
        .unwrap();
    assert_eq!(keys(&second), ["wecom:b/", "wecom:c/"]);

    let mut changed = entry("b", None, T0);
    changed.reason = "new reason".to_owned();
    store
        .add_blacklist(changed.clone(), &edit(T0))
        .await
        .unwrap();
    assert_eq!(store.blacklist_len().await.unwrap(), 5, "same key replaces");
    let page = store
        .blacklist_page(Some((&last.member, last.owner.as_ref())), 1)
        .await
        .unwrap();
    assert_eq!(page, [changed]);
}

/// Start-up's pages hold every entry in key order, over every platform and page boundary,
/// without its creation time.
pub async fn blacklist_index_pages_hold_what_the_index_keeps(store: &impl Store) {
    let mut entries = Vec::new();
    for platform in [Platform::WeCom, Platform::Discord, Platform::Matrix] {
        for i in 0..5 {
            let owner = (i % 2 == 1).then_some("zhang");
            let mut e = entry(&format!("u{i}"), owner, T0);
            e.member = MemberRef::new(platform, format!("u{i}"));
            e.reason = format!("reason {}", i % 3);
            if i == 4 {
                e.expires_at = Some(T0.plus(Duration::from_secs(86_400)));
            }
            entries.push(e);
        }
    }
    store.import_blacklist(entries, &edit(T0)).await.unwrap();
    let whole = store.blacklist_page(None, 100).await.unwrap();
    assert_eq!(whole.len(), 15);
    let expected: Vec<IndexedEntry> = whole.iter().map(IndexedEntry::of).collect();
    for size in [1, 4, 5, 6, 15, 16] {
        let mut read: Vec<IndexedEntry> = Vec::new();
        loop {
            let after = read.last().map(|e| (&e.member, e.meta.owner.as_ref()));
            let page = store.blacklist_index_page(after, size).await.unwrap();
            assert!(page.len() <= size as usize);
            let done = page.len() < size as usize;
            read.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(read, expected, "pages of {size}");
    }
}

/// The keys that cut the list for start-up's parallel reads end runs of equal length, over
/// platforms and owners.
pub async fn blacklist_splits_cut_the_list_into_even_runs(store: &impl Store) {
    assert!(
        store.blacklist_splits(2).await.unwrap().is_empty(),
        "empty list"
    );
    let mut entries = Vec::new();
    for platform in [Platform::WeCom, Platform::Discord, Platform::Matrix] {
        for i in 0..5 {
            let mut e = entry(&format!("u{i}"), (i % 2 == 1).then_some("zhang"), T0);
            e.member = MemberRef::new(platform, format!("u{i}"));
            entries.push(e);
        }
    }
    store.import_blacklist(entries, &edit(T0)).await.unwrap();
    let whole = store.blacklist_page(None, 100).await.unwrap();
    let key = |at: usize| (whole[at].member.clone(), whole[at].owner.clone());
    assert_eq!(store.blacklist_splits(3).await.unwrap(), [key(4), key(9)]);
    assert_eq!(store.blacklist_splits(2).await.unwrap(), [key(6)]);
    assert!(store.blacklist_splits(1).await.unwrap().is_empty());
    assert!(
        store.blacklist_splits(16).await.unwrap().is_empty(),
        "more parts than entries"
    );
}

/// An import writes all entries or, when one is bad, none.
pub async fn blacklist_import_replaces_and_is_atomic(store: &impl Store) {
    store
        .add_blacklist(entry("u0", None, T0), &edit(T0))
        .await
        .unwrap();
    let entries: Vec<BlacklistEntry> = (0..5_000)
        .map(|i| entry(&format!("u{i}"), None, T0))
        .collect();
    assert_eq!(
        store.import_blacklist(entries, &edit(T0)).await.unwrap(),
        5_000
    );
    assert_eq!(store.blacklist_len().await.unwrap(), 5_000);
    let log = store.audit_page(None, 1).await.unwrap();
    assert_eq!(log[0].change, Change::BlacklistImport { count: 5_000 });
    assert!(store.undo(log[0].id, &edit(T0)).await.is_err());

    let mut bad: Vec<BlacklistEntry> = (0..3_000)
        .map(|i| entry(&format!("new{i}"), None, T0))
        .collect();
    bad[2_500].expires_at = Some(T0.minus(Duration::from_secs(1)));
    assert!(store.import_blacklist(bad, &edit(T0)).await.is_err());
    assert_eq!(
        store.blacklist_len().await.unwrap(),
        5_000,
        "a failed import leaves nothing behind"
    );
    let log = store.audit_page(None, 10).await.unwrap();
    assert_eq!(log.len(), 2, "a failed import is not audited");
}

/// A removed entry comes back with undo, exactly as it was.
pub async fn removed_blacklist_entries_can_be_restored(store: &impl Store) {
    let mut troll = entry("troll", Some("zhang"), T0);
    troll.expires_at = Some(T0.plus(Duration::from_secs(3600)));
    store.add_blacklist(troll.clone(), &edit(T0)).await.unwrap();
    store
        .remove_blacklist(&troll.member, troll.owner.as_ref(), &edit(T0))
        .await
        .unwrap();
    assert_eq!(store.blacklist_len().await.unwrap(), 0);
    let removal = store.audit_page(None, 1).await.unwrap().remove(0);
    store.undo(removal.id, &edit(T0)).await.unwrap();
    assert_eq!(store.blacklist_page(None, 10).await.unwrap(), [troll]);
}

/// A config import replaces settings, groups, rules and whitelist in one step.
pub async fn config_import_replaces_everything_at_once(store: &impl Store) {
    store.put_rule(rule("old", "x"), &edit(T0)).await.unwrap();
    let set = rulefile::parse(
        r#"
[settings]
home_orgs = { wecom = "wwCorp" }

[[groups]]
id = "wecom:wrShop"
tags = ["retail"]

[[rules]]
id = "ads"
keywords = { substrings = ["加微信"] }
scope = { tags = ["retail"] }

[[whitelist]]
member = "wecom:friend"

[[blacklist]]
member = "wecom:troll"
source = "import"
created_at = "2026-11-01T00:00:00Z"
"#,
    )
    .unwrap();
    store.replace_config(set.clone(), &edit(T0)).await.unwrap();
    let config = store.config().await.unwrap();
    assert_eq!(config.rules, set.rules);
    assert_eq!(config.groups, set.groups);
    assert_eq!(config.whitelist, set.whitelist);
    assert_eq!(config.settings, set.settings);
    assert_eq!(store.blacklist_page(None, 10).await.unwrap(), set.blacklist);
    let log = store.audit_page(None, 1).await.unwrap();
    assert_eq!(
        log[0].change,
        Change::ConfigImport {
            rules: 1,
            groups: 1
        }
    );
    assert_eq!(store.rule_versions(&"ads".into()).await.unwrap().len(), 1);
}

/// An event is recorded once; records and enforce actions are written together.
pub async fn verdicts_are_recorded_once(store: &impl Store) {
    let verdicts = verdicts();
    let event = verdicts[0].event.to_string();
    assert!(!store.seen(Platform::WeCom, &event).await.unwrap());
    let first = store.record(&verdicts[0]).await.unwrap();
    assert!(store.seen(Platform::WeCom, &event).await.unwrap());
    assert!(!store.seen(Platform::Matrix, &event).await.unwrap());
    let Recorded::New {
        violations,
        actions,
    } = first
    else {
        panic!("the first recording is new")
    };
    assert_eq!(violations.len(), 2, "ads and trial matched");
    assert_eq!(
        actions.len(),
        2,
        "delete and warn; the shadow warning is not queued"
    );
    assert_eq!(
        store.record(&verdicts[0]).await.unwrap(),
        Recorded::Duplicate
    );
    let clean = store.record(&verdicts[1]).await.unwrap();
    assert_eq!(
        clean,
        Recorded::New {
            violations: Vec::new(),
            actions: Vec::new()
        }
    );
    assert_eq!(
        store.record(&verdicts[1]).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
    let all = store.violations(&ViolationQuery::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    let event = verdicts[0].event.to_string();
    assert_eq!(
        store
            .verdict(Platform::WeCom, &event)
            .await
            .unwrap()
            .as_ref(),
        Some(&verdicts[0])
    );
    let message = verdicts[1].message.as_ref().unwrap().to_string();
    assert_eq!(
        store
            .verdict(Platform::WeCom, &message)
            .await
            .unwrap()
            .as_ref(),
        Some(&verdicts[1])
    );
    assert_eq!(
        store.verdict(Platform::Discord, &event).await.unwrap(),
        None
    );
    assert_eq!(store.verdict(Platform::WeCom, "nope").await.unwrap(), None);
}

/// A batch is recorded in one go, each verdict as alone; a repeat in the batch is a duplicate.
pub async fn verdicts_are_recorded_in_batches(store: &impl Store) {
    let verdicts = verdicts();
    let batch = [
        verdicts[0].clone(),
        verdicts[1].clone(),
        verdicts[0].clone(),
    ];
    let recorded = store.record_all(&batch).await.unwrap();
    assert!(
        matches!(&recorded[0], Recorded::New { violations, actions } if violations.len() == 2 && actions.len() == 2)
    );
    assert_eq!(
        recorded[1],
        Recorded::New {
            violations: Vec::new(),
            actions: Vec::new()
        }
    );
    assert_eq!(
        recorded[2],
        Recorded::Duplicate,
        "a repeat within the batch"
    );
    assert_eq!(
        store.record_all(&batch[..1]).await.unwrap(),
        [Recorded::Duplicate],
        "and in a later batch"
    );
    assert!(store.record_all(&[]).await.unwrap().is_empty());
    let asked = [
        (Platform::WeCom, verdicts[0].event.to_string()),
        (Platform::Matrix, verdicts[0].event.to_string()),
        (Platform::WeCom, "never".to_owned()),
        (Platform::WeCom, verdicts[1].event.to_string()),
    ];
    let seen = store.seen_among(&asked).await.unwrap();
    assert_eq!(
        seen,
        [asked[0].clone(), asked[3].clone()].into_iter().collect(),
        "by platform and id"
    );
    assert!(store.seen_among(&[]).await.unwrap().is_empty());
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
    assert_eq!(
        store
            .violations(&ViolationQuery::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Claimed actions are leased; finished ones leave the queue; retries wait until due.
pub async fn outbox_actions_are_leased_and_finished(store: &impl Store) {
    let verdicts = verdicts();
    for v in &verdicts {
        store.record(v).await.unwrap();
    }
    let now = T0.plus(Duration::from_secs(2 * 86_400));
    let lease = now.plus(Duration::from_secs(30));
    let claimed = store.claim_actions(now, lease, 100).await.unwrap();
    let names: Vec<&str> = claimed.iter().map(|a| a.action.name()).collect();
    assert_eq!(names, ["delete", "warn", "delete", "warn", "kick"]);
    assert!(
        claimed
            .iter()
            .all(|a| a.attempts == 1 && a.state == ActionState::Pending)
    );
    assert_eq!(claimed[4].member.as_str(), "spy");
    assert_eq!(claimed[4].group.as_str(), "other");
    assert!(
        store
            .claim_actions(now, lease, 100)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    store
        .finish_action(claimed[0].id, ActionResult::Done)
        .await
        .unwrap();
    store
        .finish_action(
            claimed[1].id,
            ActionResult::Retry {
                error: "429".to_owned(),
                at: now.plus(Duration::from_secs(5)),
            },
        )
        .await
        .unwrap();
    store
        .finish_action(
            claimed[2].id,
            ActionResult::Failed {
                error: "forbidden".to_owned(),
            },
        )
        .await
        .unwrap();
    store
        .finish_action(
            claimed[3].id,
            ActionResult::Replaced {
                note: "admins notified".to_owned(),
            },
        )
        .await
        .unwrap();
    let refused = store
        .finish_action(claimed[0].id, ActionResult::Done)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("action {} is already finished", claimed[0].id)
    );
    // Several at once: each says how it went, the others are still recorded.
    let finished = store
        .finish_actions(&[
            (claimed[0].id, ActionResult::Done),
            (424_242, ActionResult::Done),
        ])
        .await
        .unwrap();
    assert!(matches!(finished[0], Err(StoreError::Refused(_))));
    assert!(matches!(finished[1], Err(StoreError::NotFound { .. })));
    assert_eq!(store.outbox_depth().await.unwrap(), 2);

    let early = store
        .claim_actions(now.plus(Duration::from_secs(1)), lease, 100)
        .await
        .unwrap();
    assert!(
        early.is_empty(),
        "the retry is not due and the kick is leased"
    );
    let after_lease = lease.plus(Duration::from_secs(1));
    let again = store
        .claim_actions(after_lease, after_lease.plus(Duration::from_secs(30)), 100)
        .await
        .unwrap();
    let ids: Vec<i64> = again.iter().map(|a| a.id).collect();
    assert_eq!(ids, [claimed[1].id, claimed[4].id]);
    assert_eq!(again.iter().map(|a| a.attempts).collect::<Vec<_>>(), [2, 2]);
    let limited = store
        .claim_actions(
            after_lease.plus(Duration::from_secs(60)),
            after_lease.plus(Duration::from_secs(90)),
            1,
        )
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

/// Each queued action has the idempotency key of its place in the verdict (or its own) and
/// the verdict's message; a key already queued on a platform is not queued again.
pub async fn outbox_actions_carry_their_key_and_message(store: &impl Store) {
    use crate::platform::IdempotencyKey;
    let mut verdicts = verdicts();
    store.record(&verdicts[0]).await.unwrap();
    let now = T0.plus(Duration::from_secs(2 * 86_400));
    let claimed = store
        .claim_actions(now, now.plus(Duration::from_secs(30)), 100)
        .await
        .unwrap();
    let expected: Vec<IdempotencyKey> = verdicts[0]
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.mode == crate::rule::Mode::Enforce)
        .map(|(i, _)| IdempotencyKey::for_action(Platform::WeCom, &verdicts[0].event, i))
        .collect();
    assert_eq!(
        claimed.iter().map(|a| a.key.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(
        claimed
            .iter()
            .all(|a| a.message == verdicts[0].message && a.message.is_some())
    );

    let alert = IdempotencyKey::for_raid(Platform::WeCom, &"shop".into(), T0);
    for v in &mut verdicts[2..4] {
        let mut planned = v.actions[0].clone();
        planned.action = crate::verdict::Action::NotifyAdmins {
            text: "raid".to_owned(),
        };
        planned.key = Some(alert.clone());
        planned.mode = crate::rule::Mode::Enforce;
        v.actions.push(planned);
    }
    let enforced = |v: &Verdict| {
        v.actions
            .iter()
            .filter(|a| a.mode == crate::rule::Mode::Enforce)
            .count()
    };
    let Recorded::New { actions, .. } = store.record(&verdicts[2]).await.unwrap() else {
        panic!("a new event")
    };
    assert_eq!(actions.len(), enforced(&verdicts[2]));
    let Recorded::New {
        actions,
        violations,
    } = store.record(&verdicts[3]).await.unwrap()
    else {
        panic!("a new event")
    };
    assert_eq!(violations.len(), verdicts[3].violations.len());
    assert_eq!(
        actions.len(),
        enforced(&verdicts[3]) - 1,
        "the alert's key was queued already"
    );
    let later = now.plus(Duration::from_secs(60));
    let queued = store
        .claim_actions(later, later.plus(Duration::from_secs(30)), 100)
        .await
        .unwrap();
    assert_eq!(queued.iter().filter(|a| a.key == alert).count(), 1);
}

/// Filters, pages and the fate of each action.
pub async fn violations_are_queried_newest_first(store: &impl Store) {
    let verdicts = verdicts();
    for v in &verdicts {
        store.record(v).await.unwrap();
    }
    let all = store.violations(&ViolationQuery::default()).await.unwrap();
    let summary: Vec<(String, String)> = all
        .iter()
        .map(|v| (v.record.member.to_string(), v.record.rule.to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            ("spy".to_owned(), "gate".to_owned()),
            ("newcomer".to_owned(), "trial".to_owned()),
            ("veteran".to_owned(), "trial".to_owned()),
            ("veteran".to_owned(), "ads".to_owned()),
            ("newcomer".to_owned(), "trial".to_owned()),
            ("newcomer".to_owned(), "ads".to_owned()),
        ]
    );
    let ads = &all[5];
    assert_eq!(ads.record.check, CheckKind::Keyword);
    assert_eq!(ads.record.excerpt, "代购");
    let states: Vec<(&str, &ActionState)> =
        ads.outcomes.iter().map(|(a, s)| (a.name(), s)).collect();
    assert_eq!(
        states,
        [
            ("delete", &ActionState::Pending),
            ("warn", &ActionState::Pending)
        ]
    );
    let shadow = &all[4];
    let shadow_states: Vec<(&str, &ActionState)> =
        shadow.outcomes.iter().map(|(a, s)| (a.name(), s)).collect();
    assert_eq!(shadow_states, [("warn", &ActionState::Shadow)]);

    let query = |q: ViolationQuery| async move { store.violations(&q).await.unwrap() };
    let newcomer = query(ViolationQuery {
        member: Some(MemberRef::new(Platform::WeCom, "newcomer")),
        ..ViolationQuery::default()
    })
    .await;
    assert_eq!(newcomer.len(), 3);
    let shop = query(ViolationQuery {
        group: Some(group("shop")),
        rule: Some(RuleId::new("trial")),
        ..ViolationQuery::default()
    })
    .await;
    assert_eq!(shop.len(), 3);
    let window = query(ViolationQuery {
        from: Some(T0.plus(Duration::from_secs(120))),
        to: Some(T0.plus(Duration::from_secs(240))),
        ..ViolationQuery::default()
    })
    .await;
    assert_eq!(window.len(), 2, "the veteran's violations at T0+3m");
    let page1 = query(ViolationQuery {
        limit: 4,
        ..ViolationQuery::default()
    })
    .await;
    let page2 = query(ViolationQuery {
        limit: 4,
        before_id: Some(page1[3].id),
        ..ViolationQuery::default()
    })
    .await;
    assert_eq!(page1.len(), 4);
    assert_eq!(page2.len(), 2);
    assert_eq!(page2[1].id, all[5].id);
}

/// Per-day counts per group, the share of new members among violators, the top checks.
pub async fn day_stats_and_top_checks(store: &impl Store) {
    for v in &verdicts() {
        store.record(v).await.unwrap();
    }
    let day = T0.millis().div_euclid(86_400_000);
    let end = T0.plus(Duration::from_secs(3 * 86_400));
    let stats = store.day_stats(None, T0, end).await.unwrap();
    let rows: Vec<(i64, String, u64, u64, u64)> = stats
        .iter()
        .map(|s| {
            (
                s.day - day,
                s.group.to_string(),
                s.violations,
                s.violators,
                s.new_violators,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, "wecom:shop".to_owned(), 5, 2, 1),
            (1, "wecom:other".to_owned(), 1, 1, 1),
        ]
    );
    let shop_only = store
        .day_stats(Some(&group("shop")), T0, end)
        .await
        .unwrap();
    assert_eq!(shop_only.len(), 1);
    let top = store.top_checks(T0, end, 10).await.unwrap();
    assert_eq!(
        top,
        [(CheckKind::Keyword, 5), (CheckKind::OtherOrganisation, 1)]
    );
    assert_eq!(store.top_checks(T0, end, 1).await.unwrap().len(), 1);
}

/// Violations since a time, for the engine's ladders; pruned events can be recorded again.
pub async fn ladder_history_and_event_pruning(store: &impl Store) {
    let verdicts = verdicts();
    for v in &verdicts {
        store.record(v).await.unwrap();
    }
    let since = T0.plus(Duration::from_secs(150));
    let history = store.ladder_history(since).await.unwrap();
    let rows: Vec<(String, String)> = history
        .iter()
        .map(|(m, r, _)| (m.to_string(), r.to_string()))
        .collect();
    assert_eq!(
        rows,
        [
            ("wecom:veteran".to_owned(), "ads".to_owned()),
            ("wecom:veteran".to_owned(), "trial".to_owned()),
            ("wecom:newcomer".to_owned(), "trial".to_owned()),
            ("wecom:spy".to_owned(), "gate".to_owned()),
        ]
    );
    assert!(history.windows(2).all(|w| w[0].2 <= w[1].2));
    let pruned = store
        .prune_events(T0.plus(Duration::from_secs(150)))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    assert!(matches!(
        store.record(&verdicts[0]).await.unwrap(),
        Recorded::New { .. }
    ));
    assert_eq!(
        store.record(&verdicts[4]).await.unwrap(),
        Recorded::Duplicate
    );
}
