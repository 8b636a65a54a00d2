//! The JSON shape of events: one event per line in a chat log (JSONL).
//!
//! ```json
//! {"id":"e1","at":"2026-11-21T09:00:00Z","platform":"wecom","group":"wrSales",
//!  "member":{"id":"wmAlice","name":"Alice","org":"wwAcme","role":"member"},
//!  "type":"message","message":{"kind":"text","text":"hello"}}
//! ```
//!
//! * `type` is `message`, `edit`, `join`, `leave`, `remove`, `group` or `command`.
//! * `message` (for `message` and `edit`): `kind` (`text`, `image`, `voice`, `video`, `file`,
//!   `link`, `mini_program`, `chat_record`, `contact_card`, `sticker`, `location`, `other`),
//!   `app_id` (mini-programs only), `text`, `links`, `mentions`, `attachments`
//!   (`name`, `mime`, `size`, `image_base64`), optional `id`.
//! * `inviter` (a member) and `scene` (`direct_invite`, `invite_link`, `qr_code`, `unknown`)
//!   for `join`.
//! * `by` (a member, optional) and `banned` (default false) for `remove`: someone else
//!   removed the member; `leave` is leaving of one's own accord.
//! * `change` for `group`: `{"type":"created","name":…,"owner":…,"home_org":…,"admins":[…]}`,
//!   `{"type":"renamed","name":…}`, `{"type":"owner_changed","owner":…}`,
//!   `{"type":"admins_changed","admins":[…]}` or `{"type":"dismissed"}`; `member` is who
//!   changed it.
//! * `text` and optional `reply_to` (`handle`, `expires_at`, and `group`, `sender`, `message`
//!   when they differ from the event's) for `command`.
//! * `at` is RFC 3339 or epoch milliseconds. `member.role` is `member` (default), `staff`,
//!   `moderator`, `admin` or `owner`; `member.bot` defaults to false.
//!
//! Unknown fields and fields that do not belong to the event's type are rejected.

use serde::{Deserialize, Serialize};

use crate::model::{
    Attachment, Event, EventId, EventKind, GroupChange, GroupId, JoinScene, KindName, ListChange,
    Member, Message, MessageId, MessageKind, Platform, ReplyHandle, ReplyTo, UserId, is_false,
};
use crate::names::named;
use crate::time::Timestamp;

/// The wire form of [`Event`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    id: EventId,
    at: Timestamp,
    platform: Platform,
    group: GroupId,
    member: Member,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inviter: Option<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scene: Option<JoinScene>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    banned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<GroupChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    list: Option<ListChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<ReplyLine>,
}

/// The wire form of [`ReplyTo`]: what the event already says is left out.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sender: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handle: Option<ReplyHandle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
}

named! {
    /// The `type` of an event line.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum EventType as "event type" {
        /// [`EventKind::MessagePosted`]
        Message = "message",
        /// [`EventKind::MessageEdited`]
        Edit = "edit",
        /// [`EventKind::MemberJoined`]
        Join = "join",
        /// [`EventKind::MemberLeft`]
        Leave = "leave",
        /// [`EventKind::MemberRemoved`]
        Remove = "remove",
        /// [`EventKind::GroupChanged`]
        Group = "group",
        /// [`EventKind::Command`]
        Command = "command",
        /// [`EventKind::ListChanged`]
        List = "list",
    }
}

impl EventType {
    /// The type of an event.
    pub(crate) fn of(kind: &EventKind) -> EventType {
        match kind {
            EventKind::MessagePosted(_) => EventType::Message,
            EventKind::MessageEdited(_) => EventType::Edit,
            EventKind::MemberJoined { .. } => EventType::Join,
            EventKind::MemberLeft => EventType::Leave,
            EventKind::MemberRemoved { .. } => EventType::Remove,
            EventKind::GroupChanged(_) => EventType::Group,
            EventKind::Command { .. } => EventType::Command,
            EventKind::ListChanged(_) => EventType::List,
        }
    }

    /// The optional fields an event of this type may carry.
    fn fields(self) -> &'static [&'static str] {
        match self {
            EventType::Message | EventType::Edit => &["message"],
            EventType::Join => &["inviter", "scene"],
            EventType::Leave => &[],
            EventType::Remove => &["by", "banned"],
            EventType::Group => &["change"],
            EventType::Command => &["text", "reply_to"],
            EventType::List => &["list"],
        }
    }
}

impl EventLine {
    /// The optional fields present.
    fn present(&self) -> impl Iterator<Item = &'static str> {
        [
            ("message", self.message.is_some()),
            ("inviter", self.inviter.is_some()),
            ("scene", self.scene.is_some()),
            ("by", self.by.is_some()),
            ("banned", self.banned.is_some()),
            ("change", self.change.is_some()),
            ("list", self.list.is_some()),
            ("text", self.text.is_some()),
            ("reply_to", self.reply_to.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
    }
}

impl TryFrom<EventLine> for Event {
    type Error = String;

    fn try_from(line: EventLine) -> Result<Event, String> {
        let allowed = line.kind.fields();
        if let Some(field) = line.present().find(|f| !allowed.contains(f)) {
            let hint = match (field, line.kind) {
                ("text", EventType::Message | EventType::Edit) => {
                    " (put a message's text inside `message`)"
                }
                _ => "",
            };
            return Err(format!(
                "field `{field}` does not belong to a `{}` event{hint}",
                line.kind
            ));
        }
        let EventLine {
            id,
            at,
            platform,
            group,
            member,
            kind,
            message,
            inviter,
            scene,
            by,
            banned,
            change,
            list,
            text,
            reply_to,
        } = line;
        let kind = match kind {
            EventType::Message | EventType::Edit => {
                let message = message.ok_or("a message event needs a `message` object")?;
                if kind == EventType::Message {
                    EventKind::MessagePosted(message)
                } else {
                    EventKind::MessageEdited(message)
                }
            }
            EventType::Join => EventKind::MemberJoined {
                inviter,
                scene: scene.unwrap_or_default(),
            },
            EventType::Leave => EventKind::MemberLeft,
            EventType::Remove => EventKind::MemberRemoved {
                by,
                banned: banned.unwrap_or(false),
            },
            EventType::Group => {
                EventKind::GroupChanged(change.ok_or("a group event needs a `change` object")?)
            }
            EventType::List => {
                EventKind::ListChanged(list.ok_or("a list event needs a `list` object")?)
            }
            EventType::Command => {
                let reply = reply_to.unwrap_or_default();
                EventKind::Command {
                    text: text.ok_or("a command event needs `text`")?,
                    reply_to: ReplyTo {
                        group: reply.group.unwrap_or_else(|| group.clone()),
                        sender: reply.sender.unwrap_or_else(|| member.id.clone()),
                        message: reply.message.or_else(|| Some(MessageId::new(id.as_str()))),
                        handle: reply.handle,
                        expires_at: reply.expires_at,
                    },
                }
            }
        };
        Ok(Event {
            id,
            at,
            platform,
            group,
            member,
            kind,
        })
    }
}

impl From<Event> for EventLine {
    fn from(event: Event) -> EventLine {
        let mut line = EventLine {
            id: event.id,
            at: event.at,
            platform: event.platform,
            group: event.group,
            member: event.member,
            kind: EventType::of(&event.kind),
            message: None,
            inviter: None,
            scene: None,
            by: None,
            banned: None,
            change: None,
            list: None,
            text: None,
            reply_to: None,
        };
        match event.kind {
            EventKind::MessagePosted(m) => {
                line.message = Some(m);
            }
            EventKind::MessageEdited(m) => {
                line.message = Some(m);
            }
            EventKind::MemberJoined { inviter, scene } => {
                line.inviter = inviter;
                line.scene = Some(scene);
            }
            EventKind::MemberLeft => {}
            EventKind::MemberRemoved { by, banned } => {
                line.by = by;
                line.banned = banned.then_some(true);
            }
            EventKind::GroupChanged(change) => {
                line.change = Some(change);
            }
            EventKind::ListChanged(change) => {
                line.list = Some(change);
            }
            EventKind::Command { text, reply_to } => {
                line.text = Some(text);
                let reply = ReplyLine {
                    group: Some(reply_to.group).filter(|g| *g != line.group),
                    sender: Some(reply_to.sender).filter(|s| *s != line.member.id),
                    message: reply_to.message.filter(|m| m.as_str() != line.id.as_str()),
                    handle: reply_to.handle,
                    expires_at: reply_to.expires_at,
                };
                let empty = reply.group.is_none()
                    && reply.sender.is_none()
                    && reply.message.is_none()
                    && reply.handle.is_none()
                    && reply.expires_at.is_none();
                line.reply_to = (!empty).then_some(reply);
            }
        }
        line
    }
}

/// The wire form of [`Message`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<MessageId>,
    #[serde(default = "text_kind")]
    kind: KindName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_id: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    links: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "is_false")]
    blocked: bool,
}

fn text_kind() -> KindName {
    KindName::Text
}

impl TryFrom<MessageLine> for Message {
    type Error = String;

    fn try_from(line: MessageLine) -> Result<Message, String> {
        let kind = match line.kind {
            KindName::MiniProgram => MessageKind::MiniProgram {
                app_id: line.app_id,
            },
            other if line.app_id.is_some() => {
                return Err(format!(
                    "`app_id` belongs to mini_program messages, not {other}"
                ));
            }
            KindName::Text => MessageKind::Text,
            KindName::Image => MessageKind::Image,
            KindName::Voice => MessageKind::Voice,
            KindName::Video => MessageKind::Video,
            KindName::File => MessageKind::File,
            KindName::Link => MessageKind::Link,
            KindName::ChatRecord => MessageKind::ChatRecord,
            KindName::ContactCard => MessageKind::ContactCard,
            KindName::Sticker => MessageKind::Sticker,
            KindName::Location => MessageKind::Location,
            KindName::Other => MessageKind::Other,
        };
        Ok(Message {
            id: line.id,
            kind,
            text: line.text,
            links: line.links,
            mentions: line.mentions,
            attachments: line.attachments,
            blocked: line.blocked,
        })
    }
}

impl From<Message> for MessageLine {
    fn from(m: Message) -> MessageLine {
        let app_id = match &m.kind {
            MessageKind::MiniProgram { app_id } => app_id.clone(),
            _ => None,
        };
        MessageLine {
            id: m.id,
            kind: m.kind.name(),
            app_id,
            text: m.text,
            links: m.links,
            mentions: m.mentions,
            attachments: m.attachments,
            blocked: m.blocked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Event, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    #[test]
    fn a_message_line_round_trips() {
        let line = r#"{"id":"e1","at":"2026-11-21T09:00:00Z","platform":"wecom","group":"g1","member":{"id":"u1","name":"Ann","org":"wwAcme","role":"staff"},"type":"message","message":{"kind":"mini_program","app_id":"wx123","text":"hi"}}"#;
        let event = parse(line).unwrap();
        assert_eq!(event.member.role, crate::model::Role::Staff);
        let message = event.message().unwrap();
        assert_eq!(
            message.kind,
            MessageKind::MiniProgram {
                app_id: Some("wx123".to_owned())
            }
        );
        let again = parse(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn joins_carry_inviter_and_scene() {
        let event = parse(r#"{"id":"e2","at":0,"platform":"matrix","group":"!r:hs","member":{"id":"@x:evil.org","org":"evil.org"},"type":"join","inviter":{"id":"@a:hs","role":"member"},"scene":"invite_link"}"#).unwrap();
        match event.kind {
            EventKind::MemberJoined { inviter, scene } => {
                assert_eq!(scene, JoinScene::InviteLink);
                assert_eq!(inviter.unwrap().id.as_str(), "@a:hs");
            }
            other => panic!("expected a join, got {other:?}"),
        }
    }

    #[test]
    fn removals_group_changes_and_commands_round_trip() {
        let lines = [
            r#"{"id":"e3","at":0,"platform":"discord","group":"42","member":{"id":"7"},"type":"remove","by":{"id":"1","role":"admin"},"banned":true}"#,
            r#"{"id":"e4","at":0,"platform":"wecom","group":"wr1","member":{"id":"zhang"},"type":"group","change":{"type":"created","name":"VIP","owner":"zhang","home_org":"wwAcme"}}"#,
            r#"{"id":"e5","at":0,"platform":"wecom","group":"wr1","member":{"id":"zhang"},"type":"group","change":{"type":"dismissed"}}"#,
            r#"{"id":"e6","at":0,"platform":"discord","group":"42","member":{"id":"1"},"type":"command","text":"!guard rule list","reply_to":{"handle":"tok","expires_at":900000}}"#,
        ];
        for line in lines {
            let event = parse(line).unwrap();
            let again = serde_json::to_string(&event).unwrap();
            assert_eq!(parse(&again).unwrap(), event, "{again}");
        }
        match parse(lines[0]).unwrap().kind {
            EventKind::MemberRemoved { by, banned } => {
                assert!(banned);
                assert_eq!(by.unwrap().role, crate::model::Role::Admin);
            }
            other => panic!("expected a removal, got {other:?}"),
        }
        match parse(lines[3]).unwrap().kind {
            EventKind::Command { reply_to, .. } => {
                assert_eq!(reply_to.group.as_str(), "42");
                assert_eq!(reply_to.sender.as_str(), "1");
                assert_eq!(reply_to.message.as_ref().unwrap().as_str(), "e6");
                assert_eq!(reply_to.handle.as_ref().unwrap().expose(), "tok");
                assert!(reply_to.expired(Timestamp(900_000)));
            }
            other => panic!("expected a command, got {other:?}"),
        }
        let shown = format!("{:?}", parse(lines[3]).unwrap());
        assert!(
            !shown.contains("tok"),
            "a reply handle is never shown: {shown}"
        );
    }

    #[test]
    fn malformed_lines_are_rejected_with_a_reason() {
        let err = parse(r#"{"id":"e","at":0,"platform":"wecom","group":"g","member":{"id":"u"},"type":"leave","by":{"id":"a"}}"#).unwrap_err();
        assert!(
            err.contains("field `by` does not belong to a `leave` event"),
            "{err}"
        );
        let err = parse(r#"{"id":"e","at":0,"platform":"wecom","group":"g","member":{"id":"u"},"type":"group"}"#).unwrap_err();
        assert!(err.contains("needs a `change`"), "{err}");
        let err = parse(r#"{"id":"e","at":0,"platform":"wecom","group":"g","member":{"id":"u"},"type":"group","change":{"type":"renamed"}}"#).unwrap_err();
        assert!(err.contains("missing field `name`"), "{err}");
        let err = parse(r#"{"id":"e","at":0,"platform":"wecom","group":"g","member":{"id":"u"},"type":"message"}"#).unwrap_err();
        assert!(err.contains("needs a `message`"), "{err}");
        let err = parse(r#"{"id":"e","at":0,"platform":"wecom","group":"g","member":{"id":"u"},"type":"message","message":{"txt":"x"}}"#).unwrap_err();
        assert!(err.contains("unknown field `txt`"), "{err}");
        let err = parse(r#"{"id":"e","at":0,"platform":"wecom","group":"g","member":{"id":"u"},"type":"message","message":{"kind":"image","app_id":"wx"}}"#).unwrap_err();
        assert!(err.contains("`app_id` belongs to mini_program"), "{err}");
        let err = parse(r#"{"id":"e","at":"yesterday","platform":"wecom","group":"g","member":{"id":"u"},"type":"leave"}"#).unwrap_err();
        assert!(err.contains("invalid time `yesterday`"), "{err}");
    }
}
