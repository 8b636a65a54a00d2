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
#[derive(Clone, Copy, Hash)]
enum Domain {
    Member,
    Group,
    Personal,
    Text,
}

fn key(domain: Domain, platform: Option<Platform>, parts: &[&str]) -> u64 {
    let mut h = hasher();
    domain.hash(&mut h);
    platform.hash(&mut h);
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
    let mut h = hasher();
    Domain::Text.hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

/// Two keys combined into one (a member in a group, a member under a rule).
pub fn pair(a: u64, b: u64) -> u64 {
    let mut h = hasher();
    a.hash(&mut h);
    b.hash(&mut h);
    h.finish()
}
