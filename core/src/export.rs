//! Violations as CSV (for spreadsheets) and JSON (one object per line, for tools).

use crate::ports::{ActionState, StoredViolation};

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 13] = [
    "id",
    "at",
    "platform",
    "group",
    "member",
    "member_name",
    "rule",
    "check",
    "evidence",
    "excerpt",
    "mode",
    "actions",
    "outcomes",
];

/// Violations as CSV with a header row. Actions and their outcomes are `;`-separated
/// (`delete;warn`, `done;failed: forbidden`).
pub fn violations_csv(violations: &[StoredViolation]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let rows =
        std::iter::once(CSV_HEADER.map(str::to_owned).to_vec()).chain(violations.iter().map(|v| {
            let r = &v.record;
            let actions: Vec<&str> = r.actions.iter().map(|a| a.name()).collect();
            let outcomes: Vec<String> = v
                .outcomes
                .iter()
                .map(|(_, state)| describe(state))
                .collect();
            vec![
                v.id.to_string(),
                r.at.to_rfc3339(),
                r.platform.to_string(),
                r.group.to_string(),
                r.member.to_string(),
                r.member_name.clone().unwrap_or_default(),
                r.rule.to_string(),
                r.check.to_string(),
                r.evidence.to_string(),
                r.excerpt.clone(),
                r.mode.to_string(),
                actions.join(";"),
                outcomes.join(";"),
            ]
        }));
    for row in rows {
        out.write_record(&row)
            .expect("writing CSV to memory cannot fail");
    }
    let bytes = out
        .into_inner()
        .expect("flushing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
}

/// Violations as JSON lines: one complete [`StoredViolation`] per line.
pub fn violations_json(violations: &[StoredViolation]) -> String {
    violations
        .iter()
        .filter_map(|v| serde_json::to_string(v).ok())
        .map(|line| line + "\n")
        .collect()
}

fn describe(state: &ActionState) -> String {
    match state {
        ActionState::Pending => "pending".to_owned(),
        ActionState::Done => "done".to_owned(),
        ActionState::Failed { error } => format!("failed: {error}"),
        ActionState::Replaced { note } => format!("replaced: {note}"),
        ActionState::Shadow => "shadow".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::model::Platform;
    use crate::rulefile;
    use crate::testing::{EventFactory, member};

    fn stored() -> Vec<StoredViolation> {
        let set = rulefile::parse("[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"] }\nladder = [\"delete+warn\"]\n").unwrap();
        let mut engine = Engine::new(crate::engine::Live::compile(set).unwrap());
        let event = EventFactory::new(Platform::WeCom, "g1")
            .text(&member("ann"), "代购, \"cheap\"\nline two");
        let verdict = engine.evaluate(&event, event.at);
        vec![StoredViolation {
            id: 7,
            record: verdict.violations[0].clone(),
            outcomes: vec![
                (verdict.actions[0].action.clone(), ActionState::Done),
                (
                    verdict.actions[1].action.clone(),
                    ActionState::Failed {
                        error: "forbidden".to_owned(),
                    },
                ),
            ],
        }]
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_quoting() {
        let csv = violations_csv(&stored());
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
        assert_eq!(
            csv.lines().skip(1).collect::<Vec<_>>().join("\n"),
            "7,2026-11-21T09:00:00.000Z,wecom,g1,ann,ann,ads,keyword,`代购`,\"代购, \"\"cheap\"\"\nline two\",enforce,delete;warn,done;failed: forbidden"
        );
    }

    #[test]
    fn json_lines_round_trip() {
        let violations = stored();
        let json = violations_json(&violations);
        assert_eq!(json.lines().count(), 1);
        let back: StoredViolation = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(back, violations[0]);
    }
}
