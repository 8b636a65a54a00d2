//! The engine: `evaluate(&event, now) -> Verdict`.
//!
//! Synchronous and pure apart from its own state: the rules come from an atomically swapped
//! [`CompiledRules`], the clock is passed in, and the [`EngineState`] (flood windows, duplicate
//! hashes, ladder counters, blacklist entries added by ladders) is owned here. Nothing is
//! executed; actions come back as values.
//!
//! # Memory
//!
//! State is bounded by activity, not by history: flood windows of one message sit in a fixed
//! table and are overwritten once idle; those of more are checked a few at a time, each twice
//! per longest flood window of event time, and those idle for that window are dropped (see
//! `engine::flood`); the duplicate-text and ladder tables, each in 256 parts
//! (`engine::shards`), have one part swept per 256th of a minute of event time: duplicate
//! texts older than the longest duplicate window and ladder counters whose violations have
//! all decayed go. No event pays for a pass over a whole table.
//! Only members who post in a group with a flood rule get a flood window; only violators get
//! ladder counters. A flood window costs 16 bytes of a fixed 1 MiB table while it holds one
//! message, then 46 bytes per (member, group) for a limit of 10 messages, table slot included; a text tracked for duplicates with one sender 38 bytes; a
//! ladder counter with one violation 36 bytes (measured: `docs/PERFORMANCE.md`).

mod checks;
mod duplicates;
mod flood;
mod ladder;
mod lines;
mod shards;
mod state;
mod text;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::compile::{CompiledRule, CompiledRules, ConfigError};
use crate::keys;
use crate::lists::BlacklistIndex;
use crate::model::{Event, EventKind, Member, MemberRef, RuleId, UserId};
use crate::ports::{StoreError, ViolationStore};
use crate::rule::{BlacklistEntry, RuleSet};
use crate::time::Timestamp;
use crate::verdict::{Outcome, Outcomes, SkipReason, Verdict};

use checks::Context;
use state::ladder_key;
pub use state::{EngineState, StateStats};
use text::{Scratch, TextAnalysis};

/// What the engine runs, each part swapped on its own while evaluation goes on (readers never
/// block): the compiled rules, which a rule change recompiles, and the blacklist index,
/// which a list change patches without touching a rule. Both sit behind one pointer, so that
/// an evaluation reads them with one atomic load and not two.
#[derive(Debug, Default)]
pub struct Live {
    running: ArcSwap<Running>,
}

/// The rules and the blacklist in force at once.
#[derive(Debug, Default)]
struct Running {
    rules: Arc<CompiledRules>,
    blacklist: Arc<BlacklistIndex>,
}

/// Shared access to what the engine runs: clone it to swap rules or lists from another task.
pub type RulesHandle = Arc<Live>;

impl Live {
    /// Compiled rules and a blacklist index.
    pub fn new(rules: CompiledRules, blacklist: BlacklistIndex) -> Live {
        Live {
            running: ArcSwap::from_pointee(Running {
                rules: Arc::new(rules),
                blacklist: Arc::new(blacklist),
            }),
        }
    }

    /// Compiles a rule set, its blacklist entries included.
    pub fn compile(set: RuleSet) -> Result<Live, Vec<ConfigError>> {
        let blacklist = BlacklistIndex::of_entries(&set.blacklist);
        Ok(Live::new(CompiledRules::compile(set)?, blacklist))
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<CompiledRules> {
        Arc::clone(&self.running.load().rules)
    }

    /// The blacklist in force.
    pub fn blacklist(&self) -> Arc<BlacklistIndex> {
        Arc::clone(&self.running.load().blacklist)
    }

    /// Swaps in both parts of `other`.
    pub fn replace(&self, other: Live) {
        retire(self.running.swap(other.running.into_inner()));
    }

    /// Swaps in new rules; the next evaluation uses them. The blacklist stays.
    pub fn swap_rules(&self, rules: CompiledRules) {
        let rules = Arc::new(rules);
        retire(self.running.rcu(|current| Running {
            rules: Arc::clone(&rules),
            blacklist: Arc::clone(&current.blacklist),
        }));
    }

    /// Swaps in a new blacklist index. The rules stay.
    pub fn swap_blacklist(&self, blacklist: BlacklistIndex) {
        let blacklist = Arc::new(blacklist);
        retire(self.running.rcu(|current| Running {
            rules: Arc::clone(&current.rules),
            blacklist: Arc::clone(&blacklist),
        }));
    }

    /// Adds or replaces `upserts` and drops the `removals` (member, owner) from the running
    /// blacklist. Concurrent changes are all kept.
    pub fn change_blacklist(
        &self,
        upserts: &[BlacklistEntry],
        removals: &[(MemberRef, Option<UserId>)],
    ) {
        retire(self.running.rcu(|current| Running {
            rules: Arc::clone(&current.rules),
            blacklist: Arc::new(current.blacklist.changed(upserts, removals)),
        }));
    }
}

/// Frees what was swapped out here, in the task that swapped it, rather than in an engine
/// still judging a message with it: freeing a large operator's rules takes milliseconds,
/// which no decision should wait for. An evaluation holds the rules for microseconds, so this
/// waits at most that long; if someone holds them longer, they free them.
fn retire<T>(mut old: Arc<T>) {
    for _ in 0..100_000 {
        match Arc::try_unwrap(old) {
            Ok(value) => return drop(value),
            Err(shared) => old = shared,
        }
        std::thread::yield_now();
    }
}

/// How often (in event time) idle state is swept.
pub(super) const SWEEP_EVERY_MS: i64 = 60_000;
/// The most violation times kept per (member, rule).
pub(super) const LADDER_MEMORY: usize = 16;
/// The most senders remembered per duplicated text.
pub(super) const DUPLICATE_SENDERS: usize = 64;
/// The longest excerpt kept in a violation record, in characters.
pub(super) const EXCERPT_CHARS: usize = 200;

/// The moderation engine.
#[derive(Debug)]
pub struct Engine {
    rules: RulesHandle,
    state: EngineState,
    scratch: Scratch,
    /// The rules that run for the event being judged, kept from one event to the next.
    eligible: Vec<usize>,
}

impl Engine {
    /// An engine running `live`.
    pub fn new(live: Live) -> Engine {
        Engine::with_handle(Arc::new(live))
    }

    /// An engine reading its rules from a shared handle.
    pub fn with_handle(rules: RulesHandle) -> Engine {
        Engine {
            rules,
            state: EngineState::default(),
            scratch: Scratch::default(),
            eligible: Vec::new(),
        }
    }

    /// The handle through which rules can be swapped.
    pub fn handle(&self) -> RulesHandle {
        Arc::clone(&self.rules)
    }

    /// The engine's state, for inspection.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Restores the ladder counters a restart would forget: every violation recorded within
    /// the longest decay of the running rules before `now`. Returns how many.
    pub async fn restore_ladders(
        &mut self,
        store: &dyn ViolationStore,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let since = now.minus(self.rules.rules().longest_decay());
        let history = store.ladder_history(since).await?;
        for (member, rule, at) in &history {
            self.restore_violation(member, rule, *at);
        }
        Ok(history.len())
    }

    /// Replays a stored violation so a restart forgets no warning.
    fn restore_violation(&mut self, member: &MemberRef, rule: &RuleId, at: Timestamp) {
        let key = ladder_key(keys::member(member.platform, member.id.as_str()), rule);
        let mut times = self.state.ladder.times(key);
        let at = state::seconds(at.millis());
        times.insert(times.partition_point(|&t| t <= at), at);
        self.state.ladder.set(key, times);
    }

    /// Judges one event at `now`.
    pub fn evaluate(&mut self, event: &Event, now: Timestamp) -> Verdict {
        // A guard, not an `Arc` clone: one atomic load of both parts, and no count of
        // references touched (a change still waits for the guard to go before freeing).
        let running = self.rules.running.load();
        let (rules, blacklist) = (&running.rules, &running.blacklist);
        self.state.sweep_if_due(now, &rules.needs);
        let member_key = keys::member(event.platform, event.member.id.as_str());
        let group_key = keys::group(event.platform, event.group.as_str());
        let mut ctx = Context {
            event,
            now,
            rules,
            blacklist,
            member_key,
            group_key,
            text: None,
        };

        let in_scope = rules.rules_for(event.platform, group_key);
        let mut outcomes = Outcomes::none_matched(rules.rule_ids.clone());
        let mut eligible = std::mem::take(&mut self.eligible);
        eligible.clear();
        for (i, rule) in rules.rules.iter().enumerate() {
            let skip = if !rule.rule.enabled {
                Some(SkipReason::Disabled)
            } else if in_scope.binary_search(&(i as u32)).is_err() {
                Some(SkipReason::OutOfScope)
            } else {
                skip_reason(rule, &event.member, member_key, &event.kind)
            };
            match skip {
                Some(reason) => outcomes.set(i, Outcome::Skipped(reason)),
                None => eligible.push(i),
            }
        }

        let eligible_rules = || eligible.iter().map(|&i| &rules.rules[i]);
        let counts_as_new = matches!(
            event.kind,
            EventKind::MessagePosted(_) | EventKind::Command { .. }
        );
        let min_chars = eligible_rules()
            .filter_map(|r| r.duplicates.as_ref().map(|d| d.min_chars))
            .min()
            .filter(|_| counts_as_new);
        // The window's record is asked of memory now, and read once the text is analysed.
        let flood_key = (counts_as_new
            && eligible_rules().any(|r| r.flood.as_ref().is_some_and(|f| f.messages.is_some())))
        .then(|| keys::pair(group_key, member_key));
        if let Some(key) = flood_key {
            self.state.flood.prefetch(key);
        }
        let mut text_key = None;
        if let Some(text) = event.text() {
            let need_keywords = eligible_rules().any(|r| r.has_keywords);
            let need_skeleton = eligible_rules().any(|r| r.duplicates.is_some());
            let duplicates = &self.state.duplicates;
            ctx.text = Some(TextAnalysis::new(
                text,
                rules,
                need_keywords,
                need_skeleton,
                &mut self.scratch,
                |letters| {
                    // Letters and digits only: punctuation and spacing do not make spam new.
                    // The text's slots are asked of memory now, and read once the text is
                    // searched: a table this large is rarely in the cache.
                    if min_chars.is_some_and(|min| letters.len() >= min as usize) {
                        let key = keys::text(letters);
                        duplicates.prefetch(key);
                        text_key = Some(key);
                    }
                },
            ));
        }
        let flood_window = flood_key.map(|key| self.state.record_message(key, now, &rules.needs));
        if let EventKind::MemberLeft | EventKind::MemberRemoved { .. } = event.kind {
            self.state.flood.remove(keys::pair(group_key, member_key));
        }

        let mut verdict = Verdict {
            event: event.id.clone(),
            message: event.message_id(),
            at: now,
            platform: event.platform,
            group: event.group.clone(),
            member: event.member.id.clone(),
            outcomes,
            actions: Vec::new(),
            violations: Vec::new(),
        };
        let mut blacklisted = Vec::new();
        let mut duplicate_text = None;
        for &i in &eligible {
            let rule = &rules.rules[i];
            let mut hits = ctx.check_content(rule, i as u32, &self.state);
            // Recorded once, after the first rule's checks of the text, so that the text's
            // slots, asked for when it was folded, have come from memory by now.
            if let Some(key) = text_key.take() {
                duplicate_text =
                    Some(
                        self.state
                            .record_text(key, member_key, group_key, now, &rules.needs),
                    );
            }
            let counts = checks::Counts {
                flood: flood_window,
                duplicate: duplicate_text,
            };
            ctx.check_counts(rule, &counts, &self.state, &mut hits);
            if !hits.is_empty() {
                let found = self
                    .state
                    .punish(&ctx, rule, hits, &mut verdict, &mut blacklisted);
                verdict.outcomes.set(i, Outcome::Matched(found));
            }
        }
        self.state.blacklisted.extend(blacklisted);
        self.eligible = eligible;
        verdict
    }
}

fn skip_reason(
    rule: &CompiledRule,
    member: &Member,
    member_key: u64,
    kind: &EventKind,
) -> Option<SkipReason> {
    if rule.exempt_roles & (1 << (member.role as u8)) != 0 {
        return Some(SkipReason::ExemptRole { role: member.role });
    }
    if member.is_bot && rule.rule.exempt.bots {
        return Some(SkipReason::Bot);
    }
    if rule.exempt_members.contains(&member_key) {
        return Some(SkipReason::Whitelisted);
    }
    let applies = match kind {
        EventKind::MessagePosted(_) | EventKind::MessageEdited(_) | EventKind::Command { .. } => {
            rule.checks_messages()
        }
        EventKind::MemberJoined { .. } => rule.checks_joins(),
        EventKind::MemberLeft
        | EventKind::MemberRemoved { .. }
        | EventKind::GroupChanged(_)
        | EventKind::ListChanged(_) => false,
    };
    (!applies).then_some(SkipReason::NotApplicable)
}

#[cfg(test)]
mod tests;
