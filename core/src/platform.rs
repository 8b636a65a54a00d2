//! The platform port: what the dispatcher asks of each chat platform, and how adapters hand
//! events in.
//!
//! An adapter is a thin translator. Inbound, it turns platform payloads into
//! [`crate::model::Event`]s and pushes them into an [`EventSink`]. Outbound, its
//! [`ActionExecutor`] carries out one [`ActionRequest`] at a time, says per group what it can
//! do ([`Capabilities`]) and answers commands where its [`crate::model::ReplyTo`] points.
//! Everything else (retries, rate budgets, falling back to a notice for the admins when the
//! platform cannot or may not act) is decided once, in core ([`crate::delivery`]), for every
//! platform alike.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lists::BlacklistIndex;
use crate::model::{Event, EventId, GroupId, MessageId, Platform, ReplyTo, RuleId, UserId};
use crate::names::named;
use crate::reply::Reply;
use crate::rule::BlacklistEntry;
use crate::time::Timestamp;
use crate::verdict::{Action, CheckKind, ViolationRecord};

/// Makes a retried action invisible to members: the same key on every attempt, across
/// retries, restarts and redeliveries, so the platform carries the action out once (a Matrix
/// transaction id, a Discord `nonce` with `enforce_nonce`). 22 characters of `[0-9a-z]`, safe
/// in URL paths and within Discord's 25-character nonce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of the `index`-th action planned for an event. An event is recorded once
    /// (redeliveries are dropped), so the key names one outbox action for good.
    pub fn for_action(platform: Platform, event: &EventId, index: usize) -> IdempotencyKey {
        IdempotencyKey::hashed(&[
            "action",
            platform.as_str(),
            event.as_str(),
            &index.to_string(),
        ])
    }

    /// The key of the raid alert for `group` in the window that starts at `window_start`:
    /// one alert per group and window, however many instances or restarts see the raid.
    pub fn for_raid(
        platform: Platform,
        group: &GroupId,
        window_start: Timestamp,
    ) -> IdempotencyKey {
        IdempotencyKey::hashed(&[
            "raid",
            platform.as_str(),
            group.as_str(),
            &window_start.millis().to_string(),
        ])
    }

    /// A key for something done on behalf of this key's action (the notice that replaces an
    /// action the platform refused), just as stable.
    pub fn derived(&self, purpose: &str) -> IdempotencyKey {
        IdempotencyKey::hashed(&["derived", &self.0, purpose])
    }

    /// A key read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> IdempotencyKey {
        IdempotencyKey(raw.into())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hashed(parts: &[&str]) -> IdempotencyKey {
        let mut hasher = Sha256::new();
        for part in parts {
            // Length-prefixed, so no two lists of parts hash alike.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut key = String::with_capacity(22);
        key.push_str("gg");
        for byte in &digest[..10] {
            key.push_str(&format!("{byte:02x}"));
        }
        IdempotencyKey(key)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who an admin notice goes to: the group's owner and admins as stored, or, when the store
/// knows none, whoever the platform says (WeCom's group owner, the Matrix management room,
/// the Discord log channel).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipients {
    /// The group's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    /// Its administrators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<UserId>,
}

impl Recipients {
    /// Whether the store knows nobody: the platform's own recipients apply.
    pub fn is_empty(&self) -> bool {
        self.owner.is_none() && self.admins.is_empty()
    }
}

/// One thing to do on a platform: everything the adapter needs, nothing of storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// The same on every attempt; use the platform's idempotency mechanism with it.
    pub key: IdempotencyKey,
    /// Where.
    pub platform: Platform,
    /// The group ([`GroupId`] says what that is per platform).
    pub group: GroupId,
    /// The member concerned.
    pub member: UserId,
    /// The message that led to the action (deleted, or replied to by a warning).
    pub message: Option<MessageId>,
    /// What to do: never [`Action::Blacklist`], which groupguard does itself.
    pub action: Action,
    /// The rule that asked for it, for audit-log reasons on the platform.
    pub rule: RuleId,
    /// For admin notices: who to tell.
    pub notify: Recipients,
    /// For admin notices: the violation behind them, so the admins can judge it.
    pub case: Option<Case>,
    /// For kicks: the member is blacklisted (or is being, by the same violation), so where
    /// the platform can keep them out, the kick is a ban (Matrix, Discord).
    pub ban: bool,
}

/// The violation behind an action, as an admin notice shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The member's display name at the time, when known.
    pub member_name: Option<String>,
    /// The check that matched.
    pub check: CheckKind,
    /// What it found, in words (`` `代购` ``, `link to spam.example`).
    pub evidence: String,
    /// The start of the offending text.
    pub excerpt: String,
}

impl Case {
    /// The case of a stored violation.
    pub fn of(record: &ViolationRecord) -> Case {
        Case {
            member_name: record.member_name.clone(),
            check: record.check,
            evidence: record.evidence.to_string(),
            excerpt: record.excerpt.clone(),
        }
    }
}

impl ActionRequest {
    /// The reason to give the platform's audit log (Discord `X-Audit-Log-Reason`, a Matrix
    /// redaction reason).
    pub fn audit_reason(&self) -> String {
        format!("groupguard: rule {}", self.rule)
    }
}

named! {
    /// Something a platform may be able to do in a group.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Capability as "capability" {
        /// Delete (recall, redact) messages.
        Delete = "delete",
        /// Post warnings in the group.
        Warn = "warn",
        /// Mute members for a while.
        Timeout = "timeout",
        /// Remove members from the group.
        Kick = "kick",
        /// Tell the group's admins.
        Notify = "notify",
        /// Lock the group down during a raid.
        Lockdown = "lockdown",
    }
}

impl Capability {
    /// What an action needs of the platform; none for what groupguard does itself
    /// (blacklisting). A review request reaches moderators as an admin notice.
    pub fn needed_for(action: &Action) -> Option<Capability> {
        match action {
            Action::DeleteMessage { .. } => Some(Capability::Delete),
            Action::Warn { .. } => Some(Capability::Warn),
            Action::Timeout { .. } => Some(Capability::Timeout),
            Action::Kick => Some(Capability::Kick),
            Action::NotifyAdmins { .. } | Action::QueueReview { .. } => Some(Capability::Notify),
            Action::Lockdown => Some(Capability::Lockdown),
            Action::Blacklist { .. } => None,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Why a platform cannot do something in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lacking {
    /// The bot lacks a permission an admin can grant (`Kick Members`, `power level 50`).
    Permission(String),
    /// The platform offers no way to do it, and why when there is more to say (`WeCom has no
    /// API to remove a customer from a customer group`).
    Unsupported(Option<String>),
}

/// What a platform's executor can do in one group, and why not where it cannot. The
/// dispatcher never sends an action the group's capabilities exclude: the group's admins are
/// told what to do by hand instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    granted: u8,
    lacking: Vec<(Capability, Lacking)>,
}

impl Capabilities {
    /// Everything.
    pub fn all() -> Capabilities {
        Capability::ALL
            .into_iter()
            .fold(Capabilities::none(), Capabilities::grant)
    }

    /// Nothing.
    pub fn none() -> Capabilities {
        Capabilities::default()
    }

    /// With `capability`.
    pub fn grant(mut self, capability: Capability) -> Capabilities {
        self.granted |= capability.bit();
        self.lacking.retain(|(c, _)| *c != capability);
        self
    }

    /// Without `capability`, for this reason.
    pub fn lack(mut self, capability: Capability, why: Lacking) -> Capabilities {
        self.granted &= !capability.bit();
        self.lacking.retain(|(c, _)| *c != capability);
        self.lacking.push((capability, why));
        self
    }

    /// Whether `capability` is there.
    pub fn has(&self, capability: Capability) -> bool {
        self.granted & capability.bit() != 0
    }

    /// Whether `action` can be carried out here, or why not.
    pub fn check(&self, action: &Action) -> Result<(), Lacking> {
        match Capability::needed_for(action) {
            None => Ok(()),
            Some(c) if self.has(c) => Ok(()),
            Some(c) => Err(self
                .lacking
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, why)| why.clone())
                .unwrap_or(Lacking::Unsupported(None))),
        }
    }
}

/// How a platform call failed, classified so the dispatcher knows what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdapterErrorKind {
    /// Too many requests: try again after this long.
    RateLimited {
        /// What the platform asked for.
        retry_after: Duration,
    },
    /// The bot may not do this here; an admin can grant what is missing.
    Forbidden {
        /// The permission to grant, as the platform names it (`Moderate Members`).
        permission: Option<String>,
    },
    /// The message or member is gone (a deletion of a deleted message succeeded already).
    NotFound,
    /// The platform cannot do this at all.
    Unsupported,
    /// A reply handle stopped working (a Discord interaction token after 15 minutes, a used
    /// WeCom `response_url`).
    Expired,
    /// A network or server failure that may pass.
    Transient,
    /// The platform answered something unexpected.
    Protocol,
}

/// A failed platform call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdapterError {
    /// What kind of failure.
    pub kind: AdapterErrorKind,
    /// What happened, for logs and records (never secrets).
    pub message: String,
}

impl AdapterError {
    /// An error of a kind.
    pub fn new(kind: AdapterErrorKind, message: impl Into<String>) -> AdapterError {
        AdapterError {
            kind,
            message: message.into(),
        }
    }
}

/// Carries out actions on one platform.
#[async_trait]
pub trait ActionExecutor: Send + Sync {
    /// The platform.
    fn platform(&self) -> Platform;

    /// What the bot can do in `group` now (its permissions or power level there, what the
    /// platform offers for that kind of group).
    async fn capabilities(&self, group: &GroupId) -> Capabilities;

    /// Carries out a delete, warn, timeout, kick, lockdown or admin notice, once per
    /// [`ActionRequest::key`].
    async fn execute(&self, request: &ActionRequest) -> Result<(), AdapterError>;

    /// Answers a command where `to` says, rendering `reply` natively (markdown, HTML with a
    /// plain body, an ephemeral interaction response).
    async fn reply(&self, to: &ReplyTo, reply: &Reply) -> Result<(), AdapterError>;
}

/// groupguard's blacklist as one platform's adapter mirrors it.
#[derive(Debug, Clone)]
pub struct BlacklistSnapshot {
    /// The platform's active org-wide entries that groupguard holds itself, in member order.
    /// Entries followed from a shared list are that list's to publish, not groupguard's.
    pub own: Vec<BlacklistEntry>,
    /// The index in force, to ask whether a member is still kept out anywhere.
    pub index: Arc<BlacklistIndex>,
    /// When it was taken.
    pub now: Timestamp,
}

/// An adapter that keeps its platform in step with the blacklist: it publishes groupguard's
/// own entries where other bots read them (a Matrix policy room) and lifts the bans it made
/// for members no longer listed. Called after every change and now and then, with the whole
/// picture, so a failed or missed call is made good by the next.
#[async_trait]
pub trait BlacklistMirror: Send + Sync {
    /// The platform whose entries it mirrors.
    fn platform(&self) -> Platform;

    /// Brings the platform in step with `snapshot`; `false` when part of it must wait a
    /// moment (then it is called again soon).
    async fn mirror(&self, snapshot: &BlacklistSnapshot) -> Result<bool, AdapterError>;
}

/// The dispatcher has stopped taking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("groupguard is shutting down")]
pub struct SinkClosed;

/// An event was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// groupguard could not store the event in time (it is behind, or its database is
    /// down): answer the platform "try again".
    #[error("groupguard is busy: the event was not stored in time")]
    Full,
    /// groupguard is shutting down.
    #[error("groupguard is shutting down")]
    Closed,
}

impl From<SinkClosed> for PushError {
    fn from(_: SinkClosed) -> PushError {
        PushError::Closed
    }
}

/// Where adapters hand the events they receive over. A push returns once its events are
/// durable (in the inbound journal): then the platform may forget them (the callback is
/// answered, the sync position or archive cursor advances). A crash after that loses none
/// of them; a crash before it leaves them to the platform's redelivery. Pushes wait while
/// groupguard is behind, which slows the adapters down.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Hands an event over and waits until it is durable.
    async fn push(&self, event: Event) -> Result<(), SinkClosed>;

    /// Hands events over in order and waits until all of them are durable: one journal
    /// write for a sync response or an archive page rather than one each.
    async fn push_all(&self, events: Vec<Event>) -> Result<(), SinkClosed> {
        for event in events {
            self.push(event).await?;
        }
        Ok(())
    }

    /// Hands an event over, waiting at most `wait` for it to be durable: for platforms that
    /// need an answer within a deadline (WeCom: 5 seconds) and re-send what was not taken.
    async fn push_within(&self, event: Event, wait: Duration) -> Result<(), PushError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_distinct_and_fit_every_platform() {
        let event = EventId::new("m1");
        let key = IdempotencyKey::for_action(Platform::Discord, &event, 0);
        assert_eq!(
            key,
            IdempotencyKey::for_action(Platform::Discord, &event, 0)
        );
        // Golden: a key must not change between versions, or an upgrade repeats actions.
        assert_eq!(key.as_str(), "gg1262d6fd644db80c5257");
        assert_ne!(
            key,
            IdempotencyKey::for_action(Platform::Discord, &event, 1)
        );
        assert_ne!(key, IdempotencyKey::for_action(Platform::Matrix, &event, 0));
        assert_ne!(key.derived("notice"), key);
        assert_eq!(key.derived("notice"), key.derived("notice"));
        let raid = IdempotencyKey::for_raid(Platform::WeCom, &"g1".into(), Timestamp(60_000));
        for k in [&key, &raid] {
            assert_eq!(k.as_str().len(), 22);
            assert!(
                k.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            );
        }
    }

    #[test]
    fn capabilities_say_why_an_action_cannot_be_done() {
        let caps = Capabilities::all()
            .lack(
                Capability::Kick,
                Lacking::Permission("Kick Members".to_owned()),
            )
            .lack(Capability::Delete, Lacking::Unsupported(None));
        assert_eq!(
            caps.check(&Action::Warn {
                text: "x".to_owned()
            }),
            Ok(())
        );
        assert_eq!(
            caps.check(&Action::Kick),
            Err(Lacking::Permission("Kick Members".to_owned()))
        );
        assert_eq!(
            caps.check(&Action::DeleteMessage {
                message: "m".into()
            }),
            Err(Lacking::Unsupported(None))
        );
        assert_eq!(caps.grant(Capability::Kick).check(&Action::Kick), Ok(()));
        let blacklist = Action::Blacklist {
            owner: None,
            reason: String::new(),
            expires_at: None,
        };
        assert_eq!(Capabilities::none().check(&blacklist), Ok(()));
        assert_eq!(
            Capabilities::none().check(&Action::Lockdown),
            Err(Lacking::Unsupported(None))
        );
    }
}
