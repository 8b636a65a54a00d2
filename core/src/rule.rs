//! Rules as data: what a rule file holds and what chat commands edit.
//!
//! A [`RuleSet`] is plain, serializable configuration. [`crate::compile::CompiledRules`]
//! validates it and builds the automata once; the engine only ever sees compiled rules.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::named;

use crate::model::{
    GroupChange, GroupRef, KindName, MemberRef, OrgId, Platform, Role, RuleId, UserId, is_false,
};
use crate::time::{Timestamp, duration_text};

/// Everything a rule file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Defaults that apply to every rule and group.
    #[serde(default, skip_serializing_if = "Settings::is_empty")]
    pub settings: Settings,
    /// Known groups with their tags and home organisation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupConfig>,
    /// The rules, evaluated in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Blacklisted members: org-wide, or personal to one group owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blacklist: Vec<BlacklistEntry>,
    /// Whitelisted members, exempt from all rules or from some.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whitelist: Vec<WhitelistEntry>,
}

/// Defaults for the whole set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The home organisation of groups that do not name one, per platform
    /// (`wecom = "wwCorpId"`, `matrix = "example.org"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub home_orgs: BTreeMap<Platform, OrgId>,
    /// The warning text of rules that do not set their own; see [`Rule::warn_template`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_template: Option<String>,
    /// Whether a member an admin kicks or bans by hand on the platform is blacklisted, so
    /// the removal sticks in every group (off by default).
    #[serde(default, skip_serializing_if = "is_default")]
    pub blacklist_manual_removals: ManualRemovals,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

named! {
    /// What a removal by an admin by hand does to the blacklist.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum ManualRemovals as "manual removal policy" {
        /// Nothing: the platform's own kick or ban is all.
        #[default]
        Off = "off",
        /// The member goes on the org-wide blacklist.
        Org = "org",
        /// The member goes on the group owner's personal blacklist.
        Personal = "personal",
    }
}

impl Settings {
    fn is_empty(&self) -> bool {
        self == &Settings::default()
    }
}

/// A group the operator described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// `platform:id`.
    pub id: GroupRef,
    /// A human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form tags rules can target (`retail`, `vip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The organisation the group belongs to; members of others can be refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_org: Option<OrgId>,
    /// The owner, whose personal blacklist applies to the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    /// The group's administrators besides the owner: with the owner, who admin notices go to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<UserId>,
    /// Where admin notices go instead, on platforms with channels: a Discord channel id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notices: Option<String>,
    /// Keyword rules are also enforced by the platform's own filter (Discord AutoMod), which
    /// blocks those messages before anyone sees them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub native_filter: bool,
}

impl GroupConfig {
    /// A group known only by its id.
    pub fn new(id: GroupRef) -> GroupConfig {
        GroupConfig {
            id,
            name: None,
            tags: Vec::new(),
            home_org: None,
            owner: None,
            admins: Vec::new(),
            notices: None,
            native_filter: false,
        }
    }

    /// The group after a change the platform reported, or `None` when it is gone. What the
    /// operator set (tags, and a home organisation the platform does not report) stays.
    pub fn changed(
        current: Option<&GroupConfig>,
        id: &GroupRef,
        change: &GroupChange,
    ) -> Option<GroupConfig> {
        let mut group = current
            .cloned()
            .unwrap_or_else(|| GroupConfig::new(id.clone()));
        match change {
            GroupChange::Created {
                name,
                owner,
                home_org,
                admins,
            } => {
                if name.is_some() {
                    group.name.clone_from(name);
                }
                if owner.is_some() {
                    group.owner.clone_from(owner);
                }
                if home_org.is_some() {
                    group.home_org.clone_from(home_org);
                }
                if !admins.is_empty() {
                    group.admins.clone_from(admins);
                }
            }
            GroupChange::Renamed { name } => group.name = Some(name.clone()),
            GroupChange::OwnerChanged { owner } => group.owner = Some(owner.clone()),
            GroupChange::AdminsChanged { admins } => group.admins.clone_from(admins),
            GroupChange::Dismissed => return None,
        }
        Some(group)
    }
}

named! {
    /// Whether a rule's actions are carried out or only recorded.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum Mode as "mode" {
        /// Actions are executed.
        #[default]
        Enforce = "enforce",
        /// Actions are recorded, never executed: try a rule on live traffic first.
        Shadow = "shadow",
    }
}

/// One moderation rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier: letters, digits, `-` and `_`.
    pub id: RuleId,
    /// A human name, shown in warnings.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Disabled rules are skipped.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// `enforce` or `shadow`.
    #[serde(default, skip_serializing_if = "is_enforce")]
    pub mode: Mode,
    /// Where the rule applies. Empty: every group.
    #[serde(default, skip_serializing_if = "Scope::is_everywhere")]
    pub scope: Scope,
    /// Who the rule leaves alone.
    #[serde(default, skip_serializing_if = "Exemptions::is_default")]
    pub exempt: Exemptions,
    /// Sensitive words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Keywords>,
    /// Regular expressions over the folded text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<RegexCheck>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneCheck>,
    /// Links and domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<LinkCheck>,
    /// Mini-program cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mini_programs: Option<MiniProgramCheck>,
    /// Message kinds that are not allowed at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_kinds: Vec<KindName>,
    /// Rate and size limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<FloodCheck>,
    /// The same text from many members or in many groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<DuplicateCheck>,
    /// Who may join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invites: Option<InviteCheck>,
    /// Blacklisted members joining or posting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blacklist: Option<BlacklistCheck>,
    /// What each successive violation leads to; the last rung repeats.
    #[serde(default = "default_ladder", skip_serializing_if = "is_default_ladder")]
    pub ladder: Vec<Rung>,
    /// How long a violation counts towards the ladder.
    #[serde(
        default = "default_decay",
        with = "duration_text",
        skip_serializing_if = "is_default_decay"
    )]
    pub decay: Duration,
    /// Warning text. Placeholders: `{member}`, `{rule}`, `{check}`, `{count}`, `{next}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_template: Option<String>,
}

impl Rule {
    /// A rule with an id, no checks and the defaults for everything else.
    pub fn new(id: impl Into<RuleId>) -> Rule {
        Rule {
            id: id.into(),
            name: String::new(),
            enabled: true,
            mode: Mode::Enforce,
            scope: Scope::default(),
            exempt: Exemptions::default(),
            keywords: None,
            regex: None,
            phone: None,
            links: None,
            mini_programs: None,
            banned_kinds: Vec::new(),
            flood: None,
            duplicates: None,
            invites: None,
            blacklist: None,
            ladder: default_ladder(),
            decay: default_decay(),
            warn_template: None,
        }
    }

    /// The name, or the id when unnamed.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            self.id.as_str()
        } else {
            &self.name
        }
    }

    /// Whether any check is configured.
    pub fn has_checks(&self) -> bool {
        self.keywords.is_some()
            || self.regex.is_some()
            || self.phone.is_some()
            || self.links.is_some()
            || self.mini_programs.is_some()
            || !self.banned_kinds.is_empty()
            || self.flood.is_some()
            || self.duplicates.is_some()
            || self.invites.is_some()
            || self.blacklist.is_some()
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_enforce(m: &Mode) -> bool {
    *m == Mode::Enforce
}

/// Three warnings, then out.
pub fn default_ladder() -> Vec<Rung> {
    vec![
        Rung::single(Step::Warn),
        Rung::single(Step::Warn),
        Rung::single(Step::Warn),
        Rung::single(Step::Kick),
    ]
}

fn is_default_ladder(ladder: &Vec<Rung>) -> bool {
    *ladder == default_ladder()
}

/// 24 hours.
pub fn default_decay() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn is_default_decay(d: &Duration) -> bool {
    *d == default_decay()
}

/// Where a rule applies: groups listed, groups carrying a tag, optionally only some platforms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Explicit groups (`platform:id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRef>,
    /// Group tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Platforms; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
}

impl Scope {
    /// No groups and no tags: the rule applies in every group of its platforms.
    pub fn is_unrestricted(&self) -> bool {
        self.groups.is_empty() && self.tags.is_empty()
    }

    /// Whether the rule applies in `group`: its platform is in scope, and the group is listed,
    /// carries one of the tags, or the scope names neither.
    pub fn covers(&self, group: &GroupConfig) -> bool {
        (self.platforms.is_empty() || self.platforms.contains(&group.id.platform))
            && (self.is_unrestricted()
                || self.groups.contains(&group.id)
                || self.tags.iter().any(|t| group.tags.contains(t)))
    }

    fn is_everywhere(&self) -> bool {
        self.is_unrestricted() && self.platforms.is_empty()
    }
}

/// Who a rule leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemptions {
    /// Roles the rule never applies to. Default: staff, moderator, admin, owner.
    #[serde(default = "default_exempt_roles")]
    pub roles: Vec<Role>,
    /// Whitelisted members (`platform:id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberRef>,
    /// Whether bot accounts are exempt. Default: yes.
    #[serde(default = "yes")]
    pub bots: bool,
}

fn default_exempt_roles() -> Vec<Role> {
    vec![Role::Staff, Role::Moderator, Role::Admin, Role::Owner]
}

impl Default for Exemptions {
    fn default() -> Exemptions {
        Exemptions {
            roles: default_exempt_roles(),
            members: Vec::new(),
            bots: true,
        }
    }
}

impl Exemptions {
    fn is_default(&self) -> bool {
        self == &Exemptions::default()
    }
}

/// Sensitive words, matched on normalized text (see [`crate::normalize`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keywords {
    /// Match anywhere, also inside longer words. Right for Chinese.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substrings: Vec<String>,
    /// Match only as a whole word (Latin script): `sex` does not match `sussex`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<String>,
    /// Also match Chinese keywords written with other characters of the same sound (`薇信`,
    /// `威信` and `V信` for `微信`). Off by default: ordinary words share sounds too
    /// (`威信` is "prestige").
    #[serde(default, skip_serializing_if = "is_false")]
    pub homophones: bool,
}

/// Regular expressions (Rust `regex` syntax: linear time, no look-around), case-insensitive,
/// matched on folded text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexCheck {
    /// The patterns.
    pub patterns: Vec<String>,
}

named! {
    /// Kinds of phone numbers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum PhoneKind as "phone kind" {
        /// Mainland China mobile (`1[3-9]` + 9 digits), with or without `+86`/`0086`.
        Mobile = "mobile",
        /// Mainland China landline with area code, and 400/800 service numbers.
        Landline = "landline",
        /// Any other number written in E.164 form (`+` and 8 to 15 digits).
        International = "international",
    }
}

/// Phone numbers in text, however they are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneCheck {
    /// Which kinds count. Default: all.
    #[serde(default = "all_phone_kinds")]
    pub kinds: Vec<PhoneKind>,
}

fn all_phone_kinds() -> Vec<PhoneKind> {
    vec![
        PhoneKind::Mobile,
        PhoneKind::Landline,
        PhoneKind::International,
    ]
}

impl Default for PhoneCheck {
    fn default() -> PhoneCheck {
        PhoneCheck {
            kinds: all_phone_kinds(),
        }
    }
}

named! {
    /// Which links violate.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum LinkMode as "link mode" {
        /// Only links to a denied domain.
        #[default]
        DenyListed = "deny_listed",
        /// Every link except to an allowed domain.
        AllowListedOnly = "allow_listed_only",
    }
}

/// Links and bare domains, matched by registrable domain and its subdomains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkCheck {
    /// `deny_listed` (default) or `allow_listed_only`.
    #[serde(default)]
    pub mode: LinkMode,
    /// Domains always allowed, with their subdomains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Domains always denied, with their subdomains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Mini-program cards: only the listed app ids are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniProgramCheck {
    /// Allowed app ids.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// Rate and size limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodCheck {
    /// At most this many messages per member per group within `per`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u32>,
    /// The window for `messages`.
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub per: Option<Duration>,
    /// At most this many characters in one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u32>,
    /// At most this many line breaks in one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lines: Option<u32>,
    /// At most this many mentions in one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mentions: Option<u32>,
}

/// The same text repeated by many members or across many groups. Texts are compared by
/// their letters and digits after normalization, so punctuation, spacing and the evasions of
/// [`crate::normalize`] do not make a copy new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateCheck {
    /// Violates once this many distinct members sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<u32>,
    /// Violates once it appeared in this many distinct groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<u32>,
    /// Within this window.
    #[serde(with = "duration_text")]
    pub window: Duration,
    /// Texts with fewer letters and digits are ignored: everyone says "ok".
    #[serde(default = "default_min_chars")]
    pub min_chars: u32,
}

fn default_min_chars() -> u32 {
    8
}

/// Who may join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteCheck {
    /// Refuse members of organisations other than the group's home organisation.
    /// Members without an organisation (personal accounts, customers) are always welcome.
    #[serde(default = "yes")]
    pub refuse_other_orgs: bool,
    /// Other organisations that are welcome anyway (partners).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_orgs: Vec<OrgId>,
    /// Only staff (or higher) may invite; invitations by external members are refused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub only_staff_invite: bool,
    /// Accounts younger than this may not join (where the platform tells an account's age:
    /// Discord).
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_account_age: Option<Duration>,
}

impl Default for InviteCheck {
    fn default() -> InviteCheck {
        InviteCheck {
            refuse_other_orgs: true,
            allow_orgs: Vec::new(),
            only_staff_invite: false,
            min_account_age: None,
        }
    }
}

/// Blacklisted members (org-wide, and the group owner's personal list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistCheck {
    /// Check members as they join. Default: yes.
    #[serde(default = "yes")]
    pub on_join: bool,
    /// Check members as they post. Default: yes.
    #[serde(default = "yes")]
    pub on_message: bool,
}

impl Default for BlacklistCheck {
    fn default() -> BlacklistCheck {
        BlacklistCheck {
            on_join: true,
            on_message: true,
        }
    }
}

named! {
    /// Which blacklist an entry or a ladder step writes to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ListScope as "list" {
        /// The organisation-wide list.
        Org = "org",
        /// The group owner's personal list.
        Personal = "personal",
    }
}

/// One step of a rung.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// Delete the offending message.
    Delete,
    /// Post the warning text.
    Warn,
    /// Mute the member for a while.
    Timeout(Duration),
    /// Remove the member from the group.
    Kick,
    /// Add the member to a blacklist, optionally for a limited time.
    Blacklist(ListScope, Option<Duration>),
    /// Tell the group's admins.
    Notify,
    /// Queue the case for a human moderator.
    Review,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Delete => f.write_str("delete"),
            Step::Warn => f.write_str("warn"),
            Step::Timeout(d) => write!(f, "timeout:{}", humantime::format_duration(*d)),
            Step::Kick => f.write_str("kick"),
            Step::Blacklist(scope, expiry) => {
                f.write_str("blacklist")?;
                if *scope == ListScope::Personal {
                    f.write_str(":personal")?;
                }
                if let Some(d) = expiry {
                    write!(f, ":{}", humantime::format_duration(*d))?;
                }
                Ok(())
            }
            Step::Notify => f.write_str("notify"),
            Step::Review => f.write_str("review"),
        }
    }
}

/// What one violation leads to: steps joined by `+`, such as `delete+warn`,
/// `delete+timeout:10m`, `kick+blacklist`, `kick+blacklist:personal:30d`, `notify`, `review`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rung {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Rung {
    /// A rung of one step.
    pub fn single(step: Step) -> Rung {
        Rung { steps: vec![step] }
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            step.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for Rung {
    type Err = String;

    fn from_str(s: &str) -> Result<Rung, String> {
        const HELP: &str = "steps are delete, warn, timeout:DURATION, kick, \
                            blacklist[:personal][:DURATION], notify, review, joined by +";
        let mut steps = Vec::new();
        for token in s.split('+').map(str::trim) {
            let mut parts = token.split(':');
            let name = parts.next().unwrap_or_default();
            let args: Vec<&str> = parts.collect();
            let step = match (name, args.as_slice()) {
                ("delete", []) => Step::Delete,
                ("warn", []) => Step::Warn,
                ("kick", []) => Step::Kick,
                ("notify", []) => Step::Notify,
                ("review", []) => Step::Review,
                ("timeout", [d]) => Step::Timeout(duration_text::parse(d)?),
                ("timeout", []) => {
                    return Err(format!("`{token}` needs a duration, like timeout:10m"));
                }
                ("blacklist", args) if args.len() <= 2 => {
                    let mut scope = ListScope::Org;
                    let mut expiry = None;
                    for (i, arg) in args.iter().enumerate() {
                        match *arg {
                            "personal" if i == 0 => scope = ListScope::Personal,
                            "org" if i == 0 => scope = ListScope::Org,
                            d if expiry.is_none() => expiry = Some(duration_text::parse(d)?),
                            _ => return Err(format!("unknown blacklist option in `{token}`")),
                        }
                    }
                    Step::Blacklist(scope, expiry)
                }
                _ => return Err(format!("unknown ladder step `{token}`: {HELP}")),
            };
            if steps.contains(&step) {
                return Err(format!("`{token}` appears twice in rung `{s}`"));
            }
            steps.push(step);
        }
        Ok(Rung { steps })
    }
}

impl Serialize for Rung {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rung {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rung, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Who or what put an entry on a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A rule's ladder (`rule:ads`).
    Rule(RuleId),
    /// A moderator (`moderator:wecom:zhangsan`).
    Moderator(MemberRef),
    /// A bulk import (`import`).
    Import,
    /// The platform reported it (`platform:wecom`): a group renamed on WeCom, say.
    Platform(Platform),
    /// A shared ban list the bot follows (`list:matrix:!policies:example.org`).
    List(GroupRef),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Rule(id) => write!(f, "rule:{id}"),
            Source::Moderator(m) => write!(f, "moderator:{m}"),
            Source::Import => f.write_str("import"),
            Source::Platform(p) => write!(f, "platform:{p}"),
            Source::List(list) => write!(f, "list:{list}"),
        }
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        match s.split_once(':') {
            _ if s == "import" => Ok(Source::Import),
            Some(("rule", id)) if !id.is_empty() => Ok(Source::Rule(RuleId::new(id))),
            Some(("moderator", member)) => member
                .parse()
                .map(Source::Moderator)
                .map_err(|e| e.to_string()),
            Some(("platform", platform)) => platform
                .parse()
                .map(Source::Platform)
                .map_err(|e: crate::names::UnknownName| e.to_string()),
            Some(("list", list)) => list.parse().map(Source::List).map_err(|e| e.to_string()),
            _ => Err(format!(
                "unknown source `{s}`: expected rule:ID, moderator:PLATFORM:ID, platform:PLATFORM, list:PLATFORM:ID or import"
            )),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A blacklisted member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistEntry {
    /// Who.
    pub member: MemberRef,
    /// The owner whose personal list this is; none for the org-wide list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Who or what added it.
    pub source: Source,
    /// When.
    pub created_at: Timestamp,
    /// When it stops applying; none for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl BlacklistEntry {
    /// Org-wide entries from lines of `platform:id [reason]` (blank lines skipped), imported
    /// at `at`; or every malformed line, numbered.
    pub fn parse_lines(text: &str, at: Timestamp) -> Result<Vec<BlacklistEntry>, Vec<String>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (who, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            match who.parse::<MemberRef>() {
                Ok(member) => entries.push(BlacklistEntry {
                    member,
                    owner: None,
                    reason: reason.trim().to_owned(),
                    source: Source::Import,
                    created_at: at,
                    expires_at: None,
                }),
                Err(e) => errors.push(format!("line {}: {e}", n + 1)),
            }
        }
        if errors.is_empty() {
            Ok(entries)
        } else {
            Err(errors)
        }
    }
}

/// A whitelisted member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistEntry {
    /// Who.
    pub member: MemberRef,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The rules they are exempt from; empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_parse_and_print_canonically() {
        for text in [
            "warn",
            "delete+warn",
            "delete+timeout:10m",
            "kick+blacklist",
            "kick+blacklist:personal:30days",
            "notify+review",
        ] {
            let rung: Rung = text.parse().unwrap();
            let again: Rung = rung.to_string().parse().unwrap();
            assert_eq!(again, rung, "{text}");
        }
        let rung: Rung = "delete + timeout:10m".parse().unwrap();
        assert_eq!(
            rung.steps,
            vec![Step::Delete, Step::Timeout(Duration::from_secs(600))]
        );
        assert_eq!(rung.to_string(), "delete+timeout:10m");
    }

    #[test]
    fn bad_rungs_say_what_to_type() {
        let err = "ban".parse::<Rung>().unwrap_err();
        assert!(err.contains("unknown ladder step `ban`"), "{err}");
        assert!(err.contains("timeout:DURATION"), "{err}");
        let err = "timeout".parse::<Rung>().unwrap_err();
        assert_eq!(err, "`timeout` needs a duration, like timeout:10m");
        let err = "timeout:soon".parse::<Rung>().unwrap_err();
        assert!(err.contains("invalid duration `soon`"), "{err}");
        let err = "warn+warn".parse::<Rung>().unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn sources_round_trip() {
        for text in ["rule:ads", "moderator:matrix:@mod:example.org", "import"] {
            let source: Source = text.parse().unwrap();
            assert_eq!(source.to_string(), text);
        }
        assert!("someone".parse::<Source>().is_err());
    }

    #[test]
    fn the_default_ladder_is_three_warnings_then_kick() {
        let ladder: Vec<String> = default_ladder().iter().map(Rung::to_string).collect();
        assert_eq!(ladder, ["warn", "warn", "warn", "kick"]);
    }
}
