use super::*;
use crate::rule::{FloodCheck, Keywords, RegexCheck};

fn rule_with_keywords(id: &str, words: &[&str]) -> Rule {
    let mut rule = Rule::new(id);
    rule.keywords = Some(Keywords {
        substrings: words.iter().map(|w| (*w).to_owned()).collect(),
        ..Default::default()
    });
    rule
}

fn messages(errors: Vec<ConfigError>) -> Vec<String> {
    errors.into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let mut bad_regex = rule_with_keywords("ads", &["加微信"]);
    bad_regex.regex = Some(RegexCheck {
        patterns: vec!["ok".to_owned(), "(unclosed".to_owned()],
    });
    let mut no_window = rule_with_keywords("flood", &["x"]);
    no_window.flood = Some(FloodCheck {
        messages: Some(5),
        ..FloodCheck::default()
    });
    let empty_keyword = rule_with_keywords("ads", &["\u{200B} "]);
    let mut template = rule_with_keywords("tpl", &["y"]);
    template.warn_template = Some("hi {membr}".to_owned());
    let set = RuleSet {
        rules: vec![
            bad_regex,
            no_window,
            empty_keyword,
            template,
            Rule::new("bad id!"),
        ],
        ..RuleSet::default()
    };
    let errors = messages(CompiledRules::compile(set).unwrap_err());
    assert_eq!(
        errors,
        [
            "rules[0].regex.patterns[1]: bad pattern `(unclosed` in rule `ads`: unclosed group",
            "rules[1].flood.per: `messages` needs `per`, the window (for example per = \"10s\")",
            "rules[2].id: rule id `ads` is already used by rules[0]",
            "rules[2].keywords.substrings[0]: keyword `\u{200B} ` is empty after normalization",
            "rules[3].warn_template: unknown placeholder `{membr}`: use {member}, {rule}, {check}, {count}, {next}",
            "rules[4].id: rule id `bad id!` must be 1 to 64 letters, digits, `-` or `_`",
            "rules[4]: rule `bad id!` has no checks: add keywords, regex, phone, links, mini_programs, banned_kinds, flood, duplicates, invites or blacklist",
        ]
    );
}

#[test]
fn keywords_shared_between_rules_compile_into_one_pattern() {
    let set = RuleSet {
        rules: vec![
            rule_with_keywords("a", &["加微信", "加 微 信"]),
            rule_with_keywords("b", &["加微信"]),
        ],
        ..RuleSet::default()
    };
    let compiled = CompiledRules::compile(set).unwrap();
    let mut owners = Vec::new();
    compiled.keywords.find("请加微信", |owner, start, end| {
        owners.push((owner.rule, owner.keyword, start, end))
    });
    owners.sort();
    assert_eq!(owners, [(0, 0, 3, 12), (0, 1, 3, 12), (1, 0, 3, 12)]);
}

#[test]
fn a_recompile_reuses_the_keyword_automaton_and_adds_the_new_keywords() {
    let words: Vec<String> = (0..1_000).map(|i| format!("词{i:04}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let set = |extra: &[&str], without: &str| RuleSet {
        rules: vec![
            rule_with_keywords("other", &["加微信"]),
            rule_with_keywords(
                "big",
                &refs
                    .iter()
                    .copied()
                    .filter(|w| *w != without)
                    .chain(extra.iter().copied())
                    .collect::<Vec<_>>(),
            ),
        ],
        ..RuleSet::default()
    };
    let found = |compiled: &CompiledRules, text: &str| {
        let mut owners = Vec::new();
        compiled
            .keywords
            .find(text, |owner, _, _| owners.push((owner.rule, owner.keyword)));
        owners.sort();
        owners
    };
    let first = CompiledRules::compile(set(&[], "")).unwrap();
    assert_eq!(first.keywords.added_patterns(), None);
    // One keyword added, one removed: the big automaton stays, a small one holds the new one.
    let second = CompiledRules::recompile(set(&["新词"], "词0005"), &first).unwrap();
    assert!(second.keywords.shares_base_with(&first.keywords));
    assert_eq!(second.keywords.added_patterns(), Some(1));
    assert_eq!(found(&second, "这是新词"), [(1, 999)]);
    assert_eq!(found(&second, "词0005"), [], "removed");
    assert_eq!(found(&second, "词0006 加微信"), [(0, 0), (1, 5)]);
    // A change elsewhere builds no automaton at all.
    let third = CompiledRules::recompile(set(&["新词"], "词0005"), &second).unwrap();
    assert!(third.keywords.shares_base_with(&first.keywords));
    assert_eq!(found(&third, "这是新词"), [(1, 999)]);
    // Many new keywords: everything is built afresh.
    let many: Vec<String> = (0..100).map(|i| format!("新{i:03}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let fourth = CompiledRules::recompile(set(&many, ""), &third).unwrap();
    assert!(!fourth.keywords.shares_base_with(&first.keywords));
    assert_eq!(fourth.keywords.added_patterns(), None);
    assert_eq!(found(&fourth, "新042"), [(1, 1_042)]);
}

#[test]
fn a_hundred_thousand_keywords_in_one_rule_compile() {
    let words: Vec<String> = (0..100_000).map(|i| format!("kw{i:06}x")).collect();
    let mut rule = Rule::new("big");
    rule.keywords = Some(Keywords {
        substrings: words,
        ..Default::default()
    });
    let compiled = CompiledRules::compile(RuleSet {
        rules: vec![rule],
        ..RuleSet::default()
    })
    .unwrap();
    let mut hits = Vec::new();
    compiled
        .keywords
        .find("spam kw099999x here", |owner, _, _| {
            hits.push(owner.keyword)
        });
    assert_eq!(hits, [99_999]);
}

#[test]
fn each_group_gets_the_rules_that_name_it_tag_it_or_cover_everything_in_order_once() {
    use crate::model::{GroupRef, Platform};
    let group = |id: &str, tags: &[&str]| {
        let mut g = GroupConfig::new(GroupRef::new(Platform::WeCom, id));
        g.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        g
    };
    let mut matrix_only = rule_with_keywords("matrix-only", &["a"]);
    matrix_only.scope.platforms = vec![Platform::Matrix];
    let mut named_and_tagged = rule_with_keywords("retail", &["b"]);
    named_and_tagged.scope.groups = vec![GroupRef::new(Platform::WeCom, "shop")];
    named_and_tagged.scope.tags = vec!["retail".into()];
    let mut vip = rule_with_keywords("vip", &["c"]);
    vip.scope.tags = vec!["vip".into()];
    let mut named_only = rule_with_keywords("named", &["d"]);
    named_only.scope.groups = vec![GroupRef::new(Platform::WeCom, "elsewhere")];
    let everywhere = rule_with_keywords("all", &["e"]);
    let set = RuleSet {
        groups: vec![group("shop", &["retail", "vip"]), group("club", &["vip"])],
        rules: vec![matrix_only, named_and_tagged, vip, named_only, everywhere],
        ..RuleSet::default()
    };
    let compiled = CompiledRules::compile(set).unwrap();
    let rules_of = |id: &str| {
        compiled.groups[&keys::group(Platform::WeCom, id)]
            .rules
            .to_vec()
    };
    assert_eq!(rules_of("shop"), [1, 2, 4]);
    assert_eq!(rules_of("club"), [2, 4]);
    assert_eq!(
        rules_of("elsewhere"),
        [3, 4],
        "a group only a rule names is known too"
    );
}

fn compiled_regex(patterns: &[&str]) -> CompiledRegex {
    let mut rule = Rule::new("re");
    rule.regex = Some(RegexCheck {
        patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
    });
    let set = RuleSet {
        rules: vec![rule],
        ..RuleSet::default()
    };
    let mut compiled = CompiledRules::compile(set).expect("compiles");
    compiled.rules.remove(0).regex.expect("a regex check")
}

/// Patterns every match of which starts with one of a few literals, and texts around them.
const PREFIXED: [&str; 4] = [
    r"discord\.gg/\w+",
    r"q{2}\s*群\s*\d{5,}",
    r"(年化|收益)\s*\d{2,3}\s*%",
    r"WE(CHAT|IXIN)",
];
const REGEX_PIECES: [&str; 14] = [
    "discord", ".gg/", "abc", "qq", "群", " ", "12345", "年化", "收益", "15", "%", "wechat",
    "weixin", "你好",
];

#[test]
fn regexes_whose_matches_start_with_literals_are_searched_for_those_first() {
    assert!(compiled_regex(&PREFIXED).prefixes.is_some());
    // A pattern that may start anywhere leaves the search to the regex engine alone.
    let anywhere = compiled_regex(&[r"\d{6,}", r"discord\.gg"]);
    assert!(anywhere.prefixes.is_none());
    assert!(anywhere.is_match("call 1234567"));
}

proptest::proptest! {
    #[test]
    fn the_literal_search_first_changes_no_answer(
        text in proptest::collection::vec(0..REGEX_PIECES.len(), 0..12)
    ) {
        let regex = compiled_regex(&PREFIXED);
        let text: String = text.into_iter().map(|i| REGEX_PIECES[i]).collect();
        proptest::prop_assert_eq!(regex.is_match(&text), regex.set.is_match(&text), "{}", text);
    }
}
