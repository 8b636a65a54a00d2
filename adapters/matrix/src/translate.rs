//! Matrix events (the JSON of a sync timeline event) as groupguard's events: messages and
//! their kinds, links and mentions, edits, stickers, joins with the inviter, leaves, kicks
//! and bans with who did them, and renames.

use groupguard_core::model::{
    Attachment, Event, EventId, EventKind, GroupChange, GroupId, JoinScene, Member, Message,
    MessageId, MessageKind, OrgId, Platform, Role, UserId,
};
use groupguard_core::time::Timestamp;
use serde_json::Value;

use crate::config::server_of;

/// What translating an event needs to know about its room.
pub struct Context<'a> {
    /// The room id: the group.
    pub room: &'a str,
    /// The bot's user id.
    pub bot: &'a str,
    /// A user's role in the room, from its power levels.
    pub role: &'a (dyn Fn(&str) -> Role + Sync),
    /// The management room takes commands only: nothing else there is judged.
    pub management: bool,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("room", &self.room)
            .field("management", &self.management)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// A user as an event's member: role from the power levels, organisation = homeserver.
    pub fn member(&self, user: &str, name: Option<&str>) -> Member {
        let mut member = Member::new(user);
        member.role = (self.role)(user);
        member.org = server_of(user).map(OrgId::from);
        member.display_name = name.filter(|n| !n.is_empty()).map(str::to_owned);
        member.is_bot = user == self.bot;
        member
    }
}

/// The groupguard event a Matrix event makes, if any.
pub fn translate(event: &Value, ctx: &Context<'_>) -> Option<Event> {
    let id = event["event_id"].as_str()?;
    let sender = event["sender"].as_str()?;
    let at = Timestamp(event["origin_server_ts"].as_i64().unwrap_or(0));
    let kind = match event["type"].as_str()? {
        "m.room.message" | "m.sticker" => {
            if sender == ctx.bot {
                return None;
            }
            let kind = message(event)?;
            if ctx.management && !is_command(&kind) {
                return None;
            }
            kind
        }
        "m.room.member" if !ctx.management => {
            return member_change(event, ctx, id, sender, at);
        }
        "m.room.name" if !ctx.management => EventKind::GroupChanged(GroupChange::Renamed {
            name: event["content"]["name"].as_str()?.to_owned(),
        }),
        _ => return None,
    };
    Some(Event {
        id: EventId::new(id),
        at,
        platform: Platform::Matrix,
        group: GroupId::from(ctx.room),
        member: ctx.member(sender, None),
        kind,
    })
}

fn is_command(kind: &EventKind) -> bool {
    let EventKind::MessagePosted(m) = kind else {
        return false;
    };
    let text = m.text.trim_start();
    groupguard_core::command::PREFIXES.iter().any(|p| {
        text.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    })
}

/// A message or sticker: new, or an edit (`m.replace`) judged on its new content.
fn message(event: &Value) -> Option<EventKind> {
    let content = &event["content"];
    if event["type"] == "m.sticker" {
        let mut m = Message::of_kind(MessageKind::Sticker, text(&content["body"]));
        m.id = event["event_id"].as_str().map(MessageId::from);
        return Some(EventKind::MessagePosted(m));
    }
    let relation = &content["m.relates_to"];
    if relation["rel_type"] == "m.replace" {
        let new = &content["m.new_content"];
        let mut m = message_content(if new.is_object() { new } else { content })?;
        // The edited message is the one to redact: clients show it with the edit applied.
        m.id = relation["event_id"].as_str().map(MessageId::from);
        return Some(EventKind::MessageEdited(m));
    }
    let mut m = message_content(content)?;
    m.id = event["event_id"].as_str().map(MessageId::from);
    Some(EventKind::MessagePosted(m))
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The content of an `m.room.message`: kind, text, links and pills from the HTML, mentions.
fn message_content(content: &Value) -> Option<Message> {
    let kind = match content["msgtype"].as_str()? {
        "m.text" | "m.notice" | "m.emote" => MessageKind::Text,
        "m.image" => MessageKind::Image,
        "m.file" => MessageKind::File,
        "m.audio" => MessageKind::Voice,
        "m.video" => MessageKind::Video,
        "m.location" => MessageKind::Location,
        _ => MessageKind::Other,
    };
    let mut m = Message::of_kind(kind.clone(), text(&content["body"]));
    let html = content["formatted_body"].as_str().unwrap_or_default();
    for href in hrefs(html) {
        match href.strip_prefix("https://matrix.to/#/") {
            Some(pill) => {
                let target = percent_decode(pill.split(['?', '/']).next().unwrap_or(pill));
                if target.starts_with('@') {
                    m.mentions.push(UserId::from(target));
                }
            }
            None => m.links.push(href),
        }
    }
    if let Some(users) = content["m.mentions"]["user_ids"].as_array() {
        for user in users.iter().filter_map(Value::as_str) {
            if !m.mentions.iter().any(|u| u.as_str() == user) {
                m.mentions.push(UserId::from(user));
            }
        }
    }
    if matches!(
        kind,
        MessageKind::Image | MessageKind::File | MessageKind::Voice | MessageKind::Video
    ) {
        let info = &content["info"];
        m.attachments.push(Attachment {
            name: content["filename"]
                .as_str()
                .unwrap_or(content["body"].as_str().unwrap_or_default())
                .to_owned(),
            mime: info["mimetype"].as_str().map(str::to_owned),
            size: info["size"].as_u64(),
            image: None,
        });
    }
    Some(m)
}

/// The `href`s of an HTML body.
fn hrefs(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("href=") {
        rest = &rest[start + 5..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        rest = &rest[1..];
        let Some(end) = rest.find(quote) else { break };
        found.push(rest[..end].replace("&amp;", "&"));
        rest = &rest[end..];
    }
    found
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `m.room.member`: joins (with the inviter), leaves, kicks and bans (with who did them);
/// the bot's own join registers the room.
fn member_change(
    event: &Value,
    ctx: &Context<'_>,
    id: &str,
    sender: &str,
    at: Timestamp,
) -> Option<Event> {
    let target = event["state_key"].as_str()?;
    let content = &event["content"];
    let membership = content["membership"].as_str()?;
    let unsigned = &event["unsigned"];
    let before = unsigned["prev_content"]["membership"]
        .as_str()
        .unwrap_or("leave");
    let name = content["displayname"].as_str();
    let kind = match membership {
        "join" if before == "join" => return None,
        // The adapter registers a room it joins, with what the room's state says.
        "join" if target == ctx.bot => return None,
        "join" => {
            let invited_by = (before == "invite")
                .then(|| unsigned["prev_sender"].as_str())
                .flatten();
            EventKind::MemberJoined {
                inviter: invited_by.map(|i| ctx.member(i, None)),
                scene: if invited_by.is_some() {
                    JoinScene::DirectInvite
                } else {
                    JoinScene::Unknown
                },
            }
        }
        "leave" if before != "join" => return None,
        "leave" if sender == target => EventKind::MemberLeft,
        "leave" => EventKind::MemberRemoved {
            by: Some(ctx.member(sender, None)),
            banned: false,
        },
        "ban" => EventKind::MemberRemoved {
            by: Some(ctx.member(sender, None)),
            banned: true,
        },
        _ => return None,
    };
    Some(Event {
        id: EventId::new(id),
        at,
        platform: Platform::Matrix,
        group: GroupId::from(ctx.room),
        member: ctx.member(target, name),
        kind,
    })
}

#[cfg(test)]
mod tests;
