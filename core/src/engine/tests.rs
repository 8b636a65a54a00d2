use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::compile::CompiledRules;
use crate::model::{Attachment, GroupId, JoinScene, Message, MessageKind, Platform, Role, UserId};
use crate::rule::{ListScope, Mode, RuleSet};
use crate::testing::{EventFactory, T0, member, of_org, with_role};
use crate::verdict::{Action, CheckKind, Evidence, Outcome, SkipReason};

fn build(toml: &str) -> Engine {
    let set: RuleSet = toml::from_str(toml).expect("test rules parse");
    Engine::new(Live::compile(set).expect("test rules compile"))
}

fn judge(engine: &mut Engine, event: &Event) -> Verdict {
    engine.evaluate(event, event.at)
}

/// The checks that matched for `rule`, or an empty list.
fn checks(verdict: &Verdict, rule: &str) -> Vec<CheckKind> {
    match verdict.outcome(rule) {
        Some(Outcome::Matched(m)) => m.hits.iter().map(|h| h.check).collect(),
        _ => Vec::new(),
    }
}

fn first_evidence(verdict: &Verdict, rule: &str) -> Evidence {
    match verdict.outcome(rule) {
        Some(Outcome::Matched(m)) => m.hits[0].evidence.clone(),
        other => panic!("rule {rule} did not match: {other:?}"),
    }
}

fn action_names(verdict: &Verdict) -> Vec<&'static str> {
    verdict.actions.iter().map(|a| a.action.name()).collect()
}

const ADS: &str = r#"
[[rules]]
id = "ads"
name = "No advertising"
keywords = { substrings = ["加微信", "代购"], words = ["sex", "casino"] }
"#;

#[test]
fn a_keyword_matches_and_the_evidence_points_at_the_original_text() {
    let mut engine = build(ADS);
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "你好，请加 微\u{200B}信 聊"),
    );
    assert_eq!(checks(&v, "ads"), [CheckKind::Keyword]);
    assert_eq!(
        first_evidence(&v, "ads"),
        Evidence::Term {
            term: "加微信".to_owned(),
            matched: "加 微\u{200B}信".to_owned(),
            span: 12..25,
        }
    );
    let clean = judge(&mut engine, &f.text(&member("u1"), "今天天气不错"));
    assert_eq!(clean.outcome("ads"), Some(&Outcome::NotMatched));
    assert!(clean.actions.is_empty() && clean.violations.is_empty());
}

#[test]
fn every_evasion_of_a_keyword_is_caught() {
    let mut engine = build(ADS);
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    for evasion in [
        "加微信",
        "加 微 信",
        "加.微.信",
        "加★微★信",
        "加\u{200B}微\u{200C}信",
        "加微信號",
        "代購",
        "ＣＡＳＩＮＯ tonight",
        "c-a-s-i-n-o",
        "Cásíñó",
        "加🌹微🌹信",
        "🅒🅐🅢🅘🅝🅞 tonight",
        "🇨🇦🇸🇮🇳🇴",
        "𝐂𝐚𝐬𝐢𝐧𝐨",
        "Ⓒⓐⓢⓘⓝⓞ",
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), evasion));
        assert_eq!(checks(&v, "ads"), [CheckKind::Keyword], "{evasion}");
        engine.state.ladder.clear();
    }
}

#[test]
fn homophones_match_only_where_a_list_asks_for_them() {
    let mut engine = build(
        r#"
[[rules]]
id = "sound"
keywords = { substrings = ["微信"], homophones = true }

[[rules]]
id = "written"
keywords = { substrings = ["微信"] }
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    for (written, matched) in [
        ("加薇信聊", "薇信"),
        ("有威信的人", "威信"),
        ("加V信：abc", "V信"),
        ("加 薇 信", "薇 信"),
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), written));
        match first_evidence(&v, "sound") {
            Evidence::Term {
                term, matched: m, ..
            } => {
                assert_eq!((term.as_str(), m.as_str()), ("微信", matched), "{written}");
            }
            other => panic!("a term, not {other:?}"),
        }
        assert_eq!(
            v.outcome("written"),
            Some(&Outcome::NotMatched),
            "{written}"
        );
        engine.state.ladder.clear();
    }
    // Other sounds, and a syllable split across a Latin word, do not match.
    for written in ["微笑信任", "vip信息", "威风信号"] {
        let v = judge(&mut engine, &f.text(&member("u2"), written));
        assert_eq!(v.outcome("sound"), Some(&Outcome::NotMatched), "{written}");
    }
}

#[test]
fn whole_words_do_not_match_inside_other_words() {
    let mut engine = build(ADS);
    let mut f = EventFactory::new(Platform::Discord, "g1");
    let v = judge(&mut engine, &f.text(&member("u1"), "I live in Sussex"));
    assert_eq!(v.outcome("ads"), Some(&Outcome::NotMatched));
    let v = judge(&mut engine, &f.text(&member("u1"), "free sex here"));
    assert_eq!(checks(&v, "ads"), [CheckKind::Keyword]);
    let v = judge(&mut engine, &f.text(&member("u2"), "s e x"));
    assert_eq!(checks(&v, "ads"), [CheckKind::Keyword]);
}

#[test]
fn regexes_match_folded_text_and_report_the_pattern() {
    let mut engine = build(
        r#"
[[rules]]
id = "invite-links"
regex = { patterns = ['discord\.gg/\w+', 'q{2}\s*群\s*\d{5,}'] }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "g1");
    let v = judge(&mut engine, &f.text(&member("u1"), "join DISCORD.GG/abc"));
    match first_evidence(&v, "invite-links") {
        Evidence::Term { term, matched, .. } => {
            assert_eq!(term, r"discord\.gg/\w+");
            assert_eq!(matched, "DISCORD.GG/abc");
        }
        other => panic!("{other:?}"),
    }
    let v = judge(&mut engine, &f.text(&member("u2"), "ＱＱ群 １２３４５６"));
    assert_eq!(checks(&v, "invite-links"), [CheckKind::Regex]);
}

#[test]
fn patterns_written_in_capitals_match_any_case() {
    let mut engine = build(
        r#"
[[rules]]
id = "codes"
regex = { patterns = ['PROMO-[A-Z]{3}\d', 'WE(CHAT|IXIN)'] }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "g1");
    for text in [
        "use promo-abc1",
        "use PROMO-XYZ9",
        "Promo-aBc2 now",
        "wECHAT",
        "ＷＥＩＸＩＮ",
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), text));
        assert_eq!(checks(&v, "codes"), [CheckKind::Regex], "{text}");
    }
    for text in ["promo-ab1", "promo-abcd"] {
        let v = judge(&mut engine, &f.text(&member("u2"), text));
        assert!(checks(&v, "codes").is_empty(), "{text}");
    }
}

#[test]
fn phone_numbers_are_found_in_every_spelling() {
    let mut engine = build(
        r#"
[[rules]]
id = "phones"
phone = {}
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    for text in [
        "13812345678",
        "+86 138-1234-5678",
        "电话：１３８ １２３４ ５６７８",
        "一三八一二三四五六七八",
        "座机010-12345678",
        "call +44 20 7946 0958",
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), text));
        assert_eq!(checks(&v, "phones"), [CheckKind::Phone], "{text}");
    }
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "订单 20261121000123 已发货"),
    );
    assert_eq!(v.outcome("phones"), Some(&Outcome::NotMatched));
}

#[test]
fn only_the_chosen_phone_kinds_count() {
    let mut engine = build(
        r#"
[[rules]]
id = "mobiles"
phone = { kinds = ["mobile"] }
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(&mut engine, &f.text(&member("u1"), "热线 400-800-1234"));
    assert_eq!(v.outcome("mobiles"), Some(&Outcome::NotMatched));
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "WhatsApp +44 20 7946 0958"),
    );
    assert_eq!(v.outcome("mobiles"), Some(&Outcome::NotMatched));
    let v = judge(&mut engine, &f.text(&member("u1"), "手机 139 8888 0000"));
    match first_evidence(&v, "mobiles") {
        Evidence::Term { term, .. } => assert_eq!(term, "+8613988880000"),
        other => panic!("{other:?}"),
    }
}

const LINKS: &str = r#"
[[rules]]
id = "deny"
links = { deny = ["evil.com", "t.me"] }

[[rules]]
id = "allow-only"
links = { mode = "allow_listed_only", allow = ["corp.example.cn", "例子.中国"] }
"#;

#[test]
fn denied_domains_match_with_their_subdomains_and_disguises() {
    let mut engine = build(LINKS);
    let mut f = EventFactory::new(Platform::Matrix, "!r:hs");
    let v = judge(
        &mut engine,
        &f.text(&member("@u:hs"), "see https://www.evil.com/x"),
    );
    assert_eq!(checks(&v, "deny"), [CheckKind::Link]);
    let v = judge(&mut engine, &f.text(&member("@u:hs"), "evil。com"));
    assert_eq!(checks(&v, "deny"), [CheckKind::Link]);
    let v = judge(
        &mut engine,
        &f.text(&member("@u:hs"), "t\u{200B}.me/joinchat"),
    );
    assert_eq!(checks(&v, "deny"), [CheckKind::Link]);
    let v = judge(
        &mut engine,
        &f.text(&member("@u:hs"), "notevil.com is fine"),
    );
    assert_eq!(v.outcome("deny"), Some(&Outcome::NotMatched));
}

#[test]
fn allow_listed_only_refuses_every_other_link() {
    let mut engine = build(LINKS);
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "docs at https://help.corp.example.cn/a"),
    );
    assert_eq!(v.outcome("allow-only"), Some(&Outcome::NotMatched));
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "看 https://例子.中国/页"),
    );
    assert_eq!(v.outcome("allow-only"), Some(&Outcome::NotMatched));
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "buy at shop.example.cn"),
    );
    match first_evidence(&v, "allow-only") {
        Evidence::Term { term, .. } => assert_eq!(term, "shop.example.cn"),
        other => panic!("{other:?}"),
    }
    let mut card = Message::of_kind(MessageKind::Link, "a title");
    card.links
        .push("https://spam.example.org/landing".to_owned());
    let v = judge(&mut engine, &f.message(&member("u1"), card));
    assert_eq!(
        first_evidence(&v, "allow-only"),
        Evidence::Link {
            host: "spam.example.org".to_owned()
        }
    );
}

#[test]
fn an_allowed_name_before_the_at_does_not_allow_a_link() {
    let mut engine = build(LINKS);
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    for (text, host) in [
        ("https://help.corp.example.cn@other.test/x", "other.test"),
        ("https://corp.example.cn:443@evil.com/", "evil.com"),
        ("https://evil%2ecom/", "evil.com"),
        ("https://сorp.example.cn/", "xn--orp-3ed.example.cn"),
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), text));
        match first_evidence(&v, "allow-only") {
            Evidence::Term { term, matched, .. } => {
                assert_eq!(term, host, "{text}");
                assert!(text.contains(&matched), "{matched} in {text}");
            }
            other => panic!("{text}: {other:?}"),
        }
        engine.state.ladder.clear();
    }
    for fine in [
        "https://corp.example.cn./a",
        "https://user:pw@corp.example.cn/",
        "notes.md 和 build.sh 在群文件里",
        "下午3点TV直播开始",
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), fine));
        assert_eq!(
            v.outcome("allow-only"),
            Some(&Outcome::NotMatched),
            "{fine}"
        );
    }
}

#[test]
fn phrases_and_look_alikes_match_however_they_are_spelled() {
    let mut engine = build(
        r#"
[[rules]]
id = "spam"
keywords = { substrings = ["free gift", "lucky888.example"], words = ["casino"] }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "g1");
    for (text, matched) in [
        ("get your f r e e g i f t", "f r e e g i f t"),
        ("FREE-GIFT now", "FREE-GIFT"),
        ("freegift", "freegift"),
        (
            "l.u.c.k.y.8.8.8 . e x a m p l e",
            "l.u.c.k.y.8.8.8 . e x a m p l e",
        ),
        ("саsinо night", "саsinо"),
    ] {
        let v = judge(&mut engine, &f.text(&member("u1"), text));
        match first_evidence(&v, "spam") {
            Evidence::Term { matched: m, .. } => assert_eq!(m, matched, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
        engine.state.ladder.clear();
    }
    for fine in ["free of charge, a gift", "we chat daily", "казино"] {
        let v = judge(&mut engine, &f.text(&member("u1"), fine));
        assert_eq!(v.outcome("spam"), Some(&Outcome::NotMatched), "{fine}");
    }
}

#[test]
fn mini_programs_outside_the_allow_list_and_banned_kinds() {
    let mut engine = build(
        r#"
[[rules]]
id = "kinds"
mini_programs = { allow = ["wxGOOD"] }
banned_kinds = ["voice", "file", "chat_record"]
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let good = MessageKind::MiniProgram {
        app_id: Some("wxGOOD".to_owned()),
    };
    let bad = MessageKind::MiniProgram {
        app_id: Some("wxBAD".to_owned()),
    };
    let v = judge(&mut engine, &f.kind(&member("u1"), good));
    assert_eq!(v.outcome("kinds"), Some(&Outcome::NotMatched));
    let v = judge(&mut engine, &f.kind(&member("u1"), bad));
    assert_eq!(checks(&v, "kinds"), [CheckKind::MiniProgram]);
    for kind in [
        MessageKind::Voice,
        MessageKind::File,
        MessageKind::ChatRecord,
    ] {
        let v = judge(&mut engine, &f.kind(&member("u2"), kind));
        assert_eq!(checks(&v, "kinds"), [CheckKind::BannedKind]);
    }
    let v = judge(&mut engine, &f.kind(&member("u2"), MessageKind::Image));
    assert_eq!(v.outcome("kinds"), Some(&Outcome::NotMatched));
    // A picture with a recording attached too (Discord): the recording is banned.
    let mut both = f.kind(&member("u2"), MessageKind::Image);
    if let EventKind::MessagePosted(m) = &mut both.kind {
        for mime in ["image/png", "audio/ogg"] {
            m.attachments.push(Attachment {
                name: "a".to_owned(),
                mime: Some(mime.to_owned()),
                size: None,
                image: None,
            });
        }
    }
    assert_eq!(
        checks(&judge(&mut engine, &both), "kinds"),
        [CheckKind::BannedKind]
    );
}

#[test]
fn flood_allows_n_messages_in_the_window_and_not_one_more() {
    let mut engine = build(
        r#"
[[rules]]
id = "flood"
flood = { messages = 3, per = "10s" }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "g1");
    let spammer = member("u1");
    for _ in 0..3 {
        let v = judge(&mut engine, &f.text(&spammer, "hi"));
        assert_eq!(v.outcome("flood"), Some(&Outcome::NotMatched));
        f.advance(Duration::from_secs(2));
    }
    let v = judge(&mut engine, &f.text(&spammer, "hi"));
    assert_eq!(
        first_evidence(&v, "flood"),
        Evidence::Count {
            observed: 4,
            limit: 3,
            window: Some(Duration::from_secs(10))
        }
    );
    // Another member in the same group, and the same member elsewhere, are counted apart.
    let v = judge(&mut engine, &f.text(&member("u2"), "hi"));
    assert_eq!(v.outcome("flood"), Some(&Outcome::NotMatched));
    let v = judge(&mut engine, &f.in_group("g2").text(&spammer, "hi"));
    assert_eq!(v.outcome("flood"), Some(&Outcome::NotMatched));
    f.advance(Duration::from_secs(11));
    let v = judge(&mut engine, &f.text(&spammer, "hi"));
    assert_eq!(v.outcome("flood"), Some(&Outcome::NotMatched));
}

#[test]
fn size_limits_on_characters_lines_and_mentions() {
    let mut engine = build(
        r#"
[[rules]]
id = "size"
flood = { max_chars = 10, max_lines = 2, max_mentions = 2 }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "g1");
    let v = judge(&mut engine, &f.text(&member("u1"), "一二三四五六七八九十"));
    assert_eq!(v.outcome("size"), Some(&Outcome::NotMatched));
    let v = judge(
        &mut engine,
        &f.text(&member("u1"), "一二三四五六七八九十一"),
    );
    assert_eq!(checks(&v, "size"), [CheckKind::MaxChars]);
    let v = judge(&mut engine, &f.text(&member("u1"), "a\nb\nc\nd"));
    assert_eq!(checks(&v, "size"), [CheckKind::MaxLines]);
    // Every line break counted, past the limit too.
    let v = judge(&mut engine, &f.text(&member("u1"), "\n\n\n\n\n"));
    assert_eq!(
        first_evidence(&v, "size"),
        Evidence::Count {
            observed: 5,
            limit: 2,
            window: None
        }
    );
    // At the limits exactly: ten letters, two line breaks.
    for text in ["abcdefghij", "a\nb\nc"] {
        let v = judge(&mut engine, &f.text(&member("u1"), text));
        assert_eq!(v.outcome("size"), Some(&Outcome::NotMatched), "{text:?}");
    }
    let v = judge(&mut engine, &f.text(&member("u1"), "abcdefghijk"));
    assert_eq!(checks(&v, "size"), [CheckKind::MaxChars]);
    let mut m = Message::text("hey");
    m.mentions = vec![UserId::new("a"), UserId::new("b"), UserId::new("c")];
    let v = judge(&mut engine, &f.message(&member("u1"), m));
    assert_eq!(checks(&v, "size"), [CheckKind::MaxMentions]);
}

#[test]
fn duplicates_from_many_members_or_groups_are_caught() {
    let mut engine = build(
        r#"
[[rules]]
id = "dups"
duplicates = { members = 3, groups = 2, window = "60s" }
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let spam = "限时优惠，点击领取大礼包";
    let v = judge(&mut engine, &f.text(&member("a"), spam));
    assert_eq!(v.outcome("dups"), Some(&Outcome::NotMatched));
    let v = judge(
        &mut engine,
        &f.text(&member("b"), "限时优惠 点击领取大礼包"),
    );
    assert_eq!(v.outcome("dups"), Some(&Outcome::NotMatched));
    let v = judge(&mut engine, &f.text(&member("c"), spam));
    assert_eq!(checks(&v, "dups"), [CheckKind::DuplicateMembers]);

    let mut other = engine_with_dups();
    let v = judge(&mut other, &f.text(&member("x"), spam));
    assert_eq!(v.outcome("dups"), Some(&Outcome::NotMatched));
    let v = judge(&mut other, &f.in_group("g2").text(&member("x"), spam));
    assert_eq!(checks(&v, "dups"), [CheckKind::DuplicateGroups]);

    // Different texts from as many members are not duplicates.
    let mut different = engine_with_dups();
    for (who, text) in [
        ("a", "今天的课程安排在下午三点"),
        ("b", "明天的作业请大家按时提交"),
        ("c", "周末的活动改到室内举行了"),
    ] {
        let v = judge(&mut different, &f.text(&member(who), text));
        assert_eq!(v.outcome("dups"), Some(&Outcome::NotMatched), "{text}");
    }

    // Short texts and texts outside the window do not count.
    let mut short = engine_with_dups();
    for who in ["a", "b", "c", "d"] {
        let v = judge(&mut short, &f.text(&member(who), "好的"));
        assert_eq!(v.outcome("dups"), Some(&Outcome::NotMatched));
        f.advance(Duration::from_secs(61));
    }
}

fn engine_with_dups() -> Engine {
    build(
        r#"
[[rules]]
id = "dups"
duplicates = { members = 3, groups = 2, window = "60s" }
"#,
    )
}

const INVITES: &str = r#"
[settings]
home_orgs = { wecom = "wwHome" }

[[groups]]
id = "wecom:partners"
home_org = "wwHome"

[[rules]]
id = "outsiders"
invites = { allow_orgs = ["wwPartner"], only_staff_invite = true }
"#;

#[test]
fn members_of_other_organisations_are_refused_on_join() {
    let mut engine = build(INVITES);
    let mut f = EventFactory::new(Platform::WeCom, "partners");
    let staff = with_role("boss", Role::Staff);
    let v = judge(
        &mut engine,
        &f.join(
            &of_org("spy", "wwRival"),
            Some(&staff),
            JoinScene::DirectInvite,
        ),
    );
    assert_eq!(
        first_evidence(&v, "outsiders"),
        Evidence::Organisation {
            org: "wwRival".into(),
            home: Some("wwHome".into())
        }
    );
    assert_eq!(action_names(&v), ["warn"]);
    for ok in [
        of_org("p", "wwPartner"),
        of_org("h", "wwHome"),
        member("customer"),
    ] {
        let v = judge(&mut engine, &f.join(&ok, Some(&staff), JoinScene::QrCode));
        assert_eq!(v.outcome("outsiders"), Some(&Outcome::NotMatched), "{ok:?}");
    }
    // Groups the file does not describe use the platform's home organisation.
    let v = judge(
        &mut engine,
        &f.in_group("elsewhere")
            .join(&of_org("spy", "wwRival"), None, JoinScene::QrCode),
    );
    assert_eq!(checks(&v, "outsiders"), [CheckKind::OtherOrganisation]);
}

#[test]
fn only_staff_may_invite() {
    let mut engine = build(INVITES);
    let mut f = EventFactory::new(Platform::WeCom, "partners");
    let v = judge(
        &mut engine,
        &f.join(
            &member("friend"),
            Some(&member("customer")),
            JoinScene::DirectInvite,
        ),
    );
    assert_eq!(
        first_evidence(&v, "outsiders"),
        Evidence::Inviter {
            inviter: "customer".into(),
            role: Role::Member
        }
    );
    let v = judge(
        &mut engine,
        &f.join(&member("walk-in"), None, JoinScene::QrCode),
    );
    assert_eq!(v.outcome("outsiders"), Some(&Outcome::NotMatched));
}

#[test]
fn a_message_the_platform_blocked_climbs_the_ladder_without_a_deletion() {
    let mut engine = build(
        r#"
[[rules]]
id = "ads"
keywords = { substrings = ["代购"] }
ladder = ["delete+warn", "delete+kick"]
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "guild");
    let mut blocked = Message::text("代购 cheap");
    blocked.blocked = true;
    let v = judge(&mut engine, &f.message(&member("eve"), blocked.clone()));
    assert_eq!(action_names(&v), ["warn"], "nothing to delete");
    let v = judge(&mut engine, &f.message(&member("eve"), blocked));
    assert_eq!(action_names(&v), ["kick"], "the second rung follows");
}

#[test]
fn accounts_younger_than_the_limit_may_not_join_and_unknown_ages_may() {
    let mut engine = build(
        r#"
[[rules]]
id = "fresh"
invites = { refuse_other_orgs = false, min_account_age = "7d" }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "guild");
    let mut fresh = member("fresh");
    fresh.account_created = Some(f.now().minus(Duration::from_secs(2 * 86_400)));
    let v = judge(&mut engine, &f.join(&fresh, None, JoinScene::Unknown));
    assert_eq!(
        first_evidence(&v, "fresh"),
        Evidence::AccountAge {
            created: f.now().minus(Duration::from_secs(2 * 86_400)),
            min: Duration::from_secs(7 * 86_400)
        }
    );
    let mut old = member("old");
    old.account_created = Some(f.now().minus(Duration::from_secs(8 * 86_400)));
    for ok in [old, member("unknown age")] {
        let v = judge(&mut engine, &f.join(&ok, None, JoinScene::Unknown));
        assert_eq!(v.outcome("fresh"), Some(&Outcome::NotMatched), "{ok:?}");
    }
}

const BLACKLIST: &str = r#"
[[groups]]
id = "wecom:shop"
owner = "zhang"

[[rules]]
id = "blacklist"
blacklist = {}
ladder = ["kick"]

[[blacklist]]
member = "wecom:troll"
reason = "harassment"
source = "moderator:wecom:zhang"
created_at = "2026-01-01T00:00:00Z"

[[blacklist]]
member = "wecom:pest"
owner = "zhang"
reason = "spam in zhang's groups"
source = "rule:ads"
created_at = "2026-01-01T00:00:00Z"

[[blacklist]]
member = "wecom:reformed"
reason = "old"
source = "import"
created_at = "2026-01-01T00:00:00Z"
expires_at = "2026-02-01T00:00:00Z"
"#;

#[test]
fn blacklisted_members_are_kicked_on_join_and_on_message() {
    let mut engine = build(BLACKLIST);
    let mut f = EventFactory::new(Platform::WeCom, "shop");
    let v = judge(
        &mut engine,
        &f.join(&member("troll"), None, JoinScene::QrCode),
    );
    assert_eq!(
        first_evidence(&v, "blacklist"),
        Evidence::Blacklisted {
            list: ListScope::Org,
            reason: "harassment".to_owned(),
            source: "moderator:wecom:zhang".parse().unwrap(),
            expires_at: None
        }
    );
    assert_eq!(action_names(&v), ["kick"]);
    let v = judge(&mut engine, &f.text(&member("pest"), "hello"));
    assert!(matches!(
        first_evidence(&v, "blacklist"),
        Evidence::Blacklisted {
            list: ListScope::Personal,
            ..
        }
    ));
    // The personal list applies only in the owner's groups; expired entries not at all.
    let v = judge(
        &mut engine,
        &f.in_group("other").text(&member("pest"), "hello"),
    );
    assert_eq!(v.outcome("blacklist"), Some(&Outcome::NotMatched));
    let v = judge(&mut engine, &f.text(&member("reformed"), "hello"));
    assert_eq!(v.outcome("blacklist"), Some(&Outcome::NotMatched));
}

#[test]
fn the_default_ladder_warns_three_times_then_kicks() {
    let mut engine = build(ADS);
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let spammer = member("u1");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let v = judge(&mut engine, &f.text(&spammer, "加微信"));
        let Some(Outcome::Matched(m)) = v.outcome("ads") else {
            panic!("no match")
        };
        seen.push((
            m.count_before,
            m.count_after,
            m.rung.clone(),
            action_names(&v),
        ));
        f.advance(Duration::from_secs(60));
    }
    assert_eq!(
        seen,
        [
            (0, 1, "warn".to_owned(), vec!["warn"]),
            (1, 2, "warn".to_owned(), vec!["warn"]),
            (2, 3, "warn".to_owned(), vec!["warn"]),
            (3, 4, "kick".to_owned(), vec!["kick"]),
            (4, 5, "kick".to_owned(), vec!["kick"]),
        ]
    );
    // After the decay window the member starts over.
    f.advance(Duration::from_secs(25 * 3600));
    let v = judge(&mut engine, &f.text(&spammer, "加微信"));
    assert_eq!(action_names(&v), ["warn"]);
}

#[test]
fn a_display_name_that_looks_like_a_placeholder_stays_as_written() {
    let mut engine = build(
        r#"
[[rules]]
id = "ads"
name = "No ads"
keywords = { substrings = ["代购"] }
ladder = ["warn"]
warn_template = "{member}: {rule}"
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let mut sly = member("sly");
    sly.display_name = Some("{rule} {count}".to_owned());
    let v = judge(&mut engine, &f.text(&sly, "代购"));
    assert_eq!(
        v.actions[0].action,
        Action::Warn {
            text: "{rule} {count}: No ads".to_owned()
        }
    );
}

#[test]
fn warnings_use_the_template_and_violations_are_recorded() {
    let mut engine = build(
        r#"
[[rules]]
id = "ads"
name = "No ads"
keywords = { substrings = ["代购"] }
ladder = ["delete+warn", "delete+timeout:10m", "kick+blacklist:7d+notify"]
warn_template = "{member}: {rule} ({check}) #{count}, next: {next}"
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let ann = member("ann");
    let v = judge(&mut engine, &f.text(&ann, "专业代购"));
    assert_eq!(
        v.actions
            .iter()
            .map(|a| a.action.clone())
            .collect::<Vec<_>>(),
        [
            Action::DeleteMessage {
                message: "e1".into()
            },
            Action::Warn {
                text: "ann: No ads (keyword) #1, next: delete+timeout:10m".to_owned()
            },
        ]
    );
    let record = &v.violations[0];
    assert_eq!(
        (
            record.rule.as_str(),
            record.check,
            record.excerpt.as_str(),
            record.mode
        ),
        ("ads", CheckKind::Keyword, "专业代购", Mode::Enforce)
    );
    // A long message is kept as its first 200 characters.
    let long = format!("代购{}", "好".repeat(300));
    let v = judge(&mut engine, &f.text(&ann, &long));
    assert_eq!(action_names(&v), ["delete", "timeout"]);
    let excerpt = &v.violations[0].excerpt;
    assert_eq!(excerpt.chars().count(), 200);
    assert!(long.starts_with(excerpt.as_str()));
    let v = judge(&mut engine, &f.text(&ann, "代购"));
    assert_eq!(action_names(&v), ["kick", "blacklist", "notify"]);
    let Action::Blacklist {
        owner, expires_at, ..
    } = &v.actions[1].action
    else {
        panic!()
    };
    assert_eq!(
        (owner, *expires_at),
        (&None, Some(f.now().plus(Duration::from_secs(7 * 86400))))
    );
    // The runtime blacklist refuses the member at once when they come back, with any rule
    // that checks the blacklist.
    let mut with_list = build(
        r#"
[[rules]]
id = "ads"
keywords = { substrings = ["代购"] }
ladder = ["kick+blacklist"]

[[rules]]
id = "gate"
blacklist = {}
ladder = ["kick"]
"#,
    );
    judge(&mut with_list, &f.text(&ann, "代购"));
    let v = judge(&mut with_list, &f.join(&ann, None, JoinScene::QrCode));
    assert_eq!(checks(&v, "gate"), [CheckKind::Blacklist]);
}

#[test]
fn personal_blacklisting_needs_a_group_owner() {
    let mut engine = build(
        r#"
[[rules]]
id = "ads"
keywords = { substrings = ["代购"] }
ladder = ["kick+blacklist:personal"]
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "ownerless");
    let v = judge(&mut engine, &f.text(&member("u"), "代购"));
    let Some(Outcome::Matched(m)) = v.outcome("ads") else {
        panic!()
    };
    assert_eq!(
        m.notes,
        ["personal blacklist skipped: group ownerless has no owner configured"]
    );
    assert_eq!(action_names(&v), ["kick"]);
}

#[test]
fn shadow_rules_plan_shadow_actions() {
    let mut engine = build(
        r#"
[[rules]]
id = "trial"
mode = "shadow"
keywords = { substrings = ["代购"] }
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(&mut engine, &f.text(&member("u"), "代购"));
    assert_eq!(v.actions.len(), 1);
    assert_eq!(v.actions[0].mode, Mode::Shadow);
    assert_eq!(v.violations[0].mode, Mode::Shadow);
}

#[test]
fn every_skip_has_its_reason() {
    let mut engine = build(
        r#"
[[groups]]
id = "wecom:vip"
tags = ["vip"]

[[rules]]
id = "off"
enabled = false
keywords = { substrings = ["x"] }

[[rules]]
id = "vip-only"
scope = { tags = ["vip"] }
keywords = { substrings = ["x"] }

[[rules]]
id = "matrix-only"
scope = { platforms = ["matrix"] }
keywords = { substrings = ["x"] }

[[rules]]
id = "everyone"
exempt = { roles = ["owner"], bots = false, members = ["wecom:friend"] }
keywords = { substrings = ["x"] }

[[rules]]
id = "joins"
invites = {}

[[whitelist]]
member = "wecom:trusted"
rules = ["everyone"]
"#,
    );
    let mut f = EventFactory::new(Platform::WeCom, "plain");
    let v = judge(&mut engine, &f.text(&member("u"), "x"));
    assert_eq!(
        v.outcome("off"),
        Some(&Outcome::Skipped(SkipReason::Disabled))
    );
    assert_eq!(
        v.outcome("vip-only"),
        Some(&Outcome::Skipped(SkipReason::OutOfScope))
    );
    assert_eq!(
        v.outcome("matrix-only"),
        Some(&Outcome::Skipped(SkipReason::OutOfScope))
    );
    assert_eq!(
        v.outcome("joins"),
        Some(&Outcome::Skipped(SkipReason::NotApplicable))
    );
    assert_eq!(checks(&v, "everyone"), [CheckKind::Keyword]);
    let v = judge(&mut engine, &f.in_group("vip").text(&member("u"), "x"));
    assert_eq!(checks(&v, "vip-only"), [CheckKind::Keyword]);
    let v = judge(&mut engine, &f.text(&with_role("s", Role::Staff), "x"));
    assert_eq!(
        v.outcome("vip-only"),
        Some(&Outcome::Skipped(SkipReason::OutOfScope))
    );
    assert_eq!(
        checks(&v, "everyone"),
        [CheckKind::Keyword],
        "the rule overrides the exempt roles"
    );
    let v = judge(&mut engine, &f.text(&with_role("o", Role::Owner), "x"));
    assert_eq!(
        v.outcome("everyone"),
        Some(&Outcome::Skipped(SkipReason::ExemptRole {
            role: Role::Owner
        }))
    );
    let v = judge(&mut engine, &f.text(&member("friend"), "x"));
    assert_eq!(
        v.outcome("everyone"),
        Some(&Outcome::Skipped(SkipReason::Whitelisted))
    );
    let v = judge(&mut engine, &f.text(&member("trusted"), "x"));
    assert_eq!(
        v.outcome("everyone"),
        Some(&Outcome::Skipped(SkipReason::Whitelisted))
    );
    let mut bot = member("bot");
    bot.is_bot = true;
    let v = judge(&mut engine, &f.text(&bot, "x"));
    assert_eq!(checks(&v, "everyone"), [CheckKind::Keyword], "bots = false");
    let mut default_exempt = build(ADS);
    let v = judge(&mut default_exempt, &f.text(&bot, "加微信"));
    assert_eq!(v.outcome("ads"), Some(&Outcome::Skipped(SkipReason::Bot)));
    let v = judge(
        &mut default_exempt,
        &f.text(&with_role("s", Role::Staff), "加微信"),
    );
    assert_eq!(
        v.outcome("ads"),
        Some(&Outcome::Skipped(SkipReason::ExemptRole {
            role: Role::Staff
        }))
    );
    let v = judge(
        &mut default_exempt,
        &f.event(&member("u"), EventKind::MemberLeft),
    );
    assert_eq!(
        v.outcome("ads"),
        Some(&Outcome::Skipped(SkipReason::NotApplicable))
    );
}

#[test]
fn edits_are_judged_like_new_messages() {
    let mut engine = build(ADS);
    let mut f = EventFactory::new(Platform::Discord, "g1");
    let v = judge(
        &mut engine,
        &f.event(
            &member("u"),
            EventKind::MessageEdited(Message::text("now 加微信")),
        ),
    );
    assert_eq!(checks(&v, "ads"), [CheckKind::Keyword]);
}

#[test]
fn a_swapped_rule_set_decides_the_next_event() {
    let mut engine = build(ADS);
    let handle = engine.handle();
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(&mut engine, &f.text(&member("u"), "团购"));
    assert_eq!(v.outcome("ads"), Some(&Outcome::NotMatched));
    let set: RuleSet = toml::from_str(
        r#"
[[rules]]
id = "ads"
keywords = { substrings = ["团购"] }
"#,
    )
    .unwrap();
    std::thread::spawn(move || handle.swap_rules(CompiledRules::compile(set).unwrap()))
        .join()
        .unwrap();
    let v = judge(&mut engine, &f.text(&member("u"), "团购"));
    assert_eq!(checks(&v, "ads"), [CheckKind::Keyword]);
}

#[test]
fn idle_state_is_swept() {
    let mut engine = build(
        r#"
[[rules]]
id = "flood"
flood = { messages = 5, per = "10s" }
decay = "1h"
keywords = { substrings = ["bad"] }
"#,
    );
    let mut f = EventFactory::new(Platform::Discord, "g1");
    for i in 0..100 {
        judge(&mut engine, &f.text(&member(&format!("u{i}")), "bad"));
    }
    assert_eq!(engine.state().stats().flood_windows, 100);
    assert_eq!(engine.state().stats().ladder_counters, 100);
    f.advance(Duration::from_secs(120));
    // Idle flood windows go a few per event.
    for _ in 0..20 {
        judge(&mut engine, &f.text(&member("late"), "fine"));
        f.advance(Duration::from_secs(3));
    }
    assert_eq!(engine.state().stats().flood_windows, 1);
    assert_eq!(engine.state().stats().ladder_counters, 100);
    // Decayed ladder counters go a part of the table at a time, within a minute of events.
    f.advance(Duration::from_secs(3600));
    for i in 0..70 {
        judge(&mut engine, &f.text(&member(&format!("later{i}")), "fine"));
        f.advance(Duration::from_secs(1));
    }
    assert_eq!(engine.state().stats().ladder_counters, 0);
}

#[test]
fn restored_violations_continue_the_ladder() {
    let mut engine = build(ADS);
    let who = MemberRef::new(Platform::WeCom, "u1");
    for minutes in [30, 20, 10] {
        engine.restore_violation(
            &who,
            &"ads".into(),
            T0.minus(Duration::from_secs(minutes * 60)),
        );
    }
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(&mut engine, &f.text(&member("u1"), "加微信"));
    assert_eq!(action_names(&v), ["kick"]);
}

#[test]
fn verdicts_serialize_for_storage_and_why() {
    let mut engine = build(ADS);
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(&mut engine, &f.text(&member("u1"), "加微信"));
    let json = serde_json::to_string(&v).unwrap();
    let back: Verdict = serde_json::from_str(&json).unwrap();
    assert_eq!(back, v);
    assert!(json.contains(r#""outcome":"matched""#), "{json}");
}

fn arbitrary_member() -> impl Strategy<Value = Member> {
    (
        "[a-z]{1,3}",
        prop::option::of("[a-z]{1,3}"),
        0usize..5,
        any::<bool>(),
    )
        .prop_map(|(id, org, role, bot)| {
            let mut m = member(&id);
            m.org = org.map(Into::into);
            m.role = Role::ALL[role];
            m.is_bot = bot;
            m
        })
}

fn arbitrary_kind() -> impl Strategy<Value = EventKind> {
    let message = (
        "\\PC{0,60}",
        0usize..12,
        prop::option::of("wx[a-z]{0,3}"),
        prop::collection::vec("\\PC{0,20}", 0..3),
    )
        .prop_map(|(text, kind, app_id, links)| {
            let kind = match crate::model::KindName::ALL[kind] {
                crate::model::KindName::MiniProgram => MessageKind::MiniProgram { app_id },
                crate::model::KindName::Image => MessageKind::Image,
                crate::model::KindName::Voice => MessageKind::Voice,
                crate::model::KindName::Link => MessageKind::Link,
                _ => MessageKind::Text,
            };
            let mut m = Message::of_kind(kind, text);
            m.links = links;
            m
        });
    prop_oneof![
        message.clone().prop_map(EventKind::MessagePosted),
        message.prop_map(EventKind::MessageEdited),
        (prop::option::of(arbitrary_member()), 0usize..4).prop_map(|(inviter, scene)| {
            EventKind::MemberJoined {
                inviter,
                scene: [
                    JoinScene::DirectInvite,
                    JoinScene::InviteLink,
                    JoinScene::QrCode,
                    JoinScene::Unknown,
                ][scene],
            }
        }),
        Just(EventKind::MemberLeft),
        Just(EventKind::MemberRemoved {
            by: None,
            banned: true
        }),
        Just(EventKind::GroupChanged(
            crate::model::GroupChange::Dismissed
        )),
        "\\PC{0,30}".prop_map(|text| EventKind::Command {
            reply_to: crate::model::ReplyTo::in_group("g1".into(), "u".into(), None),
            text
        }),
    ]
}

const EVERYTHING: &str = r#"
[settings]
home_orgs = { wecom = "home" }

[[groups]]
id = "wecom:g1"
owner = "o"
tags = ["retail"]

[[rules]]
id = "all"
keywords = { substrings = ["加微信", "a"], words = ["ab"] }
regex = { patterns = ['\d{3}', '(?i)x+y'] }
phone = {}
links = { mode = "allow_listed_only", allow = ["ok.com"], deny = ["bad.com"] }
mini_programs = { allow = ["wxa"] }
banned_kinds = ["voice"]
flood = { messages = 2, per = "5s", max_chars = 20, max_lines = 1, max_mentions = 1 }
duplicates = { members = 2, groups = 2, window = "30s", min_chars = 1 }
invites = { only_staff_invite = true }
blacklist = {}
ladder = ["delete+warn", "timeout:1m+notify", "kick+blacklist:personal:1d+review", "kick+blacklist"]
exempt = { roles = [] }
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn evaluate_never_panics_and_reports_every_rule(
        events in prop::collection::vec((arbitrary_member(), arbitrary_kind(), 0u64..20_000, any::<bool>()), 1..25)
    ) {
        let mut engine = build(EVERYTHING);
        let mut now = T0;
        for (i, (member, kind, step_ms, other_group)) in events.into_iter().enumerate() {
            now = now.plus(Duration::from_millis(step_ms));
            let event = Event {
                id: format!("e{i}").as_str().into(),
                at: now,
                platform: Platform::WeCom,
                group: GroupId::new(if other_group { "g2" } else { "g1" }),
                member,
                kind,
            };
            let verdict = engine.evaluate(&event, now);
            prop_assert_eq!(verdict.outcomes.len(), 1);
            let matched = verdict.matched().count();
            prop_assert_eq!(verdict.violations.len(), matched);
            if let Some(text) = event.text() {
                for (_, m) in verdict.matched() {
                    for hit in &m.hits {
                        if let Evidence::Term { span, .. } = &hit.evidence {
                            prop_assert!(span.end <= text.len());
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_list_change_swaps_the_blacklist_alone_and_keeps_every_change() {
    let live = Arc::new(Live::compile(toml::from_str(EVERYTHING).unwrap()).unwrap());
    let rules_before = live.rules();
    let entry = |id: &str| BlacklistEntry {
        member: MemberRef::new(Platform::WeCom, id),
        owner: None,
        reason: "spam".to_owned(),
        source: crate::rule::Source::Import,
        created_at: T0,
        expires_at: None,
    };
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let live = Arc::clone(&live);
            let e = entry(&format!("troll{i}"));
            std::thread::spawn(move || live.change_blacklist(&[e], &[]))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        Arc::ptr_eq(&live.rules(), &rules_before),
        "no rule was recompiled"
    );
    assert_eq!(live.blacklist().len(), 8, "concurrent changes are all kept");
    let mut engine = Engine::with_handle(Arc::clone(&live));
    let mut f = EventFactory::new(Platform::WeCom, "g1");
    let v = judge(&mut engine, &f.text(&member("troll3"), "hi"));
    assert!(checks(&v, "all").contains(&CheckKind::Blacklist));
    live.change_blacklist(&[], &[(MemberRef::new(Platform::WeCom, "troll3"), None)]);
    assert_eq!(live.blacklist().len(), 7);
}
