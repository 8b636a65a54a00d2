//! Policy lists (MSC2313), the ban lists Mjolnir, Draupnir and Meowlnir share: rooms whose
//! state events (`m.policy.rule.user`, `m.policy.rule.server` and their older names) each ban
//! a user or server glob. Followed rooms become blacklist sources; groupguard's own org-wide
//! blacklist is published to one such room.

use std::collections::HashMap;

use groupguard_core::model::{ListChange, UserId};
use serde_json::{Value, json};

/// Rule types naming users, newest first: the spec's, then the names before it.
const USER_RULES: [&str; 3] = [
    "m.policy.rule.user",
    "m.room.rule.user",
    "org.matrix.mjolnir.rule.user",
];
/// Rule types naming servers.
const SERVER_RULES: [&str; 3] = [
    "m.policy.rule.server",
    "m.room.rule.server",
    "org.matrix.mjolnir.rule.server",
];
/// Recommendations that mean "keep them out": the spec's ban, Mjolnir's older name, and the
/// takedown Meowlnir uses for the worst cases.
const BANS: [&str; 3] = [
    "m.ban",
    "org.matrix.mjolnir.ban",
    "org.matrix.msc4204.takedown",
];

/// Every rule type groupguard reads.
pub const RULE_TYPES: [&str; 6] = [
    USER_RULES[0],
    USER_RULES[1],
    USER_RULES[2],
    SERVER_RULES[0],
    SERVER_RULES[1],
    SERVER_RULES[2],
];

/// The type of the state events groupguard publishes.
pub const PUBLISHED_TYPE: &str = "m.policy.rule.user";

/// A ban a list holds: the member glob it bans and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// A user id or glob; a server rule becomes `@*:server`.
    pub member: String,
    /// The list's reason.
    pub reason: String,
}

/// The ban a rule's content states, if it states one.
fn ban_of(kind: &str, content: &Value) -> Option<Ban> {
    let entity = content["entity"].as_str().filter(|e| !e.is_empty())?;
    let recommendation = content["recommendation"].as_str()?;
    if !BANS.contains(&recommendation) {
        return None;
    }
    let member = if SERVER_RULES.contains(&kind) {
        format!("@*:{entity}")
    } else {
        entity.to_owned()
    };
    Some(Ban {
        member,
        reason: content["reason"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Whether `kind` is a rule type groupguard reads.
pub fn is_rule(kind: &str) -> bool {
    USER_RULES.contains(&kind) || SERVER_RULES.contains(&kind)
}

/// One followed policy room: the bans its current rules hold, by (type, state key), and
/// which event set each, so a redaction can be traced to its rule.
#[derive(Debug, Default)]
pub struct PolicyRoom {
    rules: HashMap<(String, String), (String, Ban)>,
}

impl PolicyRoom {
    /// Takes in a state event or a redaction (as JSON) and says what changed for the
    /// blacklist: at most a lift of the ban the rule held before and a ban it holds now.
    pub fn apply(&mut self, event: &Value) -> Vec<ListChange> {
        let kind = event["type"].as_str().unwrap_or_default();
        if kind == "m.room.redaction" {
            let redacts = event["redacts"]
                .as_str()
                .or_else(|| event["content"]["redacts"].as_str());
            let Some(slot) = redacts.and_then(|id| {
                self.rules
                    .iter()
                    .find(|(_, (event_id, _))| event_id == id)
                    .map(|(slot, _)| slot.clone())
            }) else {
                return Vec::new();
            };
            return self
                .rules
                .remove(&slot)
                .map(|(_, ban)| lift(&ban))
                .into_iter()
                .collect();
        }
        if !is_rule(kind) {
            return Vec::new();
        }
        let Some(state_key) = event["state_key"].as_str() else {
            return Vec::new();
        };
        let slot = (kind.to_owned(), state_key.to_owned());
        let before = self
            .rules
            .get(&slot)
            .map(|(_, ban)| ban.clone())
            .or_else(|| {
                // A rule set before groupguard followed the room: its previous content.
                ban_of(kind, &event["unsigned"]["prev_content"])
            });
        let now = ban_of(kind, &event["content"]);
        let event_id = event["event_id"].as_str().unwrap_or_default().to_owned();
        match &now {
            Some(ban) => self.rules.insert(slot, (event_id, ban.clone())),
            None => self.rules.remove(&slot),
        };
        let mut changes = Vec::new();
        if let Some(before) = &before
            && now.as_ref().is_none_or(|now| now.member != before.member)
        {
            changes.push(lift(before));
        }
        if let Some(now) = now
            && before.as_ref() != Some(&now)
        {
            changes.push(ListChange::Ban {
                member: UserId::from(now.member),
                reason: now.reason,
            });
        }
        changes
    }
}

fn lift(ban: &Ban) -> ListChange {
    ListChange::Lift {
        member: UserId::from(ban.member.as_str()),
    }
}

/// The state key groupguard publishes a member's ban under (Draupnir's and Mjolnir's form).
pub fn state_key(member: &str) -> String {
    format!("rule:{member}")
}

/// The content of a published ban.
pub fn published(member: &str, reason: &str) -> Value {
    json!({"entity": member, "recommendation": "m.ban", "reason": reason})
}

/// What a published rule's content bans: its entity and reason, when it is a ban.
pub fn published_ban(content: &Value) -> Option<Ban> {
    ban_of(PUBLISHED_TYPE, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, key: &str, id: &str, content: Value) -> Value {
        let mut event = json!({"type": kind, "state_key": key, "event_id": id, "sender": "@mod:x"});
        event["content"] = content;
        event
    }

    fn ban(member: &str, reason: &str) -> ListChange {
        ListChange::Ban {
            member: member.into(),
            reason: reason.into(),
        }
    }

    fn lifted(member: &str) -> ListChange {
        ListChange::Lift {
            member: member.into(),
        }
    }

    #[test]
    fn users_servers_and_globs_become_bans_and_removals_lift_them() {
        let mut room = PolicyRoom::default();
        let user = json!({"entity": "@spam:x.org", "recommendation": "m.ban", "reason": "spam"});
        assert_eq!(
            room.apply(&rule("m.policy.rule.user", "rule:a", "$1", user.clone())),
            [ban("@spam:x.org", "spam")]
        );
        // The same rule read again (a restart, a limited sync) changes nothing.
        assert_eq!(
            room.apply(&rule("m.policy.rule.user", "rule:a", "$1", user)),
            []
        );
        let server = json!({"entity": "*.evil.example", "recommendation": "m.ban"});
        assert_eq!(
            room.apply(&rule("m.policy.rule.server", "s", "$2", server)),
            [ban("@*:*.evil.example", "")]
        );
        let legacy = json!({"entity": "@bot*:*", "recommendation": "org.matrix.mjolnir.ban"});
        assert_eq!(
            room.apply(&rule("org.matrix.mjolnir.rule.user", "l", "$3", legacy)),
            [ban("@bot*:*", "")]
        );
        // Removal: the rule's content emptied.
        assert_eq!(
            room.apply(&rule("m.policy.rule.server", "s", "$4", json!({}))),
            [lifted("@*:*.evil.example")]
        );
        // Removal by redaction (room versions 11+ put `redacts` in the content).
        assert_eq!(
            room.apply(&json!({"type": "m.room.redaction", "content": {"redacts": "$3"}})),
            [lifted("@bot*:*")]
        );
        assert_eq!(
            room.apply(&json!({"type": "m.room.redaction", "redacts": "$unknown"})),
            []
        );
    }

    #[test]
    fn a_rule_changed_in_place_lifts_the_old_entity_and_other_recommendations_are_not_bans() {
        let mut room = PolicyRoom::default();
        let first = json!({"entity": "@a:x", "recommendation": "m.ban"});
        room.apply(&rule("m.policy.rule.user", "k", "$1", first));
        let second = json!({"entity": "@b:x", "recommendation": "m.ban", "reason": "r"});
        assert_eq!(
            room.apply(&rule("m.policy.rule.user", "k", "$2", second)),
            [lifted("@a:x"), ban("@b:x", "r")]
        );
        let mute = json!({"entity": "@c:x", "recommendation": "org.example.mute"});
        assert_eq!(
            room.apply(&rule("m.policy.rule.user", "k", "$3", mute)),
            [lifted("@b:x")]
        );
        assert_eq!(
            room.apply(&rule("m.room.topic", "", "$4", json!({"topic": "x"}))),
            []
        );
    }

    #[test]
    fn a_removal_of_a_rule_set_before_it_was_followed_uses_the_previous_content() {
        let mut room = PolicyRoom::default();
        let mut removal = rule("m.policy.rule.user", "k", "$9", json!({}));
        removal["unsigned"] =
            json!({"prev_content": {"entity": "@old:x", "recommendation": "m.ban"}});
        assert_eq!(room.apply(&removal), [lifted("@old:x")]);
    }

    #[test]
    fn published_rules_read_back_as_bans() {
        let content = published("@spam:x", "groupguard: ads");
        assert_eq!(
            published_ban(&content),
            Some(Ban {
                member: "@spam:x".into(),
                reason: "groupguard: ads".into()
            })
        );
        assert_eq!(state_key("@spam:x"), "rule:@spam:x");
    }
}
