//! The JSON shape of events: one event per line in a chat log (JSONL).
//!
//! ```json
//! {"id":"e1","at":"2026-11-21T09:00:00Z","platform":"wecom","group":"wrSales",
//!  "member":{"id":"wmAlice","name":"Alice","org":"wwAcme","role":"member"},
//!  "type":"message","message":{"kind":"text","text":"hello"}}
//! ```
//!
//! * `type` is `message`, `edit`, `join`, `leave` or `command`.
//! * `message` (for `message` and `edit`): `kind` (`text`, `image`, `voice`, `video`, `file`,
//!   `link`, `mini_program`, `chat_record`, `contact_card`, `sticker`, `location`, `other`),
//!   `app_id` (mini-programs only), `text`, `links`, `mentions`, `attachments`
//!   (`name`, `mime`, `size`, `image_base64`), optional `id`.
//! * `inviter` (a member) and `scene` (`direct_invite`, `invite_link`, `qr_code`, `unknown`)
//!   for `join`; `text` for `command`.
//! * `at` is RFC 3339 or epoch milliseconds. `member.role` is `member` (default), `staff`,
//!   `moderator`, `admin` or `owner`; `member.bot` defaults to false.
//!
//! Unknown fields and fields that do not belong to the event's type are rejected.

use serde::{Deserialize, Serialize};

use crate::model::{
    Attachment, Event, EventId, EventKind, GroupId, JoinScene, KindName, Member, Message,
    MessageId, MessageKind, Platform, Timestamp, UserId,
};

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
    text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventType {
    Message,
    Edit,
    Join,
    Leave,
    Command,
}

impl TryFrom<EventLine> for Event {
    type Error = String;

    fn try_from(line: EventLine) -> Result<Event, String> {
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
            text,
        } = line;
        let misplaced =
            |field: &str| format!("field `{field}` does not belong to a `{kind:?}` event");
        let kind = match kind {
            EventType::Message | EventType::Edit => {
                if inviter.is_some() {
                    return Err(misplaced("inviter"));
                }
                if scene.is_some() {
                    return Err(misplaced("scene"));
                }
                if text.is_some() {
                    return Err("put a message's text inside `message`".to_owned());
                }
                let message = message.ok_or("a message event needs a `message` object")?;
                if kind == EventType::Message {
                    EventKind::MessagePosted(message)
                } else {
                    EventKind::MessageEdited(message)
                }
            }
            EventType::Join => {
                if message.is_some() {
                    return Err(misplaced("message"));
                }
                if text.is_some() {
                    return Err(misplaced("text"));
                }
                EventKind::MemberJoined {
                    inviter,
                    scene: scene.unwrap_or_default(),
                }
            }
            EventType::Leave => {
                if message.is_some() || inviter.is_some() || scene.is_some() || text.is_some() {
                    return Err(
                        "a leave event carries no message, inviter, scene or text".to_owned()
                    );
                }
                EventKind::MemberLeft
            }
            EventType::Command => {
                if message.is_some() || inviter.is_some() || scene.is_some() {
                    return Err("a command event carries only `text`".to_owned());
                }
                EventKind::Command {
                    text: text.ok_or("a command event needs `text`")?,
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
            kind: EventType::Leave,
            message: None,
            inviter: None,
            scene: None,
            text: None,
        };
        match event.kind {
            EventKind::MessagePosted(m) => {
                line.kind = EventType::Message;
                line.message = Some(m);
            }
            EventKind::MessageEdited(m) => {
                line.kind = EventType::Edit;
                line.message = Some(m);
            }
            EventKind::MemberJoined { inviter, scene } => {
                line.kind = EventType::Join;
                line.inviter = inviter;
                line.scene = Some(scene);
            }
            EventKind::MemberLeft => {}
            EventKind::Command { text } => {
                line.kind = EventType::Command;
                line.text = Some(text);
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
    fn malformed_lines_are_rejected_with_a_reason() {
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
