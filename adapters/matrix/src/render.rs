//! Notices as Matrix sends them: a plain `body` and an HTML `formatted_body`, for answers to
//! commands, warnings and admin notices.

use groupguard_core::platform::ActionRequest;
use groupguard_core::reply::{Block, Reply};
use serde_json::{Value, json};

/// `&`, `<`, `>` and quotes escaped for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// An `m.notice` with a plain and an HTML body, replying to `reply_to` when given.
pub fn notice(body: &str, html: &str, reply_to: Option<&str>, mentions: &[&str]) -> Value {
    let mut content = json!({
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": { "user_ids": mentions },
    });
    if let Some(event) = reply_to {
        content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": event } });
    }
    content
}

/// A command's answer as HTML.
pub fn reply_html(reply: &Reply) -> String {
    let mut html = String::new();
    if let Some(title) = &reply.title {
        html.push_str(&format!("<strong>{}</strong><br>", escape(title)));
    }
    for block in &reply.blocks {
        match block {
            Block::Text { text } => {
                html.push_str(&format!("<p>{}</p>", escape(text).replace('\n', "<br>")));
            }
            Block::Table { columns, rows } => {
                html.push_str("<table><tr>");
                for column in columns {
                    html.push_str(&format!("<th>{}</th>", escape(column)));
                }
                html.push_str("</tr>");
                for row in rows {
                    html.push_str("<tr>");
                    for cell in &row.cells {
                        html.push_str(&format!("<td>{}</td>", escape(cell)));
                    }
                    html.push_str("</tr>");
                }
                html.push_str("</table>");
            }
            Block::Code { text } => {
                html.push_str(&format!("<pre><code>{}</code></pre>", escape(text)));
            }
            Block::File { name, content } => {
                html.push_str(&format!(
                    "<strong>{}</strong><pre><code>{}</code></pre>",
                    escape(name),
                    escape(content)
                ));
            }
        }
    }
    html
}

/// An admin notice: what to do, then the member, rule and evidence.
pub fn admin_notice(request: &ActionRequest, text: &str) -> (String, String) {
    let mut plain = vec![format!("groupguard in {}: {text}", request.group)];
    let mut html = vec![format!(
        "<strong>groupguard</strong> in <code>{}</code>: {}",
        escape(request.group.as_str()),
        escape(text)
    )];
    let member = match request.case.as_ref().and_then(|c| c.member_name.as_deref()) {
        Some(name) => format!("{name} ({})", request.member),
        None => request.member.to_string(),
    };
    plain.push(format!("member: {member}"));
    html.push(format!("member: {}", escape(&member)));
    match &request.case {
        Some(case) => {
            plain.push(format!("rule: {} ({})", request.rule, case.check));
            html.push(format!(
                "rule: {} ({})",
                escape(request.rule.as_str()),
                case.check
            ));
            plain.push(format!("evidence: {}", case.evidence));
            html.push(format!("evidence: {}", escape(&case.evidence)));
            if !case.excerpt.is_empty() {
                plain.push(format!("message: {}", case.excerpt));
                html.push(format!(
                    "message: <blockquote>{}</blockquote>",
                    escape(&case.excerpt)
                ));
            }
        }
        None => {
            plain.push(format!("rule: {}", request.rule));
            html.push(format!("rule: {}", escape(request.rule.as_str())));
        }
    }
    (plain.join("\n"), html.join("<br>"))
}

#[cfg(test)]
mod tests {
    use groupguard_core::reply::Row;

    use super::*;

    #[test]
    fn answers_render_as_html_with_everything_escaped() {
        let reply = Reply::text("2 rules <b>")
            .titled("Rules")
            .with(Block::Table {
                columns: vec!["rule".to_owned()],
                rows: vec![Row {
                    cells: vec!["a&b".to_owned()],
                    plain: "a&b".to_owned(),
                }],
            });
        assert_eq!(
            reply_html(&reply),
            "<strong>Rules</strong><br><p>2 rules &lt;b&gt;</p><table><tr><th>rule</th></tr><tr><td>a&amp;b</td></tr></table>"
        );
        let content = notice("x", "<p>x</p>", Some("$e"), &["@eve:localhost"]);
        assert_eq!(content["m.relates_to"]["m.in_reply_to"]["event_id"], "$e");
        assert_eq!(content["m.mentions"]["user_ids"][0], "@eve:localhost");
        assert_eq!(content["msgtype"], "m.notice");
    }
}
