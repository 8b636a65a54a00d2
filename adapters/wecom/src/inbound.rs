//! Decrypted callbacks as groupguard's events: customer-group changes, the chat archive's
//! wake-up, admin commands sent to the app, and smart-bot messages that @-mention the bot.

use std::time::Duration;

use groupguard_core::command::PREFIXES;
use groupguard_core::model::{
    Event, EventId, EventKind, GroupChange, GroupId, Member, MessageId, OrgId, Platform,
    ReplyHandle, ReplyTo, Role, UserId,
};
use groupguard_core::time::Timestamp;
use serde_json::Value;

use crate::groups::{ChangeDetail, ChatChange};
use crate::xml::Fields;

/// The group of commands sent to the app or to the smart bot in a single chat.
pub const APP_GROUP: &str = "wecom-app";
/// A smart bot's `response_url` works for an hour.
const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(3600);

/// What a callback asks of the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Events to queue before answering WeCom.
    Events(Vec<Event>),
    /// A customer group changed: read it after a moment and emit what happened.
    Chat(ChatChange),
    /// New chat-archive records are waiting.
    ArchiveNotify,
    /// Nothing groupguard uses; the reason, for the debug log.
    Ignored(String),
}

/// What converting needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The home corp.
    pub corp_id: &'a str,
    /// Who administers groupguard.
    pub admins: &'a [UserId],
    /// Now, for reply handles' expiry.
    pub now: Timestamp,
}

impl Context<'_> {
    /// A member of the corp who sent a command: an admin when configured as one.
    fn staff(&self, id: &str) -> Member {
        let mut member = Member::new(id);
        member.org = Some(OrgId::from(self.corp_id));
        member.role = if self.admins.iter().any(|a| a.as_str() == id) {
            Role::Admin
        } else {
            Role::Staff
        };
        member
    }
}

/// A decrypted XML callback (apps and customer contact).
pub fn from_xml(fields: &Fields, ctx: &Context<'_>) -> Inbound {
    let at = Timestamp(
        fields
            .number("CreateTime")
            .unwrap_or(0)
            .saturating_mul(1000),
    );
    match (fields.get("MsgType"), fields.get("Event")) {
        (Some("event"), Some("change_external_chat")) => external_chat(fields, at),
        (Some("event"), Some("msgaudit_notify")) => Inbound::ArchiveNotify,
        (Some("event"), Some(other)) => Inbound::Ignored(format!("event {other}")),
        (Some("text"), _) => app_command(fields, ctx, at),
        (Some(other), _) => Inbound::Ignored(format!("app message of type {other}")),
        (None, _) => Inbound::Ignored("no MsgType".to_owned()),
    }
}

fn external_chat(fields: &Fields, at: Timestamp) -> Inbound {
    let Some(chat_id) = fields.text("ChatId") else {
        return Inbound::Ignored("change_external_chat without ChatId".to_owned());
    };
    let detail = match (fields.get("ChangeType"), fields.get("UpdateDetail")) {
        (Some("dismiss"), _) => {
            let mut owner = Member::new("sys");
            owner.role = Role::Owner;
            return Inbound::Events(vec![Event {
                id: EventId::new(format!("{chat_id}:dismissed")),
                at,
                platform: Platform::WeCom,
                group: GroupId::from(chat_id),
                member: owner,
                kind: EventKind::GroupChanged(GroupChange::Dismissed),
            }]);
        }
        (Some("create"), _) => ChangeDetail::Created,
        (Some("update"), Some("add_member")) => ChangeDetail::Joined,
        (Some("update"), Some("del_member")) => ChangeDetail::Left {
            removed: fields.number("QuitScene") == Some(1),
        },
        (Some("update"), _) => ChangeDetail::Changed,
        (other, _) => {
            return Inbound::Ignored(format!("change_external_chat of type {other:?}"));
        }
    };
    Inbound::Chat(ChatChange {
        chat_id: chat_id.to_owned(),
        at,
        detail,
        listed: fields.list("MemChangeList"),
        version: fields.text("CurMemVer").map(str::to_owned),
    })
}

/// A text a member sent to the app: a command, with or without its `!guard`.
fn app_command(fields: &Fields, ctx: &Context<'_>, at: Timestamp) -> Inbound {
    let (Some(from), Some(content)) = (fields.text("FromUserName"), fields.get("Content")) else {
        return Inbound::Ignored("app text without sender or content".to_owned());
    };
    let msg_id = fields.text("MsgId");
    let id = msg_id.map_or_else(
        || format!("app:{from}:{}", at.millis()),
        |m| format!("app:{m}"),
    );
    let group = GroupId::from(APP_GROUP);
    let reply_to = ReplyTo::in_group(
        group.clone(),
        UserId::from(from),
        msg_id.map(MessageId::from),
    );
    Inbound::Events(vec![command_event(
        id,
        at,
        group,
        ctx.staff(from),
        content,
        reply_to,
    )])
}

/// A smart bot's decrypted JSON: a message that @-mentions the bot, a command for it.
pub fn from_bot(body: &Value, ctx: &Context<'_>) -> Inbound {
    let (Some(msgid), Some(from)) = (
        body["msgid"].as_str(),
        body["from"]["userid"].as_str().filter(|f| !f.is_empty()),
    ) else {
        return Inbound::Ignored("smart-bot callback without msgid or sender".to_owned());
    };
    let text = match body["msgtype"].as_str() {
        Some("text") => body["text"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Some("mixed") => body["mixed"]["msg_item"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["text"]["content"].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        other => return Inbound::Ignored(format!("smart-bot message of type {other:?}")),
    };
    let group = GroupId::from(
        body["chatid"]
            .as_str()
            .filter(|c| !c.is_empty() && body["chattype"] == "group")
            .unwrap_or(APP_GROUP),
    );
    let reply_to = ReplyTo {
        group: group.clone(),
        sender: UserId::from(from),
        message: Some(MessageId::from(msgid)),
        handle: body["response_url"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(ReplyHandle::new),
        expires_at: Some(ctx.now.plus(RESPONSE_URL_LIFETIME)),
    };
    let id = format!("bot:{msgid}");
    Inbound::Events(vec![command_event(
        id,
        ctx.now,
        group,
        ctx.staff(from),
        strip_mentions(&text),
        reply_to,
    )])
}

fn command_event(
    id: String,
    at: Timestamp,
    group: GroupId,
    member: Member,
    text: &str,
    reply_to: ReplyTo,
) -> Event {
    Event {
        id: EventId::new(id),
        at,
        platform: Platform::WeCom,
        group,
        member,
        kind: EventKind::Command {
            text: with_prefix(text),
            reply_to,
        },
    }
}

/// `@groupguard stats` → `stats`: the bot's name is not part of the command.
fn strip_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('@') {
        rest = after
            .find(char::is_whitespace)
            .map_or("", |end| after[end..].trim_start());
    }
    rest
}

/// A command line with its `!guard`, whether or not the member typed it.
fn with_prefix(text: &str) -> String {
    let text = text.trim();
    let has_prefix = PREFIXES.iter().any(|p| {
        text.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    });
    if has_prefix {
        text.to_owned()
    } else {
        format!("{} {text}", PREFIXES[0]).trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn ctx(admins: &[UserId]) -> Context<'_> {
        Context {
            corp_id: "ww1",
            admins,
            now: NOW,
        }
    }

    fn xml(body: &str) -> Inbound {
        from_xml(&Fields::parse(body).unwrap(), &ctx(&[]))
    }

    #[test]
    fn the_documented_update_sample_is_a_member_change() {
        let inbound = xml(
            "<xml><ToUserName><![CDATA[ww55ca070cb9b7eb22]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ]]></ChatId>\
             <ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail>\
             <JoinScene>1</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>10</MemChangeCnt>\
             <MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList>\
             <LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer><CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer></xml>",
        );
        assert_eq!(
            inbound,
            Inbound::Chat(ChatChange {
                chat_id: "wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ".to_owned(),
                at: Timestamp(1_403_610_513_000),
                detail: ChangeDetail::Joined,
                listed: vec!["Jack".to_owned(), "Rose".to_owned()],
                version: Some("71217227bbd112ecfe3a49c482195cb4".to_owned()),
            })
        );
    }

    #[test]
    fn removals_dismissals_and_the_archive_wake_up() {
        let base = "<xml><CreateTime>1403610513</CreateTime><MsgType>event</MsgType>";
        let removed = xml(&format!(
            "{base}<Event>change_external_chat</Event><ChatId>wr1</ChatId><ChangeType>update</ChangeType>\
             <UpdateDetail>del_member</UpdateDetail><QuitScene>1</QuitScene></xml>"
        ));
        assert!(matches!(
            removed,
            Inbound::Chat(ChatChange {
                detail: ChangeDetail::Left { removed: true },
                ..
            })
        ));
        let Inbound::Events(events) = xml(&format!(
            "{base}<Event>change_external_chat</Event><ChatId>wr1</ChatId><ChangeType>dismiss</ChangeType></xml>"
        )) else {
            panic!("a dismissal is an event");
        };
        assert_eq!(
            events[0].kind,
            EventKind::GroupChanged(GroupChange::Dismissed)
        );
        assert_eq!(events[0].id.as_str(), "wr1:dismissed");
        assert_eq!(
            xml(&format!("{base}<Event>msgaudit_notify</Event></xml>")),
            Inbound::ArchiveNotify
        );
        assert!(matches!(
            xml(&format!("{base}<Event>change_external_tag</Event></xml>")),
            Inbound::Ignored(_)
        ));
    }

    #[test]
    fn a_text_to_the_app_is_a_command_from_a_member_of_the_corp() {
        let admins = [UserId::from("zhangsan")];
        let fields = Fields::parse(
            "<xml><FromUserName>zhangsan</FromUserName><CreateTime>1476422779</CreateTime>\
             <MsgType>text</MsgType><Content>rule list</Content><MsgId>1456453720</MsgId></xml>",
        )
        .unwrap();
        let Inbound::Events(events) = from_xml(&fields, &ctx(&admins)) else {
            panic!("a command");
        };
        let event = &events[0];
        assert_eq!(event.id.as_str(), "app:1456453720");
        assert_eq!(event.member.role, Role::Admin);
        assert_eq!(event.member.org, Some(OrgId::from("ww1")));
        let EventKind::Command { text, reply_to } = &event.kind else {
            panic!("{event:?}");
        };
        assert_eq!(text, "!guard rule list");
        assert_eq!(reply_to.sender.as_str(), "zhangsan");
        assert_eq!(reply_to.handle, None);
        assert_eq!(reply_to.message, Some(MessageId::from("1456453720")));
    }

    #[test]
    fn a_smart_bot_mention_is_a_command_answered_at_its_response_url() {
        let body = json!({
            "msgid": "CAIQ16HMjQYY", "aibotid": "AIBOTID", "chatid": "wrkSFfCgAAAA",
            "chattype": "group", "from": { "userid": "lisi" },
            "response_url": "https://example.invalid/aibot/response?response_code=abc",
            "msgtype": "text", "text": { "content": "@groupguard stats" }
        });
        let Inbound::Events(events) = from_bot(&body, &ctx(&[])) else {
            panic!("a command");
        };
        let event = &events[0];
        assert_eq!(event.id.as_str(), "bot:CAIQ16HMjQYY");
        assert_eq!(event.group.as_str(), "wrkSFfCgAAAA");
        assert_eq!(event.member.role, Role::Staff);
        let EventKind::Command { text, reply_to } = &event.kind else {
            panic!("{event:?}");
        };
        assert_eq!(text, "!guard stats");
        assert!(
            reply_to
                .handle
                .as_ref()
                .unwrap()
                .expose()
                .ends_with("response_code=abc")
        );
        assert_eq!(reply_to.expires_at, Some(NOW.plus(RESPONSE_URL_LIFETIME)));
        assert!(matches!(
            from_bot(
                &json!({ "msgid": "x", "from": { "userid": "a" }, "msgtype": "image" }),
                &ctx(&[])
            ),
            Inbound::Ignored(_)
        ));
        assert!(matches!(
            from_bot(&json!({ "text": 1 }), &ctx(&[])),
            Inbound::Ignored(_)
        ));
    }

    #[test]
    fn mentions_and_prefixes() {
        assert_eq!(
            with_prefix(strip_mentions("@groupguard  stats")),
            "!guard stats"
        );
        assert_eq!(
            with_prefix(strip_mentions("@a @b !guard help")),
            "!guard help"
        );
        assert_eq!(with_prefix(strip_mentions("@groupguard")), "!guard");
        assert_eq!(with_prefix("/guard rule list"), "/guard rule list");
    }
}
