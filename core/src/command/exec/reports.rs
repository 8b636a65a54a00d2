//! `violations list|export`, `stats`, `why`, `audit list`.

use std::time::Duration;

use super::{Answer, CommandError, Context};
use crate::command::parse::{Args, need};
use crate::export::{violations_csv, violations_json};
use crate::ports::ViolationQuery;

fn days(n: i64) -> Duration {
    Duration::from_secs(n.max(0) as u64 * 86_400)
}

/// `violations list` (no format) or `violations export <format>`.
pub(super) async fn violations(
    ctx: &Context<'_>,
    args: &Args,
    export: Option<&str>,
) -> Result<Answer, CommandError> {
    let query = ViolationQuery {
        group: args.group("group"),
        member: args.member("member"),
        rule: args.rule("rule"),
        from: args.int("days").map(|d| ctx.now.minus(days(d))),
        to: None,
        before_id: None,
        limit: if export.is_some() { 1000 } else { 20 },
    };
    let found = ctx.store.violations(&query).await?;
    Ok(match export {
        None => Answer::Violations(found),
        Some("csv") => Answer::File {
            name: "violations.csv".to_owned(),
            content: violations_csv(&found),
        },
        Some(_) => Answer::File {
            name: "violations.jsonl".to_owned(),
            content: violations_json(&found),
        },
    })
}

pub(super) async fn stats(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let n = args.int("days").unwrap_or(7).clamp(1, 366);
    let group = args.group("group");
    let from = ctx.now.minus(days(n));
    let to = ctx.now.plus(Duration::from_millis(1));
    let rows = ctx.store.day_stats(group.as_ref(), from, to).await?;
    let top = ctx.store.top_checks(from, to, 5).await?;
    Ok(Answer::Stats { days: n, rows, top })
}

pub(super) async fn why(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = need(args.text("message"), "message")?;
    match ctx.store.verdict(ctx.platform, &id).await? {
        Some(verdict) => Ok(Answer::Why(Box::new(verdict))),
        None => Err(CommandError::Refused(format!(
            "no decision is recorded for `{id}`: give the id of a message or event the bot saw"
        ))),
    }
}

pub(super) async fn audit(ctx: &Context<'_>) -> Result<Answer, CommandError> {
    Ok(Answer::Audit(ctx.store.audit_page(None, 20).await?))
}
