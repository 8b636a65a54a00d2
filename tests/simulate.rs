//! `groupguard simulate` and `groupguard rules check` on the shipped examples.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn groupguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

/// Runs a template against its sample log and returns the JSON lines.
fn simulate(template: &str) -> Vec<Value> {
    let rules = format!("examples/templates/{template}.toml");
    let events = format!("examples/chat/{template}.jsonl");
    let out = groupguard(&[
        "simulate", "--rules", &rules, "--events", &events, "--format", "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary");
    last
}

#[test]
fn retail_log() {
    let lines = simulate("retail");
    let s = summary(&lines);
    assert_eq!(s["events"], 27);
    assert_eq!(s["events_with_violations"], 12);
    assert_eq!(
        s["violations_by_rule"],
        json!({"retail-ads": 4, "retail-flood": 3, "retail-links": 3, "retail-media": 2})
    );
    assert_eq!(
        s["violations_by_check"],
        json!({"banned_kind": 2, "duplicate_members": 2, "flood": 1, "keyword": 4, "link": 2, "mini_program": 1})
    );
    assert_eq!(
        s["violations_by_group"],
        json!({"wecom:wrNewArrivals": 4, "wecom:wrVipMembers": 8})
    );
    assert_eq!(s["actions"], json!({"enforce": {"delete": 12, "warn": 12}}));
    assert_eq!(s["malformed_lines"], 0);
    // Decisions carry the evidence: the traditional spelling was caught as 代购.
    let daigou = lines
        .iter()
        .find(|l| l["event"] == "retail-006")
        .expect("a decision for retail-006");
    assert_eq!(daigou["outcomes"][0]["hits"][0]["evidence"]["term"], "代购");
    assert_eq!(
        daigou["outcomes"][0]["hits"][0]["evidence"]["matched"],
        "代購"
    );
    assert_eq!(daigou["outcomes"][0]["count_after"], 2);
}

#[test]
fn education_log() {
    let lines = simulate("education");
    let s = summary(&lines);
    assert_eq!(s["events"], 19);
    assert_eq!(s["events_by_type"], json!({"join": 4, "message": 15}));
    assert_eq!(
        s["violations_by_rule"],
        json!({"edu-ads": 3, "edu-flood": 2, "edu-kinds": 3, "edu-outsiders": 2})
    );
    assert_eq!(
        s["violations_by_check"],
        json!({"banned_kind": 3, "flood": 1, "inviter_not_staff": 1, "keyword": 3, "max_chars": 1, "other_organisation": 1})
    );
    assert_eq!(
        s["actions"],
        json!({"enforce": {"delete": 6, "kick": 2, "notify": 2, "warn": 8}})
    );
}

#[test]
fn b2b_log() {
    let s = summary(&simulate("b2b")).clone();
    assert_eq!(s["events"], 16);
    assert_eq!(
        s["violations_by_rule"],
        json!({"b2b-competitors": 3, "b2b-links": 2, "b2b-outsiders": 2})
    );
    assert_eq!(
        s["violations_by_group"],
        json!({"matrix:!partners:acme.example": 3, "wecom:wrKeyAccounts": 4})
    );
    assert_eq!(
        s["actions"],
        json!({"enforce": {"delete": 5, "kick": 2, "notify": 5, "warn": 3}})
    );
}

#[test]
fn finance_log_climbs_the_ladder_and_refuses_the_blacklisted_scammer() {
    let lines = simulate("finance");
    let s = summary(&lines);
    assert_eq!(s["events"], 13);
    assert_eq!(
        s["violations_by_check"],
        json!({"blacklist": 1, "keyword": 3, "link": 1, "phone": 4})
    );
    assert_eq!(
        s["actions"],
        json!({"enforce": {"blacklist": 1, "delete": 7, "kick": 3, "notify": 3, "review": 1, "warn": 6}})
    );
    let rejoin = lines
        .iter()
        .find(|l| l["event"] == "fin-010")
        .expect("the rejoin is refused");
    assert_eq!(rejoin["outcomes"][3]["rule"], "fin-gate");
    assert_eq!(rejoin["outcomes"][3]["hits"][0]["check"], "blacklist");
}

#[test]
fn the_table_format_explains_every_rule_with_all() {
    let out = groupguard(&[
        "simulate",
        "--rules",
        "examples/templates/retail.toml",
        "--events",
        "examples/chat/retail.jsonl",
        "--all",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("retail-ads  MATCHED  keyword `代购` as `代購`  violation 2 -> delete[enforce] warn[enforce]"), "{text}");
    assert!(
        text.contains("retail-media  skipped: role staff is exempt"),
        "{text}"
    );
    assert!(
        text.contains("retail-ads  skipped: group is out of the rule's scope"),
        "{text}"
    );
    assert!(text.contains("  violations              12"), "{text}");
}

#[test]
fn malformed_log_lines_are_reported_and_the_rest_is_replayed() {
    let dir = tempdir();
    let log = dir.join("log.jsonl");
    let good = r#"{"id":"1","at":"2026-11-21T09:00:00Z","platform":"wecom","group":"wrVipMembers","member":{"id":"u"},"type":"message","message":{"text":"加微信"}}"#;
    std::fs::write(&log, format!("{good}\nnot json\n{{\"id\":\"2\"}}\n")).unwrap();
    let out = groupguard(&[
        "simulate",
        "--rules",
        "examples/templates/retail.toml",
        "--events",
        log.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("log.jsonl:2: skipped: expected ident"),
        "{stderr}"
    );
    assert!(
        stderr.contains("log.jsonl:3: skipped: missing field `at`"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["events"], 1);
    assert_eq!(summary["violations"], 1);
    assert_eq!(summary["malformed_lines"], 2);
}

#[test]
fn rules_check_accepts_every_template() {
    for template in ["retail", "education", "b2b", "finance"] {
        let out = groupguard(&[
            "rules",
            "check",
            &format!("examples/templates/{template}.toml"),
        ]);
        assert!(
            out.status.success(),
            "{template}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8(out.stdout).unwrap().contains(": ok: "));
    }
}

#[test]
fn rules_check_lists_every_problem_with_its_location() {
    let dir = tempdir();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[rules]]\nid = \"a\"\nregex = { patterns = [\"(\"] }\n\n[[rules]]\nid = \"a\"\nflood = { messages = 0, per = \"1s\" }\n",
    )
    .unwrap();
    let out = groupguard(&["rules", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let path = file.display();
    assert_eq!(
        stderr,
        format!(
            "{path}:3:23: rules[0].regex.patterns[0]: bad pattern `(` in rule `a`: unclosed group\n\
             {path}:6:6: rules[1].id: rule id `a` is already used by rules[0]\n\
             {path}:7:22: rules[1].flood.messages: must be between 1 and 100\n\
             error: {path} has 3 problems\n"
        )
    );
}

/// A directory of its own for each test, under Cargo's temporary directory.
fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "simulate-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
