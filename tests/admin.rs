//! `groupguard config import|export` and `groupguard blacklist import` on a fresh SQLite store.

use std::path::Path;
use std::process::{Command, Output};

use crate::bot::fresh_dir;

fn groupguard(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GROUPGUARD_DATA_DIR", data)
        .env_remove("DATABASE_URL")
        .env_remove("GROUPGUARD_CONFIG")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn a_rule_file_is_imported_into_the_store_and_exported_back() {
    let data = fresh_dir();
    let out = groupguard(
        &data,
        &["config", "import", "examples/templates/retail.toml"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "imported 4 rules, 2 groups and 0 blacklist entries\n"
    );
    assert!(data.join("groupguard.db").exists());
    let out = groupguard(&data, &["config", "export"]);
    assert!(out.status.success());
    let exported = text(&out.stdout);
    let mut set = groupguard_core::rulefile::parse(&exported).unwrap();
    let mut original = groupguard_core::rulefile::parse(
        &std::fs::read_to_string("examples/templates/retail.toml").unwrap(),
    )
    .unwrap();
    // The store lists groups in (platform, id) order.
    for s in [&mut set, &mut original] {
        s.groups.sort_by(|a, b| a.id.id.cmp(&b.id.id));
    }
    assert_eq!(set, original);
}

#[test]
fn a_bad_rule_file_imports_nothing_and_says_where() {
    let data = fresh_dir();
    let bad = data.join("bad.toml");
    std::fs::write(
        &bad,
        "[[rules]]\nid = \"a\"\nregex = { patterns = [\"(\"] }\n",
    )
    .unwrap();
    let out = groupguard(&data, &["config", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:line 3, column 23: rules[0].regex.patterns[0]: bad pattern `(` in rule `a`: unclosed group\nnothing was imported\n",
            bad.display()
        )
    );
    let out = groupguard(&data, &["config", "export"]);
    assert_eq!(text(&out.stdout), "", "the store is still empty");
}

#[test]
fn blacklists_are_imported_all_or_nothing() {
    let data = fresh_dir();
    let list = data.join("list.txt");
    std::fs::write(
        &list,
        "wecom:wmA spam\nmatrix:@b:example.org raids\n\ndiscord:123\n",
    )
    .unwrap();
    let out = groupguard(&data, &["blacklist", "import", list.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("imported 3 blacklist entries in "));
    std::fs::write(&list, "wecom:wmC\nnot-a-member\n").unwrap();
    let out = groupguard(&data, &["blacklist", "import", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}: line 2: `not-a-member` is not of the form platform:id (for example wecom:wmAbc)\nnothing was imported\n",
            list.display()
        )
    );
}
