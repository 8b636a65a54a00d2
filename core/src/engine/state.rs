//! What the engine remembers between events, and the sweep that keeps it bounded.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::duplicates::{DuplicateSender, Duplicates, RecordedText};
use super::flood::{FloodWindows, WindowAt};
use super::shards::{PARTS, Shards};
use super::{LADDER_MEMORY, SWEEP_EVERY_MS};
use crate::compile::StateNeeds;
use crate::keys;
use crate::lists::ListMeta;
use crate::model::RuleId;
use crate::time::Timestamp;

/// The most table parts swept at one event.
const PARTS_PER_EVENT: usize = 4;

/// Counters the engine keeps between events.
#[derive(Debug, Default)]
pub struct EngineState {
    pub(super) flood: FloodWindows,
    pub(super) ladder: Ladders,
    pub(super) duplicates: Duplicates,
    pub(super) blacklisted: FxHashMap<u64, ListMeta>,
    pub(super) next_sweep: i64,
    next_part: usize,
}

/// Violation times per (member, rule), in whole seconds since the Unix epoch (a `u32` lasts
/// until 2106), oldest first. Most violators have one or two inside the decay window: those
/// sit in the map's own slot; a repeat offender's times move to `more`.
#[derive(Debug, Default)]
pub(super) struct Ladders {
    few: Shards<[u32; 2]>,
    more: Shards<SmallVec<[u32; LADDER_MEMORY]>>,
}

/// In `Ladders::few`: no time in this place.
const NO_TIME: u32 = 0;
/// In `Ladders::few`: the times are in `Ladders::more`.
const MOVED: [u32; 2] = [u32::MAX; 2];

/// Whole seconds since the Unix epoch, as state stores them.
pub(super) fn seconds(millis: i64) -> u32 {
    (millis.div_euclid(1000)).clamp(1, i64::from(u32::MAX - 1)) as u32
}

impl Ladders {
    /// The member's times under the rule, oldest first.
    pub(super) fn times(&self, key: u64) -> SmallVec<[u32; LADDER_MEMORY]> {
        match self.few.get(&key) {
            None => SmallVec::new(),
            Some(&MOVED) => self.more.get(&key).cloned().unwrap_or_default(),
            Some(few) => few.iter().copied().filter(|&t| t != NO_TIME).collect(),
        }
    }

    /// Replaces the times (oldest first, at most [`LADDER_MEMORY`] kept).
    pub(super) fn set(&mut self, key: u64, mut times: SmallVec<[u32; LADDER_MEMORY]>) {
        if times.len() > LADDER_MEMORY {
            times.drain(..times.len() - LADDER_MEMORY);
        }
        match times.as_slice() {
            [] => {
                self.few.remove(&key);
                self.more.remove(&key);
            }
            &[a] => self.set_few(key, [NO_TIME, a]),
            &[a, b] => self.set_few(key, [a, b]),
            _ => {
                self.few.insert(key, MOVED);
                self.more.insert(key, times);
            }
        }
    }

    fn set_few(&mut self, key: u64, few: [u32; 2]) {
        if self.few.insert(key, few) == Some(MOVED) {
            self.more.remove(&key);
        }
    }

    /// Keeps the counters of one part with a violation after `since` (seconds).
    fn retain_recent(&mut self, part: usize, since: u32) {
        self.more
            .retain_part(part, |_, times| times.last().is_some_and(|&t| t > since));
        let more = &self.more;
        self.few.retain_part(part, |key, few| match *few {
            MOVED => more.contains_key(key),
            [_, newest] => newest > since,
        });
    }

    pub(super) fn len(&self) -> usize {
        self.few.len()
    }

    #[cfg(test)]
    pub(super) fn clear(&mut self) {
        self.few.clear();
        self.more.clear();
    }
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

    /// Drops idle state, a little at a time: flood windows a batch at a time, paced by event
    /// time and how many there are, and one part of the duplicate and ladder tables per
    /// 256th of a minute of event time (after a quiet spell, a few parts per event until it
    /// has caught up), so every entry is looked at about once a minute.
    pub(super) fn sweep_if_due(&mut self, now: Timestamp, needs: &StateNeeds) {
        let now = now.millis();
        self.flood.sweep_paced(now);
        let slot = SWEEP_EVERY_MS / PARTS as i64;
        for _ in 0..PARTS_PER_EVENT {
            if now < self.next_sweep {
                return;
            }
            self.next_sweep = (self.next_sweep + slot).max(now - SWEEP_EVERY_MS);
            let part = self.next_part;
            self.next_part = (part + 1) % PARTS;
            let duplicate_since = seconds(now - needs.duplicate_window_ms);
            self.duplicates.retain_recent(part, duplicate_since);
            self.ladder
                .retain_recent(part, seconds(now - needs.decay_ms));
            if part == 0 {
                let now = Timestamp(now);
                self.blacklisted.retain(|_, meta| meta.is_active(now));
            }
        }
    }

    /// Records a message of a member in a group (`key` pairs the two).
    pub(super) fn record_message(
        &mut self,
        key: u64,
        now: Timestamp,
        needs: &StateNeeds,
    ) -> WindowAt {
        self.flood
            .fit(needs.flood_capacity, needs.flood_window_ms, now.millis());
        self.flood.record_message(key, now.millis())
    }

    /// Records who sent a text where.
    pub(super) fn record_text(
        &mut self,
        text: u64,
        member: u64,
        group: u64,
        now: Timestamp,
        needs: &StateNeeds,
    ) -> RecordedText {
        let sender = DuplicateSender {
            member: member as u32,
            group: group as u32,
            at: seconds(now.millis()),
        };
        let since = seconds(now.millis() - needs.duplicate_window_ms);
        self.duplicates.record(text, sender, since)
    }
}

/// The key of a member's counter for a rule.
pub(super) fn ladder_key(member_key: u64, rule: &RuleId) -> u64 {
    keys::pair(member_key, keys::rule(rule.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(t: &[u32]) -> SmallVec<[u32; LADDER_MEMORY]> {
        SmallVec::from_slice(t)
    }

    #[test]
    fn ladder_times_move_out_of_the_slot_and_back() {
        let mut ladders = Ladders::default();
        ladders.set(7, times(&[10]));
        assert_eq!(ladders.times(7).as_slice(), [10]);
        ladders.set(7, times(&[10, 20, 30]));
        assert_eq!(ladders.times(7).as_slice(), [10, 20, 30]);
        assert_eq!((ladders.len(), ladders.more.len()), (1, 1));
        ladders.set(7, times(&[30, 40]));
        assert_eq!(ladders.times(7).as_slice(), [30, 40]);
        assert!(ladders.more.is_empty(), "back in the slot");
        let many: Vec<u32> = (1..=20).collect();
        ladders.set(8, times(&many));
        assert_eq!(
            ladders.times(8).as_slice(),
            &many[4..],
            "the newest are kept"
        );
        (0..PARTS).for_each(|part| ladders.retain_recent(part, 35));
        assert_eq!(
            ladders.times(7).as_slice(),
            [30, 40],
            "a recent one keeps all"
        );
        assert!(ladders.times(8).is_empty() && ladders.more.is_empty());
        ladders.set(7, times(&[]));
        assert_eq!(ladders.len(), 0);
    }
}
