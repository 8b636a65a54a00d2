//! The blacklist index: millions of entries in a few bytes each.
//!
//! Entries are keyed by [`crate::keys`] values and kept in an array of slots, in key order,
//! with a fifth of the slots left empty: a key's place is computed from the key itself (its
//! share of the key space), and an entry sits at that place or just after it, behind the
//! entries pushed along before it. A lookup reads from there on, usually within one cache
//! line, and stops at the key, a larger key or an empty slot. Keys (8 bytes) and metadata
//! indexes are two parallel arrays, and a Bloom filter of 10 bits per entry before them turns
//! away 98 % of the lookups that miss, the common case, after one read of an array an eighth
//! the size of the keys. Reasons, sources and expiry times are shared between entries that
//! have the same ones (a bulk import shares one), so a metadata index takes 1 byte while there
//! are fewer than 255 of them, 2 below 65,535, else 4: an entry costs 12.5 to 16.25 bytes.
//! Being in key order, the arrays are built from a sorted stream in one pass, and a change
//! merges into a copy without sorting again.

use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::bloom::place;
use crate::keys;
use crate::model::{MemberRef, Platform, UserId};
use crate::rule::{BlacklistEntry, Source};
use crate::time::Timestamp;

/// What the index knows about an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListMeta {
    /// The owner of a personal list; none for the org-wide list.
    pub owner: Option<UserId>,
    /// Why.
    pub reason: Arc<str>,
    /// Who put them there.
    pub source: Source,
    /// Until when; none for never.
    pub expires_at: Option<Timestamp>,
}

impl ListMeta {
    /// Whether the entry still applies at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// An immutable set of keyed entries, and the few whose member is a pattern.
#[derive(Debug, Clone, Default)]
pub struct BlacklistIndex {
    /// Which keys may be here: most lookups miss, and this says so from a table an eighth
    /// the size of the keys.
    filter: KeyFilter,
    /// An empty slot holds `u64::MAX`, so a lookup stops there as at any larger key.
    keys: Box<[u64]>,
    /// Into the shared metadata table; [`EMPTY`] for an empty slot.
    metas: MetaIndexes,
    /// Slots a key can be placed at; the array runs on past them where the last entries were
    /// pushed along.
    places: usize,
    len: usize,
    table: Box<[ListMeta]>,
    patterns: Arc<[Pattern]>,
}

const EMPTY: u32 = u32::MAX;

/// What the blacklist index keeps of an entry: who, and its [`ListMeta`] (not when it was
/// made). Start-up reads the store in this form ([`crate::ports::ListStore::blacklist_index_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedEntry {
    /// The member, or a pattern of members.
    pub member: MemberRef,
    /// Whose list, why, from where, until when.
    pub meta: ListMeta,
}

impl IndexedEntry {
    /// What the index keeps of `entry`.
    pub fn of(entry: &BlacklistEntry) -> IndexedEntry {
        IndexedEntry {
            member: entry.member.clone(),
            meta: meta(entry),
        }
    }
}

/// An entry whose member id is a glob (`@*:spam.example`, `@spam*:*`): shared ban lists
/// (Matrix policy lists) ban whole servers and name patterns. `*` matches any run of
/// characters, `?` one.
#[derive(Debug, Clone)]
struct Pattern {
    platform: Platform,
    glob: String,
    owner: Option<UserId>,
    matcher: regex::Regex,
    meta: ListMeta,
}

/// Whether a member id is a pattern rather than one member.
pub fn is_pattern(id: &str) -> bool {
    id.contains(['*', '?'])
}

impl Pattern {
    fn of(e: &BlacklistEntry) -> Option<Pattern> {
        Pattern::new(&e.member, || meta(e))
    }

    fn new(member: &MemberRef, meta: impl FnOnce() -> ListMeta) -> Option<Pattern> {
        if !is_pattern(member.id.as_str()) {
            return None;
        }
        let mut source = String::from("^");
        for c in member.id.as_str().chars() {
            match c {
                '*' => source.push_str(".*"),
                '?' => source.push('.'),
                c => source.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        source.push('$');
        let meta = meta();
        Some(Pattern {
            platform: member.platform,
            glob: member.id.as_str().to_owned(),
            owner: meta.owner.clone(),
            matcher: regex::Regex::new(&source).ok()?,
            meta,
        })
    }

    /// Its place in key order: platform, glob, owner.
    fn key(&self) -> (&str, &str, Option<&str>) {
        let owner = self.owner.as_ref().map(UserId::as_str);
        (self.platform.as_str(), &self.glob, owner)
    }

    fn same(&self, member: &MemberRef, owner: Option<&UserId>) -> bool {
        self.platform == member.platform
            && self.glob == member.id.as_str()
            && self.owner.as_ref() == owner
    }
}

/// The key of a member on the org-wide list (no owner) or on an owner's personal list.
pub(crate) fn entry_key(member: &MemberRef, owner: Option<&UserId>) -> u64 {
    match owner {
        Some(owner) => keys::personal(member.platform, owner.as_str(), member.id.as_str()),
        None => keys::member(member.platform, member.id.as_str()),
    }
}

fn meta(e: &BlacklistEntry) -> ListMeta {
    ListMeta {
        owner: e.owner.clone(),
        reason: e.reason.as_str().into(),
        source: e.source.clone(),
        expires_at: e.expires_at,
    }
}

impl BlacklistIndex {
    /// The index of `entries`.
    pub fn of_entries<'a>(entries: impl IntoIterator<Item = &'a BlacklistEntry>) -> BlacklistIndex {
        let mut builder = BlacklistBuilder::default();
        entries.into_iter().for_each(|e| builder.add(e));
        builder.finish()
    }

    /// A copy with `upserts` added or replacing entries of the same member and owner, and the
    /// `removals` (member, owner) gone.
    pub fn changed(
        &self,
        upserts: &[BlacklistEntry],
        removals: &[(MemberRef, Option<UserId>)],
    ) -> BlacklistIndex {
        let keys: Vec<u64> = removals
            .iter()
            .map(|(member, owner)| entry_key(member, owner.as_ref()))
            .collect();
        let mut index = self.with_changes(
            upserts
                .iter()
                .map(|e| (entry_key(&e.member, e.owner.as_ref()), meta(e))),
            &keys,
        );
        let replaced = |p: &Pattern| {
            removals.iter().any(|(m, o)| p.same(m, o.as_ref()))
                || upserts.iter().any(|e| p.same(&e.member, e.owner.as_ref()))
        };
        index.patterns = self
            .patterns
            .iter()
            .filter(|p| !replaced(p))
            .cloned()
            .chain(upserts.iter().filter_map(Pattern::of))
            .collect();
        index
    }

    /// The entry that applies to `member` in a group owned by `owner`, if any (active or
    /// expired): the org-wide entry first, then the owner's personal one.
    pub fn entry(&self, member: &MemberRef, owner: Option<&UserId>) -> Option<&ListMeta> {
        self.get(entry_key(member, None))
            .or_else(|| self.matching(member.platform, member.id.as_str(), None))
            .or_else(|| {
                owner.and_then(|o| {
                    self.get(entry_key(member, Some(o)))
                        .or_else(|| self.matching(member.platform, member.id.as_str(), Some(o)))
                })
            })
    }

    /// The pattern entry on the org-wide list (or `owner`'s) that `id` matches, if any.
    pub fn matching(
        &self,
        platform: Platform,
        id: &str,
        owner: Option<&UserId>,
    ) -> Option<&ListMeta> {
        self.patterns
            .iter()
            .find(|p| p.platform == platform && p.owner.as_ref() == owner && p.matcher.is_match(id))
            .map(|p| &p.meta)
    }

    /// Builds the index. When a key appears twice, the later entry wins.
    pub fn build(entries: impl IntoIterator<Item = (u64, ListMeta)>) -> BlacklistIndex {
        let mut interner = Interner::default();
        let arrivals = entries
            .into_iter()
            .enumerate()
            .map(|(i, (key, meta))| arrival(key, interner.intern(meta), i))
            .collect();
        BlacklistIndex::from_arrivals(arrivals, interner.table)
    }

    /// A copy with `upserts` added (replacing entries with the same key) and `removals`
    /// gone: the sorted changes merged into the entries in one pass.
    pub fn with_changes(
        &self,
        upserts: impl IntoIterator<Item = (u64, ListMeta)>,
        removals: &[u64],
    ) -> BlacklistIndex {
        let mut interner = Interner::from_table(self.table.to_vec());
        let removed: rustc_hash::FxHashSet<u64> = removals.iter().copied().collect();
        let arrivals: Vec<Arrival> = upserts
            .into_iter()
            .enumerate()
            .map(|(i, (key, meta))| arrival(key, interner.intern(meta), i))
            .collect();
        // Sized for every upsert being new: a bulk change into a small index must not crowd
        // its keys into a few places, nor its filter into a few words.
        let at_most = self.len + arrivals.len();
        let changes = sorted_last_wins(arrivals);
        let kept = (0..self.keys.len())
            .map(|at| (self.keys[at], self.metas.get(at)))
            .filter(|(_, meta)| *meta != EMPTY);
        let merged = merge_last_wins(kept, changes).filter(|(key, _)| !removed.contains(key));
        let mut index = BlacklistIndex::from_sorted(merged, at_most, interner.table);
        index.patterns = Arc::clone(&self.patterns);
        index
    }

    fn from_arrivals(arrivals: Vec<Arrival>, table: Vec<ListMeta>) -> BlacklistIndex {
        // A key that came twice leaves a spare slot: too few to matter.
        let len = arrivals.len();
        BlacklistIndex::from_sorted(sorted_last_wins(arrivals), len, table)
    }

    /// Places entries given in strictly ascending key order; `expected` sizes the array
    /// (more or fewer entries still work, at another load).
    fn from_sorted(
        entries: impl Iterator<Item = (u64, u32)>,
        expected: usize,
        table: Vec<ListMeta>,
    ) -> BlacklistIndex {
        let places = expected + expected / 4 + 1;
        let mut keys = vec![u64::MAX; places];
        let mut metas = MetaIndexes::empty(places, table.len());
        let mut filter = KeyFilter::sized_for(expected, FILTER_BITS_PER_KEY);
        let mut next = 0;
        let mut len = 0;
        for (key, meta) in entries {
            filter.add(key);
            let at = place(key, places).max(next);
            if at == keys.len() {
                keys.push(u64::MAX);
                metas.push_empty();
            }
            keys[at] = key;
            metas.set(at, meta);
            next = at + 1;
            len += 1;
        }
        metas.shrink_to_fit();
        BlacklistIndex {
            filter,
            keys: keys.into(),
            metas,
            places,
            len,
            table: table.into(),
            patterns: Arc::default(),
        }
    }

    /// The entry for `key`, active or not.
    pub fn get(&self, key: u64) -> Option<&ListMeta> {
        if !self.filter.may_hold(key) {
            return None;
        }
        let from = place(key, self.places);
        let at = from + self.keys.get(from..)?.iter().position(|&k| k >= key)?;
        // An empty slot reads as `u64::MAX`: the key `u64::MAX` itself needs its metadata.
        match self.metas.get(at) {
            meta if self.keys[at] == key && meta != EMPTY => Some(&self.table[meta as usize]),
            _ => None,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes used by keys and metadata indexes (shared metadata excluded).
    pub fn heap_bytes(&self) -> usize {
        self.filter.heap_bytes() + self.keys.len() * 8 + self.metas.heap_bytes()
    }
}

/// The blacklist's filter: keys are already secret keyed hashes, so their bits serve as they
/// are, and the high bits that pick a key's slot pick its word, so an index built in key
/// order writes its filter from start to end. Three bits, and 10 bits a key: about 2 % of
/// absent keys pass.
type KeyFilter = crate::bloom::KeyFilter<3>;

/// Bits of the filter a key.
const FILTER_BITS_PER_KEY: usize = 10;

/// Metadata indexes, one a slot, as narrow as the shared table allows: entries share their
/// reasons, sources and expiry times (a bulk import shares one), so the indexes of most lists
/// fit in a byte, and the array that a hit reads besides the keys is a quarter of the size.
/// The largest value of each width marks an empty slot.
#[derive(Debug, Clone)]
enum MetaIndexes {
    Byte(Vec<u8>),
    Short(Vec<u16>),
    Word(Vec<u32>),
}

impl Default for MetaIndexes {
    fn default() -> MetaIndexes {
        MetaIndexes::Byte(Vec::new())
    }
}

impl MetaIndexes {
    /// `slots` empty slots for indexes into a table of `table` entries.
    fn empty(slots: usize, table: usize) -> MetaIndexes {
        if table < usize::from(u8::MAX) {
            MetaIndexes::Byte(vec![u8::MAX; slots])
        } else if table < usize::from(u16::MAX) {
            MetaIndexes::Short(vec![u16::MAX; slots])
        } else {
            MetaIndexes::Word(vec![EMPTY; slots])
        }
    }

    /// The index at slot `at`; [`EMPTY`] for an empty slot.
    #[inline]
    fn get(&self, at: usize) -> u32 {
        match self {
            MetaIndexes::Byte(m) => match m[at] {
                u8::MAX => EMPTY,
                meta => u32::from(meta),
            },
            MetaIndexes::Short(m) => match m[at] {
                u16::MAX => EMPTY,
                meta => u32::from(meta),
            },
            MetaIndexes::Word(m) => m[at],
        }
    }

    /// Sets slot `at` to `meta`, which the width was chosen for.
    fn set(&mut self, at: usize, meta: u32) {
        match self {
            MetaIndexes::Byte(m) => m[at] = meta as u8,
            MetaIndexes::Short(m) => m[at] = meta as u16,
            MetaIndexes::Word(m) => m[at] = meta,
        }
    }

    fn push_empty(&mut self) {
        match self {
            MetaIndexes::Byte(m) => m.push(u8::MAX),
            MetaIndexes::Short(m) => m.push(u16::MAX),
            MetaIndexes::Word(m) => m.push(EMPTY),
        }
    }

    /// Gives back what pushing past the places left spare.
    fn shrink_to_fit(&mut self) {
        match self {
            MetaIndexes::Byte(m) => m.shrink_to_fit(),
            MetaIndexes::Short(m) => m.shrink_to_fit(),
            MetaIndexes::Word(m) => m.shrink_to_fit(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            MetaIndexes::Byte(m) => m.capacity(),
            MetaIndexes::Short(m) => m.capacity() * 2,
            MetaIndexes::Word(m) => m.capacity() * 4,
        }
    }
}

/// A key and its metadata index as they arrived: the key, then the arrival's number in the
/// high half of the second word and the metadata index in the low half. Sorted as they are,
/// arrivals fall in key order, and in the order they came among equal keys, without the
/// buffer a stable sort would take (16 MB for 2,000,000 entries); the 16 bytes are what a
/// key and an index take anyway, padded.
type Arrival = (u64, u64);

fn arrival(key: u64, meta: u32, number: usize) -> Arrival {
    (key, ((number as u64) << 32) | u64::from(meta))
}

/// Keys and metadata indexes sorted by key, keeping the last arrival of a key.
fn sorted_last_wins(mut arrivals: Vec<Arrival>) -> impl Iterator<Item = (u64, u32)> {
    arrivals.sort_unstable();
    let mut arrivals = arrivals.into_iter().peekable();
    std::iter::from_fn(move || {
        loop {
            let (key, arrived) = arrivals.next()?;
            if arrivals.peek().is_none_or(|next| next.0 != key) {
                return Some((key, arrived as u32));
            }
        }
    })
}

/// Two ascending streams merged; on equal keys, `b`'s pair.
fn merge_last_wins(
    a: impl Iterator<Item = (u64, u32)>,
    b: impl Iterator<Item = (u64, u32)>,
) -> impl Iterator<Item = (u64, u32)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x.0 < y.0 => a.next(),
        (Some(x), Some(y)) if x.0 == y.0 => {
            a.next();
            b.next()
        }
        (Some(_), None) => a.next(),
        _ => b.next(),
    })
}

/// Builds an index from entries streamed in (a page at a time from the store): each entry
/// is kept as its key, metadata index and arrival (16 bytes) until [`BlacklistBuilder::finish`]
/// sorts and places them, so the entries themselves need not all be in memory at once.
#[derive(Debug, Default)]
pub struct BlacklistBuilder {
    interner: Interner,
    arrivals: Vec<Arrival>,
    patterns: Vec<Pattern>,
}

impl BlacklistBuilder {
    /// Adds an entry; a later entry for the same member and owner replaces an earlier one.
    pub fn add(&mut self, entry: &BlacklistEntry) {
        let borrowed = MetaOf {
            owner: entry.owner.as_ref(),
            reason: &entry.reason,
            source: &entry.source,
            expires_at: entry.expires_at,
        };
        self.add_member(&entry.member, borrowed, || meta(entry));
    }

    /// [`BlacklistBuilder::add`] for what the index keeps of an entry.
    pub fn add_indexed(&mut self, entry: &IndexedEntry) {
        let meta = &entry.meta;
        let borrowed = MetaOf {
            owner: meta.owner.as_ref(),
            reason: &meta.reason,
            source: &meta.source,
            expires_at: meta.expires_at,
        };
        self.add_member(&entry.member, borrowed, || meta.clone());
    }

    fn add_member(&mut self, member: &MemberRef, meta: MetaOf<'_>, owned: impl Fn() -> ListMeta) {
        self.patterns.extend(Pattern::new(member, &owned));
        let key = entry_key(member, meta.owner);
        let meta = self.interner.intern_borrowed(&meta, owned);
        self.arrivals.push(arrival(key, meta, self.arrivals.len()));
    }

    /// The index of everything added.
    pub fn finish(mut self) -> BlacklistIndex {
        let mut index = BlacklistIndex::from_arrivals(self.arrivals, self.interner.table);
        // In key order whatever order they came in (start-up reads runs of the list at once),
        // so the first pattern that matches is the same in every instance.
        self.patterns.sort_by(|a, b| a.key().cmp(&b.key()));
        index.patterns = self.patterns.into();
        index
    }
}

/// Shares one copy of each distinct metadata value.
#[derive(Debug, Default)]
struct Interner {
    table: Vec<ListMeta>,
    index: hashbrown::HashMap<ListMeta, u32, FxBuildHasher>,
}

/// The [`ListMeta`] of an entry, borrowed: an entry whose metadata is already known is
/// indexed without allocating. Hashes as its `ListMeta` does (same fields, same order).
#[derive(Clone, Copy, Hash)]
struct MetaOf<'a> {
    owner: Option<&'a UserId>,
    reason: &'a str,
    source: &'a Source,
    expires_at: Option<Timestamp>,
}

impl hashbrown::Equivalent<ListMeta> for MetaOf<'_> {
    fn equivalent(&self, meta: &ListMeta) -> bool {
        self.owner == meta.owner.as_ref()
            && self.reason == &*meta.reason
            && self.source == &meta.source
            && self.expires_at == meta.expires_at
    }
}

impl Interner {
    fn from_table(table: Vec<ListMeta>) -> Interner {
        let index = table.iter().cloned().zip(0u32..).collect();
        Interner { table, index }
    }

    fn intern(&mut self, meta: ListMeta) -> u32 {
        let next = self.table.len() as u32;
        *self.index.entry(meta).or_insert_with_key(|meta| {
            self.table.push(meta.clone());
            next
        })
    }

    /// [`Interner::intern`] of metadata seen through a borrow: `owned` makes the copy to keep
    /// only when it is new.
    fn intern_borrowed(&mut self, meta: &MetaOf<'_>, owned: impl FnOnce() -> ListMeta) -> u32 {
        match self.index.get(meta) {
            Some(&known) => known,
            None => self.intern(owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(reason: &str) -> ListMeta {
        ListMeta {
            owner: None,
            reason: reason.into(),
            source: Source::Import,
            expires_at: None,
        }
    }

    /// How many of `probes` keys, spread apart from the tests' keys, pass the filter.
    fn absent_passing_the_filter(index: &BlacklistIndex, probes: u64) -> usize {
        (0..probes)
            .map(|i| i.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0x5555)
            .filter(|&absent| index.filter.may_hold(absent))
            .count()
    }

    #[test]
    fn finds_every_entry_and_nothing_else() {
        let keys: Vec<u64> = (0..50_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let index = BlacklistIndex::build(keys.iter().map(|&k| (k, meta("spam"))));
        assert_eq!(index.len(), keys.len());
        for &k in &keys {
            assert_eq!(index.get(k).map(|m| &*m.reason), Some("spam"));
        }
        for i in 0..50_000u64 {
            let absent = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 1;
            assert!(index.get(absent).is_none() || keys.contains(&absent));
        }
        assert_eq!(index.table.len(), 1, "identical metadata is shared");
        // Keys, a byte of metadata index and 10 bits of filter, a fifth of the slots empty.
        assert!(
            index.heap_bytes() * 10 <= keys.len() * 126,
            "{}",
            index.heap_bytes()
        );
        // Nearly every absent key is turned away by the filter, without reading the keys.
        let passed = absent_passing_the_filter(&index, 50_000);
        assert!(
            passed < 50_000 / 25,
            "{passed} of 50,000 absent keys passed the filter"
        );
    }

    #[test]
    fn metadata_indexes_are_as_wide_as_the_shared_table_needs() {
        // Fewer than 255 distinct metadata, fewer than 65,535, and more: a byte, two, four.
        for (distinct, bytes_per_slot) in [(254, 1), (255, 2), (65_534, 2), (65_535, 4)] {
            let entries = (0..70_000u64).map(|i| {
                let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                (key, meta(&format!("reason {}", i % distinct)))
            });
            let index = BlacklistIndex::build(entries);
            assert_eq!(index.table.len(), distinct as usize);
            let slots = index.keys.len();
            assert_eq!(
                index.heap_bytes() - index.filter.heap_bytes(),
                slots * (8 + bytes_per_slot),
                "{distinct}"
            );
            for i in 0..70_000u64 {
                let found = index.get(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let reason = format!("reason {}", i % distinct);
                assert_eq!(
                    found.map(|m| &*m.reason),
                    Some(reason.as_str()),
                    "{distinct}"
                );
            }
            // A change keeps every entry's metadata, whatever the width.
            let changed = index.with_changes([(1, meta("new"))], &[]);
            assert_eq!(changed.get(1).map(|m| &*m.reason), Some("new"));
            let last = 69_999u64.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let reason = format!("reason {}", 69_999 % distinct);
            assert_eq!(changed.get(last).map(|m| &*m.reason), Some(reason.as_str()));
        }
    }

    #[test]
    fn a_bulk_change_into_an_empty_index_is_sized_for_what_it_adds() {
        let keys: Vec<u64> = (0..20_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let index =
            BlacklistIndex::default().with_changes(keys.iter().map(|&k| (k, meta("raid"))), &[]);
        assert_eq!(index.len(), keys.len());
        assert!(index.places >= keys.len(), "{} places", index.places);
        for &k in &keys {
            assert_eq!(index.get(k).map(|m| &*m.reason), Some("raid"));
        }
        let passed = absent_passing_the_filter(&index, 20_000);
        assert!(
            passed < 20_000 / 25,
            "{passed} of 20,000 absent keys passed the filter"
        );
    }

    #[test]
    fn the_later_duplicate_wins_and_empty_indexes_work() {
        let index =
            BlacklistIndex::build([(7, meta("old")), (7, meta("new")), (u64::MAX, meta("max"))]);
        assert_eq!(index.len(), 2);
        assert_eq!(&*index.get(7).unwrap().reason, "new");
        assert_eq!(&*index.get(u64::MAX).unwrap().reason, "max");
        assert!(BlacklistIndex::default().get(7).is_none());
        assert!(BlacklistIndex::build([]).get(0).is_none());
    }

    #[test]
    fn changes_add_replace_and_remove_entries() {
        let index = BlacklistIndex::build((1..=1000u64).map(|k| (k << 40, meta("old"))));
        let changed = index.with_changes(
            [(5 << 40, meta("new")), (7, meta("added"))],
            &[1 << 40, 999 << 40],
        );
        assert_eq!(changed.len(), 999);
        assert_eq!(&*changed.get(5 << 40).unwrap().reason, "new");
        assert_eq!(&*changed.get(7).unwrap().reason, "added");
        assert!(changed.get(1 << 40).is_none() && changed.get(999 << 40).is_none());
        assert_eq!(&*changed.get(500 << 40).unwrap().reason, "old");
        assert_eq!(index.len(), 1000, "the original is untouched");
    }

    #[test]
    fn crowded_keys_are_pushed_along_and_still_found() {
        // Keys at both ends of the key space crowd the first and last places: the last ones
        // run past the places.
        let low: Vec<u64> = (0..300).map(|i| 1 + i * 3).collect();
        let high: Vec<u64> = (0..300).map(|i| u64::MAX - 1 - i * 3).collect();
        let index = BlacklistIndex::build(low.iter().chain(&high).map(|&k| (k, meta("x"))));
        assert_eq!(index.len(), 600);
        for &k in low.iter().chain(&high) {
            assert!(index.get(k).is_some(), "{k} is found");
            for absent in [k.wrapping_add(1), k.wrapping_sub(1)] {
                assert!(index.get(absent).is_none(), "{absent} is absent");
            }
        }
        let changed = index.with_changes(
            [(u64::MAX - 1, meta("y")), (u64::MAX, meta("added"))],
            &[u64::MAX - 4, 1],
        );
        assert_eq!(changed.len(), 599);
        assert_eq!(&*changed.get(u64::MAX - 1).unwrap().reason, "y");
        assert_eq!(&*changed.get(u64::MAX).unwrap().reason, "added");
        assert!(changed.get(u64::MAX - 4).is_none() && changed.get(1).is_none());
        assert!(changed.get(u64::MAX - 7).is_some() && changed.get(4).is_some());
    }

    #[test]
    fn expiry_is_respected() {
        let mut m = meta("x");
        m.expires_at = Some(Timestamp(1_000));
        assert!(m.is_active(Timestamp(999)));
        assert!(!m.is_active(Timestamp(1_000)));
    }

    #[test]
    fn patterns_ban_whole_servers_and_name_shapes_and_follow_changes() {
        let entry = |id: &str, owner: Option<&str>, reason: &str| BlacklistEntry {
            member: MemberRef::new(Platform::Matrix, id),
            owner: owner.map(UserId::from),
            reason: reason.to_owned(),
            source: Source::Import,
            created_at: Timestamp(0),
            expires_at: None,
        };
        let member = |id: &str| MemberRef::new(Platform::Matrix, id);
        let index = BlacklistIndex::of_entries(&[
            entry("@*:spam.example", None, "spam server"),
            entry("@bot??:*", Some("boss"), "bot names"),
            entry("@alice:example.org", None, "alice"),
        ]);
        let reason = |m: &MemberRef, owner: Option<&str>| {
            index
                .entry(m, owner.map(UserId::from).as_ref())
                .map(|e| e.reason.to_string())
        };
        assert_eq!(
            reason(&member("@eve:spam.example"), None).as_deref(),
            Some("spam server")
        );
        assert_eq!(
            reason(&member("@eve:spam.example.org"), None),
            None,
            "anchored"
        );
        assert_eq!(
            reason(&member("@alice:example.org"), None).as_deref(),
            Some("alice")
        );
        assert_eq!(
            reason(&member("@bot42:any.org"), None),
            None,
            "a personal pattern needs its owner"
        );
        assert_eq!(
            reason(&member("@bot42:any.org"), Some("boss")).as_deref(),
            Some("bot names")
        );
        assert_eq!(
            reason(&member("@bot4:any.org"), Some("boss")),
            None,
            "? is one character"
        );
        assert!(
            index
                .matching(Platform::WeCom, "@eve:spam.example", None)
                .is_none(),
            "patterns are per platform"
        );
        // Lifting the server ban, adding a name pattern.
        let changed = index.changed(
            &[entry("@spam*:*", None, "spam names")],
            &[(member("@*:spam.example"), None)],
        );
        let reason = |m: &MemberRef| changed.entry(m, None).map(|e| e.reason.to_string());
        assert_eq!(reason(&member("@eve:spam.example")), None);
        assert_eq!(
            reason(&member("@spammer:x.org")).as_deref(),
            Some("spam names")
        );
        assert_eq!(
            reason(&member("@alice:example.org")).as_deref(),
            Some("alice")
        );
        assert!(is_pattern("@*:x") && !is_pattern("@a:x"));
    }
}
