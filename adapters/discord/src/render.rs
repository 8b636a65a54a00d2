//! Discord markdown: answers to commands, warnings and admin notices, within the 2,000
//! characters a message may hold, with what members wrote defused.

use groupguard_core::platform::ActionRequest;
use groupguard_core::reply::{Block, Reply};

/// The most a message's content may hold, in characters.
pub const MAX_CONTENT: usize = 2_000;

/// Text with Discord's markdown markers escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A code block that cannot be closed early by its content.
fn code(text: &str) -> String {
    format!("```\n{}\n```", text.replace("```", "`\u{200b}``"))
}

/// A command's answer.
pub fn reply(reply: &Reply) -> String {
    let mut parts = Vec::new();
    if let Some(title) = &reply.title {
        parts.push(format!("**{}**", escape(title)));
    }
    for block in &reply.blocks {
        match block {
            Block::Text { text } => parts.push(escape(text)),
            Block::Table { columns, rows } => {
                let mut lines = vec![columns.join(" | ")];
                lines.extend(rows.iter().map(|r| r.plain.clone()));
                parts.push(code(&lines.join("\n")));
            }
            Block::Code { text } => parts.push(code(text)),
            Block::File { name, content } => {
                parts.push(format!("**{}**", escape(name)));
                parts.push(code(content));
            }
        }
    }
    cut(&parts.join("\n"))
}

/// A warning to the member, mentioning them.
pub fn warning(member: &str, text: &str) -> String {
    cut(&format!("<@{member}> {}", escape(text)))
}

/// An admin notice: what to do, then the member, rule, evidence and message, and the
/// action's key in small print.
pub fn notice(request: &ActionRequest, guild_name: Option<&str>, text: &str) -> String {
    let mut lines = vec![format!(
        "**groupguard** · {}",
        escape(guild_name.unwrap_or(request.group.as_str()))
    )];
    lines.push(escape(text));
    let member = match request.case.as_ref().and_then(|c| c.member_name.as_deref()) {
        Some(name) => format!("<@{}> ({})", request.member, escape(name)),
        None => format!("<@{}>", request.member),
    };
    lines.push(format!("> member: {member}"));
    match &request.case {
        Some(case) => {
            lines.push(format!(
                "> rule: {} ({})",
                escape(request.rule.as_str()),
                case.check
            ));
            lines.push(format!("> evidence: {}", escape(&case.evidence)));
            if !case.excerpt.is_empty() {
                lines.push(format!("> message: {}", escape(&case.excerpt)));
            }
        }
        None => lines.push(format!("> rule: {}", escape(request.rule.as_str()))),
    }
    lines.push(format!("-# ref {}", request.key));
    cut(&lines.join("\n"))
}

/// At most [`MAX_CONTENT`] characters.
fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_CONTENT {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_CONTENT - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use groupguard_core::model::Platform;
    use groupguard_core::platform::{Case, IdempotencyKey, Recipients};
    use groupguard_core::reply::Row;
    use groupguard_core::verdict::{Action, CheckKind};

    use super::*;

    #[test]
    fn a_notice_mentions_the_member_and_defuses_what_they_wrote() {
        let request = ActionRequest {
            key: IdempotencyKey::for_action(Platform::Discord, &"e1".into(), 0),
            platform: Platform::Discord,
            group: "11".into(),
            member: "23".into(),
            message: None,
            action: Action::NotifyAdmins {
                text: "x".to_owned(),
            },
            rule: "ads".into(),
            notify: Recipients::default(),
            case: Some(Case {
                member_name: Some("eve_".to_owned()),
                check: CheckKind::Keyword,
                evidence: "`代购`".to_owned(),
                excerpt: "**buy** now".to_owned(),
            }),
            ban: false,
        };
        assert_eq!(
            notice(&request, Some("club"), "please look"),
            format!(
                "**groupguard** · club\nplease look\n> member: <@23> (eve\\_)\n> rule: ads (keyword)\n\
                 > evidence: \\`代购\\`\n> message: \\*\\*buy\\*\\* now\n-# ref {}",
                request.key
            )
        );
    }

    #[test]
    fn answers_keep_tables_in_code_blocks_and_fit_one_message() {
        let answer = Reply::text("2 rules").titled("rules").with(Block::Table {
            columns: vec!["id".to_owned(), "checks".to_owned()],
            rows: vec![Row {
                cells: vec!["ads".to_owned(), "keywords".to_owned()],
                plain: "ads | keywords".to_owned(),
            }],
        });
        assert_eq!(
            reply(&answer),
            "**rules**\n2 rules\n```\nid | checks\nads | keywords\n```"
        );
        let long = Reply::text("x".repeat(5_000));
        assert_eq!(reply(&long).chars().count(), MAX_CONTENT);
        assert_eq!(warning("23", "no *ads*"), "<@23> no \\*ads\\*");
    }
}
