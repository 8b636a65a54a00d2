//! Compact keys for identities, so engine state and lists hold integers, not strings.
//!
//! Keys are SipHash values under a key chosen at random when the process starts: stable for
//! the life of the process (rule sets and engine state agree), unpredictable to anyone who
//! picks their own user id, so nobody can craft an id that collides with a whitelisted one.
//! Keys are never persisted.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::OnceLock;

use crate::model::Platform;

fn hasher() -> std::hash::DefaultHasher {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new).build_hasher()
}

/// Distinguishes the kinds of keys, so a group key never equals a member key.
#[derive(Clone, Copy)]
enum Domain {
    Member,
    Group,
    Personal,
    Text,
    Pair,
}

/// A hasher that has taken in the domain and platform, as one byte: copied from one made
/// once per tag, which is cheaper than taking the byte in anew for every key.
fn tagged(domain: Domain, platform: Option<Platform>) -> std::hash::DefaultHasher {
    // Tags run from domain 0 with platform 0 to the last domain with no platform (0xF).
    const TAGS: usize = (Domain::Pair as usize + 1) << 4;
    static TAGGED: OnceLock<Vec<std::hash::DefaultHasher>> = OnceLock::new();
    let tagged = TAGGED.get_or_init(|| {
        (0..TAGS)
            .map(|tag| {
                let mut h = hasher();
                h.write_u8(tag as u8);
                h
            })
            .collect()
    });
    let tag = (domain as u8) << 4 | platform.map_or(0xF, |p| p as u8);
    tagged[usize::from(tag)].clone()
}

/// The key of one id. SipHash takes the input's length in, so one part needs no terminator.
fn key_of_one(domain: Domain, platform: Platform, id: &str) -> u64 {
    let mut h = tagged(domain, Some(platform));
    h.write(id.as_bytes());
    h.finish()
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
    let mut h = tagged(Domain::Personal, Some(platform));
    // Each part ends with a byte no UTF-8 text holds, so no two pairs read alike.
    owner.hash(&mut h);
    user.hash(&mut h);
    h.finish()
}

/// A normalized text (UTF-8), for duplicate detection.
pub fn text(text: &[u8]) -> u64 {
    let mut h = tagged(Domain::Text, None);
    h.write(text);
    h.finish()
}

/// Two keys combined into one (a member in a group, a member under a rule).
///
/// Both are already keyed hashes nobody can predict, so a multiply-and-fold with secret
/// offsets mixes them as well as hashing them again would, at a fraction of the cost.
pub fn pair(a: u64, b: u64) -> u64 {
    static OFFSETS: OnceLock<(u64, u64)> = OnceLock::new();
    let &(x, y) = OFFSETS.get_or_init(|| {
        let offset = |n: u64| {
            let mut h = tagged(Domain::Pair, None);
            h.write_u64(n);
            h.finish()
        };
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
            text(id.as_bytes()),
        ];
        let distinct: std::collections::HashSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len());
        // Stable for the life of the process, and every byte counts.
        assert_eq!(member(Platform::WeCom, id), keys[0]);
        assert_ne!(member(Platform::WeCom, "wm124"), keys[0]);
        assert_ne!(member(Platform::WeCom, "wm12"), keys[0]);
    }
}
