//! Flood windows: the recent message times of each member in each group.
//!
//! Most members post once in a window: a window of one message is a key and a time in a slot
//! of a fixed table of cache-line buckets (16 bytes; 65,536 slots), found by the key's bits,
//! and let go by being overwritten once idle, with no record, no table entry and no sweep.
//! A second message within the window, or a first one whose bucket is full of live slots,
//! makes a record (46 bytes for a limit of 10 messages).
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
//! Records are swept a few at a time, each checked twice per window of event time
//! ([`FloodWindows::sweep_paced`]): no pass over all, and no more work than the windows need.
//! A rule change that needs records of another size or tick starts a new generation of
//! records; the old one moves over a few records per message, and a window at once when its
//! member posts: re-encoding a million windows in one event had held it up for 220 ms.

use hashbrown::HashTable;

use super::lines::KeyedLine;

/// Words before a record's times: key (4), last message tick (2), count (1).
const HEAD: usize = 7;
/// Records per chunk: a chunk of memory given back and taken again is zeroed at once, and at
/// 4,096 records (229 KB for a limit of 20) that held a message up for 0.5–1.4 ms on a VM.
const PER_CHUNK: usize = 1024;
/// The most times a window keeps (the largest flood limit + 1).
const MAX_CAPACITY: usize = crate::compile::MAX_FLOOD_MESSAGES as usize + 1;
/// The most ticks a window may span, so that ages modulo 2^16 stay exact.
const MAX_TICKS: i64 = i16::MAX as i64;
/// Parts of the table that finds a record: a part of a million windows' table rehashes about
/// 3,900 of them, each read from its record at a random place.
const TABLE_PARTS: usize = 256;
/// How many times each window is checked for idleness per window length of event time.
const LOOKS_PER_WINDOW: u64 = 2;
/// Windows checked in a row: fewer, more regular runs of the sweep than a few at every event.
const SWEEP_BATCH: usize = 8;
/// The most batches at one event: after a quiet spell, the sweep catches up over several
/// events rather than holding one up.
const MOST_BATCHES: usize = 4;
/// Records of the previous generation moved at each event, at least, after a rule change.
const MOVED_PER_EVENT: usize = 8;
/// The bit of a table entry that tells the generation of records it is in; the other bits
/// are its index there.
const GENERATION: u32 = 1 << 31;

/// The part of the table that finds `key`: bits from the key's middle, since a part's table
/// takes its slot from the low bits and its tag from the top ones.
fn part_of(key: u64) -> usize {
    (key >> 48) as usize % TABLE_PARTS
}

fn index_of(entry: u32) -> usize {
    (entry & !GENERATION) as usize
}

/// Where a window is, from recording a message in it until a window is removed: the checks of
/// the same event read it without finding it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WindowAt {
    /// A record's index.
    Record(usize),
    /// A window of one message, the event's own, in the table of first messages.
    FirstMessage,
}

/// Buckets of the table of first messages: 16,384 of [`PER_BUCKET`] slots, 1 MiB.
const FIRST_BUCKETS: usize = 1 << 14;
const PER_BUCKET: usize = 4;
/// The time of a slot that holds no message: zero, so that a table of empty buckets is
/// memory the system hands over zeroed, touched only as it is used.
const EMPTY: i64 = 0;

/// Keys of windows that hold one message, and the message's time, a cache line apiece.
type Bucket = KeyedLine<i64, PER_BUCKET>;

const _: () = assert!(size_of::<Bucket>() == 64);

impl Bucket {
    /// Whether slot `s` holds a message within `window_ms` before `now_ms`.
    fn holds(&self, s: usize, now_ms: i64, window_ms: i64) -> bool {
        let at = self.values[s];
        at != EMPTY && within(at, now_ms, window_ms)
    }
}

/// A table of empty buckets.
#[allow(unsafe_code)]
fn empty_buckets(len: usize) -> Box<[Bucket]> {
    // SAFETY: a bucket is integers only, and zero is an empty one.
    unsafe { Box::new_zeroed_slice(len).assume_init() }
}

/// Whether a message at `at` is within `window_ms` before `now_ms`, and not after it.
fn within(at: i64, now_ms: i64, window_ms: i64) -> bool {
    (0..window_ms).contains(&now_ms.wrapping_sub(at))
}

/// What the table of first messages did with a message.
enum First {
    /// Kept as the window's only message.
    Kept,
    /// The window's second message: the first was at this time, and is no longer kept.
    Second(i64),
    /// No room in the key's bucket.
    Full,
}

fn bucket_of(key: u64) -> usize {
    (key >> 32) as usize % FIRST_BUCKETS
}

#[derive(Debug)]
pub(super) struct FloodWindows {
    /// Windows of one message: most members post once in a window, and a slot here is
    /// found, kept and let go without the table, a record or the sweep.
    firsts: Box<[Bucket]>,
    table: Box<[HashTable<u32>]>,
    records: Generations,
    window_ticks: i64,
    cursor: usize,
    /// The (capacity, window) last fitted to, so that fitting again, at every message, is
    /// one comparison.
    fitted: Option<(usize, i64)>,
    /// The event time of the last paced sweep.
    paced_at: i64,
    /// Checks owed since then, in window-milliseconds (divided by the window: whole checks).
    owed: u64,
    /// How many windows there were when the sweep's pass began: the pace holds until the
    /// pass ends, however many it drops.
    pass_len: usize,
}

impl Default for FloodWindows {
    fn default() -> Self {
        FloodWindows {
            // Made with the engine: first touching all of it at its first message had held
            // that message up for 0.3 ms.
            firsts: empty_buckets(FIRST_BUCKETS),
            table: (0..TABLE_PARTS).map(|_| HashTable::new()).collect(),
            records: Generations::default(),
            window_ticks: 0,
            cursor: 0,
            fitted: None,
            paced_at: i64::MIN,
            owed: 0,
            pass_len: 0,
        }
    }
}

/// Records as the rules need them now, and those laid out for the rules before the last
/// change of their size or tick, until all have moved.
#[derive(Debug, Default)]
struct Generations {
    current: Records,
    previous: Records,
    /// The [`GENERATION`] bit of `current`'s table entries; `previous`'s have the other.
    current_bit: u32,
}

impl Generations {
    fn is_current(&self, entry: u32) -> bool {
        entry & GENERATION == self.current_bit
    }

    fn of(&self, entry: u32) -> &Records {
        if self.is_current(entry) {
            &self.current
        } else {
            &self.previous
        }
    }

    fn key_at(&self, entry: u32) -> u64 {
        key_of(self.of(entry).record(index_of(entry)))
    }

    /// The table entry of the last record of the previous generation, if any is left.
    fn last_previous(&self) -> Option<u32> {
        let last = self.previous.len.checked_sub(1)?;
        Some(last as u32 | (self.current_bit ^ GENERATION))
    }
}

/// Records of one size and tick, in chunks.
#[derive(Debug, Default)]
struct Records {
    chunks: Vec<Box<[u16]>>,
    len: usize,
    /// Times kept per window: the largest flood limit + 1.
    capacity: usize,
    tick_ms: i64,
}

impl Records {
    fn stride(&self) -> usize {
        HEAD + self.capacity
    }

    /// The tick of `millis`, rounded down. Most windows tick in milliseconds, where this
    /// divides nothing (a record set not sized yet ticks in them too).
    #[inline(always)]
    fn tick_of(&self, millis: i64) -> i64 {
        match self.tick_ms {
            ..=1 => millis,
            tick_ms => millis.div_euclid(tick_ms),
        }
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

    /// Appends an empty record for `key`.
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
        i
    }

    /// Removes record `i`, moving the last record into its place; returns that record's key
    /// and former index if one moved.
    fn swap_remove(&mut self, i: usize) -> Option<(u64, usize)> {
        let last = self.len - 1;
        let moved = (i != last).then(|| {
            let mut moved = [0u16; HEAD + MAX_CAPACITY];
            let record = self.record(last);
            moved[..record.len()].copy_from_slice(record);
            let stride = self.stride();
            self.record_mut(i).copy_from_slice(&moved[..stride]);
            (key_of(&moved), last)
        });
        self.len -= 1;
        if self.len.div_ceil(PER_CHUNK) < self.chunks.len() {
            self.chunks.pop();
        }
        moved
    }

    /// Copies record `i` of `from` into record `j`, re-encoded for this size and tick, as of
    /// `now_ms` (ticks are kept modulo 2^32, so the time places them): the newest times stay.
    fn encode_from(&mut self, j: usize, from: &Records, i: usize, now_ms: i64) {
        let r = from.record(i);
        let now = from.tick_of(now_ms);
        let last_tick = now - ticks_since_last(r, now);
        let last_low = last_tick as u16;
        let times = &r[HEAD..HEAD + usize::from(r[6])];
        let times = &times[times.len().saturating_sub(self.capacity)..];
        let millis = |tick: i64| tick * from.tick_ms;
        let tick_ms = self.tick_ms;
        let to = self.record_mut(j);
        set_last(to, millis(last_tick).div_euclid(tick_ms));
        to[6] = times.len() as u16;
        for (slot, &t) in to[HEAD..].iter_mut().zip(times) {
            let at = last_tick - i64::from(last_low.wrapping_sub(t));
            *slot = millis(at).div_euclid(tick_ms) as u16;
        }
    }
}

fn key_of(record: &[u16]) -> u64 {
    record[..4]
        .iter()
        .fold(0, |key, &w| (key << 16) | u64::from(w))
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
#[inline(always)]
fn ticks(millis: i64, tick_ms: i64) -> i64 {
    match tick_ms {
        // A division takes a message longer than the rest of its flood check.
        ..=1 => millis.max(0),
        _ => (millis.max(0) as u64).div_ceil(tick_ms as u64) as i64,
    }
}

impl FloodWindows {
    /// Windows tracked, as of the last event.
    pub(super) fn len(&self) -> usize {
        let window_ms = self.window_ms();
        let firsts = (self.firsts.iter())
            .map(|b| (0..PER_BUCKET).filter(|&s| b.holds(s, self.paced_at, window_ms)))
            .map(Iterator::count)
            .sum::<usize>();
        firsts + self.records.current.len + self.records.previous.len
    }

    /// The longest flood window, in milliseconds (0 before the first fit).
    fn window_ms(&self) -> i64 {
        self.fitted.map_or(0, |(_, window_ms)| window_ms)
    }

    /// Notes a message of `key`, which has no record, in its bucket of first messages.
    fn note_first(&mut self, key: u64, now_ms: i64) -> First {
        let window_ms = self.window_ms();
        let bucket = &mut self.firsts[bucket_of(key)];
        if let Some(s) = bucket.slot_of(key) {
            let at = bucket.values[s];
            if bucket.holds(s, now_ms, window_ms) {
                bucket.values[s] = EMPTY;
                return First::Second(at);
            }
            bucket.values[s] = now_ms;
            return First::Kept;
        }
        match (0..PER_BUCKET).find(|&s| !bucket.holds(s, now_ms, window_ms)) {
            Some(s) => {
                bucket.keys[s] = key;
                bucket.values[s] = now_ms;
                First::Kept
            }
            None => First::Full,
        }
    }

    fn find(&self, key: u64) -> Option<u32> {
        self.table[part_of(key)]
            .find(key, |&entry| self.records.key_at(entry) == key)
            .copied()
    }

    /// Asks the processor for the record of `key`'s window, if it has one, so that recording
    /// a message in it a little later does not wait for memory. The first table entry whose
    /// hash tag matches is taken without reading its record to confirm it: a prefetch of the
    /// wrong record (a tag shared by chance, one probed slot in 128) costs nothing.
    pub(super) fn prefetch(&self, key: u64) {
        let mut candidate = None;
        self.table[part_of(key)].find(key, |&entry| {
            candidate = Some(entry);
            true
        });
        match candidate {
            Some(entry) => {
                crate::prefetch::prefetch(&self.records.of(entry).record(index_of(entry))[0])
            }
            None => {
                crate::prefetch::prefetch(&self.firsts[bucket_of(key)]);
            }
        }
    }

    /// Points the table entry `from` of `key` at `to`.
    fn retarget(&mut self, key: u64, from: u32, to: u32) {
        if let Some(entry) = self.table[part_of(key)].find_mut(key, |&e| e == from) {
            *entry = to;
        }
    }

    /// Sizes records for `capacity` times and windows up to `window_ms`; when the rules
    /// changed either, records of another size or tick start a new generation, into which
    /// the current ones move a few at a time.
    pub(super) fn fit(&mut self, capacity: usize, window_ms: i64, now_ms: i64) {
        let fitted = Some((capacity, window_ms));
        if fitted == self.fitted {
            return;
        }
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let tick_ms = ticks(window_ms, MAX_TICKS).max(1);
        self.window_ticks = ticks(window_ms, tick_ms);
        self.fitted = fitted;
        let current = &self.records.current;
        if capacity == current.capacity && tick_ms == current.tick_ms {
            // The records stay as they are; only how long a window is changed.
            return;
        }
        // One change moves at a time: what an earlier one left behind moves now.
        while let Some(entry) = self.records.last_previous() {
            self.move_to_current(entry, now_ms);
        }
        let fresh = Records {
            capacity,
            tick_ms,
            ..Records::default()
        };
        let records = &mut self.records;
        records.previous = std::mem::replace(&mut records.current, fresh);
        records.current_bit ^= GENERATION;
        self.cursor = 0;
    }

    /// Moves the previous generation's record of table entry `entry` into the current one.
    fn move_to_current(&mut self, entry: u32, now_ms: i64) -> usize {
        let Generations {
            current,
            previous,
            current_bit,
        } = &mut self.records;
        let i = index_of(entry);
        let key = key_of(previous.record(i));
        let j = current.push(key);
        current.encode_from(j, previous, i, now_ms);
        let to = j as u32 | *current_bit;
        self.retarget(key, entry, to);
        self.drop_record(entry);
        j
    }

    /// Appends an empty record for `key`, and finds it from then on.
    fn push(&mut self, key: u64) -> usize {
        let records = &mut self.records;
        let i = records.current.push(key);
        let entry = i as u32 | records.current_bit;
        let records = &self.records;
        self.table[part_of(key)].insert_unique(key, entry, |&e| records.key_at(e));
        i
    }

    /// Records a message at `now_ms` in the window `key`, and returns where the window is
    /// until the next window is removed.
    pub(super) fn record_message(&mut self, key: u64, now_ms: i64) -> WindowAt {
        let i = match self.find(key) {
            Some(entry) if self.records.is_current(entry) => index_of(entry),
            Some(entry) => self.move_to_current(entry, now_ms),
            None => match self.note_first(key, now_ms) {
                First::Kept => return WindowAt::FirstMessage,
                First::Second(at) => {
                    let i = self.push(key);
                    let current = &mut self.records.current;
                    let first = current.tick_of(at);
                    let r = current.record_mut(i);
                    (r[HEAD], r[6]) = (first as u16, 1);
                    set_last(r, first);
                    i
                }
                First::Full => self.push(key),
            },
        };
        let now = self.records.current.tick_of(now_ms);
        let (capacity, window) = (self.records.current.capacity, self.window_ticks);
        let r = self.records.current.record_mut(i);
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
        WindowAt::Record(i)
    }

    /// Messages in the window `key` within `per_ms` before `now_ms`.
    #[cfg(test)]
    pub(super) fn count_recent(&mut self, key: u64, now_ms: i64, per_ms: i64) -> u32 {
        let i = match self.find(key) {
            Some(entry) if self.records.is_current(entry) => index_of(entry),
            Some(entry) => self.move_to_current(entry, now_ms),
            None => {
                let bucket = &self.firsts[bucket_of(key)];
                let per_ms = per_ms.min(self.window_ms());
                let held = (bucket.slot_of(key)).is_some_and(|s| bucket.holds(s, now_ms, per_ms));
                return u32::from(held);
            }
        };
        self.count_recent_at(WindowAt::Record(i), now_ms, per_ms)
    }

    /// [`FloodWindows::count_recent`] of the window just recorded at `window`, without
    /// finding it again.
    pub(super) fn count_recent_at(&self, window: WindowAt, now_ms: i64, per_ms: i64) -> u32 {
        let i = match window {
            WindowAt::Record(i) => i,
            // The event's own message.
            WindowAt::FirstMessage => return u32::from(per_ms > 0),
        };
        let current = &self.records.current;
        let r = current.record(i);
        let now = current.tick_of(now_ms);
        if !(0..self.window_ticks).contains(&ticks_since_last(r, now)) {
            return 0;
        }
        let per = ticks(per_ms, current.tick_ms);
        let now_low = now as u16;
        r[HEAD..HEAD + usize::from(r[6])]
            .iter()
            .filter(|&&t| i64::from(now_low.wrapping_sub(t)) < per)
            .count() as u32
    }

    /// Forgets the window `key`.
    pub(super) fn remove(&mut self, key: u64) {
        if let Some(entry) = self.find(key) {
            self.swap_remove(entry);
        }
        let bucket = &mut self.firsts[bucket_of(key)];
        if let Some(s) = bucket.slot_of(key) {
            bucket.values[s] = EMPTY;
        }
    }

    /// Removes the record of table entry `entry`, and the entry.
    fn swap_remove(&mut self, entry: u32) {
        let key = self.records.key_at(entry);
        if let Ok(found) = self.table[part_of(key)].find_entry(key, |&e| e == entry) {
            found.remove();
        }
        self.drop_record(entry);
    }

    /// Removes the record of table entry `entry` from its generation, whose last record
    /// takes its place.
    fn drop_record(&mut self, entry: u32) {
        let generation = entry & GENERATION;
        let records = if self.records.is_current(entry) {
            &mut self.records.current
        } else {
            &mut self.records.previous
        };
        if let Some((moved, from)) = records.swap_remove(index_of(entry)) {
            self.retarget(moved, from as u32 | generation, entry);
        }
    }

    /// Sweeps as many windows as the event time since the last call owes: every window is
    /// checked [`LOOKS_PER_WINDOW`] times per window length, so an idle one goes within half
    /// a window of going idle, and the work follows how many windows there are, not how
    /// many events come. Windows are checked [`SWEEP_BATCH`] at a time, at most
    /// [`MOST_BATCHES`] batches at one event; after a rule change, at least
    /// [`MOVED_PER_EVENT`] records move at each until the previous generation has.
    pub(super) fn sweep_paced(&mut self, now_ms: i64) {
        let last = self.paced_at;
        self.paced_at = last.max(now_ms);
        let window_ms = self.window_ms().max(0) as u64;
        let mut batches = 0;
        if window_ms > 0 && last != i64::MIN {
            // A quiet spell longer than a window owes no more than a window does.
            let elapsed = (now_ms - last).clamp(0, window_ms as i64) as u64;
            let windows = self.records.current.len.max(self.pass_len) as u64;
            let looks = windows.saturating_mul(LOOKS_PER_WINDOW * elapsed);
            let mut owed = self.owed.saturating_add(looks);
            // No division: a batch is owed once its share of window-milliseconds is.
            let batch = window_ms.saturating_mul(SWEEP_BATCH as u64);
            while owed >= batch && batches < MOST_BATCHES {
                owed -= batch;
                batches += 1;
            }
            // What the sweep at its fastest cannot catch up on is let go.
            self.owed = owed.min(batch.saturating_mul(MOST_BATCHES as u64));
        }
        let mut budget = batches * SWEEP_BATCH;
        if self.records.previous.len > 0 {
            budget = budget.max(MOVED_PER_EVENT);
        }
        if budget > 0 {
            self.sweep_some(now_ms, budget);
        }
    }

    /// Moves up to `budget` records of the previous generation (dropping those idle for a
    /// whole window), then checks the rest of `budget` windows from where the last call
    /// stopped and drops those idle at `now_ms`: memory follows activity without a pass
    /// over all.
    pub(super) fn sweep_some(&mut self, now_ms: i64, budget: usize) {
        let mut budget = budget;
        while budget > 0
            && let Some(entry) = self.records.last_previous()
        {
            budget -= 1;
            let previous = &self.records.previous;
            let now = previous.tick_of(now_ms);
            let window = ticks(
                self.window_ticks * self.records.current.tick_ms,
                previous.tick_ms,
            );
            if ticks_since_last(previous.record(index_of(entry)), now) >= window {
                self.swap_remove(entry);
            } else {
                self.move_to_current(entry, now_ms);
            }
        }
        let current = &self.records.current;
        let now = current.tick_of(now_ms);
        // The budget never exceeds the windows left, so each pass below uses up some of it.
        let mut budget = budget.min(current.len);
        while budget > 0 {
            let current = &self.records.current;
            if self.cursor >= current.len {
                self.cursor = 0;
                self.pass_len = current.len;
            }
            // The records up to the end of the cursor's chunk, read in a row.
            let (stride, first) = (current.stride(), self.cursor % PER_CHUNK);
            let count = budget.min(PER_CHUNK - first).min(current.len - self.cursor);
            let records =
                &current.chunks[self.cursor / PER_CHUNK][first * stride..][..count * stride];
            // By index rather than `chunks_exact`, which divides to find its remainder.
            let idle = (0..count)
                .position(|k| ticks_since_last(&records[k * stride..], now) >= self.window_ticks);
            match idle {
                Some(at) => {
                    self.cursor += at;
                    budget -= at + 1;
                    self.swap_remove(self.cursor as u32 | self.records.current_bit);
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

    /// Keys spread over the table's parts, as keyed hashes are.
    fn key(n: u64) -> u64 {
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Two messages of `key` at `at`: a window with a record (one message has none).
    fn post_twice(floods: &mut FloodWindows, key: u64, at: i64) {
        floods.record_message(key, at);
        floods.record_message(key, at);
    }

    #[test]
    fn a_first_message_needs_no_record_and_a_second_within_the_window_makes_one() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        assert_eq!(floods.record_message(1, T0), WindowAt::FirstMessage);
        assert_eq!(
            floods.count_recent_at(WindowAt::FirstMessage, T0, 10_000),
            1
        );
        assert_eq!((floods.records.current.len, floods.table[0].len()), (0, 0));
        floods.sweep_paced(T0);
        assert_eq!(floods.len(), 1);
        assert_eq!(floods.count_recent(1, T0 + 4_000, 5_000), 1);
        assert_eq!(
            floods.count_recent(1, T0 + 6_000, 5_000),
            0,
            "older than per"
        );
        // The second message within the window: a record with both.
        let second = floods.record_message(1, T0 + 9_000);
        assert_eq!(second, WindowAt::Record(0));
        assert_eq!(floods.count_recent_at(second, T0 + 9_000, 10_000), 2);
        assert_eq!(floods.count_recent_at(second, T0 + 9_000, 5_000), 1);
        // After a whole window, a message is a first message again.
        floods.remove(1);
        assert_eq!(
            floods.record_message(1, T0 + 20_000),
            WindowAt::FirstMessage
        );
        assert_eq!(
            floods.record_message(1, T0 + 40_000),
            WindowAt::FirstMessage
        );
        assert_eq!(floods.count_recent(1, T0 + 40_000, 10_000), 1);
        floods.sweep_paced(T0 + 40_000);
        assert_eq!(floods.len(), 1);
        floods.remove(1);
        assert_eq!(floods.count_recent(1, T0 + 40_000, 10_000), 0, "removed");
        floods.sweep_paced(T0 + 60_000);
        assert_eq!(floods.len(), 0);
    }

    #[test]
    fn first_messages_past_a_full_bucket_get_records_and_idle_slots_are_reused() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        // Keys of one bucket: the same bits above the 32nd.
        let same_bucket = |n: u64| (7 << 32) | n;
        for n in 0..PER_BUCKET as u64 {
            assert_eq!(
                floods.record_message(same_bucket(n), T0),
                WindowAt::FirstMessage
            );
        }
        let past = same_bucket(PER_BUCKET as u64);
        assert_eq!(floods.record_message(past, T0), WindowAt::Record(0));
        assert_eq!(floods.count_recent(past, T0, 10_000), 1);
        floods.sweep_paced(T0);
        assert_eq!(floods.len(), PER_BUCKET + 1);
        // A window later, the bucket's slots are free again.
        let later = same_bucket(100);
        assert_eq!(
            floods.record_message(later, T0 + 10_000),
            WindowAt::FirstMessage
        );
        for n in 0..PER_BUCKET as u64 {
            assert_eq!(floods.count_recent(same_bucket(n), T0 + 10_000, 10_000), 0);
        }
        assert_eq!(floods.count_recent(later, T0 + 10_000, 10_000), 1);
    }

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
    fn paced_sweeps_drop_idle_windows_within_half_a_window_a_few_at_a_time() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        // 10,000 members who post once in the first second, then one message a millisecond
        // from one who keeps posting.
        for k in 0..10_000 {
            post_twice(&mut floods, key(k), T0 + (k as i64) / 10);
        }
        let mut most_at_once = 0;
        let mut gone_at = None;
        for ms in 1_000..20_000 {
            let now = T0 + ms;
            let before = floods.len();
            floods.sweep_paced(now);
            most_at_once = most_at_once.max(before - floods.len());
            floods.record_message(key(10_000), now);
            if gone_at.is_none() && floods.len() == 1 {
                gone_at = Some(ms);
            }
        }
        // Idle from 11 s on: all gone by 16 s, at two windows checked a message (a batch of
        // eight every fourth).
        let gone_at = gone_at.expect("the idle windows go");
        assert!((11_000..=16_010).contains(&gone_at), "gone at {gone_at} ms");
        assert!(
            most_at_once <= SWEEP_BATCH,
            "{most_at_once} dropped at one message"
        );
        assert_eq!(
            floods.count_recent(key(10_000), T0 + 19_999, 10_000),
            11,
            "all it keeps"
        );

        // After a quiet hour, one message checks no more than its share.
        for k in 0..1_000 {
            post_twice(&mut floods, key(k), T0 + 20_000);
        }
        floods.sweep_paced(T0 + 3_600_000);
        assert_eq!(floods.len(), 1_001 - MOST_BATCHES * SWEEP_BATCH);
    }

    #[test]
    fn removing_and_sweeping_keep_every_other_window_findable() {
        let mut floods = FloodWindows::default();
        floods.fit(4, 10_000, T0);
        let n = PER_CHUNK as u64 * 8 + 10;
        for k in 0..n {
            let at = if k % 2 == 0 { T0 } else { T0 + 15_000 };
            post_twice(&mut floods, key(k), at);
        }
        // Spread over every part of the table, so records move between parts below.
        assert!(floods.table.iter().all(|part| part.len() > 10));
        floods.remove(0);
        assert_eq!(floods.len() as u64, n - 1);
        // At T0 + 20 s the even windows are idle.
        for _ in 0..n {
            floods.sweep_some(T0 + 20_000, 8);
        }
        assert_eq!(floods.len() as u64, n / 2);
        for k in 0..n {
            let count = floods.count_recent(key(k), T0 + 20_000, 10_000);
            assert_eq!(count, 2 * u32::from(k % 2 == 1), "window {k}");
        }
        assert_eq!(
            floods.records.current.chunks.len(),
            (n as usize / 2).div_ceil(PER_CHUNK)
        );
    }

    #[test]
    fn a_rule_change_moves_windows_a_few_at_a_time_and_a_posting_member_at_once() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        let n = PER_CHUNK as u64 * 3 + 5;
        for k in 0..n {
            post_twice(&mut floods, key(k), T0);
        }
        // A larger limit needs larger records: none is re-encoded by the change itself.
        floods.fit(21, 10_000, T0 + 1_000);
        assert_eq!(floods.records.previous.len as u64, n);
        assert_eq!(floods.len() as u64, n);
        floods.sweep_some(T0 + 1_000, 8);
        assert_eq!(floods.records.current.len, 8);
        assert_eq!(floods.len() as u64, n);
        // A member who posts finds their window moved, with its earlier messages.
        floods.record_message(key(0), T0 + 2_000);
        assert_eq!(floods.count_recent(key(0), T0 + 2_000, 10_000), 3);
        // A window not moved yet can be forgotten.
        floods.remove(key(1));
        assert_eq!(floods.count_recent(key(1), T0 + 2_000, 10_000), 0);
        let mut sweeps = 0;
        while floods.records.previous.len > 0 && sweeps < n {
            floods.sweep_some(T0 + 3_000, 8);
            sweeps += 1;
        }
        assert!(
            floods.records.previous.chunks.is_empty(),
            "memory given back"
        );
        assert_eq!(floods.len() as u64, n - 1);
        for k in 2..n {
            assert_eq!(
                floods.count_recent(key(k), T0 + 3_000, 10_000),
                2,
                "window {k}"
            );
        }
        // The new limit holds: 21 messages, then the oldest go.
        for i in 0..30 {
            floods.record_message(key(2), T0 + 3_000 + i);
        }
        assert_eq!(floods.count_recent(key(2), T0 + 3_100, 10_000), 21);
    }

    #[test]
    fn a_second_change_before_the_first_has_moved_everything_keeps_every_window() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        let n = PER_CHUNK as u64 + 100;
        for k in 0..n {
            floods.record_message(key(k), T0);
            floods.record_message(key(k), T0 + 500);
        }
        floods.fit(21, 10_000, T0 + 1_000);
        floods.sweep_some(T0 + 1_000, 8);
        // Windows over 32 s count in coarser ticks: another generation.
        floods.fit(21, 100_000, T0 + 1_000);
        assert_eq!(floods.records.previous.len as u64, n);
        assert_eq!(floods.records.current.len, 0);
        for k in 0..n {
            assert_eq!(
                floods.count_recent(key(k), T0 + 1_000, 100_000),
                2,
                "window {k}"
            );
        }
    }

    #[test]
    fn windows_idle_when_the_rules_change_are_dropped_not_moved() {
        let mut floods = FloodWindows::default();
        floods.fit(11, 10_000, T0);
        for k in 0..100 {
            post_twice(&mut floods, key(k), T0 + k as i64 * 100);
        }
        floods.fit(4, 10_000, T0 + 15_000);
        for _ in 0..100 {
            floods.sweep_some(T0 + 15_000, 8);
        }
        // Those posted less than 10 s before (after T0 + 5 s) are kept.
        assert_eq!(floods.len(), 49);
        assert_eq!(floods.records.previous.len, 0);
    }
}
