//! `blacklist add|remove|list|import` and `whitelist add|remove|list`.

use super::{Answer, CommandError, Context, find, reload_config};
use crate::command::parse::{Args, need};
use crate::model::{RuleId, UserId};
use crate::rule::{BlacklistEntry, WhitelistEntry};

/// `org-wide` or `zhang's personal`.
fn list_name(owner: Option<&UserId>) -> String {
    match owner {
        Some(owner) => format!("{owner}'s personal"),
        None => "org-wide".to_owned(),
    }
}

/// The owner of this group, for `--personal on`.
async fn personal_owner(
    ctx: &Context<'_>,
    personal: Option<bool>,
) -> Result<Option<UserId>, CommandError> {
    if personal != Some(true) {
        return Ok(None);
    }
    let config = ctx.store.config().await?;
    let here = ctx.here();
    config
        .groups
        .iter()
        .find(|g| g.id == here)
        .and_then(|g| g.owner.clone())
        .map(Some)
        .ok_or_else(|| {
            CommandError::Refused(
                "this group has no owner configured: add it to the config first".to_owned(),
            )
        })
}

pub(super) async fn blacklist_add(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let member = need(args.member("member"), "member")?;
    let reason = args.text("reason").unwrap_or_default();
    let expires = args.duration("expires");
    let owner = personal_owner(ctx, args.flag("personal")).await?;
    let entry = BlacklistEntry {
        member: member.clone(),
        owner: owner.clone(),
        reason,
        source: ctx.edit().by,
        created_at: ctx.now,
        expires_at: expires.map(|d| ctx.now.plus(d)),
    };
    ctx.store.add_blacklist(entry.clone(), &ctx.edit()).await?;
    ctx.rules.change_blacklist(&[entry], &[]);
    Ok(Answer::ListChanged {
        what: format!("{member} is on the {} blacklist", list_name(owner.as_ref())),
    })
}

pub(super) async fn blacklist_remove(
    ctx: &Context<'_>,
    args: &Args,
) -> Result<Answer, CommandError> {
    let member = need(args.member("member"), "member")?;
    let owner = personal_owner(ctx, args.flag("personal")).await?;
    ctx.store
        .remove_blacklist(&member, owner.as_ref(), &ctx.edit())
        .await?;
    let what = format!(
        "{member} is off the {} blacklist",
        list_name(owner.as_ref())
    );
    ctx.rules.change_blacklist(&[], &[(member, owner)]);
    Ok(Answer::ListChanged { what })
}

pub(super) async fn blacklist_list(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let after = args.member("after");
    Ok(Answer::Blacklist(
        ctx.store
            .blacklist_page(after.as_ref().map(|m| (m, None)), 20)
            .await?,
    ))
}

pub(super) async fn blacklist_import(
    ctx: &Context<'_>,
    args: &Args,
) -> Result<Answer, CommandError> {
    let body = need(args.text("entries"), "entries")?;
    let entries = BlacklistEntry::parse_lines(&body, ctx.now).map_err(CommandError::Invalid)?;
    let count = ctx
        .store
        .import_blacklist(entries.clone(), &ctx.edit())
        .await?;
    ctx.rules.change_blacklist(&entries, &[]);
    Ok(Answer::ListChanged {
        what: format!("{count} entries imported into the org-wide blacklist"),
    })
}

pub(super) async fn whitelist_add(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let member = need(args.member("member"), "member")?;
    let reason = args.text("reason").unwrap_or_default();
    let rules: Vec<RuleId> = args.rule("rule").into_iter().collect();
    let config = ctx.store.config().await?;
    for rule in &rules {
        find(&config, rule)?;
    }
    let what = match rules.first() {
        Some(rule) => format!("{member} is exempt from rule {rule}"),
        None => format!("{member} is exempt from every rule"),
    };
    let entry = WhitelistEntry {
        member,
        reason,
        rules,
    };
    ctx.store.put_whitelist(entry, &ctx.edit()).await?;
    reload_config(ctx).await?;
    Ok(Answer::ListChanged { what })
}

pub(super) async fn whitelist_remove(
    ctx: &Context<'_>,
    args: &Args,
) -> Result<Answer, CommandError> {
    let member = need(args.member("member"), "member")?;
    ctx.store.remove_whitelist(&member, &ctx.edit()).await?;
    reload_config(ctx).await?;
    Ok(Answer::ListChanged {
        what: format!("{member} is no longer whitelisted"),
    })
}

pub(super) async fn whitelist_list(ctx: &Context<'_>) -> Result<Answer, CommandError> {
    Ok(Answer::Whitelist(ctx.store.config().await?.whitelist))
}
