//! Raid detection: many distinct members breaking rules in one group within a short window.
//!
//! Pure, like the engine: the caller passes each verdict and its time. An alert becomes
//! planned actions of the verdict that raised it (a notice to the group's admins, and a
//! lockdown where configured), so it is stored with that verdict in one transaction and
//! carried out, and retried, like every other action.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::model::{GroupId, Platform, UserId};
use crate::platform::IdempotencyKey;
use crate::rule::Mode;
use crate::time::{Timestamp, duration_millis};
use crate::verdict::{Action, PlannedAction, Verdict};

/// When violations in a group count as a raid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaidPolicy {
    /// Distinct members breaking rules in one group…
    pub members: u32,
    /// …within this window raise one alert.
    pub window: Duration,
    /// Also lock the group down where the platform can.
    pub lockdown: bool,
}

/// Counts distinct violators per group in a sliding window.
#[derive(Debug, Default)]
pub struct RaidDetector {
    groups: HashMap<(Platform, GroupId), GroupWindow>,
    observed: u64,
}

/// Recent violations (time, member) of one group, and when the next alert may be raised.
#[derive(Debug, Default)]
struct GroupWindow {
    recent: VecDeque<(i64, UserId)>,
    quiet_until: i64,
}

/// Groups are swept of old violations every this many observations, so quiet groups do not
/// hold memory.
const SWEEP_EVERY: u64 = 1024;

impl RaidDetector {
    /// Notes a verdict judged at `now`. When its enforced violations make the group's
    /// violators reach `policy.members` within the window, for the first time in that window,
    /// returns the actions that announce the raid (to be stored with the verdict).
    pub fn observe(
        &mut self,
        policy: &RaidPolicy,
        verdict: &Verdict,
    ) -> Option<Vec<PlannedAction>> {
        let trigger = verdict
            .violations
            .iter()
            .find(|v| v.mode == Mode::Enforce)?;
        let now = verdict.at.millis();
        let window = duration_millis(policy.window).max(1);
        self.observed += 1;
        if self.observed.is_multiple_of(SWEEP_EVERY) {
            self.groups.retain(|_, g| {
                g.recent.back().is_some_and(|(at, _)| *at > now - window) || g.quiet_until > now
            });
        }
        let group = self
            .groups
            .entry((verdict.platform, verdict.group.clone()))
            .or_default();
        group.recent.push_back((now, verdict.member.clone()));
        while group
            .recent
            .front()
            .is_some_and(|(at, _)| *at <= now - window)
        {
            group.recent.pop_front();
        }
        let violators: HashSet<&UserId> = group.recent.iter().map(|(_, m)| m).collect();
        if violators.len() < policy.members as usize || now < group.quiet_until {
            return None;
        }
        group.quiet_until = now + window;
        let key = IdempotencyKey::for_raid(
            verdict.platform,
            &verdict.group,
            Timestamp(now - now.rem_euclid(window)),
        );
        let planned = |action: Action, key: IdempotencyKey| PlannedAction {
            rule: trigger.rule.clone(),
            mode: Mode::Enforce,
            platform: verdict.platform,
            group: verdict.group.clone(),
            member: verdict.member.clone(),
            action,
            key: Some(key),
        };
        let mut actions = vec![planned(
            Action::NotifyAdmins {
                text: format!(
                    "raid alert: {} members broke rules in {} within {}",
                    violators.len(),
                    verdict.group,
                    humantime::format_duration(policy.window)
                ),
            },
            key.clone(),
        )];
        if policy.lockdown {
            actions.push(planned(Action::Lockdown, key.derived("lockdown")));
        }
        Some(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(group: &str, member: &str, second: i64, mode: Mode) -> Verdict {
        let at = Timestamp(1_000_000 + second * 1000);
        let mut verdict = Verdict {
            event: format!("{group}-{member}-{second}").into(),
            message: None,
            at,
            platform: Platform::WeCom,
            group: group.into(),
            member: member.into(),
            outcomes: Default::default(),
            actions: Vec::new(),
            violations: Vec::new(),
        };
        verdict.violations.push(crate::verdict::ViolationRecord {
            event: verdict.event.clone(),
            at,
            platform: Platform::WeCom,
            group: group.into(),
            member: member.into(),
            member_name: None,
            member_joined_at: None,
            rule: "ads".into(),
            check: crate::verdict::CheckKind::Keyword,
            evidence: crate::verdict::Evidence::Kind {
                kind: crate::model::KindName::Text,
            },
            excerpt: String::new(),
            actions: Vec::new(),
            mode,
        });
        verdict
    }

    #[test]
    fn a_raid_is_announced_once_per_window_and_per_group() {
        let policy = RaidPolicy {
            members: 3,
            window: Duration::from_secs(60),
            lockdown: false,
        };
        let mut raids = RaidDetector::default();
        let mut seen = |group: &str, member: &str, s: i64| {
            raids
                .observe(&policy, &verdict(group, member, s, Mode::Enforce))
                .map(|actions| actions.len())
        };
        assert_eq!(seen("g1", "a", 0), None);
        assert_eq!(
            seen("g1", "a", 1),
            None,
            "the same member twice is one violator"
        );
        assert_eq!(seen("g1", "b", 2), None);
        assert_eq!(seen("g2", "c", 3), None, "other groups do not count");
        assert_eq!(seen("g1", "c", 4), Some(1));
        assert_eq!(seen("g1", "d", 5), None, "one alert per window");
        assert_eq!(seen("g1", "x", 70), None);
        assert_eq!(seen("g1", "y", 71), None);
        assert_eq!(seen("g1", "z", 72), Some(1), "a new window, a new alert");
    }

    #[test]
    fn shadow_violations_do_not_count_and_alerts_are_keyed_by_window() {
        let policy = RaidPolicy {
            members: 2,
            window: Duration::from_secs(60),
            lockdown: true,
        };
        let mut raids = RaidDetector::default();
        assert!(
            raids
                .observe(&policy, &verdict("g1", "a", 0, Mode::Shadow))
                .is_none()
        );
        assert!(
            raids
                .observe(&policy, &verdict("g1", "b", 1, Mode::Shadow))
                .is_none()
        );
        assert!(
            raids
                .observe(&policy, &verdict("g1", "a", 2, Mode::Enforce))
                .is_none()
        );
        let actions = raids
            .observe(&policy, &verdict("g1", "b", 3, Mode::Enforce))
            .unwrap();
        assert_eq!(
            actions[0].action,
            Action::NotifyAdmins {
                text: "raid alert: 2 members broke rules in g1 within 1m".to_owned()
            }
        );
        assert_eq!(actions[1].action, Action::Lockdown);
        let window_start = Timestamp(1_003_000 - 1_003_000 % 60_000);
        let key = IdempotencyKey::for_raid(Platform::WeCom, &"g1".into(), window_start);
        assert_eq!(actions[0].key.as_ref(), Some(&key));
        assert_eq!(actions[1].key.as_ref(), Some(&key.derived("lockdown")));
        assert!(actions.iter().all(|a| a.rule.as_str() == "ads"
            && a.member.as_str() == "b"
            && a.mode == Mode::Enforce));
    }
}
