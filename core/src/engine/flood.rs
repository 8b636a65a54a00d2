//! Flood windows: the recent message times of each member in each group, 46 bytes apiece
//! for a limit of 10 messages.
//!
//! A window is a record of 16-bit words in a dense array: its key (4 words), the time of its
//! last message (2 words), how many times it holds (1 word), then that many message times,
//! oldest first. Times are ticks (1 ms, or coarser for windows over 32 s so that a window
//! spans at most 32,767 ticks) kept modulo 2^16: every time a window holds is within one
//! window of its last message, so the age of each is exact. The table that finds a record by
//! key holds only the record's 4-byte index, and the key (already a keyed hash) is its hash;
//! it is in parts that grow on their own, and records live in fixed-size chunks, so growing
//! never copies or rehashes the whole: at a million windows, one table rehashing all of them
//! had held one message up for 56 ms.
//! A few records are swept per message ([`FloodWindows::sweep_some`]): no pass over all.

use hashbrown::HashTable;

/// Words before a record's times: key (4), last message tick (2), count (1).
const HEAD: usize = 7;
/// Records per chunk.
const PER_CHUNK: usize = 4096;
/// The most times a window keeps (the largest flood limit + 1).
const MAX_CAPACITY: usize = crate::compile::MAX_FLOOD_MESSAGES as usize + 1;
/// The most ticks a window may span, so that ages modulo 2^16 stay exact.
const MAX_TICKS: i64 = i16::MAX as i64;
/// Parts of the table that finds a record: a part of a million windows' table rehashes about
/// 15,600 of them.
const TABLE_PARTS: usize = 64;

/// The part of the table that finds `key`: bits from the key's middle, since a part's table
/// takes its slot from the low bits and its tag from the top ones.
fn part_of(key: u64) -> usize {
    (key >> 48) as usize % TABLE_PARTS
}

/// Where a window is, from recording a message in it until a window is removed: the checks of
/// the same event read it without finding it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WindowAt(usize);

#[derive(Debug)]
pub(super) struct FloodWindows {
    table: Box<[HashTable<u32>]>,
    chunks: Vec<Box<[u16]>>,
    len: usize,
    /// Times kept per window: the largest flood limit + 1.
    capacity: usize,
    tick_ms: i64,
    window_ticks: i64,
    cursor: usize,
    /// The (capacity, window) last fitted to, so that fitting again, at every message, is
    /// one comparison.
    fitted: Option<(usize, i64)>,
}

impl Default for FloodWindows {
    fn default() -> Self {
        FloodWindows {
            table: (0..TABLE_PARTS).map(|_| HashTable::new()).collect(),
            chunks: Vec::new(),
            len: 0,
            capacity: 0,
            tick_ms: 0,
            window_ticks: 0,
            cursor: 0,
            fitted: None,
        }
    }
}

/// Ticks from a record's last message to tick `now` (negative for a message from before it).
fn ticks_since_last(record: &[u16], now: i64) -> i64 {
    let last = (u32::from(record[4]) << 16) | u32::from(record[5]);
    i64::from((now as u32).wrapping_sub(last) as i32)
}

/// Notes tick `tick` as a record's last message (kept modulo 2^32).
fn set_last(record: &mut [u16], tick: i64) {
    record[4] = ((tick as u32) >> 16) as u16;
    record[5] = tick as u16;
}

/// Ticks of `tick_ms` in `millis`, rounded up.
fn ticks(millis: i64, tick_ms: i64) -> i64 {
    (millis.max(0) as u64).div_ceil(tick_ms as u64) as i64
}

impl FloodWindows {
    /// Windows tracked.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn stride(&self) -> usize {
        HEAD + self.capacity
    }

    fn record(&self, i: usize) -> &[u16] {
        let stride = self.stride();
        let at = (i % PER_CHUNK) * stride;
        &self.chunks[i / PER_CHUNK][at..at + stride]
    }

    fn record_mut(&mut self, i: usize) -> &mut [u16] {
        let stride = self.stride();
        let at = (i % PER_CHUNK) * stride;
        &mut self.chunks[i / PER_CHUNK][at..at + stride]
    }

    fn key_of(record: &[u16]) -> u64 {
        record[..4]
            .iter()
            .fold(0, |key, &w| (key << 16) | u64::from(w))
    }

    fn find(&self, key: u64) -> Option<usize> {
        self.table[part_of(key)]
            .find(key, |&i| Self::key_of(self.record(i as usize)) == key)
            .map(|&i| i as usize)
    }

    /// Sizes records for `capacity` times and windows up to `window_ms`, converting every
    /// window (as of `now_ms`) when the rules changed either.
    pub(super) fn fit(&mut self, capacity: usize, window_ms: i64, now_ms: i64) {
        let fitted = Some((capacity, window_ms));
        if fitted == self.fitted {
            return;
        }
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let tick_ms = ticks(window_ms, MAX_TICKS).max(1);
        let window_ticks = ticks(window_ms, tick_ms);
        if capacity == self.capacity && tick_ms == self.tick_ms {
            // The records stay as they are; only how long a window is changed.
            self.window_ticks = window_ticks;
            self.fitted = fitted;
            return;
        }
        let old: Vec<(u64, i64, Vec<i64>)> =
            (0..self.len).map(|i| self.decode(i, now_ms)).collect();
        *self = FloodWindows {
            capacity,
            tick_ms,
            window_ticks,
            fitted,
            ..FloodWindows::default()
        };
        for (key, last, times) in old {
            let i = self.push(key);
            let keep = &times[times.len().saturating_sub(capacity)..];
            self.encode(i, last, keep);
        }
    }

    /// A record's key, last message time and message times, in milliseconds (ticks are kept
    /// modulo 2^32, so `now_ms` places them).
    fn decode(&self, i: usize, now_ms: i64) -> (u64, i64, Vec<i64>) {
        let r = self.record(i);
        let now = now_ms.div_euclid(self.tick_ms);
        let last_tick = now - ticks_since_last(r, now);
        let count = usize::from(r[6]);
        let last_low = last_tick as u16;
        let times = r[HEAD..HEAD + count]
            .iter()
            .map(|&t| (last_tick - i64::from(last_low.wrapping_sub(t))) * self.tick_ms)
            .collect();
        (Self::key_of(r), last_tick * self.tick_ms, times)
    }

    fn encode(&mut self, i: usize, last_ms: i64, times_ms: &[i64]) {
        let tick_ms = self.tick_ms;
        let r = self.record_mut(i);
        set_last(r, last_ms.div_euclid(tick_ms));
        r[6] = times_ms.len() as u16;
        for (slot, t) in r[HEAD..].iter_mut().zip(times_ms) {
            *slot = t.div_euclid(tick_ms) as u16;
        }
    }

    /// Appends an empty record for `key`, and finds it from then on.
    fn push(&mut self, key: u64) -> usize {
        let i = self.len;
        if i / PER_CHUNK == self.chunks.len() {
            self.chunks
                .push(vec![0; PER_CHUNK * self.stride()].into_boxed_slice());
        }
        self.len += 1;
        let r = self.record_mut(i);
        r.fill(0);
        for (w, shift) in r[..4].iter_mut().zip([48, 32, 16, 0]) {
            *w = (key >> shift) as u16;
        }
        let (chunks, stride) = (&self.chunks, self.stride());
        self.table[part_of(key)].insert_unique(key, i as u32, |&j| {
            let at = (j as usize % PER_CHUNK) * stride;
            Self::key_of(&chunks[j as usize / PER_CHUNK][at..at + stride])
        });
        i
    }

    /// Records a message at `now_ms` in the window `key`, and returns where the window is
    /// until the next window is removed.
    pub(super) fn record_message(&mut self, key: u64, now_ms: i64) -> WindowAt {
        let i = match self.find(key) {
            Some(i) => i,
            None => self.push(key),
        };
        let now = now_ms.div_euclid(self.tick_ms);
        let (capacity, window) = (self.capacity, self.window_ticks);
        let r = self.record_mut(i);
        let since_last = ticks_since_last(r, now);
        let mut count = usize::from(r[6]);
        if !(0..window).contains(&since_last) {
            // Idle for a whole window, or a message from before the last one: start over.
            count = 0;
        }
        let now_low = now as u16;
        let expired = r[HEAD..HEAD + count]
            .iter()
            .take_while(|&&t| i64::from(now_low.wrapping_sub(t)) >= window)
            .count();
        r.copy_within(HEAD + expired..HEAD + count, HEAD);
        count -= expired;
        if count == capacity {
            r.copy_within(HEAD + 1..HEAD + count, HEAD);
            count -= 1;
        }
        r[HEAD + count] = now_low;
        set_last(r, now);
        r[6] = (count + 1) as u16;
        WindowAt(i)
    }

    /// Messages in the window `key` within `per_ms` before `now_ms`.
    #[cfg(test)]
    pub(super) fn count_recent(&self, key: u64, now_ms: i64, per_ms: i64) -> u32 {
        self.find(key)
            .map_or(0, |i| self.count_recent_at(WindowAt(i), now_ms, per_ms))
    }

    /// [`FloodWindows::count_recent`] of the window just recorded at `window`, without
    /// finding it again.
    pub(super) fn count_recent_at(&self, window: WindowAt, now_ms: i64, per_ms: i64) -> u32 {
        let r = self.record(window.0);
        let now = now_ms.div_euclid(self.tick_ms);
        if !(0..self.window_ticks).contains(&ticks_since_last(r, now)) {
            return 0;
        }
        let per = ticks(per_ms, self.tick_ms);
        let now_low = now as u16;
        r[HEAD..HEAD + usize::from(r[6])]
            .iter()
            .filter(|&&t| i64::from(now_low.wrapping_sub(t)) < per)
            .count() as u32
    }

    /// Forgets the window `key`.
    pub(super) fn remove(&mut self, key: u64) {
        if let Some(i) = self.find(key) {
            self.swap_remove(i);
        }
    }

    /// Removes record `i`, moving the last record into its place.
    fn swap_remove(&mut self, i: usize) {
        let key = Self::key_of(self.record(i));
        let last = self.len - 1;
        let last_key = Self::key_of(self.record(last));
        if let Ok(entry) = self.table[part_of(key)].find_entry(key, |&j| j as usize == i) {
            entry.remove();
        }
        if i != last {
            if let Some(slot) =
                self.table[part_of(last_key)].find_mut(last_key, |&j| j as usize == last)
            {
                *slot = i as u32;
            }
            let mut moved = [0u16; HEAD + MAX_CAPACITY];
            let record = self.record(last);
            moved[..record.len()].copy_from_slice(record);
            let stride = self.stride();
            self.record_mut(i).copy_from_slice(&moved[..stride]);
        }
        self.len -= 1;
        if self.len.div_ceil(PER_CHUNK) < self.chunks.len() {
            self.chunks.pop();
        }
    }

    /// Checks up to `budget` windows, from where the last call stopped, and drops those idle
    /// for a whole window at `now_ms`: memory follows activity without a pass over all.
    pub(super) fn sweep_some(&mut self, now_ms: i64, budget: usize) {
        let now = now_ms.div_euclid(self.tick_ms.max(1));
        // The budget never exceeds the windows left, so each pass below uses up some of it.
        let mut budget = budget.min(self.len);
        while budget > 0 {
            if self.cursor >= self.len {
                self.cursor = 0;
            }
            // The records up to the end of the cursor's chunk, read in a row.
            let (stride, first) = (self.stride(), self.cursor % PER_CHUNK);
            let count = budget.min(PER_CHUNK - first).min(self.len - self.cursor);
            let records = &self.chunks[self.cursor / PER_CHUNK][first * stride..][..count * stride];
            let idle = records
                .chunks_exact(stride)
                .position(|r| ticks_since_last(r, now) >= self.window_ticks);
            match idle {
                Some(at) => {
                    self.cursor += at;
                    budget -= at + 1;
                    self.swap_remove(self.cursor);
                }
                None => {
                    self.cursor += count;
                    budget -= count;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_251_600_000;

    #[test]
    fn counts_are_exact_across_the_wrap_of_16_bit_ticks() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        // Start 5 ms before a multiple of 2^16 ms, so the times wrap inside the window.
        let start = (T0 / 65_536 + 1) * 65_536 - 5;
        for i in 0..10 {
            floods.record_message(42, start + i * 1_000);
        }
        let last = start + 9_000;
        assert_eq!(floods.count_recent(42, last, 10_000), 10);
        assert_eq!(floods.count_recent(42, last, 5_000), 5, "ages 0–4 s");
        assert_eq!(floods.count_recent(42, last + 1_000, 10_000), 9);
        assert_eq!(floods.count_recent(42, last + 20_000, 10_000), 0, "idle");
        assert_eq!(floods.count_recent(7, last, 10_000), 0, "another window");
    }

    #[test]
    fn a_window_keeps_its_capacity_and_starts_over_when_idle() {
        let mut floods = FloodWindows::default();
        floods.fit(3, 60_000, T0);
        for i in 0..10 {
            floods.record_message(1, T0 + i);
        }
        assert_eq!(floods.count_recent(1, T0 + 9, 60_000), 3);
        floods.record_message(1, T0 + 200_000);
        assert_eq!(floods.count_recent(1, T0 + 200_000, 60_000), 1);
    }

    #[test]
    fn long_windows_use_coarser_ticks_and_rule_changes_keep_the_windows() {
        let mut floods = FloodWindows::default();
        floods.fit(6, 3_600_000, T0);
        for i in 0..5 {
            floods.record_message(9, T0 + i * 600_000);
        }
        let last = T0 + 2_400_000;
        assert_eq!(floods.count_recent(9, last, 3_600_000), 5);
        assert_eq!(floods.count_recent(9, last, 1_300_000), 3);
        // A smaller limit and a shorter window: the newest times stay.
        floods.fit(3, 3_000_000, last);
        assert_eq!(floods.count_recent(9, last, 3_000_000), 3);
        floods.fit(11, 10_000, last);
        assert_eq!(floods.count_recent(9, last, 10_000), 1);
        assert_eq!(floods.len(), 1);
    }

    #[test]
    fn a_longer_window_after_a_rule_change_counts_over_its_whole_length() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        floods.record_message(5, T0);
        floods.record_message(5, T0 + 1_000);
        // Both windows are counted in 1 ms ticks: the records stay, the window grows.
        floods.fit(11, 20_000, T0 + 1_000);
        assert_eq!(floods.count_recent(5, T0 + 15_000, 20_000), 2);
        floods.sweep_some(T0 + 15_000, 8);
        floods.record_message(5, T0 + 15_000);
        assert_eq!(floods.count_recent(5, T0 + 15_000, 20_000), 3);
        // And back: the shorter window drops what is older than it.
        floods.fit(11, 10_000, T0 + 15_000);
        assert_eq!(floods.count_recent(5, T0 + 15_000, 10_000), 1);
    }

    #[test]
    fn removing_and_sweeping_keep_every_other_window_findable() {
        let mut floods = FloodWindows::default();
        floods.fit(4, 10_000, T0);
        let n = PER_CHUNK as u64 * 2 + 10;
        for key in 0..n {
            let at = if key % 2 == 0 { T0 } else { T0 + 15_000 };
            floods.record_message(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), at);
        }
        // Spread over every part of the table, so records move between parts below.
        assert!(floods.table.iter().all(|part| part.len() > 50));
        floods.remove(0);
        assert_eq!(floods.len() as u64, n - 1);
        // At T0 + 20 s the even windows are idle.
        for _ in 0..n {
            floods.sweep_some(T0 + 20_000, 8);
        }
        assert_eq!(floods.len() as u64, n / 2);
        for key in 0..n {
            let count =
                floods.count_recent(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), T0 + 20_000, 10_000);
            assert_eq!(count, u32::from(key % 2 == 1), "window {key}");
        }
        assert_eq!(floods.chunks.len(), (n as usize / 2).div_ceil(PER_CHUNK));
    }
}
