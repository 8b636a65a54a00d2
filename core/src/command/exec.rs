//! Running commands against a store.
//!
//! Every change is checked by compiling the configuration it would produce before anything
//! is saved, saved with the actor for the audit log, then the new rule set is compiled from
//! the store and swapped into the running engine: the next event is judged by it.

use std::sync::Arc;
use std::time::Duration;

use crate::command::{CommandId, Invocation, Value, literal_path, spec};
use crate::compile::CompiledRules;
use crate::engine::RulesHandle;
use crate::export::{violations_csv, violations_json};
use crate::model::{
    GroupId, GroupRef, KindName, Member, MemberRef, OrgId, Platform, RuleId, Timestamp,
};
use crate::ports::{
    AuditEntry, Change, DayStats, Edit, Store, StoreError, StoredViolation, ViolationQuery,
};
use crate::rule::{
    BlacklistEntry, DuplicateCheck, FloodCheck, GroupConfig, InviteCheck, Keywords, LinkCheck,
    MiniProgramCheck, Mode, PhoneCheck, RegexCheck, Rule, RuleSet, Rung, Source, WhitelistEntry,
};
use crate::rulefile;
use crate::verdict::{CheckKind, Verdict};

/// Who runs a command, where and when, and what it acts on.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The running engine's rules, swapped after every change.
    pub rules: &'a RulesHandle,
    /// The platform the command came from.
    pub platform: Platform,
    /// The group it was typed in.
    pub group: &'a GroupId,
    /// Who typed it, with the role the adapter determined.
    pub actor: &'a Member,
    /// Now.
    pub now: Timestamp,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("platform", &self.platform)
            .field("group", &self.group)
            .field("actor", &self.actor.id)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    fn edit(&self) -> Edit {
        Edit::new(
            Source::Moderator(MemberRef::new(self.platform, self.actor.id.clone())),
            self.now,
        )
    }

    fn here(&self) -> GroupRef {
        GroupRef::new(self.platform, self.group.clone())
    }
}

/// Why a command did nothing. Messages say what to do instead and never show internals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The member's role is too low.
    #[error("only {required}s and above can run `{command}`; you are a {role}")]
    Forbidden {
        /// The command's words.
        command: String,
        /// The role it needs.
        required: crate::model::Role,
        /// The member's role.
        role: crate::model::Role,
    },
    /// No such rule.
    #[error("unknown rule `{0}`: !guard rule list shows the rules")]
    UnknownRule(RuleId),
    /// The change would leave the configuration invalid; nothing was saved.
    #[error("nothing was changed: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The request cannot be carried out.
    #[error("{0}")]
    Refused(String),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A rule in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    /// Its id.
    pub id: RuleId,
    /// Its name.
    pub name: String,
    /// Whether it runs.
    pub enabled: bool,
    /// enforce or shadow.
    pub mode: Mode,
    /// Its checks, by name.
    pub checks: Vec<&'static str>,
}

/// What a command did or found, for the platform to render.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// A rule was created, changed, enabled, … (`what` says how).
    RuleChanged {
        /// The rule.
        rule: RuleId,
        /// What changed.
        what: String,
        /// Its new version.
        version: u64,
    },
    /// A rule was deleted.
    RuleDeleted {
        /// The rule.
        rule: RuleId,
    },
    /// The rules.
    Rules(Vec<RuleSummary>),
    /// One rule, as rule-file TOML.
    RuleText(String),
    /// A group's tags.
    GroupTags {
        /// The group.
        group: GroupRef,
        /// Its tags.
        tags: Vec<String>,
    },
    /// A template's rules were added.
    TemplateApplied {
        /// The template.
        template: String,
        /// The rules added or replaced.
        rules: Vec<RuleId>,
        /// The tag they apply to.
        tag: String,
    },
    /// A list changed.
    ListChanged {
        /// What happened, in a sentence.
        what: String,
    },
    /// Blacklist entries.
    Blacklist(Vec<BlacklistEntry>),
    /// Whitelist entries.
    Whitelist(Vec<WhitelistEntry>),
    /// Violations, newest first.
    Violations(Vec<StoredViolation>),
    /// A file to hand over (export).
    File {
        /// Suggested file name.
        name: String,
        /// Its contents.
        content: String,
    },
    /// Statistics.
    Stats {
        /// Days covered.
        days: i64,
        /// Per group and day.
        rows: Vec<DayStats>,
        /// The checks that matched most.
        top: Vec<(CheckKind, u64)>,
    },
    /// A stored verdict.
    Why(Box<Verdict>),
    /// Audit entries, newest first.
    Audit(Vec<AuditEntry>),
    /// An undo was applied.
    Undone(Box<AuditEntry>),
    /// The configuration was replaced.
    ConfigImported {
        /// Rules now.
        rules: usize,
        /// Groups now.
        groups: usize,
    },
    /// A setting changed.
    SettingsChanged {
        /// What it does now, in a sentence.
        what: String,
    },
    /// Help text.
    Help(String),
}

/// Runs a parsed command.
pub async fn execute(invocation: &Invocation, ctx: &Context<'_>) -> Result<Outcome, CommandError> {
    let spec = spec(invocation.command);
    if ctx.actor.role < spec.role {
        return Err(CommandError::Forbidden {
            command: literal_path(spec),
            required: spec.role,
            role: ctx.actor.role,
        });
    }
    let args = &invocation.args;
    let rule_id = || {
        args.rule("rule")
            .cloned()
            .unwrap_or_else(|| RuleId::new(""))
    };
    use CommandId as C;
    match invocation.command {
        C::RuleCreate => {
            let id = rule_id();
            let config = ctx.store.config().await?;
            if config.rules.iter().any(|r| r.id == id) {
                return Err(CommandError::Refused(format!("rule `{id}` already exists")));
            }
            let mut rule = Rule::new(id.clone());
            rule.enabled = false;
            rule.name = args.text("name").unwrap_or_default();
            save_rule(
                ctx,
                config,
                rule,
                "created, disabled until it has checks and is enabled".to_owned(),
            )
            .await
        }
        C::RuleList => {
            let config = ctx.store.config().await?;
            Ok(Outcome::Rules(config.rules.iter().map(summary).collect()))
        }
        C::RuleShow => {
            let config = ctx.store.config().await?;
            let rule = find(&config, &rule_id())?;
            let shown = RuleSet {
                rules: vec![rule.clone()],
                ..RuleSet::default()
            };
            Ok(Outcome::RuleText(rulefile::export(&shown)))
        }
        C::RuleDelete => {
            let id = rule_id();
            let config = ctx.store.config().await?;
            find(&config, &id)?;
            let mut candidate = config;
            candidate.rules.retain(|r| r.id != id);
            candidate
                .whitelist
                .iter_mut()
                .for_each(|w| w.rules.retain(|r| r != &id));
            validate(&candidate)?;
            ctx.store.delete_rule(&id, &ctx.edit()).await?;
            reload_config(ctx).await?;
            Ok(Outcome::RuleDeleted { rule: id })
        }
        C::RuleEnable => {
            change_rule(ctx, &rule_id(), |r| {
                r.enabled = true;
                Ok("enabled".to_owned())
            })
            .await
        }
        C::RuleDisable => {
            change_rule(ctx, &rule_id(), |r| {
                r.enabled = false;
                Ok("disabled".to_owned())
            })
            .await
        }
        C::RuleMode => {
            let mode = match args.get("mode") {
                Some(Value::Mode(m)) => *m,
                _ => Mode::Enforce,
            };
            change_rule(ctx, &rule_id(), |r| {
                r.mode = mode;
                Ok(format!("mode {mode}"))
            })
            .await
        }
        C::RuleLadder => {
            let rungs: Vec<Rung> = args
                .list("rungs")
                .iter()
                .filter_map(|v| match v {
                    Value::Rung(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            change_rule(ctx, &rule_id(), |r| {
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
        C::RuleScopeAddGroup | C::RuleScopeRemoveGroup => {
            let groups: Vec<GroupRef> = args
                .list("groups")
                .iter()
                .filter_map(|v| match v {
                    Value::Group(g) => Some(g.clone()),
                    _ => None,
                })
                .collect();
            let add = invocation.command == C::RuleScopeAddGroup;
            change_rule(ctx, &rule_id(), |r| {
                edit_list(&mut r.scope.groups, groups.clone(), add);
                Ok(format!(
                    "scope: {} {} group(s), {} in all",
                    verb(add),
                    groups.len(),
                    r.scope.groups.len()
                ))
            })
            .await
        }
        C::RuleScopeAddTag | C::RuleScopeRemoveTag => {
            let tags = args.texts("tags");
            let add = invocation.command == C::RuleScopeAddTag;
            change_rule(ctx, &rule_id(), |r| {
                edit_list(&mut r.scope.tags, tags.clone(), add);
                Ok(format!("scope: {} tag(s) {}", verb(add), tags.join(", ")))
            })
            .await
        }
        C::RuleSetKeywordsAdd
        | C::RuleSetKeywordsRemove
        | C::RuleSetWordsAdd
        | C::RuleSetWordsRemove => {
            let (field, terms) = if matches!(
                invocation.command,
                C::RuleSetKeywordsAdd | C::RuleSetKeywordsRemove
            ) {
                ("keywords", args.texts("keywords"))
            } else {
                ("words", args.texts("words"))
            };
            let add = matches!(
                invocation.command,
                C::RuleSetKeywordsAdd | C::RuleSetWordsAdd
            );
            change_rule(ctx, &rule_id(), |r| {
                let keywords = r.keywords.get_or_insert_with(Keywords::default);
                let list = if field == "keywords" {
                    &mut keywords.substrings
                } else {
                    &mut keywords.words
                };
                edit_list(list, terms.clone(), add);
                let total = keywords.substrings.len() + keywords.words.len();
                if total == 0 {
                    r.keywords = None;
                }
                Ok(format!(
                    "{} {} {field}, {total} in all",
                    verb(add),
                    terms.len()
                ))
            })
            .await
        }
        C::RuleSetRegexAdd | C::RuleSetRegexRemove => {
            let pattern = args.text("pattern").unwrap_or_default();
            let add = invocation.command == C::RuleSetRegexAdd;
            change_rule(ctx, &rule_id(), |r| {
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
        C::RuleSetPhone => {
            let on = args.flag("on").unwrap_or(false);
            change_rule(ctx, &rule_id(), |r| {
                r.phone = on.then(PhoneCheck::default);
                Ok(format!("phone check {}", on_off(on)))
            })
            .await
        }
        C::RuleSetLinksMode => {
            let mode = match args.get("mode") {
                Some(Value::LinkMode(m)) => *m,
                _ => None,
            };
            change_rule(ctx, &rule_id(), |r| {
                match mode {
                    Some(mode) => r.links.get_or_insert_with(LinkCheck::default).mode = mode,
                    None => r.links = None,
                }
                Ok(match mode {
                    Some(crate::rule::LinkMode::DenyListed) => {
                        "links: deny-listed domains only".to_owned()
                    }
                    Some(crate::rule::LinkMode::AllowListedOnly) => {
                        "links: every link except allowed domains".to_owned()
                    }
                    None => "link check off".to_owned(),
                })
            })
            .await
        }
        C::RuleSetLinksAllowAdd
        | C::RuleSetLinksAllowRemove
        | C::RuleSetLinksDenyAdd
        | C::RuleSetLinksDenyRemove => {
            let domains = args.texts("domains");
            let allow = matches!(
                invocation.command,
                C::RuleSetLinksAllowAdd | C::RuleSetLinksAllowRemove
            );
            let add = matches!(
                invocation.command,
                C::RuleSetLinksAllowAdd | C::RuleSetLinksDenyAdd
            );
            change_rule(ctx, &rule_id(), |r| {
                let links = r.links.get_or_insert_with(LinkCheck::default);
                let list = if allow {
                    &mut links.allow
                } else {
                    &mut links.deny
                };
                edit_list(list, domains.clone(), add);
                Ok(format!(
                    "{} {} {}",
                    verb(add),
                    if allow { "allowed" } else { "denied" },
                    domains.join(", ")
                ))
            })
            .await
        }
        C::RuleSetMiniProgramAdd | C::RuleSetMiniProgramRemove => {
            let apps = args.texts("apps");
            let add = invocation.command == C::RuleSetMiniProgramAdd;
            change_rule(ctx, &rule_id(), |r| {
                let mini = r
                    .mini_programs
                    .get_or_insert_with(MiniProgramCheck::default);
                edit_list(&mut mini.allow, apps.clone(), add);
                Ok(format!(
                    "{} allowed mini-programs {}",
                    verb(add),
                    apps.join(", ")
                ))
            })
            .await
        }
        C::RuleSetKinds => {
            let kinds: Vec<KindName> = args
                .list("kinds")
                .iter()
                .filter_map(|v| match v {
                    Value::Kind(k) => Some(*k),
                    _ => None,
                })
                .collect();
            change_rule(ctx, &rule_id(), |r| {
                r.banned_kinds = kinds.clone();
                Ok(if kinds.is_empty() {
                    "no banned message kinds".to_owned()
                } else {
                    format!(
                        "banned kinds {}",
                        kinds
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .await
        }
        C::RuleSetFlood => {
            let messages = count(args.int("messages"));
            let per = args.duration("per");
            change_rule(ctx, &rule_id(), |r| {
                let flood = r.flood.get_or_insert_with(FloodCheck::default);
                flood.messages = Some(messages);
                flood.per = per;
                Ok(format!(
                    "flood: at most {messages} messages per {}",
                    per.map(humantime::format_duration)
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                ))
            })
            .await
        }
        C::RuleSetMaxLength | C::RuleSetMaxLines | C::RuleSetMaxMentions => {
            let (name, what) = match invocation.command {
                C::RuleSetMaxLength => ("chars", "characters"),
                C::RuleSetMaxLines => ("lines", "line breaks"),
                _ => ("mentions", "mentions"),
            };
            let limit = count(args.int(name));
            let command = invocation.command;
            change_rule(ctx, &rule_id(), |r| {
                let flood = r.flood.get_or_insert_with(FloodCheck::default);
                let slot = match command {
                    C::RuleSetMaxLength => &mut flood.max_chars,
                    C::RuleSetMaxLines => &mut flood.max_lines,
                    _ => &mut flood.max_mentions,
                };
                *slot = Some(limit);
                Ok(format!("at most {limit} {what} per message"))
            })
            .await
        }
        C::RuleSetDuplicates => {
            let members = count(args.int("members"));
            let groups = count(args.int("groups"));
            let window = args.duration("window").unwrap_or(Duration::from_secs(60));
            change_rule(ctx, &rule_id(), |r| {
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
        C::RuleSetInviteBan => {
            let on = args.flag("on").unwrap_or(false);
            let staff = args.flag("staff");
            change_rule(ctx, &rule_id(), |r| {
                if !on && staff != Some(true) {
                    r.invites = None;
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
        C::RuleSetOrgsAdd | C::RuleSetOrgsRemove => {
            let orgs: Vec<OrgId> = args.texts("orgs").into_iter().map(OrgId::from).collect();
            let add = invocation.command == C::RuleSetOrgsAdd;
            change_rule(ctx, &rule_id(), |r| {
                let invites = r.invites.get_or_insert_with(InviteCheck::default);
                edit_list(&mut invites.allow_orgs, orgs.clone(), add);
                Ok(format!(
                    "{} welcome organisations {}",
                    verb(add),
                    orgs.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
            .await
        }
        C::GroupTagAdd | C::GroupTagRemove | C::GroupTagList => {
            let id = args.group("group").cloned().unwrap_or_else(|| ctx.here());
            let config = ctx.store.config().await?;
            let mut group = config
                .groups
                .iter()
                .find(|g| g.id == id)
                .cloned()
                .unwrap_or_else(|| GroupConfig::new(id.clone()));
            if invocation.command != C::GroupTagList {
                edit_list(
                    &mut group.tags,
                    args.texts("tags"),
                    invocation.command == C::GroupTagAdd,
                );
                let mut candidate = config;
                candidate.groups.retain(|g| g.id != id);
                candidate.groups.push(group.clone());
                validate(&candidate)?;
                ctx.store.put_group(group.clone(), &ctx.edit()).await?;
                reload_config(ctx).await?;
            }
            Ok(Outcome::GroupTags {
                group: id,
                tags: group.tags,
            })
        }
        C::TemplateApply => {
            let template = args.text("template").unwrap_or_default();
            let tag = args.text("tag").unwrap_or_else(|| template.clone());
            let text = crate::command::template(&template).ok_or_else(|| {
                CommandError::Refused(format!("there is no template `{template}`"))
            })?;
            let set = rulefile::parse(text).map_err(|e| {
                CommandError::Refused(format!("template {template} is broken: {}", e[0]))
            })?;
            let mut config = ctx.store.config().await?;
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
            validate(&config)?;
            let edit = ctx.edit();
            for rule in rules {
                ctx.store.put_rule(rule, &edit).await?;
            }
            reload_config(ctx).await?;
            Ok(Outcome::TemplateApplied {
                template,
                rules: ids,
                tag,
            })
        }
        C::BlacklistAdd => {
            let member = args
                .member("member")
                .cloned()
                .unwrap_or_else(|| MemberRef::new(ctx.platform, ""));
            let owner = personal_owner(ctx, args.flag("personal")).await?;
            let entry = BlacklistEntry {
                member: member.clone(),
                owner: owner.clone(),
                reason: args.text("reason").unwrap_or_default(),
                source: ctx.edit().by,
                created_at: ctx.now,
                expires_at: args.duration("expires").map(|d| ctx.now.plus(d)),
            };
            ctx.store.add_blacklist(entry.clone(), &ctx.edit()).await?;
            swap(ctx, |current| current.with_blacklist_changes(&[entry], &[]));
            Ok(Outcome::ListChanged {
                what: format!("{member} is on the {} blacklist", list_name(owner.as_ref())),
            })
        }
        C::BlacklistRemove => {
            let member = args
                .member("member")
                .cloned()
                .unwrap_or_else(|| MemberRef::new(ctx.platform, ""));
            let owner = personal_owner(ctx, args.flag("personal")).await?;
            ctx.store
                .remove_blacklist(&member, owner.as_ref(), &ctx.edit())
                .await?;
            swap(ctx, |current| {
                current.with_blacklist_changes(&[], &[(member.clone(), owner.clone())])
            });
            Ok(Outcome::ListChanged {
                what: format!(
                    "{member} is off the {} blacklist",
                    list_name(owner.as_ref())
                ),
            })
        }
        C::BlacklistList => {
            let after = args.member("after");
            Ok(Outcome::Blacklist(
                ctx.store
                    .blacklist_page(after.map(|m| (m, None)), 20)
                    .await?,
            ))
        }
        C::BlacklistImport => {
            let body = args.text("entries").unwrap_or_default();
            let entries =
                BlacklistEntry::parse_lines(&body, ctx.now).map_err(CommandError::Invalid)?;
            let count = ctx
                .store
                .import_blacklist(entries.clone(), &ctx.edit())
                .await?;
            swap(ctx, |current| current.with_blacklist_changes(&entries, &[]));
            Ok(Outcome::ListChanged {
                what: format!("{count} entries imported into the org-wide blacklist"),
            })
        }
        C::WhitelistAdd => {
            let member = args
                .member("member")
                .cloned()
                .unwrap_or_else(|| MemberRef::new(ctx.platform, ""));
            let rules: Vec<RuleId> = args.rule("rule").cloned().into_iter().collect();
            let config = ctx.store.config().await?;
            for rule in &rules {
                find(&config, rule)?;
            }
            let entry = WhitelistEntry {
                member: member.clone(),
                reason: args.text("reason").unwrap_or_default(),
                rules: rules.clone(),
            };
            ctx.store.put_whitelist(entry, &ctx.edit()).await?;
            reload_config(ctx).await?;
            Ok(Outcome::ListChanged {
                what: match rules.first() {
                    Some(rule) => format!("{member} is exempt from rule {rule}"),
                    None => format!("{member} is exempt from every rule"),
                },
            })
        }
        C::WhitelistRemove => {
            let member = args
                .member("member")
                .cloned()
                .unwrap_or_else(|| MemberRef::new(ctx.platform, ""));
            ctx.store.remove_whitelist(&member, &ctx.edit()).await?;
            reload_config(ctx).await?;
            Ok(Outcome::ListChanged {
                what: format!("{member} is no longer whitelisted"),
            })
        }
        C::WhitelistList => Ok(Outcome::Whitelist(ctx.store.config().await?.whitelist)),
        C::ViolationsList | C::ViolationsExport => {
            let export = invocation.command == C::ViolationsExport;
            let query = ViolationQuery {
                group: args.group("group").cloned(),
                member: args.member("member").cloned(),
                rule: args.rule("rule").cloned(),
                from: args.int("days").map(|d| ctx.now.minus(days(d))),
                to: None,
                before_id: None,
                limit: if export { 1000 } else { 20 },
            };
            let found = ctx.store.violations(&query).await?;
            if !export {
                return Ok(Outcome::Violations(found));
            }
            let format = args.text("format").unwrap_or_default();
            let content = if format == "csv" {
                violations_csv(&found)
            } else {
                violations_json(&found)
            };
            Ok(Outcome::File {
                name: format!(
                    "violations.{}",
                    if format == "csv" { "csv" } else { "jsonl" }
                ),
                content,
            })
        }
        C::Stats => {
            let n = args.int("days").unwrap_or(7).clamp(1, 366);
            let group = args.group("group").cloned();
            let from = ctx.now.minus(days(n));
            let rows = ctx
                .store
                .day_stats(group.as_ref(), from, ctx.now.plus(Duration::from_millis(1)))
                .await?;
            let top = ctx
                .store
                .top_checks(from, ctx.now.plus(Duration::from_millis(1)), 5)
                .await?;
            Ok(Outcome::Stats { days: n, rows, top })
        }
        C::Why => {
            let id = args.text("message").unwrap_or_default();
            match ctx.store.verdict(ctx.platform, &id).await? {
                Some(verdict) => Ok(Outcome::Why(Box::new(verdict))),
                None => Err(CommandError::Refused(format!(
                    "no decision is recorded for `{id}`: give the id of a message or event the bot saw"
                ))),
            }
        }
        C::AuditList => Ok(Outcome::Audit(ctx.store.audit_page(None, 20).await?)),
        C::AuditUndo => {
            let id = args.int("id").unwrap_or_default();
            let entry = ctx.store.undo(id, &ctx.edit()).await?;
            match &entry.change {
                Change::Blacklist {
                    member,
                    owner,
                    after,
                    ..
                } => swap(ctx, |current| match after {
                    Some(restored) => {
                        current.with_blacklist_changes(std::slice::from_ref(restored), &[])
                    }
                    None => current.with_blacklist_changes(&[], &[(member.clone(), owner.clone())]),
                }),
                _ => reload_config(ctx).await?,
            }
            Ok(Outcome::Undone(Box::new(entry)))
        }
        C::SettingsManualRemovals => {
            let policy = match args.get("policy") {
                Some(Value::Removals(policy)) => *policy,
                _ => return Err(CommandError::Refused("say off, org or personal".to_owned())),
            };
            let mut settings = ctx.store.config().await?.settings;
            settings.blacklist_manual_removals = policy;
            ctx.store.put_settings(settings, &ctx.edit()).await?;
            reload_config(ctx).await?;
            Ok(Outcome::SettingsChanged {
                what: match policy {
                    crate::rule::ManualRemovals::Off => {
                        "members kicked or banned by hand are no longer blacklisted".to_owned()
                    }
                    crate::rule::ManualRemovals::Org => {
                        "members kicked or banned by an admin by hand now go on the org-wide blacklist"
                            .to_owned()
                    }
                    crate::rule::ManualRemovals::Personal => {
                        "members kicked or banned by an admin by hand now go on the group owner's blacklist"
                            .to_owned()
                    }
                },
            })
        }
        C::ConfigExport => {
            let config = ctx.store.config().await?;
            Ok(Outcome::File {
                name: "groupguard.toml".to_owned(),
                content: rulefile::export(&config),
            })
        }
        C::ConfigImport => {
            let text = args.text("file").unwrap_or_default();
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
            Ok(Outcome::ConfigImported { rules, groups })
        }
        C::Help => Ok(Outcome::Help(crate::command::help(
            &args.text("command").unwrap_or_default(),
        ))),
    }
}

fn verb(add: bool) -> &'static str {
    if add { "added" } else { "removed" }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn days(n: i64) -> Duration {
    Duration::from_secs(n.max(0) as u64 * 86_400)
}

fn count(n: Option<i64>) -> u32 {
    u32::try_from(n.unwrap_or(0)).unwrap_or(u32::MAX)
}

fn list_name(owner: Option<&crate::model::UserId>) -> String {
    match owner {
        Some(owner) => format!("{owner}'s personal"),
        None => "org-wide".to_owned(),
    }
}

/// Adds missing values or removes present ones, keeping order.
fn edit_list<T: PartialEq>(list: &mut Vec<T>, values: Vec<T>, add: bool) {
    for value in values {
        let present = list.contains(&value);
        if add && !present {
            list.push(value);
        } else if !add {
            list.retain(|v| v != &value);
        }
    }
}

/// The owner of this group, for `--personal on`.
async fn personal_owner(
    ctx: &Context<'_>,
    personal: Option<bool>,
) -> Result<Option<crate::model::UserId>, CommandError> {
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

fn summary(rule: &Rule) -> RuleSummary {
    let mut checks = Vec::new();
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
    for (on, name) in present {
        if on {
            checks.push(name);
        }
    }
    RuleSummary {
        id: rule.id.clone(),
        name: rule.name.clone(),
        enabled: rule.enabled,
        mode: rule.mode,
        checks,
    }
}

fn find<'a>(config: &'a RuleSet, id: &RuleId) -> Result<&'a Rule, CommandError> {
    config
        .rules
        .iter()
        .find(|r| &r.id == id)
        .ok_or_else(|| CommandError::UnknownRule(id.clone()))
}

/// Refuses a configuration the engine could not run.
fn validate(candidate: &RuleSet) -> Result<(), CommandError> {
    CompiledRules::compile(candidate.clone())
        .map(drop)
        .map_err(|errors| CommandError::Invalid(errors.iter().map(ToString::to_string).collect()))
}

/// Applies `change` to a stored rule, checks the result, saves it and reloads.
async fn change_rule(
    ctx: &Context<'_>,
    id: &RuleId,
    change: impl FnOnce(&mut Rule) -> Result<String, CommandError>,
) -> Result<Outcome, CommandError> {
    let config = ctx.store.config().await?;
    let mut rule = find(&config, id)?.clone();
    let what = change(&mut rule)?;
    save_rule(ctx, config, rule, what).await
}

async fn save_rule(
    ctx: &Context<'_>,
    mut config: RuleSet,
    rule: Rule,
    what: String,
) -> Result<Outcome, CommandError> {
    match config.rules.iter_mut().find(|r| r.id == rule.id) {
        Some(slot) => *slot = rule.clone(),
        None => config.rules.push(rule.clone()),
    }
    validate(&config)?;
    let id = rule.id.clone();
    let version = ctx.store.put_rule(rule, &ctx.edit()).await?;
    reload_config(ctx).await?;
    Ok(Outcome::RuleChanged {
        rule: id,
        what,
        version,
    })
}

/// Compiles the stored configuration and blacklist and swaps it into the running engine.
async fn reload(ctx: &Context<'_>) -> Result<(), CommandError> {
    let compiled = load_rules(ctx.store).await?;
    ctx.rules.store(Arc::new(compiled));
    Ok(())
}

/// Recompiles the stored configuration around the running blacklist index, which a rule
/// change leaves alone: milliseconds, however long the blacklist.
async fn reload_config(ctx: &Context<'_>) -> Result<(), CommandError> {
    reload_configuration(ctx.store, ctx.rules).await
}

/// Swaps the stored configuration (rules, groups, settings, whitelist) into the running
/// engine, around its blacklist index.
pub async fn reload_configuration(
    store: &dyn Store,
    rules: &RulesHandle,
) -> Result<(), CommandError> {
    let config = store.config().await?;
    let compiled = rules.load().recompile(config).map_err(|errors| {
        CommandError::Invalid(errors.iter().map(ToString::to_string).collect())
    })?;
    rules.store(Arc::new(compiled));
    Ok(())
}

/// Swaps in a rule set derived from the running one (a blacklist change).
fn swap(ctx: &Context<'_>, change: impl FnOnce(&CompiledRules) -> CompiledRules) {
    let next = change(&ctx.rules.load());
    ctx.rules.store(Arc::new(next));
}

/// Compiles the stored configuration with every blacklist entry.
pub async fn load_rules(store: &dyn Store) -> Result<CompiledRules, CommandError> {
    let mut set = store.config().await?;
    let mut after: Option<BlacklistEntry> = None;
    loop {
        let key = after.as_ref().map(|e| (&e.member, e.owner.as_ref()));
        let page = store.blacklist_page(key, 10_000).await?;
        let done = page.len() < 10_000;
        after = page.last().cloned();
        set.blacklist.extend(page);
        if done {
            break;
        }
    }
    CompiledRules::compile(set)
        .map_err(|errors| CommandError::Invalid(errors.iter().map(ToString::to_string).collect()))
}
