//! The blacklist index: millions of entries in a few bytes each.
//!
//! Entries are keyed by [`crate::keys`] values and kept in one sorted array with a radix
//! directory over the top bits of the key, so a lookup touches the directory and one or two
//! neighbouring keys. Each entry costs 8 bytes of key, 4 bytes of metadata index and about
//! 4 bytes of directory; reasons, sources and expiry times are shared between entries that
//! have the same ones (a bulk import shares one).

use std::sync::Arc;

use rustc_hash::FxHashMap;

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
    keys: Box<[u64]>,
    metas: Box<[u32]>,
    directory: Box<[u32]>,
    shift: u32,
    table: Box<[ListMeta]>,
    patterns: Arc<[Pattern]>,
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
        if !is_pattern(e.member.id.as_str()) {
            return None;
        }
        let mut source = String::from("^");
        for c in e.member.id.as_str().chars() {
            match c {
                '*' => source.push_str(".*"),
                '?' => source.push('.'),
                c => source.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        source.push('$');
        Some(Pattern {
            platform: e.member.platform,
            glob: e.member.id.as_str().to_owned(),
            owner: e.owner.clone(),
            matcher: regex::Regex::new(&source).ok()?,
            meta: meta(e),
        })
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
        let mut patterns = Vec::new();
        let mut index = BlacklistIndex::build(entries.into_iter().map(|e| {
            patterns.extend(Pattern::of(e));
            (entry_key(&e.member, e.owner.as_ref()), meta(e))
        }));
        index.patterns = patterns.into();
        index
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
        let pairs = entries
            .into_iter()
            .map(|(key, meta)| (key, interner.intern(meta)))
            .collect();
        BlacklistIndex::from_pairs(pairs, interner.table)
    }

    /// A copy with `upserts` added (replacing entries with the same key) and `removals`
    /// gone: a sort of nearly sorted keys, far cheaper than building from scratch.
    pub fn with_changes(
        &self,
        upserts: impl IntoIterator<Item = (u64, ListMeta)>,
        removals: &[u64],
    ) -> BlacklistIndex {
        let mut interner = Interner::from_table(self.table.to_vec());
        let patterns = Arc::clone(&self.patterns);
        let removed: rustc_hash::FxHashSet<u64> = removals.iter().copied().collect();
        let mut pairs: Vec<(u64, u32)> = self
            .keys
            .iter()
            .copied()
            .zip(self.metas.iter().copied())
            .filter(|(key, _)| !removed.contains(key))
            .collect();
        pairs.extend(
            upserts
                .into_iter()
                .map(|(key, meta)| (key, interner.intern(meta))),
        );
        let mut index = BlacklistIndex::from_pairs(pairs, interner.table);
        index.patterns = patterns;
        index
    }

    fn from_pairs(mut pairs: Vec<(u64, u32)>, table: Vec<ListMeta>) -> BlacklistIndex {
        // Stable sort keeps insertion order among equal keys; keep the last of each run.
        pairs.sort_by_key(|p| p.0);
        let mut deduped: Vec<(u64, u32)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match deduped.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => deduped.push(pair),
            }
        }
        let bits = (usize::BITS - deduped.len().leading_zeros()).clamp(1, 24);
        let shift = 64 - bits;
        let mut directory = vec![0u32; (1 << bits) + 1];
        let mut bucket = 0usize;
        for (i, (key, _)) in deduped.iter().enumerate() {
            let b = (key >> shift) as usize;
            while bucket <= b {
                directory[bucket] = i as u32;
                bucket += 1;
            }
        }
        for slot in &mut directory[bucket..] {
            *slot = deduped.len() as u32;
        }
        let (keys, metas): (Vec<u64>, Vec<u32>) = deduped.into_iter().unzip();
        BlacklistIndex {
            keys: keys.into(),
            metas: metas.into(),
            directory: directory.into(),
            shift,
            table: table.into(),
            patterns: Arc::default(),
        }
    }

    /// The entry for `key`, active or not.
    pub fn get(&self, key: u64) -> Option<&ListMeta> {
        if self.keys.is_empty() {
            return None;
        }
        let b = (key >> self.shift) as usize;
        let (start, end) = (self.directory[b] as usize, self.directory[b + 1] as usize);
        let bucket = &self.keys[start..end];
        let i = bucket.iter().position(|&k| k == key)?;
        Some(&self.table[self.metas[start + i] as usize])
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Heap bytes used by keys, metadata indexes and the directory (shared metadata excluded).
    pub fn heap_bytes(&self) -> usize {
        self.keys.len() * 8 + self.metas.len() * 4 + self.directory.len() * 4
    }
}

/// Shares one copy of each distinct metadata value.
#[derive(Default)]
struct Interner {
    table: Vec<ListMeta>,
    index: FxHashMap<ListMeta, u32>,
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
        assert!(index.heap_bytes() <= keys.len() * 20);
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
