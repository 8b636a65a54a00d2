use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::model::{GroupRef, MemberRef, Platform};
use crate::rule::Mode;

fn ok(line: &str) -> Invocation {
    parse(line, Platform::WeCom).unwrap_or_else(|e| panic!("`{line}` should parse: {e}"))
}

fn err(line: &str) -> String {
    match parse(line, Platform::WeCom) {
        Ok(inv) => panic!("`{line}` should not parse, got {inv:?}"),
        Err(e) => e.to_string(),
    }
}

/// One example of every command.
const EXAMPLES: &[(&str, CommandId)] = &[
    (
        "!guard rule create ads No advertising",
        CommandId::RuleCreate,
    ),
    ("!guard rule list", CommandId::RuleList),
    ("!guard rule show ads", CommandId::RuleShow),
    ("!guard rule delete ads", CommandId::RuleDelete),
    ("!guard rule enable ads", CommandId::RuleEnable),
    ("!guard rule disable ads", CommandId::RuleDisable),
    ("!guard rule mode ads shadow", CommandId::RuleMode),
    (
        "!guard rule ladder ads delete+warn warn kick+blacklist:7d",
        CommandId::RuleLadder,
    ),
    (
        "!guard rule scope ads add group wrA wecom:wrB",
        CommandId::RuleScopeAddGroup,
    ),
    (
        "!guard rule scope ads remove group wrA",
        CommandId::RuleScopeRemoveGroup,
    ),
    (
        "!guard rule scope ads add tag retail vip",
        CommandId::RuleScopeAddTag,
    ),
    (
        "!guard rule scope ads remove tag vip",
        CommandId::RuleScopeRemoveTag,
    ),
    (
        "!guard rule set ads keywords add 加微信 \"buy now\"",
        CommandId::RuleSetKeywordsAdd,
    ),
    (
        "!guard rule set ads keywords remove 加微信",
        CommandId::RuleSetKeywordsRemove,
    ),
    (
        "!guard rule set ads words add casino",
        CommandId::RuleSetWordsAdd,
    ),
    (
        "!guard rule set ads words remove casino",
        CommandId::RuleSetWordsRemove,
    ),
    (
        "!guard rule set ads homophones on",
        CommandId::RuleSetHomophones,
    ),
    (
        "!guard rule set ads regex add 'q{2}\\s*\\d+'",
        CommandId::RuleSetRegexAdd,
    ),
    (
        "!guard rule set ads regex remove 'q{2}\\s*\\d+'",
        CommandId::RuleSetRegexRemove,
    ),
    ("!guard rule set ads phone on", CommandId::RuleSetPhone),
    (
        "!guard rule set ads links mode allow-listed-only",
        CommandId::RuleSetLinksMode,
    ),
    (
        "!guard rule set ads links allow add corp.example.cn",
        CommandId::RuleSetLinksAllowAdd,
    ),
    (
        "!guard rule set ads links allow remove corp.example.cn",
        CommandId::RuleSetLinksAllowRemove,
    ),
    (
        "!guard rule set ads links deny add t.me",
        CommandId::RuleSetLinksDenyAdd,
    ),
    (
        "!guard rule set ads links deny remove t.me",
        CommandId::RuleSetLinksDenyRemove,
    ),
    (
        "!guard rule set ads mini-program allow add wxShop",
        CommandId::RuleSetMiniProgramAdd,
    ),
    (
        "!guard rule set ads mini-program allow remove wxShop",
        CommandId::RuleSetMiniProgramRemove,
    ),
    (
        "!guard rule set ads kinds voice file",
        CommandId::RuleSetKinds,
    ),
    ("!guard rule set ads flood 5 10s", CommandId::RuleSetFlood),
    (
        "!guard rule set ads max-length 500",
        CommandId::RuleSetMaxLength,
    ),
    (
        "!guard rule set ads max-lines 10",
        CommandId::RuleSetMaxLines,
    ),
    (
        "!guard rule set ads max-mentions 5",
        CommandId::RuleSetMaxMentions,
    ),
    (
        "!guard rule set ads duplicates 3 2 10m",
        CommandId::RuleSetDuplicates,
    ),
    (
        "!guard rule set ads invite-ban on --only-staff-invite on",
        CommandId::RuleSetInviteBan,
    ),
    (
        "!guard rule set ads orgs allow add wwPartner",
        CommandId::RuleSetOrgsAdd,
    ),
    (
        "!guard rule set ads orgs allow remove wwPartner",
        CommandId::RuleSetOrgsRemove,
    ),
    (
        "!guard rule set joins account-age 7d",
        CommandId::RuleSetAccountAge,
    ),
    ("!guard group tag add retail vip", CommandId::GroupTagAdd),
    (
        "!guard group tag remove vip --group wrOther",
        CommandId::GroupTagRemove,
    ),
    ("!guard group tag list", CommandId::GroupTagList),
    (
        "!guard group org partner.example --group matrix:!room:x",
        CommandId::GroupOrg,
    ),
    ("!guard group notices <#1200>", CommandId::GroupNotices),
    ("!guard group automod on", CommandId::GroupAutomod),
    (
        "!guard template apply retail --tag shops",
        CommandId::TemplateApply,
    ),
    (
        "!guard blacklist add wmTroll spam and insults --expires 30d",
        CommandId::BlacklistAdd,
    ),
    (
        "!guard blacklist remove wmTroll",
        CommandId::BlacklistRemove,
    ),
    ("!guard blacklist list", CommandId::BlacklistList),
    (
        "!guard blacklist import\nwecom:a spam\nwecom:b",
        CommandId::BlacklistImport,
    ),
    (
        "!guard whitelist add wmFriend partner --rule ads",
        CommandId::WhitelistAdd,
    ),
    (
        "!guard whitelist remove wmFriend",
        CommandId::WhitelistRemove,
    ),
    ("!guard whitelist list", CommandId::WhitelistList),
    (
        "!guard violations list --rule ads --days 7",
        CommandId::ViolationsList,
    ),
    (
        "!guard violations export csv --group wrA",
        CommandId::ViolationsExport,
    ),
    ("!guard stats 30 --group wrA", CommandId::Stats),
    ("!guard why 1234567", CommandId::Why),
    ("!guard audit list", CommandId::AuditList),
    ("!guard audit undo 12", CommandId::AuditUndo),
    ("!guard config export", CommandId::ConfigExport),
    (
        "!guard config import\n[[rules]]\nid = \"x\"",
        CommandId::ConfigImport,
    ),
    (
        "!guard settings manual-removals org",
        CommandId::SettingsManualRemovals,
    ),
    ("!guard help rule set", CommandId::Help),
];

#[test]
fn every_command_has_one_entry_and_an_example() {
    let ids: Vec<CommandId> = COMMANDS.iter().map(|c| c.id).collect();
    let unique: HashSet<CommandId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no command is defined twice");
    let examples: HashSet<CommandId> = EXAMPLES.iter().map(|(_, id)| *id).collect();
    assert_eq!(examples, unique, "every command has an example below");
    for (line, id) in EXAMPLES {
        assert_eq!(ok(line).command, *id, "{line}");
        assert_eq!(spec(*id).id, *id);
    }
}

#[test]
fn help_lists_every_command_with_its_role() {
    let text = help("");
    for c in COMMANDS {
        assert!(
            text.contains(&format!("!guard {}", display_usage(c))),
            "{}",
            c.usage
        );
    }
    assert!(text.contains("!guard rule delete <rule>\n    Delete a rule (restorable with audit undo for 72 hours). (admin+)"));
    assert_eq!(
        help("rule set phone"),
        "!guard rule set <rule> phone <on>\n    Turn the phone-number check on or off. (admin+)\n"
    );
    assert_eq!(
        help("nothing"),
        "no command starts with `nothing`: type `!guard help` for the list"
    );
}

#[test]
fn arguments_are_typed() {
    let inv = ok("!guard rule scope ads add group wrA discord:123 \"wecom:with space\"");
    let groups: Vec<&Value> = inv.args.list("groups").iter().collect();
    assert_eq!(
        groups,
        [
            &Value::Group(GroupRef::new(Platform::WeCom, "wrA")),
            &Value::Group(GroupRef::new(Platform::Discord, "123")),
            &Value::Group(GroupRef::new(Platform::WeCom, "with space")),
        ]
    );
    let inv = parse(
        "!guard blacklist add @bob:example.org flooding --expires 7d",
        Platform::Matrix,
    )
    .unwrap();
    assert_eq!(
        inv.args.member("member"),
        Some(MemberRef::new(Platform::Matrix, "@bob:example.org"))
    );
    assert_eq!(inv.args.text("reason").as_deref(), Some("flooding"));
    assert_eq!(
        inv.args.duration("expires"),
        Some(Duration::from_secs(7 * 86_400))
    );
    let inv = ok("/GUARD rule mode ads SHADOW");
    assert_eq!(inv.args.get("mode"), Some(&Value::Mode(Mode::Shadow)));
    assert_eq!(
        ok("!guard rule set ads links deny add HTTPS://Evil.COM/x")
            .args
            .texts("domains"),
        ["evil.com"]
    );
    assert_eq!(ok("!guard").command, CommandId::Help);
    let import = ok("!guard config import\n[settings]\n");
    assert_eq!(import.args.text("file").as_deref(), Some("[settings]\n"));
}

#[test]
fn bad_input_is_refused_with_what_to_type() {
    assert_eq!(err("hello"), "commands start with !guard (or /guard)");
    assert_eq!(
        err("!guard frobnicate"),
        "unknown command `frobnicate`: type !guard help for the list"
    );
    let partial = err("!guard audit frob");
    assert_eq!(
        partial,
        "unknown command `audit frob`: did you mean\n  !guard audit list\n  !guard audit undo <id>"
    );
    assert_eq!(
        err("!guard rule delete"),
        "missing <rule>: usage: !guard rule delete <rule>"
    );
    assert_eq!(
        err("!guard rule list everything"),
        "unexpected `everything`: usage: !guard rule list"
    );
    assert_eq!(
        err("!guard rule set ads flood 5 soon"),
        "invalid duration `soon` (expected number at 0): write it like 30s, 10m, 24h or 7d: \
         usage: !guard rule set <rule> flood <messages> <per>"
    );
    assert_eq!(
        err("!guard rule set ads flood many 10s"),
        "`many` is not a number for <messages>: usage: !guard rule set <rule> flood <messages> <per>"
    );
    assert_eq!(
        err("!guard rule set ads regex add ("),
        "bad pattern `(`: unclosed group: usage: !guard rule set <rule> regex add <pattern>"
    );
    assert_eq!(
        err("!guard rule ladder ads warn ban"),
        "unknown ladder step `ban`: steps are delete, warn, timeout:DURATION, kick, blacklist[:personal][:DURATION], notify, review, joined by +: usage: !guard rule ladder <rule> <rungs...>"
    );
    assert_eq!(
        err("!guard rule create bad!id"),
        "`bad!id` is not a rule id (letters, digits, - and _): usage: !guard rule create <rule> [<name...>]"
    );
    assert_eq!(
        err("!guard rule set ads phone maybe"),
        "`maybe` is not on or off: usage: !guard rule set <rule> phone <on>"
    );
    assert_eq!(
        err("!guard template apply gaming"),
        "`gaming` is not a template: retail, education, b2b or finance: usage: !guard template apply <template> [--tag <tag>]"
    );
    assert_eq!(
        err("!guard settings manual-removals sometimes"),
        "unknown manual removal policy `sometimes`: expected off, org or personal: usage: !guard settings manual-removals <policy>"
    );
    assert_eq!(
        err("!guard blacklist import"),
        "missing <entries>: usage: !guard blacklist import <entries>"
    );
    assert_eq!(
        err("!guard violations list --color red"),
        "unexpected `--color`: usage: !guard violations list [--group <group>] [--member <member>] [--rule <rule>] [--days <days>]"
    );
    assert_eq!(err("!guard rule show \"ads"), "a quote \" is never closed");
    assert!(err("!guard rule set ads kewords add x").starts_with("unknown command `rule set ads kewords add x`: did you mean\n  !guard rule set <rule> keywords add <keywords...>"));
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(words in proptest::collection::vec("[a-z\\-\"'<>\\[\\]:+.0-9 ]{0,12}|rule|set|add|--group|--days|\\PC{0,6}", 0..8), body in "\\PC{0,40}") {
        let line = format!("!guard {}\n{body}", words.join(" "));
        let _ = parse(&line, Platform::Matrix);
        let _ = from_slash(Some("rule"), "delete", &[("rule", &line)], Platform::Discord);
    }
}

#[test]
fn rule_files_with_garbage_are_refused_without_panicking() {
    for text in [
        "[[rules]",
        "rules = [1, 2]",
        "[[rules]]\nid = 5",
        "[settings]\nhome_orgs = { nowhere = \"x\" }",
        "\u{0}",
        "[[rules]]\nid = \"a\"\nladder = []",
    ] {
        assert!(crate::rulefile::load(text).is_err(), "{text:?}");
    }
}
