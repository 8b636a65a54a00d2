//! Validating a [`RuleSet`] and compiling it once into what the engine runs.
//!
//! Compilation normalizes every keyword and builds one Aho-Corasick automaton over the
//! keywords of all rules, compiles regexes, normalizes domains and resolves every group's
//! rules. The result is immutable and shared; a change compiles a new set that is swapped in
//! atomically (see [`crate::engine::Live`]). Blacklist entries are validated here but indexed
//! on their own ([`crate::lists::BlacklistIndex`]), so a list change recompiles no rule.

use std::sync::Arc;
use std::time::Duration;

use regex_automata::Span;
use regex_automata::meta::Regex as MetaRegex;
use regex_automata::util::prefilter::Prefilter;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::detect::links::{DomainSet, normalize_domain};
use crate::keys;
use crate::model::{GroupRef, OrgId, Platform, Role, RuleId, UserId};
use crate::normalize::{is_cjk, normalize, sound_mapped};
use crate::rule::{
    BlacklistCheck, DuplicateCheck, FloodCheck, GroupConfig, InviteCheck, LinkMode, PhoneKind,
    Rule, RuleSet,
};
use crate::template::Template;
use crate::time::duration_millis;

mod automaton;
mod gate;
mod keywords;
mod path;
mod validate;

pub use automaton::{AutomatonError, CharAutomaton};
use keywords::KeywordPatterns;
pub(crate) use keywords::{KeywordIndex, KeywordOwner};
use path::Errors;
pub use path::{ConfigError, ConfigPath, PathSeg};
pub(crate) use validate::first_line_of_regex_error;
use validate::{
    compile_regexes, validate_duplicates, validate_flood, validate_groups, validate_ladder,
    validate_lists, validate_template,
};

/// The most messages a flood check may allow in its window.
pub const MAX_FLOOD_MESSAGES: u32 = 100;
/// The longest flood or duplicate window.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The most rungs a ladder may have.
pub const MAX_RUNGS: usize = 8;
/// The longest decay window.
pub const MAX_DECAY: Duration = Duration::from_secs(365 * 24 * 3600);
fn default_warn_template() -> Template {
    Template::parse(DEFAULT_WARN_TEMPLATE)
        .unwrap_or_else(|_| unreachable!("the default template parses"))
}

/// The warning text of rules and settings that set none.
pub const DEFAULT_WARN_TEMPLATE: &str = "{member}，请遵守群规：{rule}（第 {count} 次）。\
                                         Please follow the group rules: {rule} (violation {count}).";

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub rule: Rule,
    pub platforms: u8,
    pub exempt_roles: u8,
    pub exempt_members: FxHashSet<u64>,
    pub has_keywords: bool,
    pub regex: Option<CompiledRegex>,
    pub phone_kinds: Vec<PhoneKind>,
    pub links: Option<CompiledLinks>,
    pub mini_allow: Option<FxHashSet<String>>,
    pub banned_kinds: u16,
    pub flood: Option<FloodCheck>,
    pub duplicates: Option<DuplicateCheck>,
    pub invites: Option<(InviteCheck, FxHashSet<OrgId>)>,
    pub blacklist: Option<BlacklistCheck>,
    pub warn_template: Template,
    /// Each rung of the ladder as written (`delete+warn`), for verdicts and warnings.
    pub rung_labels: Vec<String>,
}

impl CompiledRule {
    /// Whether any check looks at messages.
    pub fn checks_messages(&self) -> bool {
        self.has_keywords
            || self.regex.is_some()
            || !self.phone_kinds.is_empty()
            || self.links.is_some()
            || self.mini_allow.is_some()
            || self.banned_kinds != 0
            || self.flood.is_some()
            || self.duplicates.is_some()
            || self.blacklist.as_ref().is_some_and(|b| b.on_message)
    }

    /// Whether any check looks at joins.
    pub fn checks_joins(&self) -> bool {
        self.invites.is_some() || self.blacklist.as_ref().is_some_and(|b| b.on_join)
    }
}

#[derive(Debug)]
pub(crate) struct CompiledRegex {
    /// Every pattern at once: whether any matches.
    pub set: MetaRegex,
    /// Each pattern as written, and compiled.
    pub each: Vec<(String, MetaRegex)>,
    /// A search for the literals every match of some pattern starts with, when every
    /// pattern has such: a text without any needs no regex run, which spares nearly every
    /// message the regex engine's setup.
    pub prefixes: Option<Prefilter>,
}

impl CompiledRegex {
    /// Whether any pattern matches `folded`.
    pub fn is_match(&self, folded: &str) -> bool {
        let folded = folded.as_bytes();
        let holds_prefix = |p: &Prefilter| p.find(folded, Span::from(0..folded.len())).is_some();
        self.prefixes.as_ref().is_none_or(holds_prefix) && self.set.is_match(folded)
    }
}

#[derive(Debug)]
pub(crate) struct CompiledLinks {
    pub mode: LinkMode,
    pub allow: DomainSet,
    pub deny: DomainSet,
}

/// What the engine knows about a group.
#[derive(Debug, Clone)]
pub(crate) struct GroupEntry {
    pub home_org: Option<OrgId>,
    pub owner: Option<UserId>,
    pub rules: Box<[u32]>,
    /// Its place in the set's `groups`, when the set describes it.
    pub config: Option<u32>,
}

/// Sizes the engine state must provide for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StateNeeds {
    /// Timestamps kept per member per group (largest flood limit + 1).
    pub flood_capacity: usize,
    pub flood_window_ms: i64,
    pub duplicate_window_ms: i64,
    pub decay_ms: i64,
}

/// A validated, compiled rule set. Immutable; build a new one to change anything.
#[derive(Debug)]
pub struct CompiledRules {
    config: RuleSet,
    /// The store's revision `config` was read at, when it came from the store.
    revision: Option<u64>,
    pub(crate) rules: Vec<CompiledRule>,
    /// The rules' ids, shared by every verdict.
    pub(crate) rule_ids: Arc<[RuleId]>,
    pub(crate) keywords: KeywordIndex,
    /// The sounds of the keywords of lists that match homophones, searched in a message's
    /// sound ([`crate::normalize::sound_mapped`]).
    pub(crate) homophones: KeywordIndex,
    pub(crate) groups: FxHashMap<u64, GroupEntry>,
    /// Per platform: the rules that apply to groups the set does not know.
    unscoped: [Box<[u32]>; 3],
    home_orgs: [Option<OrgId>; 3],
    pub(crate) needs: StateNeeds,
}

fn platform_index(p: Platform) -> usize {
    match p {
        Platform::WeCom => 0,
        Platform::Matrix => 1,
        Platform::Discord => 2,
    }
}

fn platform_bit(p: Platform) -> u8 {
    1 << platform_index(p)
}

fn role_bit(r: Role) -> u8 {
    1 << (r as u8)
}

impl CompiledRules {
    /// Validates and compiles `set`, reporting every problem at once.
    pub fn compile(set: RuleSet) -> Result<CompiledRules, Vec<ConfigError>> {
        CompiledRules::compile_with(set, None)
    }

    /// [`CompiledRules::compile`], reusing what it can of `previous` (the keyword automaton,
    /// when the keywords changed little): a rule change at a large operator's scale.
    pub fn recompile(
        set: RuleSet,
        previous: &CompiledRules,
    ) -> Result<CompiledRules, Vec<ConfigError>> {
        CompiledRules::compile_with(set, Some(previous))
    }

    fn compile_with(
        set: RuleSet,
        previous: Option<&CompiledRules>,
    ) -> Result<CompiledRules, Vec<ConfigError>> {
        let mut errors = Errors { list: Vec::new() };
        validate_groups(&set, &mut errors);
        let mut keyword_patterns = KeywordPatterns::default();
        let mut sound_patterns = KeywordPatterns::default();
        let mut rules = Vec::with_capacity(set.rules.len());
        let mut seen_ids: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, rule) in set.rules.iter().enumerate() {
            let path = ConfigPath::root().join("rules").join(i);
            if let Some(first) = seen_ids.insert(rule.id.as_str(), i) {
                errors.push(
                    &ConfigPath::root().join("rules").join(i).join("id"),
                    format!("rule id `{}` is already used by rules[{first}]", rule.id),
                );
            }
            let compiled = compile_rule(
                &set,
                rule,
                i as u32,
                &path,
                (&mut keyword_patterns, &mut sound_patterns),
                &mut errors,
            );
            rules.push(compiled);
        }
        validate_lists(&set, &mut errors);
        if !errors.list.is_empty() {
            return Err(errors.list);
        }
        let build = |patterns: KeywordPatterns, previous: Option<&KeywordIndex>| {
            patterns.build(previous).map_err(|message| {
                vec![ConfigError {
                    path: ConfigPath::root().join("rules"),
                    message,
                }]
            })
        };
        let keywords = build(keyword_patterns, previous.map(|p| &p.keywords))?;
        let homophones = build(sound_patterns, previous.map(|p| &p.homophones))?;
        apply_whitelist(&set, &mut rules);
        let groups = resolve_groups(&set, &rules);
        let mut unscoped: [Vec<u32>; 3] = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            if rule.rule.scope.is_unrestricted() {
                for p in Platform::ALL {
                    if rule.platforms == 0 || rule.platforms & platform_bit(p) != 0 {
                        unscoped[platform_index(p)].push(i as u32);
                    }
                }
            }
        }
        let mut home_orgs: [Option<OrgId>; 3] = Default::default();
        for (p, org) in &set.settings.home_orgs {
            home_orgs[platform_index(*p)] = Some(org.clone());
        }
        let needs = state_needs(&rules);
        let mut config = set;
        config.blacklist = Vec::new();
        Ok(CompiledRules {
            config,
            revision: None,
            rule_ids: rules.iter().map(|r| r.rule.id.clone()).collect(),
            rules,
            keywords,
            homophones,
            groups,
            unscoped: unscoped.map(Vec::into_boxed_slice),
            home_orgs,
            needs,
        })
    }

    /// The settings, groups, rules and whitelist this was compiled from. Blacklist entries
    /// are not kept here: millions of them live only in the compact index (and in storage).
    pub fn config(&self) -> &RuleSet {
        &self.config
    }

    /// The store's revision this configuration is, if known: while the store is still at it,
    /// [`CompiledRules::config`] is what the store holds.
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// Marks this as the configuration stored at `revision`.
    pub fn at_revision(mut self, revision: u64) -> CompiledRules {
        self.revision = Some(revision);
        self
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The longest decay window of any rule: how far back ladder counters matter.
    pub fn longest_decay(&self) -> Duration {
        Duration::from_millis(self.needs.decay_ms.max(0) as u64)
    }

    /// Heap bytes of the keyword automaton.
    pub fn index_bytes(&self) -> usize {
        self.keywords.heap_bytes()
    }

    /// A group as the set describes it (name, tags, owner, admins), if it does.
    pub fn group(&self, id: &GroupRef) -> Option<&GroupConfig> {
        let entry = self.groups.get(&keys::group(id.platform, id.id.as_str()))?;
        entry.config.map(|i| &self.config.groups[i as usize])
    }

    /// The indexes of the rules in scope for a group.
    pub(crate) fn rules_for(&self, platform: Platform, group_key: u64) -> &[u32] {
        match self.groups.get(&group_key) {
            Some(entry) => &entry.rules,
            None => &self.unscoped[platform_index(platform)],
        }
    }

    /// A group's home organisation: its own, or the platform default.
    pub(crate) fn home_org(&self, platform: Platform, group_key: u64) -> Option<&OrgId> {
        self.groups
            .get(&group_key)
            .and_then(|g| g.home_org.as_ref())
            .or(self.home_orgs[platform_index(platform)].as_ref())
    }

    /// A group's owner, when configured.
    pub(crate) fn owner(&self, group_key: u64) -> Option<&UserId> {
        self.groups.get(&group_key).and_then(|g| g.owner.as_ref())
    }
}

impl Default for CompiledRules {
    fn default() -> CompiledRules {
        match CompiledRules::compile(RuleSet::default()) {
            Ok(rules) => rules,
            Err(_) => unreachable!("an empty rule set is valid"),
        }
    }
}

fn compile_rule(
    set: &RuleSet,
    rule: &Rule,
    index: u32,
    path: &ConfigPath,
    (keywords, sounds): (&mut KeywordPatterns, &mut KeywordPatterns),
    errors: &mut Errors,
) -> CompiledRule {
    if !RuleId::is_valid(rule.id.as_str()) {
        errors.push(
            &path.join("id"),
            format!(
                "rule id `{}` must be 1 to 64 letters, digits, `-` or `_`",
                rule.id
            ),
        );
    }
    // A rule being set up may sit disabled without checks; an enabled one must check something.
    if rule.enabled && !rule.has_checks() {
        errors.push(
            path,
            format!(
                "rule `{}` has no checks: add keywords, regex, phone, links, mini_programs, \
                 banned_kinds, flood, duplicates, invites or blacklist",
                rule.id
            ),
        );
    }
    let mut has_keywords = false;
    if let Some(kw) = &rule.keywords {
        if kw.substrings.is_empty() && kw.words.is_empty() {
            errors.push(
                &path.join("keywords"),
                "no keywords: add substrings or words",
            );
        }
        let lists = [
            ("substrings", &kw.substrings, false),
            ("words", &kw.words, true),
        ];
        let mut keyword = 0u32;
        for (field, list, whole_word) in lists {
            for (k, term) in list.iter().enumerate() {
                let normalized = normalize(term);
                if normalized.trim().is_empty() {
                    errors.push(
                        &path.join("keywords").join(field).join(k),
                        format!("keyword `{term}` is empty after normalization"),
                    );
                } else {
                    has_keywords = true;
                    let owner = KeywordOwner {
                        rule: index,
                        keyword,
                        whole_word,
                    };
                    if kw.homophones && normalized.chars().any(is_cjk) {
                        sounds.add_sound(sound_mapped(&normalized).text, owner);
                    }
                    keywords.add_keyword(normalized, owner);
                }
                keyword += 1;
            }
        }
    }
    let regex = rule.regex.as_ref().and_then(|r| {
        compile_regexes(
            &rule.id,
            &r.patterns,
            &path.join("regex").join("patterns"),
            errors,
        )
    });
    let phone_kinds = match &rule.phone {
        Some(p) if p.kinds.is_empty() => {
            errors.push(
                &path.join("phone").join("kinds"),
                "choose at least one of mobile, landline, international",
            );
            Vec::new()
        }
        Some(p) => p.kinds.clone(),
        None => Vec::new(),
    };
    let links = rule.links.as_ref().map(|l| {
        let mut domains = |field: &str, list: &[String]| {
            let mut hosts = Vec::new();
            for (k, entry) in list.iter().enumerate() {
                match normalize_domain(entry) {
                    Ok(host) => hosts.push(host),
                    Err(e) => errors.push(&path.join("links").join(field).join(k), e),
                }
            }
            DomainSet::new(hosts)
        };
        CompiledLinks {
            mode: l.mode,
            allow: domains("allow", &l.allow),
            deny: domains("deny", &l.deny),
        }
    });
    if let Some(l) = &links
        && l.mode == LinkMode::DenyListed
        && l.deny.is_empty()
    {
        errors.push(
            &path.join("links"),
            "deny_listed mode with an empty deny list finds nothing: add deny domains or use mode = \"allow_listed_only\"",
        );
    }
    let flood = rule.flood.clone();
    if let Some(f) = &flood {
        validate_flood(f, &path.join("flood"), errors);
    }
    if let Some(d) = &rule.duplicates {
        validate_duplicates(d, &path.join("duplicates"), errors);
    }
    validate_ladder(rule, path, errors);
    if let Some(t) = &rule.warn_template {
        validate_template(t, &path.join("warn_template"), errors);
    }
    for (t, tag) in rule.scope.tags.iter().enumerate() {
        if tag.trim().is_empty() {
            errors.push(
                &path.join("scope").join("tags").join(t),
                "tags cannot be empty",
            );
        }
    }
    CompiledRule {
        platforms: rule
            .scope
            .platforms
            .iter()
            .fold(0, |m, p| m | platform_bit(*p)),
        exempt_roles: rule.exempt.roles.iter().fold(0, |m, r| m | role_bit(*r)),
        exempt_members: rule
            .exempt
            .members
            .iter()
            .map(|m| keys::member(m.platform, m.id.as_str()))
            .collect(),
        has_keywords,
        regex,
        phone_kinds,
        links,
        mini_allow: rule
            .mini_programs
            .as_ref()
            .map(|m| m.allow.iter().cloned().collect()),
        banned_kinds: rule.banned_kinds.iter().fold(0, |m, k| m | k.bit()),
        flood,
        duplicates: rule.duplicates.clone(),
        invites: rule
            .invites
            .as_ref()
            .map(|i| (i.clone(), i.allow_orgs.iter().cloned().collect())),
        blacklist: rule.blacklist.clone(),
        // Checked above; a template that fails falls back to the default, and the set does
        // not compile anyway.
        warn_template: rule
            .warn_template
            .as_deref()
            .or(set.settings.warn_template.as_deref())
            .and_then(|t| Template::parse(t).ok())
            .unwrap_or_else(default_warn_template),
        rung_labels: rule.ladder.iter().map(ToString::to_string).collect(),
        rule: rule.clone(),
    }
}

fn apply_whitelist(set: &RuleSet, rules: &mut [CompiledRule]) {
    for entry in &set.whitelist {
        let member = keys::member(entry.member.platform, entry.member.id.as_str());
        for rule in rules.iter_mut() {
            if entry.rules.is_empty() || entry.rules.contains(&rule.rule.id) {
                rule.exempt_members.insert(member);
            }
        }
    }
}

fn resolve_groups(set: &RuleSet, rules: &[CompiledRule]) -> FxHashMap<u64, GroupEntry> {
    let mut groups: FxHashMap<u64, (Platform, Vec<&str>, GroupEntry)> = FxHashMap::default();
    for (i, g) in set.groups.iter().enumerate() {
        groups.insert(
            keys::group(g.id.platform, g.id.id.as_str()),
            (
                g.id.platform,
                g.tags.iter().map(String::as_str).collect(),
                GroupEntry {
                    home_org: g.home_org.clone(),
                    owner: g.owner.clone(),
                    rules: Box::new([]),
                    config: Some(i as u32),
                },
            ),
        );
    }
    for rule in rules {
        for g in &rule.rule.scope.groups {
            groups
                .entry(keys::group(g.platform, g.id.as_str()))
                .or_insert_with(|| {
                    (
                        g.platform,
                        Vec::new(),
                        GroupEntry {
                            home_org: None,
                            owner: None,
                            rules: Box::new([]),
                            config: None,
                        },
                    )
                });
        }
    }
    // Which rules name each group, and which rules each tag brings in: every scope entry is
    // hashed once, not once per group known.
    let mut named: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    let mut by_tag: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
    let mut everywhere = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let scope = &rule.rule.scope;
        if scope.is_unrestricted() {
            everywhere.push(i as u32);
            continue;
        }
        for g in &scope.groups {
            named
                .entry(keys::group(g.platform, g.id.as_str()))
                .or_default()
                .push(i as u32);
        }
        for tag in &scope.tags {
            by_tag.entry(tag.as_str()).or_default().push(i as u32);
        }
    }
    let mut resolved = FxHashMap::default();
    resolved.reserve(groups.len());
    for (group_key, (platform, tags, mut entry)) in groups {
        let mut in_scope: Vec<u32> = everywhere.clone();
        in_scope.extend(named.get(&group_key).into_iter().flatten());
        for tag in &tags {
            in_scope.extend(by_tag.get(tag).into_iter().flatten());
        }
        in_scope.retain(|&i| {
            let r = &rules[i as usize];
            r.platforms == 0 || r.platforms & platform_bit(platform) != 0
        });
        // In rule order, each once (a rule may name a group and share one of its tags).
        in_scope.sort_unstable();
        in_scope.dedup();
        entry.rules = in_scope.into_boxed_slice();
        resolved.insert(group_key, entry);
    }
    resolved
}

fn state_needs(rules: &[CompiledRule]) -> StateNeeds {
    let mut needs = StateNeeds::default();
    for r in rules {
        if let Some(FloodCheck {
            messages: Some(n),
            per: Some(per),
            ..
        }) = &r.flood
        {
            needs.flood_capacity = needs.flood_capacity.max(*n as usize + 1);
            needs.flood_window_ms = needs.flood_window_ms.max(duration_millis(*per));
        }
        if let Some(d) = &r.duplicates {
            needs.duplicate_window_ms = needs.duplicate_window_ms.max(duration_millis(d.window));
        }
        needs.decay_ms = needs.decay_ms.max(duration_millis(r.rule.decay));
    }
    needs
}

#[cfg(test)]
mod tests;
