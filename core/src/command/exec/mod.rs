//! Running commands against a store.
//!
//! Every change is checked by compiling the configuration it would produce before anything
//! is saved, saved with the actor for the audit log, then the new rule set is compiled from
//! the store and swapped into the running engine: the next event is judged by it.
//!
//! [`execute`] checks the member's role and dispatches; each area has its module of
//! handlers, which read their typed arguments once, at the top: `rules` (create, list, show,
//! delete, enable, mode, ladder, scope), `checks` (`rule set …`), `lists` (blacklist and
//! whitelist), `reports` (violations, stats, why, audit list) and `config` (group tags,
//! templates, undo, settings, import and export, help).

mod checks;
mod config;
mod lists;
mod load;
mod reports;
mod rules;

pub use config::put_group;
pub use load::load_rules;

use crate::command::parse::{MissingArg, need};
use crate::command::{CommandId, Invocation, literal_path, spec};
use crate::compile::CompiledRules;
use crate::engine::RulesHandle;
use crate::model::{GroupId, GroupRef, Member, MemberRef, Platform, RuleId};
use crate::ports::{AuditEntry, DayStats, Edit, Store, StoreError, StoredViolation};
use crate::rule::{BlacklistEntry, Mode, Rule, RuleSet, Source, WhitelistEntry};
use crate::time::Timestamp;
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
    /// The command table and the command's handler disagree.
    #[error(transparent)]
    Mismatch(#[from] MissingArg),
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
pub enum Answer {
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
pub async fn execute(invocation: &Invocation, ctx: &Context<'_>) -> Result<Answer, CommandError> {
    let spec = spec(invocation.command);
    if ctx.actor.role < spec.role {
        return Err(CommandError::Forbidden {
            command: literal_path(spec),
            required: spec.role,
            role: ctx.actor.role,
        });
    }
    let args = &invocation.args;
    use CommandId as C;
    match invocation.command {
        C::RuleCreate => rules::create(ctx, args).await,
        C::RuleList => rules::list(ctx).await,
        C::RuleShow => rules::show(ctx, args).await,
        C::RuleDelete => rules::delete(ctx, args).await,
        C::RuleEnable => rules::enable(ctx, args, true).await,
        C::RuleDisable => rules::enable(ctx, args, false).await,
        C::RuleMode => rules::mode(ctx, args).await,
        C::RuleLadder => rules::ladder(ctx, args).await,
        C::RuleScopeAddGroup => rules::scope_groups(ctx, args, true).await,
        C::RuleScopeRemoveGroup => rules::scope_groups(ctx, args, false).await,
        C::RuleScopeAddTag => rules::scope_tags(ctx, args, true).await,
        C::RuleScopeRemoveTag => rules::scope_tags(ctx, args, false).await,
        C::RuleSetKeywordsAdd => {
            checks::keywords(ctx, args, checks::KeywordList::Substrings, true).await
        }
        C::RuleSetKeywordsRemove => {
            checks::keywords(ctx, args, checks::KeywordList::Substrings, false).await
        }
        C::RuleSetWordsAdd => checks::keywords(ctx, args, checks::KeywordList::Words, true).await,
        C::RuleSetWordsRemove => {
            checks::keywords(ctx, args, checks::KeywordList::Words, false).await
        }
        C::RuleSetHomophones => checks::homophones(ctx, args).await,
        C::RuleSetRegexAdd => checks::regex(ctx, args, true).await,
        C::RuleSetRegexRemove => checks::regex(ctx, args, false).await,
        C::RuleSetPhone => checks::phone(ctx, args).await,
        C::RuleSetLinksMode => checks::links_mode(ctx, args).await,
        C::RuleSetLinksAllowAdd => {
            checks::domains(ctx, args, checks::DomainList::Allow, true).await
        }
        C::RuleSetLinksAllowRemove => {
            checks::domains(ctx, args, checks::DomainList::Allow, false).await
        }
        C::RuleSetLinksDenyAdd => checks::domains(ctx, args, checks::DomainList::Deny, true).await,
        C::RuleSetLinksDenyRemove => {
            checks::domains(ctx, args, checks::DomainList::Deny, false).await
        }
        C::RuleSetMiniProgramAdd => checks::mini_programs(ctx, args, true).await,
        C::RuleSetMiniProgramRemove => checks::mini_programs(ctx, args, false).await,
        C::RuleSetKinds => checks::kinds(ctx, args).await,
        C::RuleSetFlood => checks::flood(ctx, args).await,
        C::RuleSetMaxLength => checks::limit(ctx, args, checks::Limit::Chars).await,
        C::RuleSetMaxLines => checks::limit(ctx, args, checks::Limit::Lines).await,
        C::RuleSetMaxMentions => checks::limit(ctx, args, checks::Limit::Mentions).await,
        C::RuleSetDuplicates => checks::duplicates(ctx, args).await,
        C::RuleSetInviteBan => checks::invite_ban(ctx, args).await,
        C::RuleSetOrgsAdd => checks::orgs(ctx, args, true).await,
        C::RuleSetOrgsRemove => checks::orgs(ctx, args, false).await,
        C::RuleSetAccountAge => checks::account_age(ctx, args).await,
        C::GroupTagAdd => config::group_tags(ctx, args, Some(true)).await,
        C::GroupTagRemove => config::group_tags(ctx, args, Some(false)).await,
        C::GroupTagList => config::group_tags(ctx, args, None).await,
        C::GroupOrg => config::group_org(ctx, args).await,
        C::GroupNotices => config::group_notices(ctx, args).await,
        C::GroupAutomod => config::group_automod(ctx, args).await,
        C::TemplateApply => config::template(ctx, args).await,
        C::BlacklistAdd => lists::blacklist_add(ctx, args).await,
        C::BlacklistRemove => lists::blacklist_remove(ctx, args).await,
        C::BlacklistList => lists::blacklist_list(ctx, args).await,
        C::BlacklistImport => lists::blacklist_import(ctx, args).await,
        C::WhitelistAdd => lists::whitelist_add(ctx, args).await,
        C::WhitelistRemove => lists::whitelist_remove(ctx, args).await,
        C::WhitelistList => lists::whitelist_list(ctx).await,
        C::ViolationsList => reports::violations(ctx, args, None).await,
        C::ViolationsExport => {
            let format = need(args.text("format"), "format")?;
            reports::violations(ctx, args, Some(&format)).await
        }
        C::Stats => reports::stats(ctx, args).await,
        C::Why => reports::why(ctx, args).await,
        C::AuditList => reports::audit(ctx).await,
        C::AuditUndo => config::undo(ctx, args).await,
        C::ConfigExport => config::export(ctx).await,
        C::ConfigImport => config::import(ctx, args).await,
        C::SettingsManualRemovals => config::manual_removals(ctx, args).await,
        C::Help => Ok(Answer::Help(crate::command::help(
            &args.text("command").unwrap_or_default(),
        ))),
    }
}

/// `added` or `removed`.
fn verb(add: bool) -> &'static str {
    if add { "added" } else { "removed" }
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

/// A rule of the configuration, or the error that names it unknown.
fn find<'a>(config: &'a RuleSet, id: &RuleId) -> Result<&'a Rule, CommandError> {
    config
        .rules
        .iter()
        .find(|r| &r.id == id)
        .ok_or_else(|| CommandError::UnknownRule(id.clone()))
}

/// The stored configuration and the revision it was read at.
async fn read_config(
    store: &dyn Store,
    rules: &RulesHandle,
) -> Result<(RuleSet, u64), CommandError> {
    // The revision first: a change landing in between makes it look older than the
    // configuration read, never newer, so the next command reads the store again.
    let revision = store.revision().await?;
    let running = rules.rules();
    // What runs is what is stored, unless something changed it since (another instance):
    // at a large operator's scale that spares reading tens of megabytes.
    if running.revision() == Some(revision) {
        return Ok((running.config().clone(), revision));
    }
    Ok((store.config().await?, revision))
}

/// A changed configuration, compiled before it is stored: what the engine runs once it is.
struct Checked {
    compiled: CompiledRules,
    /// The revision of the configuration the change was made to.
    revision: u64,
}

/// Refuses a configuration the engine could not run; compiles one it can.
fn validate(
    rules: &RulesHandle,
    candidate: RuleSet,
    revision: u64,
) -> Result<Checked, CommandError> {
    Ok(Checked {
        compiled: recompile(candidate, rules)?,
        revision,
    })
}

/// Puts a change stored in `writes` writes in force: the rules it was checked as, unless the
/// store moved further meanwhile (another instance changed something too), when the stored
/// configuration is compiled again instead.
async fn put_in_force(
    store: &dyn Store,
    rules: &RulesHandle,
    checked: Checked,
    writes: u64,
) -> Result<(), CommandError> {
    let revision = checked.revision + writes;
    if store.revision().await? == revision {
        rules.swap_rules(checked.compiled.at_revision(revision));
        Ok(())
    } else {
        reload_configuration(store, rules).await
    }
}

/// Applies `change` to a stored rule, checks the result, saves it and reloads.
async fn change_rule(
    ctx: &Context<'_>,
    id: &RuleId,
    change: impl FnOnce(&mut Rule) -> Result<String, CommandError>,
) -> Result<Answer, CommandError> {
    let (config, revision) = read_config(ctx.store, ctx.rules).await?;
    let mut rule = find(&config, id)?.clone();
    let what = change(&mut rule)?;
    save_rule(ctx, (config, revision), rule, what).await
}

async fn save_rule(
    ctx: &Context<'_>,
    (mut config, revision): (RuleSet, u64),
    rule: Rule,
    what: String,
) -> Result<Answer, CommandError> {
    match config.rules.iter_mut().find(|r| r.id == rule.id) {
        Some(slot) => *slot = rule.clone(),
        None => config.rules.push(rule.clone()),
    }
    let checked = validate(ctx.rules, config, revision)?;
    let id = rule.id.clone();
    let version = ctx.store.put_rule(rule, &ctx.edit()).await?;
    put_in_force(ctx.store, ctx.rules, checked, 1).await?;
    Ok(Answer::RuleChanged {
        rule: id,
        what,
        version,
    })
}

/// Compiles the stored configuration and blacklist and swaps both into the running engine.
async fn reload(ctx: &Context<'_>) -> Result<(), CommandError> {
    ctx.rules.replace(load_rules(ctx.store).await?);
    Ok(())
}

/// Recompiles the stored configuration; the running blacklist index stays as it is, so a
/// rule change takes milliseconds however long the blacklist.
async fn reload_config(ctx: &Context<'_>) -> Result<(), CommandError> {
    reload_configuration(ctx.store, ctx.rules).await
}

/// Swaps the stored configuration (rules, groups, settings, whitelist) into the running
/// engine; its blacklist index stays.
pub async fn reload_configuration(
    store: &dyn Store,
    rules: &RulesHandle,
) -> Result<(), CommandError> {
    let revision = store.revision().await?;
    let compiled = recompile(store.config().await?, rules)?;
    rules.swap_rules(compiled.at_revision(revision));
    Ok(())
}

fn compile(set: RuleSet) -> Result<CompiledRules, CommandError> {
    CompiledRules::compile(set).map_err(invalid)
}

/// Compiles `set`, reusing what it can of the rules running now.
fn recompile(set: RuleSet, running: &RulesHandle) -> Result<CompiledRules, CommandError> {
    CompiledRules::recompile(set, &running.rules()).map_err(invalid)
}

fn invalid(errors: Vec<crate::compile::ConfigError>) -> CommandError {
    CommandError::Invalid(errors.into_iter().map(|e| e.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStore;
    use crate::model::UserId;
    use crate::ports::{ConfigStore, ListStore};
    use crate::rule::GroupConfig;

    #[tokio::test]
    async fn a_change_made_elsewhere_meanwhile_is_not_lost() {
        let store = MemoryStore::new();
        let rules: RulesHandle = Arc::new(load_rules(&store).await.unwrap());
        let edit = Edit::new(Source::Import, Timestamp(0));
        let group_of = |id: &str| GroupConfig::new(GroupRef::new(Platform::WeCom, id));
        // Alone, the checked rules go in force as they are.
        let (config, revision) = read_config(&store, &rules).await.unwrap();
        let checked = validate(&rules, config, revision).unwrap();
        store.put_group(group_of("mine"), &edit).await.unwrap();
        put_in_force(&store, &rules, checked, 1).await.unwrap();
        // Another instance stores a group between this change's read and its write: what runs
        // afterwards has both.
        let (mut config, revision) = read_config(&store, &rules).await.unwrap();
        config.groups.push(group_of("second"));
        let checked = validate(&rules, config, revision).unwrap();
        store.put_group(group_of("theirs"), &edit).await.unwrap();
        store.put_group(group_of("second"), &edit).await.unwrap();
        put_in_force(&store, &rules, checked, 1).await.unwrap();
        let running = rules.rules();
        for id in ["mine", "theirs", "second"] {
            let group = GroupRef::new(Platform::WeCom, id);
            assert!(running.group(&group).is_some(), "{id} runs");
        }
    }

    #[tokio::test]
    async fn a_group_the_platform_reports_is_stored_and_in_force_and_its_removal_too() {
        let store = MemoryStore::new();
        let rules: RulesHandle = Arc::new(load_rules(&store).await.unwrap());
        let edit = Edit::new(Source::Platform(Platform::WeCom), Timestamp(0));
        let id = GroupRef::new(Platform::WeCom, "g9");
        let mut group = GroupConfig::new(id.clone());
        group.name = Some("VIP 群".to_owned());
        put_group(&store, &rules, &id, Some(group.clone()), &edit)
            .await
            .unwrap();
        assert_eq!(rules.rules().group(&id), Some(&group));
        assert_eq!(store.config().await.unwrap().groups, [group]);
        assert_eq!(
            rules.rules().revision(),
            Some(store.revision().await.unwrap()),
            "what runs is what is stored"
        );
        put_group(&store, &rules, &id, None, &edit).await.unwrap();
        assert_eq!(rules.rules().group(&id), None);
        assert!(store.config().await.unwrap().groups.is_empty());
    }

    #[tokio::test]
    async fn a_command_reads_what_another_instance_stored_since() {
        let store = MemoryStore::new();
        let rules: RulesHandle = Arc::new(load_rules(&store).await.unwrap());
        let edit = Edit::new(Source::Import, Timestamp(0));
        assert_eq!(
            rules.rules().revision(),
            Some(store.revision().await.unwrap())
        );
        // The running rules are what is stored: a command starts from them.
        let (config, _) = read_config(&store, &rules).await.unwrap();
        assert!(config.groups.is_empty());
        // Another instance adds a group: the running rules are behind, so the store is read.
        let theirs = GroupConfig::new(GroupRef::new(Platform::WeCom, "theirs"));
        store.put_group(theirs.clone(), &edit).await.unwrap();
        let (config, revision) = read_config(&store, &rules).await.unwrap();
        assert_eq!(config.groups, [theirs]);
        assert_eq!(revision, store.revision().await.unwrap());
    }

    #[tokio::test]
    async fn start_up_indexes_a_blacklist_of_several_pages() {
        let store = MemoryStore::new();
        let entry = |i: u32| BlacklistEntry {
            member: MemberRef::new(Platform::WeCom, format!("wm{i:06}")),
            owner: None,
            reason: format!("batch {}", i % 3),
            source: Source::Import,
            created_at: Timestamp(0),
            expires_at: None,
        };
        let entries: Vec<BlacklistEntry> = (0..25_000).map(entry).collect();
        let edit = Edit::new(Source::Import, Timestamp(0));
        store.import_blacklist(entries, &edit).await.unwrap();
        let live = load_rules(&store).await.unwrap();
        let index = live.blacklist();
        assert_eq!(index.len(), 25_000);
        for i in [0, 9_999, 10_000, 19_999, 20_000, 24_999] {
            let found = index.get(crate::keys::member(Platform::WeCom, &format!("wm{i:06}")));
            assert_eq!(
                found.map(|m| &*m.reason),
                Some(format!("batch {}", i % 3).as_str())
            );
        }
        assert!(
            index
                .get(crate::keys::member(Platform::WeCom, "wm025000"))
                .is_none()
        );
    }

    #[tokio::test]
    async fn start_up_indexes_stored_patterns_and_personal_entries() {
        let store = MemoryStore::new();
        let entry = |platform, id: &str, owner: Option<&str>| BlacklistEntry {
            member: MemberRef::new(platform, id),
            owner: owner.map(UserId::from),
            reason: "spam".to_owned(),
            source: Source::Import,
            created_at: Timestamp(0),
            expires_at: None,
        };
        let entries = vec![
            entry(Platform::Matrix, "@*:spam.example", None),
            entry(Platform::WeCom, "wmTroll", Some("owner1")),
        ];
        let edit = Edit::new(Source::Import, Timestamp(0));
        store.import_blacklist(entries, &edit).await.unwrap();
        let index = load_rules(&store).await.unwrap().blacklist();
        let spammer = MemberRef::new(Platform::Matrix, "@bot:spam.example");
        assert!(index.entry(&spammer, None).is_some());
        let elsewhere = MemberRef::new(Platform::Matrix, "@bob:example.org");
        assert!(index.entry(&elsewhere, None).is_none());
        let troll = MemberRef::new(Platform::WeCom, "wmTroll");
        let owner = UserId::from("owner1");
        assert!(index.entry(&troll, Some(&owner)).is_some());
        assert!(index.entry(&troll, None).is_none(), "personal to owner1");
    }
}
