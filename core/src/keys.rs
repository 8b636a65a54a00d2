//! Compact keys for identities, so engine state and lists hold integers, not strings.
//!
//! Keys are hashes under secrets drawn at random when the process starts: stable for the
//! life of the process (rule sets and engine state agree), unpredictable to anyone who
//! picks their own user id or writes their own text, so nobody can craft an id that collides
//! with a whitelisted one. Keys are never persisted.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::OnceLock;

use siphasher::sip::SipHasher13;

use crate::model::Platform;

/// Distinguishes the kinds of keys, so a group key never equals a member key.
#[derive(Clone, Copy)]
enum Domain {
    Member,
    Group,
    Personal,
    Text,
    Pair,
    Rule,
}

/// SipHash-1-3 under the keys of one tag (a domain and a platform). Every tag has keys of
/// its own, drawn from the standard library's randomly keyed hasher when the process starts,
/// so one id under two tags gives unrelated keys, and an id is hashed in one call with
/// nothing to take in before it.
fn keyed(domain: Domain, platform: Option<Platform>) -> &'static SipHasher13 {
    // Tags run from domain 0 with platform 0 to the last domain with no platform (0xF).
    const TAGS: usize = (Domain::Rule as usize + 1) << 4;
    static KEYED: OnceLock<Vec<SipHasher13>> = OnceLock::new();
    let keyed = KEYED.get_or_init(|| {
        let random = RandomState::new();
        (0..TAGS as u8)
            .map(|tag| {
                SipHasher13::new_with_keys(random.hash_one((tag, 0)), random.hash_one((tag, 1)))
            })
            .collect()
    });
    let tag = (domain as u8) << 4 | platform.map_or(0xF, |p| p as u8);
    &keyed[usize::from(tag)]
}

/// The key of one id: its tag and length in a first word, then its bytes, seven to a word,
/// are the coefficients of the secret polynomial (see [`text`]). Ids of one tag and length
/// have as many words, so two of them differ in some word and share a key at few points;
/// ids of different tags or lengths differ in the first. A quarter of the work of SipHash.
fn key_of_one(domain: Domain, platform: Platform, id: &str) -> u64 {
    let secrets = polynomial_secrets();
    let tag = (domain as u64) << 4 | platform as u64;
    secrets.spread(id_polynomial(tag, id.as_bytes(), secrets.point))
}

/// The polynomial of an id's `bytes` under `tag` at `point`, modulo 2^61 − 1.
fn id_polynomial(tag: u64, bytes: &[u8], point: u64) -> u64 {
    let mut value = Polynomial::at(point);
    // Lengths stay far below 2^50, so the first word stays below 2^58, like the others.
    value.push(1 + ((bytes.len() as u64) << 8 | tag));
    const SEVEN_BYTES: u64 = (1 << 56) - 1;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let eight: [u8; 8] = bytes[at..at + 8].try_into().expect("eight bytes");
        value.push(u64::from_le_bytes(eight) & SEVEN_BYTES);
        at += 7;
    }
    // One to seven bytes are left (none of an empty id), read as one word.
    let last = match bytes.len().checked_sub(8) {
        // The last eight bytes, shifted down to the ones left.
        Some(start) => {
            let eight: [u8; 8] = bytes[start..].try_into().expect("eight bytes");
            u64::from_le_bytes(eight) >> (8 * (8 - (bytes.len() - at)))
        }
        None => bytes[at..]
            .iter()
            .rev()
            .fold(0, |word, &b| word << 8 | u64::from(b)),
    };
    value.push(last);
    value.value()
}

/// A member on a platform.
pub fn member(platform: Platform, user: &str) -> u64 {
    key_of_one(Domain::Member, platform, user)
}

/// A group on a platform.
pub fn group(platform: Platform, group: &str) -> u64 {
    key_of_one(Domain::Group, platform, group)
}

/// A member on one owner's personal list.
pub fn personal(platform: Platform, owner: &str, user: &str) -> u64 {
    let mut h = *keyed(Domain::Personal, Some(platform));
    // Each part ends with a byte no UTF-8 text holds, so no two pairs read alike.
    owner.hash(&mut h);
    user.hash(&mut h);
    h.finish()
}

/// A text's letters and digits (code points), for duplicate detection.
///
/// The letters, three to a word, are the coefficients of a polynomial evaluated at a secret
/// point of the field of integers modulo the prime 2^61 − 1, one of the 2^58 − 1 below 2^58.
/// Two different texts of at most n words give the same value at no more than n − 1 points
/// (their difference is a polynomial of that degree that is not zero, since no word is 0),
/// so whoever does not know the point cannot write two texts that share a key, and the keys
/// never leave the process. A multiply and a fold, both one-to-one, then spread the value
/// over the 64 bits hash tables read. A third of the work of SipHash over the same words.
pub fn text(letters: &[u32]) -> u64 {
    let secrets = polynomial_secrets();
    secrets.spread(letters_polynomial(letters, secrets.point))
}

/// The polynomial of `letters` at `point`, modulo 2^61 − 1.
fn letters_polynomial(letters: &[u32], point: u64) -> u64 {
    // A letter is below 2^20: past it is the last private use plane, which holds none.
    let word = |a: u32, b: u32, c: u32| u64::from(a) | u64::from(b) << 20 | u64::from(c) << 40;
    let mut value = Polynomial::at(point);
    let mut threes = letters.chunks_exact(3);
    for three in &mut threes {
        value.push(word(three[0], three[1], three[2]));
    }
    match *threes.remainder() {
        [a] => value.push(word(a, 0, 0)),
        [a, b] => value.push(word(a, b, 0)),
        _ => {}
    }
    value.value()
}

/// A polynomial evaluated at a point modulo 2^61 − 1, by Horner's rule, one coefficient (a
/// word below 2^58) at a time from the highest.
struct Polynomial {
    point: u64,
    /// Kept below 2^62, congruent to the value, folded in full once at the end: with the
    /// point below 2^58, one fold of each product is enough.
    value: u64,
}

impl Polynomial {
    #[inline(always)]
    fn at(point: u64) -> Polynomial {
        Polynomial { point, value: 0 }
    }

    #[inline(always)]
    fn push(&mut self, word: u64) {
        self.value = fold_product(self.value, self.point) + word;
    }

    /// The value, below 2^61 − 1.
    #[inline(always)]
    fn value(&self) -> u64 {
        let value = fold(self.value);
        if value >= MERSENNE_61 {
            value - MERSENNE_61
        } else {
            value
        }
    }
}

/// 2^61 − 1, a prime: a number's bits past the 61st fold onto its lowest ones.
const MERSENNE_61: u64 = (1 << 61) - 1;

/// Points are drawn below this.
const POINTS_BELOW: u64 = 1 << 58;

/// `a` × `b` (below 2^62 and 2^58), folded once: below 2^61 + 2^59, congruent to the product.
fn fold_product(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64 & MERSENNE_61) + (product >> 61) as u64
}

/// `x` folded once: below 2^61 + 8, congruent to `x`.
fn fold(x: u64) -> u64 {
    (x & MERSENNE_61) + (x >> 61)
}

/// The secrets of the polynomial keys: the point, and the offset and odd multiplier of the
/// spread.
struct PolynomialSecrets {
    point: u64,
    offset: u64,
    multiplier: u64,
}

impl PolynomialSecrets {
    /// A polynomial's value spread over 64 bits (an offset, a multiply and a fold, each
    /// one-to-one).
    #[inline(always)]
    fn spread(&self, value: u64) -> u64 {
        let mixed = (value ^ self.offset).wrapping_mul(self.multiplier);
        mixed ^ mixed >> 32
    }
}

fn polynomial_secrets() -> &'static PolynomialSecrets {
    static SECRETS: OnceLock<PolynomialSecrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let secret = |n: u64| keyed(Domain::Text, None).hash(&n.to_le_bytes());
        PolynomialSecrets {
            // Not 0, where every text would read as its last word.
            point: 1 + secret(0) % (POINTS_BELOW - 1),
            offset: secret(1),
            multiplier: secret(2) | 1,
        }
    })
}

/// A rule, by its id.
pub fn rule(id: &str) -> u64 {
    keyed(Domain::Rule, None).hash(id.as_bytes())
}

/// Two keys combined into one (a member in a group, a member under a rule).
///
/// Both are already keyed hashes nobody can predict, so a multiply-and-fold with secret
/// offsets mixes them as well as hashing them again would, at a fraction of the cost.
pub fn pair(a: u64, b: u64) -> u64 {
    static OFFSETS: OnceLock<(u64, u64)> = OnceLock::new();
    let &(x, y) = OFFSETS.get_or_init(|| {
        let offset = |n: u64| keyed(Domain::Pair, None).hash(&n.to_le_bytes());
        (offset(0), offset(1))
    });
    let product = u128::from(a ^ x) * u128::from(b ^ y);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_domains_platforms_and_parts_apart() {
        let id = "wm123";
        let keys = [
            member(Platform::WeCom, id),
            member(Platform::Matrix, id),
            member(Platform::Discord, id),
            group(Platform::WeCom, id),
            personal(Platform::WeCom, "wm", "123"),
            personal(Platform::WeCom, "wm1", "23"),
            personal(Platform::Matrix, "wm", "123"),
            rule(id),
            text(&id.chars().map(u32::from).collect::<Vec<_>>()),
        ];
        let distinct: std::collections::HashSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len());
        // Stable for the life of the process, and every byte counts.
        assert_eq!(member(Platform::WeCom, id), keys[0]);
        assert_ne!(member(Platform::WeCom, "wm124"), keys[0]);
        assert_ne!(member(Platform::WeCom, "wm12"), keys[0]);
    }

    #[test]
    fn a_text_key_counts_every_letter_and_where_it_stands() {
        let key = |t: &str| text(&t.chars().map(u32::from).collect::<Vec<_>>());
        let texts = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "ba",
            "加微信",
            "加微信a",
            "微加信",
            "abd",
        ];
        let distinct: std::collections::HashSet<u64> = texts.iter().map(|t| key(t)).collect();
        assert_eq!(distinct.len(), texts.len());
        assert_eq!(key("加微信"), key("加微信"));
    }

    proptest::proptest! {
        /// The folds keep every value below 2^62 and congruent: the polynomial is the one
        /// computed with whole numbers, at the largest letters and points too.
        #[test]
        fn the_polynomial_is_exact(
            letters in proptest::collection::vec(
                proptest::prop_oneof![1u32..0x80, 0xFFF00u32..0x100000, 1u32..0x100000],
                0..40,
            ),
            point in proptest::prop_oneof![POINTS_BELOW - 16..POINTS_BELOW, 1..POINTS_BELOW],
        ) {
            let p = u128::from(MERSENNE_61);
            let expected = letters.chunks(3).fold(0u128, |value, three| {
                let word = three
                    .iter()
                    .enumerate()
                    .fold(0u128, |word, (i, &c)| word | u128::from(c) << (20 * i));
                (value * u128::from(point) + word) % p
            });
            proptest::prop_assert_eq!(u128::from(letters_polynomial(&letters, point)), expected);
        }

        /// An id's words are its tag and length, then its bytes seven at a time, little end
        /// first, the last word zero-padded: the same polynomial as whole numbers give.
        #[test]
        fn an_ids_polynomial_is_exact(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            tag in 0u64..0x60,
            point in proptest::prop_oneof![POINTS_BELOW - 16..POINTS_BELOW, 1..POINTS_BELOW],
        ) {
            let p = u128::from(MERSENNE_61);
            let first = u128::from(1 + ((bytes.len() as u64) << 8 | tag));
            let mut words = vec![first];
            words.extend(bytes.chunks(7).map(|seven| {
                seven.iter().rev().fold(0u128, |word, &b| word << 8 | u128::from(b))
            }));
            if bytes.is_empty() {
                words.push(0);
            }
            let expected = words.iter().fold(0u128, |value, &word| (value * u128::from(point) + word) % p);
            proptest::prop_assert_eq!(u128::from(id_polynomial(tag, &bytes, point)), expected);
        }
    }
}
