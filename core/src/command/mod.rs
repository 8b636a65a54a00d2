//! Chat commands: one table defines every command once.
//!
//! Each [`CommandSpec`] carries its usage pattern, summary and required role. The text
//! parser ([`parse`]), the help text ([`help`]) and the Discord slash-command definitions (built
//! by the Discord adapter from [`COMMANDS`]) all come from this table; [`execute`] runs a
//! parsed [`Invocation`] against a store and returns a typed [`Outcome`] that each platform
//! renders ([`render`] is the plain-text renderer).
//!
//! Usage patterns are words, `<name:kind>` (one value), `<name:kind...>` (one or more),
//! `[<name:kind>]` and `[<name:kind...>]` (optional), `[--option <name:kind>]` and
//! `<name:body>` (the lines after the command line); [`usage`] parses them once.

mod exec;
mod parse;
mod render;
mod slash;
mod usage;

pub use exec::{
    Answer, CommandError, Context, RuleSummary, execute, load_rules, put_group,
    reload_configuration,
};
pub use parse::{Args, Invocation, PREFIXES, ParseError, Value, parse};
pub use render::{render, reply};
pub use slash::{
    SlashEntry, SlashKind, SlashOption, SlashSubcommand, from_slash, slash_commands, slash_text,
};
pub use usage::{display_usage, literal_path};

use crate::model::Role;

/// Every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum CommandId {
    RuleCreate,
    RuleList,
    RuleShow,
    RuleDelete,
    RuleEnable,
    RuleDisable,
    RuleMode,
    RuleLadder,
    RuleScopeAddGroup,
    RuleScopeRemoveGroup,
    RuleScopeAddTag,
    RuleScopeRemoveTag,
    RuleSetKeywordsAdd,
    RuleSetKeywordsRemove,
    RuleSetWordsAdd,
    RuleSetWordsRemove,
    RuleSetHomophones,
    RuleSetRegexAdd,
    RuleSetRegexRemove,
    RuleSetPhone,
    RuleSetLinksMode,
    RuleSetLinksAllowAdd,
    RuleSetLinksAllowRemove,
    RuleSetLinksDenyAdd,
    RuleSetLinksDenyRemove,
    RuleSetMiniProgramAdd,
    RuleSetMiniProgramRemove,
    RuleSetKinds,
    RuleSetFlood,
    RuleSetMaxLength,
    RuleSetMaxLines,
    RuleSetMaxMentions,
    RuleSetDuplicates,
    RuleSetInviteBan,
    RuleSetOrgsAdd,
    RuleSetOrgsRemove,
    RuleSetAccountAge,
    GroupTagAdd,
    GroupTagRemove,
    GroupTagList,
    GroupOrg,
    GroupNotices,
    GroupAutomod,
    TemplateApply,
    BlacklistAdd,
    BlacklistRemove,
    BlacklistList,
    BlacklistImport,
    WhitelistAdd,
    WhitelistRemove,
    WhitelistList,
    ViolationsList,
    ViolationsExport,
    Stats,
    Why,
    AuditList,
    AuditUndo,
    ConfigExport,
    ConfigImport,
    SettingsManualRemovals,
    Help,
}

/// One command: how to type it, what it does, who may run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Which command.
    pub id: CommandId,
    /// The usage pattern (see the module documentation).
    pub usage: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// The lowest role that may run it.
    pub role: Role,
}

const MOD: Role = Role::Moderator;
const ADMIN: Role = Role::Admin;

macro_rules! commands {
    ($($id:ident, $role:expr, $usage:literal, $summary:literal;)+) => {
        /// The command table.
        pub static COMMANDS: &[CommandSpec] = &[
            $(CommandSpec { id: CommandId::$id, usage: $usage, summary: $summary, role: $role },)+
        ];
    };
}

commands! {
    RuleCreate, ADMIN, "rule create <rule:rule> [<name:text...>]", "Create a rule (disabled until it has checks and you enable it).";
    RuleList, MOD, "rule list", "List the rules.";
    RuleShow, MOD, "rule show <rule:rule>", "Show a rule as it would appear in a rule file.";
    RuleDelete, ADMIN, "rule delete <rule:rule>", "Delete a rule (restorable with audit undo for 72 hours).";
    RuleEnable, ADMIN, "rule enable <rule:rule>", "Enable a rule.";
    RuleDisable, ADMIN, "rule disable <rule:rule>", "Disable a rule.";
    RuleMode, ADMIN, "rule mode <rule:rule> <mode:mode>", "enforce: act; shadow: only record what would happen.";
    RuleLadder, ADMIN, "rule ladder <rule:rule> <rungs:rung...>", "Set the punishment ladder, e.g. delete+warn delete+warn kick+blacklist.";
    RuleScopeAddGroup, ADMIN, "rule scope <rule:rule> add group <groups:group...>", "Apply the rule in these groups.";
    RuleScopeRemoveGroup, ADMIN, "rule scope <rule:rule> remove group <groups:group...>", "Stop applying the rule in these groups.";
    RuleScopeAddTag, ADMIN, "rule scope <rule:rule> add tag <tags:tag...>", "Apply the rule in groups with these tags.";
    RuleScopeRemoveTag, ADMIN, "rule scope <rule:rule> remove tag <tags:tag...>", "Stop applying the rule to these tags.";
    RuleSetKeywordsAdd, ADMIN, "rule set <rule:rule> keywords add <keywords:text...>", "Add keywords matched anywhere in a message.";
    RuleSetKeywordsRemove, ADMIN, "rule set <rule:rule> keywords remove <keywords:text...>", "Remove keywords.";
    RuleSetWordsAdd, ADMIN, "rule set <rule:rule> words add <words:text...>", "Add keywords matched as whole words only.";
    RuleSetWordsRemove, ADMIN, "rule set <rule:rule> words remove <words:text...>", "Remove whole-word keywords.";
    RuleSetHomophones, ADMIN, "rule set <rule:rule> homophones <on:onoff>", "Also match Chinese keywords written with characters of the same sound (薇信, V信 for 微信); matches some ordinary words too.";
    RuleSetRegexAdd, ADMIN, "rule set <rule:rule> regex add <pattern:regex>", "Add a regular expression (quote it if it has spaces).";
    RuleSetRegexRemove, ADMIN, "rule set <rule:rule> regex remove <pattern:text>", "Remove a regular expression.";
    RuleSetPhone, ADMIN, "rule set <rule:rule> phone <on:onoff>", "Turn the phone-number check on or off.";
    RuleSetLinksMode, ADMIN, "rule set <rule:rule> links mode <mode:linkmode>", "deny-listed: only denied domains; allow-listed-only: every link except allowed ones; off.";
    RuleSetLinksAllowAdd, ADMIN, "rule set <rule:rule> links allow add <domains:domain...>", "Allow domains and their subdomains.";
    RuleSetLinksAllowRemove, ADMIN, "rule set <rule:rule> links allow remove <domains:domain...>", "Remove allowed domains.";
    RuleSetLinksDenyAdd, ADMIN, "rule set <rule:rule> links deny add <domains:domain...>", "Deny domains and their subdomains.";
    RuleSetLinksDenyRemove, ADMIN, "rule set <rule:rule> links deny remove <domains:domain...>", "Remove denied domains.";
    RuleSetMiniProgramAdd, ADMIN, "rule set <rule:rule> mini-program allow add <apps:text...>", "Allow mini-programs by app id (others are violations).";
    RuleSetMiniProgramRemove, ADMIN, "rule set <rule:rule> mini-program allow remove <apps:text...>", "Remove allowed mini-programs.";
    RuleSetKinds, ADMIN, "rule set <rule:rule> kinds [<kinds:kind...>]", "Ban these message kinds (none: ban nothing).";
    RuleSetFlood, ADMIN, "rule set <rule:rule> flood <messages:int> <per:duration>", "At most N messages per member per group within T.";
    RuleSetMaxLength, ADMIN, "rule set <rule:rule> max-length <chars:int>", "At most this many characters per message.";
    RuleSetMaxLines, ADMIN, "rule set <rule:rule> max-lines <lines:int>", "At most this many line breaks per message.";
    RuleSetMaxMentions, ADMIN, "rule set <rule:rule> max-mentions <mentions:int>", "At most this many mentions per message.";
    RuleSetDuplicates, ADMIN, "rule set <rule:rule> duplicates <members:int> <groups:int> <window:duration>", "The same text from K members or in G groups within T (0 turns a limit off).";
    RuleSetInviteBan, ADMIN, "rule set <rule:rule> invite-ban <on:onoff> [--only-staff-invite <staff:onoff>]", "Refuse members of other organisations on join.";
    RuleSetOrgsAdd, ADMIN, "rule set <rule:rule> orgs allow add <orgs:text...>", "Welcome members of these organisations anyway.";
    RuleSetOrgsRemove, ADMIN, "rule set <rule:rule> orgs allow remove <orgs:text...>", "Stop welcoming these organisations.";
    RuleSetAccountAge, ADMIN, "rule set <rule:rule> account-age <age:text>", "Accounts younger than this (7d, 30d) may not join; off lifts it. Discord tells an account's age.";
    GroupTagAdd, ADMIN, "group tag add <tags:tag...> [--group <group:group>]", "Tag this group (or another).";
    GroupTagRemove, ADMIN, "group tag remove <tags:tag...> [--group <group:group>]", "Remove tags from this group (or another).";
    GroupTagList, MOD, "group tag list [--group <group:group>]", "Show this group's tags.";
    GroupOrg, ADMIN, "group org <org:text> [--group <group:group>]", "Say which organisation this group belongs to (invite-ban refuses members of others).";
    GroupAutomod, ADMIN, "group automod <on:onoff> [--group <group:group>]", "Mirror keyword rules into Discord AutoMod, which blocks those messages before anyone sees them; off removes them.";
    GroupNotices, ADMIN, "group notices <channel:text> [--group <group:group>]", "Send this group's admin notices to a channel (Discord: #channel or its id); off: the default.";
    TemplateApply, ADMIN, "template apply <template:template> [--tag <tag:tag>]", "Add a template's rules (retail, education, b2b, finance), scoped to a tag.";
    BlacklistAdd, MOD, "blacklist add <member:member> [<reason:text...>] [--personal <personal:onoff>] [--expires <expires:duration>]", "Blacklist a member org-wide (or on this group owner's list).";
    BlacklistRemove, MOD, "blacklist remove <member:member> [--personal <personal:onoff>]", "Remove a member from the blacklist.";
    BlacklistList, MOD, "blacklist list [--after <after:member>]", "List blacklist entries, 20 at a time.";
    BlacklistImport, ADMIN, "blacklist import <entries:body>", "Import entries, one per line: platform:id [reason]. All or nothing.";
    WhitelistAdd, ADMIN, "whitelist add <member:member> [<reason:text...>] [--rule <rule:rule>]", "Exempt a member from every rule (or one).";
    WhitelistRemove, ADMIN, "whitelist remove <member:member>", "Remove a whitelist entry.";
    WhitelistList, MOD, "whitelist list", "List whitelisted members.";
    ViolationsList, MOD, "violations list [--group <group:group>] [--member <member:member>] [--rule <rule:rule>] [--days <days:int>]", "The latest violations, newest first.";
    ViolationsExport, MOD, "violations export <format:format> [--group <group:group>] [--member <member:member>] [--rule <rule:rule>] [--days <days:int>]", "Violations as csv or json.";
    Stats, MOD, "stats [<days:int>] [--group <group:group>]", "Violations per day (default 7 days, all groups), share of new members among violators, top checks.";
    Why, MOD, "why <message:text>", "Every rule's outcome for a message or event id.";
    AuditList, ADMIN, "audit list", "The latest configuration changes.";
    AuditUndo, ADMIN, "audit undo <id:audit>", "Undo a change made in the last 72 hours.";
    ConfigExport, ADMIN, "config export", "The whole configuration as a rule file.";
    ConfigImport, ADMIN, "config import <file:body>", "Replace the configuration with a rule file (pasted after the command line).";
    SettingsManualRemovals, ADMIN, "settings manual-removals <policy:removals>", "Blacklist members an admin kicks or bans by hand: off, org (org-wide) or personal (the group owner's list).";
    Help, Role::Member, "help [<command:text...>]", "Commands, or the usage of one.";
}

/// The spec of a command.
pub fn spec(id: CommandId) -> &'static CommandSpec {
    COMMANDS
        .iter()
        .find(|c| c.id == id)
        .unwrap_or(&COMMANDS[COMMANDS.len() - 1])
}

/// The help text: every command, or those whose usage starts with `prefix`.
pub fn help(prefix: &str) -> String {
    let prefix = prefix.trim().to_lowercase();
    let matching: Vec<&CommandSpec> = COMMANDS
        .iter()
        .filter(|c| literal_path(c).starts_with(&prefix))
        .collect();
    if matching.is_empty() {
        return format!("no command starts with `{prefix}`: type `!guard help` for the list");
    }
    let mut out = String::new();
    for c in matching {
        out.push_str(&format!(
            "!guard {}\n    {} ({}+)\n",
            display_usage(c),
            c.summary,
            c.role
        ));
    }
    out
}

/// The rule templates `template apply` offers, by name.
pub const TEMPLATES: [(&str, &str); 4] = [
    (
        "retail",
        include_str!("../../../examples/templates/retail.toml"),
    ),
    (
        "education",
        include_str!("../../../examples/templates/education.toml"),
    ),
    ("b2b", include_str!("../../../examples/templates/b2b.toml")),
    (
        "finance",
        include_str!("../../../examples/templates/finance.toml"),
    ),
];

/// A template's rule file, by name.
pub fn template(name: &str) -> Option<&'static str> {
    TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests;
