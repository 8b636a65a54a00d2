//! What becomes of an attempt to act on a platform: done, retry, give up, or hand the task to
//! the group's admins. Pure, so every platform is treated alike and tests need no runtime.
//!
//! The rules:
//! - a platform that cannot do something, or a bot that lacks the permission, never means
//!   silence: the group's admins get a notice saying what should be done and why groupguard
//!   could not, naming the permission to grant;
//! - a rate limit is retried after the platform's `retry_after`, a passing failure with
//!   exponential backoff, both until `max_attempts`;
//! - a delete or kick of something already gone is done;
//! - anything else (a malformed answer, an expired handle) fails for good, with its error.

use std::time::Duration;

use crate::platform::{ActionRequest, AdapterError, AdapterErrorKind, Capability, Lacking};
use crate::ports::ActionResult;
use crate::time::Timestamp;
use crate::verdict::Action;

/// How often and how long to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before an action is given up.
    pub max_attempts: u32,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// It was carried out (or there was nothing left to do).
    Done,
    /// Try again at `at`.
    Retry {
        /// The error.
        error: String,
        /// When.
        at: Timestamp,
    },
    /// Give up.
    Fail {
        /// The error.
        error: String,
    },
    /// The platform will not do it: tell the admins instead.
    FallBack(Lacking),
}

impl Disposition {
    /// What to record, or what is lacking when the admins must be asked instead.
    pub fn outcome(self) -> Result<ActionResult, Lacking> {
        match self {
            Disposition::Done => Ok(ActionResult::Done),
            Disposition::Retry { error, at } => Ok(ActionResult::Retry { error, at }),
            Disposition::Fail { error } => Ok(ActionResult::Failed { error }),
            Disposition::FallBack(lacking) => Err(lacking),
        }
    }
}

/// The wait before attempt `attempts + 1` after a passing failure: 1 s, 2 s, 4 s, … 128 s.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1 << attempts.clamp(1, 8).saturating_sub(1))
}

impl Disposition {
    /// What follows attempt number `attempts` of `action` that ended in `result`, at `now`.
    pub fn of(
        action: &Action,
        result: Result<(), &AdapterError>,
        attempts: u32,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Disposition {
        let Err(e) = result else {
            return Disposition::Done;
        };
        let retry = |after: Duration| {
            if attempts >= policy.max_attempts {
                Disposition::Fail {
                    error: format!("{} (gave up after {attempts} attempts)", e.message),
                }
            } else {
                Disposition::Retry {
                    error: e.message.clone(),
                    at: now.plus(after),
                }
            }
        };
        match &e.kind {
            AdapterErrorKind::NotFound
                if matches!(action, Action::DeleteMessage { .. } | Action::Kick) =>
            {
                Disposition::Done
            }
            AdapterErrorKind::RateLimited { retry_after } => retry(*retry_after),
            AdapterErrorKind::Transient => retry(backoff(attempts)),
            AdapterErrorKind::Unsupported => {
                Disposition::FallBack(Lacking::Unsupported(Some(e.message.clone())))
            }
            AdapterErrorKind::Forbidden { permission } => {
                Disposition::FallBack(Lacking::Permission(
                    permission.clone().unwrap_or_else(|| {
                        format!("the permission to {}", task(action, "members"))
                    }),
                ))
            }
            _ => Disposition::Fail {
                error: e.message.clone(),
            },
        }
    }
}

/// What an action asks for, in words: `remove bob from the group`.
pub fn task(action: &Action, member: &str) -> String {
    match action {
        Action::DeleteMessage { message } => format!("delete message {message}"),
        Action::Warn { .. } => format!("warn {member}"),
        Action::Timeout { duration } => format!(
            "mute {member} for {}",
            humantime::format_duration(*duration)
        ),
        Action::Kick => format!("remove {member} from the group"),
        Action::Blacklist { .. } => format!("blacklist {member}"),
        Action::NotifyAdmins { .. } => "notify the admins".to_owned(),
        Action::QueueReview { .. } => "ask for a review".to_owned(),
        Action::Lockdown => "lock the group down".to_owned(),
    }
}

/// The notice that asks the group's admins to do what the platform would not.
pub fn fallback_notice(request: &ActionRequest, lacking: &Lacking) -> String {
    let task = task(&request.action, request.member.as_str());
    match lacking {
        Lacking::Permission(permission) => format!(
            "rule {} asks to {task}, which groupguard may not do here: grant groupguard {permission}, or do it by hand",
            request.rule
        ),
        Lacking::Unsupported(why) => format!(
            "rule {} asks to {task}, which groupguard cannot do on {}{}: please do it by hand",
            request.rule,
            request.platform,
            why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
        ),
    }
}

/// What the record says when the admins were asked instead.
pub fn replaced_note(request: &ActionRequest, lacking: &Lacking) -> String {
    let task = task(&request.action, request.member.as_str());
    match lacking {
        Lacking::Permission(permission) => {
            format!("groupguard lacks {permission}; admins were asked to {task}")
        }
        Lacking::Unsupported(_) => {
            format!("{} cannot {task}; admins were asked to", request.platform)
        }
    }
}

/// Why nothing at all could be done: the platform would not act, and the admins cannot be
/// told (or telling them was the action).
pub fn unreachable_note(request: &ActionRequest, lacking: &Lacking) -> String {
    let task = task(&request.action, request.member.as_str());
    let is_notice = Capability::needed_for(&request.action) == Some(Capability::Notify);
    match (lacking, is_notice) {
        (Lacking::Permission(p), true) => format!("groupguard lacks {p} to {task}"),
        (Lacking::Permission(p), false) => {
            format!("groupguard lacks {p} to {task}, and cannot notify admins")
        }
        (Lacking::Unsupported(_), true) => format!("{} cannot {task}", request.platform),
        (Lacking::Unsupported(_), false) => {
            format!("{} cannot {task} or notify admins", request.platform)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use crate::platform::{IdempotencyKey, Recipients};

    const NOW: Timestamp = Timestamp(1_000_000);
    const POLICY: RetryPolicy = RetryPolicy { max_attempts: 3 };

    fn err(kind: AdapterErrorKind) -> AdapterError {
        AdapterError::new(kind, "boom")
    }

    fn of(action: &Action, kind: AdapterErrorKind, attempts: u32) -> Disposition {
        Disposition::of(action, Err(&err(kind)), attempts, &POLICY, NOW)
    }

    fn request(action: Action) -> ActionRequest {
        ActionRequest {
            key: IdempotencyKey::for_action(Platform::Discord, &"e1".into(), 0),
            platform: Platform::Discord,
            group: "guild".into(),
            member: "spammer".into(),
            message: None,
            action,
            rule: "ads".into(),
            notify: Recipients::default(),
            case: None,
            ban: false,
        }
    }

    #[test]
    fn errors_become_retries_failures_or_fallbacks() {
        let warn = Action::Warn {
            text: "x".to_owned(),
        };
        assert_eq!(
            Disposition::of(&warn, Ok(()), 1, &POLICY, NOW),
            Disposition::Done
        );
        assert_eq!(
            of(
                &warn,
                AdapterErrorKind::RateLimited {
                    retry_after: Duration::from_secs(7)
                },
                1
            ),
            Disposition::Retry {
                error: "boom".to_owned(),
                at: NOW.plus(Duration::from_secs(7))
            }
        );
        assert_eq!(
            of(&warn, AdapterErrorKind::Transient, 2),
            Disposition::Retry {
                error: "boom".to_owned(),
                at: NOW.plus(Duration::from_secs(2))
            }
        );
        assert_eq!(
            of(&warn, AdapterErrorKind::Transient, 3),
            Disposition::Fail {
                error: "boom (gave up after 3 attempts)".to_owned()
            }
        );
        assert_eq!(
            of(&Action::Kick, AdapterErrorKind::NotFound, 1),
            Disposition::Done,
            "a member who is gone need not be kicked"
        );
        assert_eq!(
            of(&warn, AdapterErrorKind::NotFound, 1),
            Disposition::Fail {
                error: "boom".to_owned()
            }
        );
        assert_eq!(
            of(
                &Action::Kick,
                AdapterErrorKind::Forbidden {
                    permission: Some("Kick Members".to_owned())
                },
                1
            ),
            Disposition::FallBack(Lacking::Permission("Kick Members".to_owned()))
        );
        assert_eq!(
            of(
                &Action::Kick,
                AdapterErrorKind::Forbidden { permission: None },
                1
            ),
            Disposition::FallBack(Lacking::Permission(
                "the permission to remove members from the group".to_owned()
            ))
        );
        assert_eq!(
            of(&warn, AdapterErrorKind::Expired, 1),
            Disposition::Fail {
                error: "boom".to_owned()
            }
        );
    }

    #[test]
    fn backoff_doubles_up_to_two_minutes() {
        let waits: Vec<u64> = (0..10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 1, 2, 4, 8, 16, 32, 64, 128, 128]);
    }

    #[test]
    fn notices_say_what_to_do_and_why_groupguard_did_not() {
        let kick = request(Action::Kick);
        let permission = Lacking::Permission("Kick Members".to_owned());
        assert_eq!(
            fallback_notice(&kick, &permission),
            "rule ads asks to remove spammer from the group, which groupguard may not do here: \
             grant groupguard Kick Members, or do it by hand"
        );
        assert_eq!(
            replaced_note(&kick, &permission),
            "groupguard lacks Kick Members; admins were asked to remove spammer from the group"
        );
        let why = Lacking::Unsupported(Some(
            "WeCom has no API to remove a customer from a customer group".to_owned(),
        ));
        assert_eq!(
            fallback_notice(&kick, &why),
            "rule ads asks to remove spammer from the group, which groupguard cannot do on discord \
             (WeCom has no API to remove a customer from a customer group): please do it by hand"
        );
        assert_eq!(
            replaced_note(&kick, &Lacking::Unsupported(None)),
            "discord cannot remove spammer from the group; admins were asked to"
        );
        assert_eq!(
            unreachable_note(&kick, &permission),
            "groupguard lacks Kick Members to remove spammer from the group, and cannot notify admins"
        );
        let notice = request(Action::NotifyAdmins {
            text: "x".to_owned(),
        });
        assert_eq!(
            unreachable_note(&notice, &Lacking::Unsupported(None)),
            "discord cannot notify the admins"
        );
        let mute = request(Action::Timeout {
            duration: Duration::from_secs(600),
        });
        assert_eq!(
            fallback_notice(&mute, &Lacking::Unsupported(None)),
            "rule ads asks to mute spammer for 10m, which groupguard cannot do on discord: please do it by hand"
        );
    }
}
