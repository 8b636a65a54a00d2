//! Who recently sent each text, for the duplicate check: written at nearly every message,
//! and far larger than the processor's caches (a minute of a busy stream is some 80,000
//! texts), so laid out to wait on memory as little as it can.
//!
//! A text's key has two buckets of three slots; a bucket is one cache line, the slots' keys
//! and senders together. As soon as a message is folded, its text's two lines are asked of
//! memory ([`Duplicates::prefetch`]); they are read after the text's other checks, by when
//! they have come. A new text goes in a free slot of the emptier of its buckets, or takes one
//! from a text that moves to its other bucket, as in a cuckoo table, so a part fills to about
//! two thirds before it grows. A slot whose sender is older than the window is free again;
//! the sweep also frees them, one part at a time, so that [`Duplicates::len`] counts recent
//! texts. The table is in parts, as the other large tables are ([`super::shards`]): a part
//! grows (doubling, dropping what expired) on its own.

use smallvec::SmallVec;

use super::DUPLICATE_SENDERS;
use super::lines::KeyedLine;
use super::shards::{PARTS, Shards, part_of};

/// A sender of a text: the low 32 bits of the member's and the group's keys (two members
/// mistaken for one, once in four billion pairs, only undercount), and when, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct DuplicateSender {
    pub(super) member: u32,
    pub(super) group: u32,
    pub(super) at: u32,
}

impl DuplicateSender {
    /// In a slot: the text's senders are in [`Duplicates::more`]; `at` is the newest one's
    /// time, so the slot frees up when the list has gone stale. A sender whose member and
    /// group keys both end in 32 zero bits reads as this, once in 2^64.
    fn several(at: u32) -> DuplicateSender {
        DuplicateSender {
            member: 0,
            group: 0,
            at,
        }
    }

    fn is_several(&self) -> bool {
        self.member == 0 && self.group == 0
    }

    fn same_sender(&self, other: &DuplicateSender) -> bool {
        self.member == other.member && self.group == other.group
    }
}

/// A text's senders as recording it left them: nearly always one, carried here so that the
/// checks of the same event need not look the text up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordedText {
    /// Its only sender.
    One(DuplicateSender),
    /// Sent by several; the text's key.
    Several(u64),
}

/// The key a text is kept under: 0 marks an unused slot, so the one key that reads as it is
/// taken for 1.
fn slot_key(text: u64) -> u64 {
    text.max(1)
}

/// Slots a bucket.
const SLOTS: usize = 3;

/// One cache line: three texts' keys and their senders.
type Bucket = KeyedLine<DuplicateSender, SLOTS>;

const _: () = assert!(size_of::<Bucket>() == 64);

impl Bucket {
    /// Bits of the free slots: unused, or holding a text sent last at or before `since`.
    fn free_slots(&self, since: u32) -> u32 {
        (0..SLOTS).fold(0, |free, slot| {
            let is_free = self.keys[slot] == 0 || self.values[slot].at <= since;
            free | u32::from(is_free) << slot
        })
    }

    /// A free slot.
    fn free_slot(&self, since: u32) -> Option<usize> {
        first_slot(self.free_slots(since))
    }
}

/// The first slot of bits `slots`, if any.
fn first_slot(slots: u32) -> Option<usize> {
    (slots != 0).then(|| slots.trailing_zeros() as usize)
}

/// The most texts a new one moves along before its part grows.
const MOST_MOVES: usize = 8;

/// Buckets of a new part.
const FIRST_BUCKETS: usize = 2;

/// One part of the table.
#[derive(Debug)]
struct Part {
    /// Never empty.
    buckets: Vec<Bucket>,
    /// Slots holding a key, expired or not.
    used: usize,
}

impl Default for Part {
    fn default() -> Self {
        Part {
            buckets: vec![Bucket::unused(DuplicateSender::default()); FIRST_BUCKETS],
            used: 0,
        }
    }
}

impl Part {
    /// The two buckets of `key`, from bits the part was not chosen by.
    #[inline(always)]
    fn places(&self, key: u64) -> (usize, usize) {
        let n = self.buckets.len() as u64;
        let first = (u64::from(key as u32) * n) >> 32;
        let second = (((key >> 32) & 0xFF_FFFF) * n) >> 24;
        (first as usize, second as usize)
    }

    /// Where `key` is, or else a free slot for it in one of its buckets, if they have one.
    #[inline(always)]
    fn find(&self, key: u64, since: u32) -> Result<(usize, usize), Option<(usize, usize)>> {
        let (first, second) = self.places(key);
        let in_bucket = |at: usize, slot: Option<usize>| slot.map(|slot| (at, slot));
        let (a, b) = (&self.buckets[first], &self.buckets[second]);
        match in_bucket(first, a.slot_of(key)).or(in_bucket(second, b.slot_of(key))) {
            Some(place) => Ok(place),
            None => {
                // The emptier bucket: texts spread over both, so fewer new ones find both
                // full and move others.
                let (free_a, free_b) = (a.free_slots(since), b.free_slots(since));
                let (at, free) = if free_b.count_ones() > free_a.count_ones() {
                    (second, free_b)
                } else {
                    (first, free_a)
                };
                Err(first_slot(free).map(|slot| (at, slot)))
            }
        }
    }

    /// Puts a new `key` in `free`, or else makes room for it.
    #[inline(always)]
    fn insert(
        &mut self,
        key: u64,
        sender: DuplicateSender,
        since: u32,
        free: Option<(usize, usize)>,
    ) {
        match free {
            Some(place) => self.put(place, key, sender),
            None => self.insert_moving(key, sender, since),
        }
    }

    /// Puts a new `key` whose buckets are both full of recent texts: it takes a slot of one
    /// and the text there moves to its other bucket, and so on, as a cuckoo table does, until
    /// a text lands in a free slot; after [`MOST_MOVES`] the part grows. Without moving, a
    /// part would grow while half its slots were free. Out of line: the common insert, into
    /// a free slot, is a few instructions.
    #[inline(never)]
    fn insert_moving(&mut self, mut key: u64, mut sender: DuplicateSender, since: u32) {
        let mut at = self.places(key).0;
        for moves in 0..MOST_MOVES {
            let bucket = &mut self.buckets[at];
            let slot = moves % SLOTS;
            std::mem::swap(&mut bucket.keys[slot], &mut key);
            std::mem::swap(&mut bucket.values[slot], &mut sender);
            at = match self.places(key) {
                (first, second) if first == at => second,
                (first, _) => first,
            };
            if let Some(slot) = self.buckets[at].free_slot(since) {
                self.put((at, slot), key, sender);
                return;
            }
        }
        loop {
            self.grow(since);
            if let Err(Some(place)) = self.find(key, since) {
                self.put(place, key, sender);
                return;
            }
        }
    }

    fn put(&mut self, (at, slot): (usize, usize), key: u64, sender: DuplicateSender) {
        let bucket = &mut self.buckets[at];
        self.used += usize::from(bucket.keys[slot] == 0);
        bucket.keys[slot] = key;
        bucket.values[slot] = sender;
    }

    /// Twice the buckets, holding the texts sent after `since`.
    #[cold]
    fn grow(&mut self, since: u32) {
        let buckets = self.buckets.len() * 2;
        let old = std::mem::replace(
            &mut self.buckets,
            vec![Bucket::unused(DuplicateSender::default()); buckets],
        );
        self.used = 0;
        for bucket in &old {
            for (&key, &sender) in bucket.keys.iter().zip(&bucket.values) {
                if key != 0 && sender.at > since {
                    let free = self.find(key, since).err().flatten();
                    self.insert(key, sender, since, free);
                }
            }
        }
    }

    /// Frees the slots of texts sent last at or before `since`.
    fn retain_recent(&mut self, since: u32) {
        for bucket in &mut self.buckets {
            for (key, sender) in bucket.keys.iter_mut().zip(&bucket.values) {
                if *key != 0 && sender.at <= since {
                    *key = 0;
                    self.used -= 1;
                }
            }
        }
    }
}

/// Who recently sent each text (by the text's key). Most texts are sent once: their one
/// sender sits in the text's slot; a text sent by several has its senders in `more`.
#[derive(Debug)]
pub(super) struct Duplicates {
    parts: Box<[Part]>,
    more: Shards<SmallVec<[DuplicateSender; 4]>>,
}

impl Default for Duplicates {
    fn default() -> Self {
        Duplicates {
            parts: (0..PARTS).map(|_| Part::default()).collect(),
            more: Shards::default(),
        }
    }
}

impl Duplicates {
    /// Asks the processor for the buckets of the text of key `text`, so that recording it a
    /// little later does not wait for memory.
    pub(super) fn prefetch(&self, text: u64) {
        let text = slot_key(text);
        let part = &self.parts[part_of(text)];
        let (first, second) = part.places(text);
        crate::prefetch::prefetch(&part.buckets[first]);
        crate::prefetch::prefetch(&part.buckets[second]);
    }

    /// Records that `sender` sent the text of key `text`; senders at or before `since` (the
    /// window's start) no longer count.
    pub(super) fn record(
        &mut self,
        text: u64,
        sender: DuplicateSender,
        since: u32,
    ) -> RecordedText {
        let text = slot_key(text);
        let part = &mut self.parts[part_of(text)];
        let (at, slot) = match part.find(text, since) {
            Ok(place) => place,
            Err(free) => {
                part.insert(text, sender, since, free);
                return RecordedText::One(sender);
            }
        };
        let previous = &mut part.buckets[at].values[slot];
        if previous.is_several() {
            let senders = self.more.entry(text).or_default();
            senders.retain(|s| s.at > since && !s.same_sender(&sender));
            senders.push(sender);
            if senders.len() > DUPLICATE_SENDERS {
                senders.remove(0);
            }
            *previous = DuplicateSender::several(sender.at);
            RecordedText::Several(text)
        } else if previous.at > since && !previous.same_sender(&sender) {
            self.more
                .insert(text, SmallVec::from_slice(&[*previous, sender]));
            *previous = DuplicateSender::several(sender.at);
            RecordedText::Several(text)
        } else {
            *previous = sender;
            RecordedText::One(sender)
        }
    }

    /// The senders of a text just recorded, oldest first.
    pub(super) fn senders<'a>(&'a self, text: &'a RecordedText) -> &'a [DuplicateSender] {
        match text {
            RecordedText::One(sender) => std::slice::from_ref(sender),
            RecordedText::Several(key) => self.more.get(key).map_or(&[], |s| s.as_slice()),
        }
    }

    /// Texts tracked: those of the window, and those older not swept yet.
    pub(super) fn len(&self) -> usize {
        self.parts.iter().map(|p| p.used).sum()
    }

    /// Keeps the texts of one part sent after `since` (seconds).
    pub(super) fn retain_recent(&mut self, part: usize, since: u32) {
        self.more.retain_part(part, |_, senders| {
            senders.last().is_some_and(|s| s.at > since)
        });
        self.parts[part % PARTS].retain_recent(since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(member: u32, at: u32) -> DuplicateSender {
        DuplicateSender {
            member,
            group: 5,
            at,
        }
    }

    #[test]
    fn a_text_from_several_senders_keeps_each_once() {
        let mut d = Duplicates::default();
        let members = |d: &Duplicates, text: &RecordedText| -> Vec<u32> {
            d.senders(text).iter().map(|s| s.member).collect()
        };
        d.record(1, sender(100, 10), 0);
        let again = d.record(1, sender(100, 11), 0);
        assert_eq!(members(&d, &again), [100], "the same sender again");
        assert!(matches!(again, RecordedText::One(_)), "{again:?}");
        d.record(1, sender(200, 12), 0);
        let several = d.record(1, sender(300, 13), 0);
        assert_eq!(several, RecordedText::Several(1));
        assert_eq!(members(&d, &several), [100, 200, 300]);
        // After the window, the old senders drop out and the text is sent once again.
        let later = d.record(1, sender(400, 110), 50);
        assert_eq!(members(&d, &later), [400]);
        (0..PARTS).for_each(|part| d.retain_recent(part, 200));
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn a_million_texts_are_all_found_and_expired_slots_are_taken_again() {
        let mut d = Duplicates::default();
        let key = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        for i in 0..1_000_000u64 {
            let recorded = d.record(key(i), sender(i as u32 + 1, 100), 0);
            assert_eq!(recorded, RecordedText::One(sender(i as u32 + 1, 100)));
        }
        assert_eq!(d.len(), 1_000_000);
        // Each text again from another member: every one is found, and now sent by two.
        for i in (0..1_000_000u64).step_by(997) {
            let recorded = d.record(key(i), sender(0xFFFF_FFFF, 101), 0);
            assert_eq!(recorded, RecordedText::Several(key(i)), "text {i}");
        }
        let buckets: usize = d.parts.iter().map(|p| p.buckets.len()).sum();
        assert!(
            buckets * size_of::<Bucket>() <= 40 * 1_000_000,
            "at most 40 bytes a text: {buckets} buckets"
        );
        // After the window, half a million new texts fit in the slots of the old ones.
        for i in 1_000_000..1_500_000u64 {
            d.record(key(i), sender(7, 300), 200);
        }
        let after: usize = d.parts.iter().map(|p| p.buckets.len()).sum();
        assert_eq!(after, buckets, "no part grew");
        assert_eq!(
            d.record(key(5), sender(9, 301), 200),
            RecordedText::One(sender(9, 301)),
            "an expired text is new again"
        );
        (0..PARTS).for_each(|part| d.retain_recent(part, 300));
        assert_eq!(d.len(), 1, "only the text sent at 301 is left");
    }

    #[test]
    fn a_text_keyed_zero_is_kept() {
        let mut d = Duplicates::default();
        d.record(0, sender(1, 10), 0);
        assert_eq!(d.record(0, sender(2, 11), 0), RecordedText::Several(1));
        assert_eq!(d.len(), 1);
    }
}
