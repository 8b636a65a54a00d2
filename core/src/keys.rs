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

/// A hasher that has taken in the domain and platform, as one byte.
fn tagged(domain: Domain, platform: Option<Platform>) -> std::hash::DefaultHasher {
    let mut h = hasher();
    h.write_u8((domain as u8) << 4 | platform.map_or(0xF, |p| p as u8));
    h
}

fn key(domain: Domain, platform: Option<Platform>, parts: &[&str]) -> u64 {
    let mut h = tagged(domain, platform);
    for part in parts {
        part.hash(&mut h);
    }
    h.finish()
}

/// A member on a platform.
pub fn member(platform: Platform, user: &str) -> u64 {
    key(Domain::Member, Some(platform), &[user])
}

/// A group on a platform.
pub fn group(platform: Platform, group: &str) -> u64 {
    key(Domain::Group, Some(platform), &[group])
}

/// A member on one owner's personal list.
pub fn personal(platform: Platform, owner: &str, user: &str) -> u64 {
    key(Domain::Personal, Some(platform), &[owner, user])
}

/// A normalized text (UTF-8), for duplicate detection.
pub fn text(text: &[u8]) -> u64 {
    let mut h = tagged(Domain::Text, None);
    text.hash(&mut h);
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
