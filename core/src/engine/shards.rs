//! A hash map in parts, for state that grows large: growing rehashes one part at a time, and
//! a sweep takes one part at a time, so no event waits for a pass over the whole map.

use rustc_hash::FxHashMap;

/// Parts per map: a million tracked members rehash and sweep about 4,000 at a time. Growing
/// a part writes its new table into fresh memory, and on a VM each first touch of a page costs
/// microseconds: with 64 parts, a part of a million members' table took 3.5 ms to grow.
pub(super) const PARTS: usize = 256;

/// Keys are keyed hashes, evenly spread: their top bits choose the part.
#[derive(Debug)]
pub(super) struct Shards<V> {
    parts: Box<[FxHashMap<u64, V>]>,
}

impl<V> Default for Shards<V> {
    fn default() -> Self {
        Shards {
            parts: (0..PARTS).map(|_| FxHashMap::default()).collect(),
        }
    }
}

pub(super) fn part_of(key: u64) -> usize {
    (key >> (u64::BITS - PARTS.trailing_zeros())) as usize
}

impl<V> Shards<V> {
    pub(super) fn get(&self, key: &u64) -> Option<&V> {
        self.parts[part_of(*key)].get(key)
    }

    pub(super) fn insert(&mut self, key: u64, value: V) -> Option<V> {
        self.parts[part_of(key)].insert(key, value)
    }

    pub(super) fn remove(&mut self, key: &u64) -> Option<V> {
        self.parts[part_of(*key)].remove(key)
    }

    pub(super) fn entry(&mut self, key: u64) -> std::collections::hash_map::Entry<'_, u64, V> {
        self.parts[part_of(key)].entry(key)
    }

    pub(super) fn contains_key(&self, key: &u64) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.parts.iter().map(FxHashMap::len).sum()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.parts.iter().all(FxHashMap::is_empty)
    }

    #[cfg(test)]
    pub(super) fn clear(&mut self) {
        self.parts.iter_mut().for_each(FxHashMap::clear);
    }

    /// Keeps the entries of part `part` for which `keep` holds.
    pub(super) fn retain_part(&mut self, part: usize, keep: impl FnMut(&u64, &mut V) -> bool) {
        self.parts[part % PARTS].retain(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_their_part_and_parts_sweep_alone() {
        let mut map = Shards::default();
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for &k in &keys {
            map.insert(k, k);
        }
        assert_eq!(map.len(), keys.len());
        assert!(keys.iter().all(|k| map.get(k) == Some(k)));
        map.retain_part(0, |_, _| false);
        let in_part_0 = keys.iter().filter(|&&k| part_of(k) == 0).count();
        assert!(in_part_0 > 0);
        assert_eq!(map.len(), keys.len() - in_part_0);
        assert!(
            keys.iter()
                .all(|k| map.contains_key(k) == (part_of(*k) != 0))
        );
        assert_eq!(part_of(u64::MAX), PARTS - 1);
    }
}
