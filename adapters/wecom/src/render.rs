//! WeCom markdown (the subset app messages and smart-bot replies show): answers to commands
//! and admin notices, cut to the 2,048 bytes an app message may carry.

use groupguard_core::platform::ActionRequest;
use groupguard_core::reply::{Block, Reply};

/// The most an app message's markdown may hold.
pub const MAX_MARKDOWN: usize = 2048;

/// A command's answer; `reference` (the command's message) ends it in grey.
pub fn reply(reply: &Reply, reference: Option<&str>) -> String {
    let mut lines = Vec::new();
    if let Some(title) = &reply.title {
        lines.push(format!("**{}**", plain(title)));
    }
    for block in &reply.blocks {
        match block {
            Block::Text { text } => lines.push(plain(text)),
            Block::Table { rows, .. } => {
                lines.extend(rows.iter().map(|r| format!("> {}", plain(&r.plain))));
            }
            Block::Code { text } => lines.extend(text.lines().map(|l| format!("`{l}`"))),
            Block::File { name, content } => {
                lines.push(format!("**{}**", plain(name)));
                lines.extend(content.lines().map(plain));
            }
        }
    }
    with_footer(&lines.join("\n"), reference.map(|r| format!("re {r}")))
}

/// An admin notice: what to do, then the member, rule and evidence, and the action's key,
/// which also makes WeCom's duplicate check tell two actions apart.
pub fn notice(request: &ActionRequest, group_name: Option<&str>, text: &str) -> String {
    let mut lines = vec![format!(
        "**groupguard** · {}",
        plain(group_name.unwrap_or(request.group.as_str()))
    )];
    lines.push(plain(text));
    let member = match request.case.as_ref().and_then(|c| c.member_name.as_deref()) {
        Some(name) => format!("{} ({})", plain(name), request.member),
        None => request.member.to_string(),
    };
    lines.push(format!("> member: {member}"));
    match &request.case {
        Some(case) => {
            lines.push(format!("> rule: {} ({})", request.rule, case.check));
            lines.push(format!("> evidence: {}", plain(&case.evidence)));
            if !case.excerpt.is_empty() {
                lines.push(format!("> message: {}", plain(&case.excerpt)));
            }
        }
        None => lines.push(format!("> rule: {}", request.rule)),
    }
    with_footer(&lines.join("\n"), Some(format!("ref {}", request.key)))
}

/// `text` cut to fit with `footer` in grey after it, within [`MAX_MARKDOWN`] bytes.
fn with_footer(text: &str, footer: Option<String>) -> String {
    let footer = footer.map_or_else(String::new, |f| {
        format!("\n<font color=\"comment\">{f}</font>")
    });
    format!("{}{footer}", cut(text, MAX_MARKDOWN - footer.len()))
}

/// Text with markdown's markers defused, on one line per line.
fn plain(text: &str) -> String {
    text.replace('\r', "").replace(['<', '>'], " ")
}

/// At most `max` bytes, cut at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - "…".len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use groupguard_core::model::Platform;
    use groupguard_core::platform::{Case, IdempotencyKey, Recipients};
    use groupguard_core::reply::Row;
    use groupguard_core::verdict::{Action, CheckKind};

    use super::*;

    #[test]
    fn a_notice_names_member_rule_evidence_and_its_key() {
        let request = ActionRequest {
            key: IdempotencyKey::for_action(Platform::WeCom, &"e1".into(), 0),
            platform: Platform::WeCom,
            group: "wr1".into(),
            member: "wmSpam".into(),
            message: None,
            action: Action::NotifyAdmins {
                text: "x".to_owned(),
            },
            rule: "ads".into(),
            notify: Recipients::default(),
            case: Some(Case {
                member_name: Some("张三".to_owned()),
                check: CheckKind::Keyword,
                evidence: "`代购`".to_owned(),
                excerpt: "代购<b>".to_owned(),
            }),
            ban: false,
        };
        let text = notice(&request, Some("VIP 客户群"), "please remove 张三");
        assert_eq!(
            text,
            format!(
                "**groupguard** · VIP 客户群\nplease remove 张三\n> member: 张三 (wmSpam)\n> rule: ads (keyword)\n\
                 > evidence: `代购`\n> message: 代购 b \n<font color=\"comment\">ref {}</font>",
                request.key
            )
        );
    }

    #[test]
    fn answers_are_markdown_cut_to_what_an_app_message_holds() {
        let answer = Reply::text("2 rules").titled("Rules").with(Block::Table {
            columns: vec![],
            rows: vec![Row {
                cells: vec![],
                plain: "ads [enforce]".to_owned(),
            }],
        });
        assert_eq!(reply(&answer, None), "**Rules**\n2 rules\n> ads [enforce]");
        let long = reply(&Reply::text("字".repeat(1000)), Some("123"));
        assert!(long.len() <= MAX_MARKDOWN, "{}", long.len());
        assert!(
            long.ends_with("…\n<font color=\"comment\">re 123</font>"),
            "{long}"
        );
    }
}
