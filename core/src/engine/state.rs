//! What the engine remembers between events, and the sweep that keeps it bounded.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::{DUPLICATE_SENDERS, SWEEP_EVERY_MS};
use crate::compile::StateNeeds;
use crate::keys;
use crate::lists::ListMeta;
use crate::model::RuleId;
use crate::time::Timestamp;

/// Counters the engine keeps between events.
#[derive(Debug, Default)]
pub struct EngineState {
    pub(super) flood: FxHashMap<u64, FloodWindow>,
    pub(super) ladder: FxHashMap<u64, Vec<i64>>,
    /// Most texts are sent once: their one sender is stored inline, without an allocation.
    pub(super) duplicates: FxHashMap<u64, SmallVec<[DuplicateSender; 1]>>,
    pub(super) blacklisted: FxHashMap<u64, ListMeta>,
    pub(super) next_sweep: i64,
}

/// How much the state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateStats {
    /// (member, group) pairs with a flood window.
    pub flood_windows: usize,
    /// (member, rule) pairs with violations inside their decay window.
    pub ladder_counters: usize,
    /// Distinct recent texts tracked for duplicates.
    pub duplicate_texts: usize,
    /// Blacklist entries added by ladders since the rules were compiled.
    pub runtime_blacklist: usize,
}

/// Recent message times of one member in one group, relative to `base`.
#[derive(Debug)]
pub(super) struct FloodWindow {
    pub(super) base: i64,
    pub(super) times: VecDeque<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DuplicateSender {
    pub(super) member: u64,
    pub(super) group: u64,
    pub(super) at: i64,
}

impl EngineState {
    /// What the state holds.
    pub fn stats(&self) -> StateStats {
        StateStats {
            flood_windows: self.flood.len(),
            ladder_counters: self.ladder.len(),
            duplicate_texts: self.duplicates.len(),
            runtime_blacklist: self.blacklisted.len(),
        }
    }

    pub(super) fn sweep_if_due(&mut self, now: Timestamp, needs: &StateNeeds) {
        let now = now.millis();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY_MS;
        let flood_since = now - needs.flood_window_ms;
        self.flood.retain(|_, w| {
            w.times
                .back()
                .is_some_and(|&t| w.base + i64::from(t) > flood_since)
        });
        let duplicate_since = now - needs.duplicate_window_ms;
        self.duplicates
            .retain(|_, senders| senders.last().is_some_and(|s| s.at > duplicate_since));
        let decay_since = now - needs.decay_ms;
        self.ladder
            .retain(|_, times| times.last().is_some_and(|&t| t > decay_since));
        let now = Timestamp(now);
        self.blacklisted.retain(|_, meta| meta.is_active(now));
    }

    /// Records a message of a member in a group (`key` pairs the two).
    pub(super) fn record_message(&mut self, key: u64, now: Timestamp, needs: &StateNeeds) {
        let now = now.millis();
        let window = self.flood.entry(key).or_insert_with(|| FloodWindow {
            base: now,
            times: VecDeque::with_capacity(needs.flood_capacity),
        });
        let since = now - needs.flood_window_ms;
        while window
            .times
            .front()
            .is_some_and(|&t| window.base + i64::from(t) <= since)
        {
            window.times.pop_front();
        }
        if window.times.is_empty() || now < window.base {
            window.base = now;
            window.times.clear();
        } else if now - window.base > i64::from(u32::MAX / 2) {
            // Keep offsets small by moving the base up to the oldest time kept.
            let shift = window.times.front().copied().unwrap_or_default();
            window.base += i64::from(shift);
            window.times.iter_mut().for_each(|t| *t -= shift);
        }
        window.times.push_back((now - window.base) as u32);
        while window.times.len() > needs.flood_capacity.max(1) {
            window.times.pop_front();
        }
    }

    /// Records who sent a text where.
    pub(super) fn record_text(
        &mut self,
        text: u64,
        member: u64,
        group: u64,
        now: Timestamp,
        needs: &StateNeeds,
    ) {
        let now = now.millis();
        let senders = self.duplicates.entry(text).or_default();
        senders.retain(|s| {
            s.at > now - needs.duplicate_window_ms && !(s.member == member && s.group == group)
        });
        senders.push(DuplicateSender {
            member,
            group,
            at: now,
        });
        if senders.len() > DUPLICATE_SENDERS {
            senders.remove(0);
        }
    }
}

/// The key of a member's counter for a rule.
pub(super) fn ladder_key(member_key: u64, rule: &RuleId) -> u64 {
    keys::pair(member_key, keys::text(rule.as_str()))
}
