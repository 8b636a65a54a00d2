//! `group tag …`, `group org`, `template apply`, `audit undo`, `settings …`, `config export|import`.

use super::{
    Answer, CommandError, Context, edit_list, put_in_force, read_config, reload, reload_config,
    validate,
};
use crate::command::parse::{Args, need};
use crate::compile::CompiledRules;
use crate::engine::RulesHandle;
use crate::model::GroupRef;
use crate::ports::{Change, Edit, Store};
use crate::rule::{GroupConfig, ManualRemovals};
use crate::rulefile;

/// `group tag add|remove` (`Some(add)`) or `group tag list` (`None`).
pub(super) async fn group_tags(
    ctx: &Context<'_>,
    args: &Args,
    add: Option<bool>,
) -> Result<Answer, CommandError> {
    let id = args.group("group").unwrap_or_else(|| ctx.here());
    let group = match add {
        Some(add) => {
            change_group(ctx, &id, |group| {
                edit_list(&mut group.tags, args.texts("tags"), add);
            })
            .await?
        }
        None => stored_group(ctx, &id).await?,
    };
    Ok(Answer::GroupTags {
        group: id,
        tags: group.tags,
    })
}

/// `group org`: the organisation the group belongs to, where the platform's guess is wrong
/// (a Matrix room created by someone on another homeserver).
pub(super) async fn group_org(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = args.group("group").unwrap_or_else(|| ctx.here());
    let org = need(args.text("org"), "org")?;
    change_group(ctx, &id, |group| group.home_org = Some(org.as_str().into())).await?;
    Ok(Answer::SettingsChanged {
        what: format!("{id} belongs to {org}: invite-ban refuses members of other organisations"),
    })
}

/// `group notices`: where the group's admin notices go (a Discord channel, typed as
/// `<#id>` or the id), or `off` for the platform's default.
pub(super) async fn group_notices(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = args.group("group").unwrap_or_else(|| ctx.here());
    let typed = need(args.text("channel"), "channel")?;
    let channel = typed
        .trim()
        .trim_start_matches("<#")
        .trim_end_matches('>')
        .to_owned();
    let channel = (!channel.eq_ignore_ascii_case("off")).then_some(channel);
    if channel.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(CommandError::Refused(format!("`{typed}` is not a channel")));
    }
    change_group(ctx, &id, |group| group.notices.clone_from(&channel)).await?;
    Ok(Answer::SettingsChanged {
        what: match channel {
            Some(channel) => format!("admin notices for {id} go to {channel}"),
            None => format!("admin notices for {id} go to the default place"),
        },
    })
}

/// `group automod on|off`: the group's keyword rules mirrored into the platform's own filter.
pub(super) async fn group_automod(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = args.group("group").unwrap_or_else(|| ctx.here());
    let on = need(args.flag("on"), "on")?;
    change_group(ctx, &id, |group| group.native_filter = on).await?;
    Ok(Answer::SettingsChanged {
        what: if on {
            format!("keyword rules of {id} are mirrored into the platform's own filter")
        } else {
            format!("keyword rules of {id} are no longer mirrored; the mirrored rules are removed")
        },
    })
}

/// The stored group, or a new one.
async fn stored_group(ctx: &Context<'_>, id: &GroupRef) -> Result<GroupConfig, CommandError> {
    let config = ctx.store.config().await?;
    Ok(config
        .groups
        .into_iter()
        .find(|g| g.id == *id)
        .unwrap_or_else(|| GroupConfig::new(id.clone())))
}

/// Changes a group's configuration, checked against the whole configuration first.
async fn change_group(
    ctx: &Context<'_>,
    id: &GroupRef,
    change: impl FnOnce(&mut GroupConfig),
) -> Result<GroupConfig, CommandError> {
    let (mut candidate, revision) = read_config(ctx.store, ctx.rules).await?;
    let mut group = candidate
        .groups
        .iter()
        .find(|g| g.id == *id)
        .cloned()
        .unwrap_or_else(|| GroupConfig::new(id.clone()));
    change(&mut group);
    candidate.groups.retain(|g| g.id != *id);
    candidate.groups.push(group.clone());
    let checked = validate(ctx.rules, candidate, revision)?;
    ctx.store.put_group(group.clone(), &ctx.edit()).await?;
    put_in_force(ctx.store, ctx.rules, checked, 1).await?;
    Ok(group)
}

/// Puts what the platform says of a group in force: `next` stored, or the group deleted when
/// it is `None`. Like a command's change, it is checked by compiling the running configuration
/// with it (reusing the running keyword automaton) rather than by reading everything back:
/// at a large operator's scale a group registering itself costs a recompile, not a reload.
pub async fn put_group(
    store: &dyn Store,
    rules: &RulesHandle,
    id: &GroupRef,
    next: Option<GroupConfig>,
    edit: &Edit,
) -> Result<(), CommandError> {
    let (mut candidate, revision) = read_config(store, rules).await?;
    candidate.groups.retain(|g| g.id != *id);
    candidate.groups.extend(next.clone());
    let checked = validate(rules, candidate, revision)?;
    match next {
        Some(group) => store.put_group(group, edit).await?,
        None => store.delete_group(id, edit).await?,
    }
    put_in_force(store, rules, checked, 1).await
}

pub(super) async fn template(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let template = need(args.text("template"), "template")?;
    let tag = args.text("tag").unwrap_or_else(|| template.clone());
    let text = crate::command::template(&template)
        .ok_or_else(|| CommandError::Refused(format!("there is no template `{template}`")))?;
    let set = rulefile::parse(text)
        .map_err(|e| CommandError::Refused(format!("template {template} is broken: {}", e[0])))?;
    let (mut config, revision) = read_config(ctx.store, ctx.rules).await?;
    let mut ids = Vec::new();
    let mut rules = Vec::new();
    for mut rule in set.rules {
        rule.scope.tags = vec![tag.clone()];
        rule.scope.groups.clear();
        config.rules.retain(|r| r.id != rule.id);
        config.rules.push(rule.clone());
        ids.push(rule.id.clone());
        rules.push(rule);
    }
    let checked = validate(ctx.rules, config, revision)?;
    let edit = ctx.edit();
    let writes = rules.len() as u64;
    for rule in rules {
        ctx.store.put_rule(rule, &edit).await?;
    }
    put_in_force(ctx.store, ctx.rules, checked, writes).await?;
    Ok(Answer::TemplateApplied {
        template,
        rules: ids,
        tag,
    })
}

pub(super) async fn undo(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = need(args.int("id"), "id")?;
    let entry = ctx.store.undo(id, &ctx.edit()).await?;
    match &entry.change {
        Change::Blacklist {
            member,
            owner,
            after,
            ..
        } => match after {
            Some(restored) => ctx
                .rules
                .change_blacklist(std::slice::from_ref(restored), &[]),
            None => ctx
                .rules
                .change_blacklist(&[], &[(member.clone(), owner.clone())]),
        },
        _ => reload_config(ctx).await?,
    }
    Ok(Answer::Undone(Box::new(entry)))
}

pub(super) async fn manual_removals(
    ctx: &Context<'_>,
    args: &Args,
) -> Result<Answer, CommandError> {
    let policy = need(args.removals("policy"), "policy")?;
    let mut settings = ctx.store.config().await?.settings;
    settings.blacklist_manual_removals = policy;
    ctx.store.put_settings(settings, &ctx.edit()).await?;
    reload_config(ctx).await?;
    let what = match policy {
        ManualRemovals::Off => "members kicked or banned by hand are no longer blacklisted",
        ManualRemovals::Org => {
            "members kicked or banned by an admin by hand now go on the org-wide blacklist"
        }
        ManualRemovals::Personal => {
            "members kicked or banned by an admin by hand now go on the group owner's blacklist"
        }
    };
    Ok(Answer::SettingsChanged {
        what: what.to_owned(),
    })
}

pub(super) async fn export(ctx: &Context<'_>) -> Result<Answer, CommandError> {
    let config = ctx.store.config().await?;
    Ok(Answer::File {
        name: "groupguard.toml".to_owned(),
        content: rulefile::export(&config),
    })
}

pub(super) async fn import(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let text = need(args.text("file"), "file")?;
    let set = rulefile::parse(&text).map_err(|errors| {
        CommandError::Invalid(errors.iter().map(ToString::to_string).collect())
    })?;
    CompiledRules::compile(set.clone()).map_err(|errors| {
        CommandError::Invalid(
            rulefile::locate_config_errors(&text, errors)
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    })?;
    let (rules, groups) = (set.rules.len(), set.groups.len());
    ctx.store.replace_config(set, &ctx.edit()).await?;
    reload(ctx).await?;
    Ok(Answer::ConfigImported { rules, groups })
}
