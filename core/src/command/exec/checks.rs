//! `rule set <rule> …`: the checks of a rule.

use std::time::Duration;

use super::{Answer, CommandError, Context, change_rule, edit_list, verb};
use crate::command::parse::{Args, need};
use crate::model::OrgId;
use crate::rule::{
    DuplicateCheck, FloodCheck, InviteCheck, Keywords, LinkCheck, LinkMode, MiniProgramCheck,
    PhoneCheck, RegexCheck,
};
use crate::time::duration_text;

/// Which keyword list a command edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeywordList {
    /// Matched anywhere.
    Substrings,
    /// Matched as whole words.
    Words,
}

/// Which domain list a command edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DomainList {
    Allow,
    Deny,
}

/// Which size limit a command sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Chars,
    Lines,
    Mentions,
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// A count from a number argument (the parser refuses negative numbers).
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) async fn keywords(
    ctx: &Context<'_>,
    args: &Args,
    which: KeywordList,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let (field, terms) = match which {
        KeywordList::Substrings => ("keywords", args.texts("keywords")),
        KeywordList::Words => ("words", args.texts("words")),
    };
    let changed = terms.len();
    change_rule(ctx, id, |r| {
        let keywords = r.keywords.get_or_insert_with(Keywords::default);
        let list = match which {
            KeywordList::Substrings => &mut keywords.substrings,
            KeywordList::Words => &mut keywords.words,
        };
        edit_list(list, terms, add);
        let total = keywords.substrings.len() + keywords.words.len();
        if total == 0 {
            r.keywords = None;
        }
        Ok(format!("{} {changed} {field}, {total} in all", verb(add)))
    })
    .await
}

pub(super) async fn homophones(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let on = need(args.flag("on"), "on")?;
    change_rule(ctx, id, |r| {
        let Some(keywords) = &mut r.keywords else {
            return Err(CommandError::Refused(format!(
                "rule `{}` has no keywords to match by sound",
                r.id
            )));
        };
        keywords.homophones = on;
        Ok(if on {
            "keywords now also match characters of the same sound".to_owned()
        } else {
            "keywords match as written again".to_owned()
        })
    })
    .await
}

pub(super) async fn regex(
    ctx: &Context<'_>,
    args: &Args,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let pattern = need(args.text("pattern"), "pattern")?;
    change_rule(ctx, id, |r| {
        let regex = r.regex.get_or_insert_with(RegexCheck::default);
        if !add && !regex.patterns.contains(&pattern) {
            return Err(CommandError::Refused(format!(
                "rule `{}` has no pattern `{pattern}`",
                r.id
            )));
        }
        edit_list(&mut regex.patterns, vec![pattern.clone()], add);
        if regex.patterns.is_empty() {
            r.regex = None;
        }
        Ok(format!("{} pattern `{pattern}`", verb(add)))
    })
    .await
}

pub(super) async fn phone(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let on = need(args.flag("on"), "on")?;
    change_rule(ctx, id, |r| {
        r.phone = on.then(PhoneCheck::default);
        Ok(format!("phone check {}", on_off(on)))
    })
    .await
}

pub(super) async fn links_mode(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let mode = need(args.link_mode("mode"), "mode")?;
    change_rule(ctx, id, |r| {
        match mode {
            Some(mode) => r.links.get_or_insert_with(LinkCheck::default).mode = mode,
            None => r.links = None,
        }
        Ok(match mode {
            Some(LinkMode::DenyListed) => "links: deny-listed domains only".to_owned(),
            Some(LinkMode::AllowListedOnly) => {
                "links: every link except allowed domains".to_owned()
            }
            None => "link check off".to_owned(),
        })
    })
    .await
}

pub(super) async fn domains(
    ctx: &Context<'_>,
    args: &Args,
    which: DomainList,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let domains = args.texts("domains");
    let named = domains.join(", ");
    change_rule(ctx, id, |r| {
        let links = r.links.get_or_insert_with(LinkCheck::default);
        let (list, what) = match which {
            DomainList::Allow => (&mut links.allow, "allowed"),
            DomainList::Deny => (&mut links.deny, "denied"),
        };
        edit_list(list, domains, add);
        Ok(format!("{} {what} {named}", verb(add)))
    })
    .await
}

pub(super) async fn mini_programs(
    ctx: &Context<'_>,
    args: &Args,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let apps = args.texts("apps");
    let named = apps.join(", ");
    change_rule(ctx, id, |r| {
        let mini = r
            .mini_programs
            .get_or_insert_with(MiniProgramCheck::default);
        edit_list(&mut mini.allow, apps, add);
        Ok(format!("{} allowed mini-programs {named}", verb(add)))
    })
    .await
}

pub(super) async fn kinds(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let kinds = args.kinds("kinds");
    change_rule(ctx, id, |r| {
        let what = if kinds.is_empty() {
            "no banned message kinds".to_owned()
        } else {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            format!("banned kinds {}", names.join(", "))
        };
        r.banned_kinds = kinds;
        Ok(what)
    })
    .await
}

pub(super) async fn flood(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let messages = count(need(args.int("messages"), "messages")?);
    let per = need(args.duration("per"), "per")?;
    change_rule(ctx, id, |r| {
        let flood = r.flood.get_or_insert_with(FloodCheck::default);
        flood.messages = Some(messages);
        flood.per = Some(per);
        Ok(format!(
            "flood: at most {messages} messages per {}",
            humantime::format_duration(per)
        ))
    })
    .await
}

pub(super) async fn limit(
    ctx: &Context<'_>,
    args: &Args,
    which: Limit,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let (name, what) = match which {
        Limit::Chars => ("chars", "characters"),
        Limit::Lines => ("lines", "line breaks"),
        Limit::Mentions => ("mentions", "mentions"),
    };
    let limit = count(need(args.int(name), name)?);
    change_rule(ctx, id, |r| {
        let flood = r.flood.get_or_insert_with(FloodCheck::default);
        let slot = match which {
            Limit::Chars => &mut flood.max_chars,
            Limit::Lines => &mut flood.max_lines,
            Limit::Mentions => &mut flood.max_mentions,
        };
        *slot = Some(limit);
        Ok(format!("at most {limit} {what} per message"))
    })
    .await
}

pub(super) async fn duplicates(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let members = count(need(args.int("members"), "members")?);
    let groups = count(need(args.int("groups"), "groups")?);
    let window: Duration = need(args.duration("window"), "window")?;
    change_rule(ctx, id, |r| {
        let nonzero = |n: u32| (n > 0).then_some(n);
        if members == 0 && groups == 0 {
            r.duplicates = None;
            return Ok("duplicate check off".to_owned());
        }
        let min_chars = r.duplicates.as_ref().map_or(8, |d| d.min_chars);
        r.duplicates = Some(DuplicateCheck {
            members: nonzero(members),
            groups: nonzero(groups),
            window,
            min_chars,
        });
        Ok(format!(
            "duplicates: {members} members or {groups} groups within {}",
            humantime::format_duration(window)
        ))
    })
    .await
}

pub(super) async fn invite_ban(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let on = need(args.flag("on"), "on")?;
    let staff = args.flag("staff");
    change_rule(ctx, id, |r| {
        if !on && staff != Some(true) {
            match r.invites.as_mut() {
                // The account-age limit stays.
                Some(invites) if invites.min_account_age.is_some() => {
                    invites.refuse_other_orgs = false;
                    invites.only_staff_invite = false;
                }
                _ => r.invites = None,
            }
            return Ok("invite ban off".to_owned());
        }
        let invites = r.invites.get_or_insert_with(InviteCheck::default);
        invites.refuse_other_orgs = on;
        if let Some(staff) = staff {
            invites.only_staff_invite = staff;
        }
        Ok(format!(
            "other organisations {}; only staff may invite: {}",
            if on { "refused" } else { "welcome" },
            on_off(invites.only_staff_invite)
        ))
    })
    .await
}

/// `rule set <rule> account-age <age|off>`: accounts younger than `age` may not join.
pub(super) async fn account_age(ctx: &Context<'_>, args: &Args) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let text = need(args.text("age"), "age")?;
    let age = match text.to_lowercase().as_str() {
        "off" | "0" => None,
        _ => Some(duration_text::parse(&text).map_err(CommandError::Refused)?),
    };
    change_rule(ctx, id, |r| match age {
        None => {
            if let Some(invites) = r.invites.as_mut() {
                invites.min_account_age = None;
                if !invites.refuse_other_orgs
                    && !invites.only_staff_invite
                    && invites.allow_orgs.is_empty()
                {
                    r.invites = None;
                }
            }
            Ok("accounts of any age may join".to_owned())
        }
        Some(age) => {
            let invites = r.invites.get_or_insert_with(|| InviteCheck {
                refuse_other_orgs: false,
                ..InviteCheck::default()
            });
            invites.min_account_age = Some(age);
            Ok(format!(
                "accounts younger than {} may not join",
                humantime::format_duration(age)
            ))
        }
    })
    .await
}

pub(super) async fn orgs(
    ctx: &Context<'_>,
    args: &Args,
    add: bool,
) -> Result<Answer, CommandError> {
    let id = &need(args.rule("rule"), "rule")?;
    let orgs: Vec<OrgId> = args.texts("orgs").into_iter().map(OrgId::from).collect();
    let named = orgs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    change_rule(ctx, id, |r| {
        let invites = r.invites.get_or_insert_with(InviteCheck::default);
        edit_list(&mut invites.allow_orgs, orgs, add);
        Ok(format!("{} welcome organisations {named}", verb(add)))
    })
    .await
}
