//! `rule create|list|show|delete|enable|disable|mode|ladder|scope`.

use super::{
    Answer, CommandError, Context, RuleSummary, change_rule, edit_list, find, put_in_force,
    read_config, save_rule, validate, verb,
};
use crate::command::parse::{Args, need};
use crate::native::{DISCORD_AUTOMOD, NativeFilter};
use crate::rule::{Rule, RuleSet, Rung};
use crate::rulefile;

pub(super) async fn create(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = need(args.rule("rule"), "rule")?;
    let name = args.text("name").unwrap_or_default();
    let (config, revision) = read_config(ctx.store, ctx.rules).await?;
    if config.rules.iter().any(|r| r.id == id) {
        return Err(CommandError::Refused(format!("rule `{id}` already exists")));
    }
    let mut rule = Rule::new(id);
    rule.enabled = false;
    rule.name = name;
    save_rule(
        ctx,
        (config, revision),
        rule,
        "created, disabled until it has checks and is enabled".to_owned(),
    )
    .await
}

pub(super) async fn list(ctx: &Context<'_>) -> Result<Answer, CommandError> {
    let config = ctx.store.config().await?;
    Ok(Answer::Rules(config.rules.iter().map(summary).collect()))
}

pub(super) async fn show(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let config = ctx.store.config().await?;
    let shown = RuleSet {
        rules: vec![find(&config, id)?.clone()],
        ..RuleSet::default()
    };
    let mut text = rulefile::export(&shown);
    if let Some(filter) = NativeFilter::of(&shown.rules[0], &DISCORD_AUTOMOD) {
        text.push_str(&format!("\n# {}\n", filter.describe()));
    }
    Ok(Answer::RuleText(text))
}

pub(super) async fn delete(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = need(args.rule("rule"), "rule")?;
    let (config, revision) = read_config(ctx.store, ctx.rules).await?;
    find(&config, &id)?;
    let mut candidate = config;
    candidate.rules.retain(|r| r.id != id);
    candidate
        .whitelist
        .iter_mut()
        .for_each(|w| w.rules.retain(|r| r != &id));
    let checked = validate(ctx.rules, candidate, revision)?;
    ctx.store.delete_rule(&id, &ctx.edit()).await?;
    put_in_force(ctx.store, ctx.rules, checked, 1).await?;
    Ok(Answer::RuleDeleted { rule: id })
}

pub(super) async fn enable(
    ctx: &Context<'_>,
    args: &Args,
    enabled: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    change_rule(ctx, id, |r| {
        r.enabled = enabled;
        Ok(if enabled { "enabled" } else { "disabled" }.to_owned())
    })
    .await
}

pub(super) async fn mode(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let mode = need(args.mode("mode"), "mode")?;
    change_rule(ctx, id, |r| {
        r.mode = mode;
        Ok(format!("mode {mode}"))
    })
    .await
}

pub(super) async fn ladder(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let rungs = args.rungs("rungs");
    change_rule(ctx, id, |r| {
        r.ladder = rungs;
        Ok(format!(
            "ladder {}",
            r.ladder
                .iter()
                .map(Rung::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
    .await
}

pub(super) async fn scope_groups(
    ctx: &Context<'_>,
    args: &Args,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let groups = args.groups("groups");
    let changed = groups.len();
    change_rule(ctx, id, |r| {
        edit_list(&mut r.scope.groups, groups, add);
        Ok(format!(
            "scope: {} {changed} group(s), {} in all",
            verb(add),
            r.scope.groups.len()
        ))
    })
    .await
}

pub(super) async fn scope_tags(
    ctx: &Context<'_>,
    args: &Args,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let tags = args.texts("tags");
    let named = tags.join(", ");
    change_rule(ctx, id, |r| {
        edit_list(&mut r.scope.tags, tags, add);
        Ok(format!("scope: {} tag(s) {named}", verb(add)))
    })
    .await
}

/// A rule as `rule list` shows it.
fn summary(rule: &Rule) -> RuleSummary {
    let present = [
        (rule.keywords.is_some(), "keywords"),
        (rule.regex.is_some(), "regex"),
        (rule.phone.is_some(), "phone"),
        (rule.links.is_some(), "links"),
        (rule.mini_programs.is_some(), "mini-programs"),
        (!rule.banned_kinds.is_empty(), "kinds"),
        (rule.flood.is_some(), "flood"),
        (rule.duplicates.is_some(), "duplicates"),
        (rule.invites.is_some(), "invites"),
        (rule.blacklist.is_some(), "blacklist"),
    ];
    RuleSummary {
        id: rule.id.clone(),
        name: rule.name.clone(),
        enabled: rule.enabled,
        mode: rule.mode,
        checks: present
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect(),
    }
}
