use super::*;

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn type_and_field_errors_in_several_rules_are_all_reported_with_lines() {
    let text = r#"
[[rules]]
id = "ok"
keywords = { substrings = ["a"] }

[[rules]]
id = "typo"
kewords = { substrings = ["b"] }

[[rules]]
id = "wrong-type"
enabled = "yes"

[[groups]]
id = "nowhere"

[limits]
x = 1
"#;
    let found = errors(text);
    let errors = found;
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0]
            .starts_with("line 8, column 1: rules[1]: unknown field `kewords`, expected one of"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "line 12, column 11: rules[2]: invalid type: string \"yes\", expected a boolean"
    );
    assert_eq!(
        errors[2],
        "line 15, column 6: groups[0]: `nowhere` is not of the form platform:id (for example wecom:wmAbc)"
    );
    assert_eq!(
        errors[3],
        "line 17, column 2: unknown section `limits`: expected one of settings, groups, rules, blacklist, whitelist"
    );
}

#[test]
fn compile_errors_point_at_the_offending_value() {
    let text = r#"[[rules]]
id = "ads"
regex = { patterns = [
  "fine",
  "(broken",
] }
ladder = ["warn", "ban"]
"#;
    assert_eq!(
        errors(text),
        [
            "line 7, column 10: rules[0]: unknown ladder step `ban`: steps are delete, warn, timeout:DURATION, kick, blacklist[:personal][:DURATION], notify, review, joined by +",
        ]
    );
    let text = r#"[[rules]]
id = "ads"
regex = { patterns = [
  "fine",
  "(broken",
] }
"#;
    assert_eq!(
        errors(text),
        [
            "line 5, column 3: rules[0].regex.patterns[1]: bad pattern `(broken` in rule `ads`: unclosed group"
        ]
    );
}

#[test]
fn syntax_errors_are_located() {
    let found = errors("[[rules]]\nid = \"x\"\nkeywords = { substrings = [\"a\" }\n");
    assert!(!found.is_empty());
    assert!(found[0].starts_with("line 3, column "), "{found:?}");
}

#[test]
fn sections_of_the_wrong_shape_are_explained() {
    assert_eq!(
        errors("rules = \"all\"\n"),
        ["line 1, column 9: rules: `rules` must be a list of tables, written [[rules]]"]
    );
}

#[test]
fn export_then_import_gives_the_same_rule_set() {
    let text = r#"
[settings]
home_orgs = { wecom = "wwHome", matrix = "example.org" }
warn_template = "{member}: {rule}"

[[groups]]
id = "wecom:wrShop"
name = "Shop"
tags = ["retail", "vip"]
home_org = "wwHome"
owner = "zhang"

[[rules]]
id = "everything"
name = "Everything"
enabled = false
mode = "shadow"
scope = { groups = ["wecom:wrShop"], tags = ["vip"], platforms = ["wecom", "matrix"] }
exempt = { roles = ["admin", "owner"], members = ["wecom:friend"], bots = false }
keywords = { substrings = ["加微信"], words = ["casino"] }
regex = { patterns = ['\d{6}'] }
phone = { kinds = ["mobile"] }
links = { mode = "allow_listed_only", allow = ["corp.cn"], deny = ["evil.com"] }
mini_programs = { allow = ["wx1"] }
banned_kinds = ["voice", "mini_program"]
flood = { messages = 5, per = "10s", max_chars = 500, max_lines = 10, max_mentions = 5 }
duplicates = { members = 3, groups = 2, window = "1m", min_chars = 10 }
invites = { refuse_other_orgs = true, allow_orgs = ["wwPartner"], only_staff_invite = true }
blacklist = { on_join = true, on_message = false }
ladder = ["delete+warn", "delete+timeout:10m", "kick+blacklist:personal:30days+notify"]
decay = "7days"
warn_template = "{member}, stop ({count})"

[[rules]]
id = "defaults"
phone = {}

[[blacklist]]
member = "wecom:troll"
owner = "zhang"
reason = "spam"
source = "rule:everything"
created_at = "2026-11-01T00:00:00Z"
expires_at = "2026-12-01T00:00:00Z"

[[whitelist]]
member = "matrix:@vip:example.org"
reason = "partner"
rules = ["everything"]
"#;
    let set = parse(text).unwrap();
    let exported = export(&set);
    let again = parse(&exported).unwrap_or_else(|e| panic!("{e:?}\n{exported}"));
    assert_eq!(again, set);
    assert_eq!(export(&again), exported);
    assert!(load(&exported).is_ok());
}
