//! Bloom filters with one 64-bit word a key: a few of its bits, chosen by the key, are set,
//! so a lookup reads one word.

/// A Bloom filter of well-mixed 64-bit keys, `BITS` bits of one word set for each: the key's
/// high bits pick the word (keys added in key order write the filter from start to end), its
/// low `6 × BITS` bits the bits in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyFilter<const BITS: u32> {
    words: Box<[u64]>,
}

impl<const BITS: u32> KeyFilter<BITS> {
    /// A filter of `bits_per_key` bits for each of `keys` keys.
    pub(crate) fn sized_for(keys: usize, bits_per_key: usize) -> Self {
        KeyFilter {
            words: vec![0; (keys * bits_per_key).div_ceil(64).max(1)].into(),
        }
    }

    /// The word of `key` and the bits it sets there.
    #[inline(always)]
    fn bits(&self, key: u64) -> (usize, u64) {
        let bits = (0..BITS).fold(0u64, |bits, i| bits | 1 << ((key >> (6 * i)) & 63));
        (place(key, self.words.len()), bits)
    }

    pub(crate) fn add(&mut self, key: u64) {
        let (word, bits) = self.bits(key);
        self.words[word] |= bits;
    }

    /// Whether `key` may have been added; surely not when false.
    #[inline(always)]
    pub(crate) fn may_hold(&self, key: u64) -> bool {
        let (word, bits) = self.bits(key);
        self.words.get(word).is_some_and(|w| w & bits == bits)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// Where a key is placed among `places` slots: its share of the key space, so places follow
/// key order.
#[inline(always)]
pub(crate) fn place(key: u64, places: usize) -> usize {
    ((u128::from(key) * places as u128) >> 64) as usize
}
