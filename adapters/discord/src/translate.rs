//! Discord's gateway payloads (serenity's models) as groupguard's events. A group is a guild;
//! a message id is `channel/message`, so the executor knows where to delete or reply. Roles
//! come from permissions: Administrator or Manage Guild administer, Moderate Members or Kick
//! Members moderate. Discord has no organisations: members carry none.

use groupguard_core::model::{
    Attachment, Event, EventId, EventKind, GroupId, Member, Message, MessageId, MessageKind,
    Platform, Role, UserId,
};
use groupguard_core::time::Timestamp;
use serenity::all::{
    ChannelId, Message as DiscordMessage, MessageFlags, MessageId as DiscordMessageId,
    MessageUpdateEvent, Permissions, User,
};

/// A Discord timestamp as groupguard's.
pub fn timestamp(t: &serenity::model::Timestamp) -> Timestamp {
    Timestamp(t.unix_timestamp() * 1_000 + i64::from(t.nanosecond()) / 1_000_000)
}

/// `channel/message`: the message id groupguard keeps.
pub fn message_id(channel: ChannelId, message: DiscordMessageId) -> MessageId {
    MessageId::from(format!("{channel}/{message}"))
}

/// The id of a message Discord blocked before it existed: only its channel is known.
pub fn blocked_message_id(channel: ChannelId) -> MessageId {
    MessageId::from(format!("{channel}/{BLOCKED}"))
}

/// What stands for the message part of a [`blocked_message_id`].
const BLOCKED: &str = "blocked";

/// The channel of a [`blocked_message_id`].
pub fn blocked_channel(id: &str) -> Option<ChannelId> {
    let (channel, rest) = id.split_once('/')?;
    (rest == BLOCKED)
        .then(|| channel.parse::<u64>().ok().filter(|c| *c > 0))
        .flatten()
        .map(ChannelId::new)
}

/// The channel and message of a [`message_id`].
pub fn parse_message_id(id: &str) -> Option<(ChannelId, DiscordMessageId)> {
    let (channel, message) = id.split_once('/')?;
    let channel = channel.parse::<u64>().ok().filter(|c| *c > 0)?;
    let message = message.parse::<u64>().ok().filter(|m| *m > 0)?;
    Some((ChannelId::new(channel), DiscordMessageId::new(message)))
}

/// A member's role from their permissions in the guild.
pub fn role_of(permissions: Permissions, is_owner: bool) -> Role {
    if is_owner {
        Role::Owner
    } else if permissions.intersects(Permissions::ADMINISTRATOR | Permissions::MANAGE_GUILD) {
        Role::Admin
    } else if permissions.intersects(Permissions::MODERATE_MEMBERS | Permissions::KICK_MEMBERS) {
        Role::Moderator
    } else {
        Role::Member
    }
}

/// Discord's epoch, the start of 2015, in Unix milliseconds.
pub(crate) const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// When an account was made: its id's top 42 bits count milliseconds since Discord's epoch.
pub fn account_created(id: u64) -> Timestamp {
    Timestamp(DISCORD_EPOCH_MS + i64::try_from(id >> 22).unwrap_or(0))
}

/// A Discord user as an event's member.
pub fn member(user: &User, role: Role, joined_at: Option<Timestamp>) -> Member {
    let mut member = Member::new(user.id.to_string());
    member.account_created = Some(account_created(user.id.get()));
    member.display_name = Some(
        user.global_name
            .clone()
            .unwrap_or_else(|| user.name.clone()),
    );
    member.role = role;
    member.joined_at = joined_at;
    member.is_bot = user.bot;
    member
}

/// What a message carries, from its parts (shared by new messages, edits and forwards).
struct Parts<'a> {
    content: &'a str,
    attachments: &'a [serenity::all::Attachment],
    embeds: &'a [serenity::all::Embed],
    stickers: usize,
    flags: Option<MessageFlags>,
    mentions: &'a [User],
    roles: &'a [serenity::all::RoleId],
    everyone: bool,
}

fn attachment_kind(a: &serenity::all::Attachment) -> MessageKind {
    match a
        .content_type
        .as_deref()
        .unwrap_or_default()
        .split('/')
        .next()
    {
        Some("image") => MessageKind::Image,
        Some("video") => MessageKind::Video,
        Some("audio") => MessageKind::Voice,
        _ => MessageKind::File,
    }
}

fn content(parts: &Parts<'_>) -> Message {
    let kind = if parts.stickers > 0 {
        MessageKind::Sticker
    } else if parts
        .flags
        .is_some_and(|f| f.contains(MessageFlags::IS_VOICE_MESSAGE))
    {
        MessageKind::Voice
    } else if let Some(first) = parts.attachments.first() {
        attachment_kind(first)
    } else {
        MessageKind::Text
    };
    let mut message = Message::of_kind(kind, parts.content);
    message.links = parts.embeds.iter().filter_map(|e| e.url.clone()).collect();
    message.mentions = parts
        .mentions
        .iter()
        .map(|u| UserId::from(u.id.to_string()))
        .chain(parts.roles.iter().map(|r| UserId::from(format!("&{r}"))))
        .chain(parts.everyone.then(|| UserId::from("@everyone")))
        .collect();
    message.attachments = parts
        .attachments
        .iter()
        .map(|a| Attachment {
            name: a.filename.clone(),
            mime: a.content_type.clone(),
            size: Some(u64::from(a.size)),
            image: None,
        })
        .collect();
    message
}

/// A new message in a guild, unless a bot or webhook wrote it. A forwarded message is a chat
/// record judged on the forwarded text.
pub fn message(msg: &DiscordMessage, role: Role) -> Option<Event> {
    let guild = msg.guild_id?;
    if msg.author.bot || msg.webhook_id.is_some() {
        return None;
    }
    let mut m = match msg.message_snapshots.first() {
        Some(forward) => {
            let s = forward;
            let mut m = content(&Parts {
                content: &s.content,
                attachments: &s.attachments,
                embeds: &s.embeds,
                stickers: s.sticker_items.len(),
                flags: s.flags,
                mentions: &s.mentions,
                roles: &s.mention_roles,
                everyone: false,
            });
            m.kind = MessageKind::ChatRecord;
            m
        }
        None => content(&Parts {
            content: &msg.content,
            attachments: &msg.attachments,
            embeds: &msg.embeds,
            stickers: msg.sticker_items.len(),
            flags: msg.flags,
            mentions: &msg.mentions,
            roles: &msg.mention_roles,
            everyone: msg.mention_everyone,
        }),
    };
    m.id = Some(message_id(msg.channel_id, msg.id));
    let joined_at = msg
        .member
        .as_ref()
        .and_then(|p| p.joined_at.as_ref())
        .map(timestamp);
    Some(Event {
        id: EventId::new(msg.id.to_string()),
        at: timestamp(&msg.timestamp),
        platform: Platform::Discord,
        group: GroupId::from(guild.to_string()),
        member: member(&msg.author, role, joined_at),
        kind: EventKind::MessagePosted(m),
    })
}

/// An edit by its author: judged on the new content. Updates Discord sends for other reasons
/// (link previews resolved, pins) have no new `edited_timestamp` or content and are left.
pub fn edit(update: &MessageUpdateEvent, role: Role) -> Option<Event> {
    let guild = update.guild_id?;
    let author = update.author.as_ref()?;
    let edited = update.edited_timestamp.as_ref()?;
    let text = update.content.as_deref()?;
    if author.bot || update.webhook_id.flatten().is_some() {
        return None;
    }
    let no_users = Vec::new();
    let no_roles = Vec::new();
    let no_attachments = Vec::new();
    let no_embeds = Vec::new();
    let mut m = content(&Parts {
        content: text,
        attachments: update.attachments.as_ref().unwrap_or(&no_attachments),
        embeds: update.embeds.as_ref().unwrap_or(&no_embeds),
        stickers: update.sticker_items.as_ref().map_or(0, Vec::len),
        flags: update.flags.flatten(),
        mentions: update.mentions.as_ref().unwrap_or(&no_users),
        roles: update.mention_roles.as_ref().unwrap_or(&no_roles),
        everyone: update.mention_everyone.unwrap_or(false),
    });
    m.id = Some(message_id(update.channel_id, update.id));
    let at = timestamp(edited);
    Some(Event {
        id: EventId::new(format!("{}:edit:{}", update.id, at.millis())),
        at,
        platform: Platform::Discord,
        group: GroupId::from(guild.to_string()),
        member: member(author, role, None),
        kind: EventKind::MessageEdited(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serenity::all::{Event as DiscordEvent, GatewayEvent};

    /// A fixture as serenity reads it off the gateway: a dispatch it cannot parse would be
    /// dropped without a word, so each fixture must parse to the event it is meant to be.
    fn dispatch(name: &str) -> DiscordEvent {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        match serde_json::from_str::<GatewayEvent>(&text).unwrap() {
            GatewayEvent::Dispatch(_, DiscordEvent::Unknown(unknown)) => {
                panic!("{name} does not parse: {unknown:?}")
            }
            GatewayEvent::Dispatch(_, event) => event,
            other => panic!("{name} is not a dispatch: {other:?}"),
        }
    }

    fn created(name: &str) -> DiscordMessage {
        match dispatch(name) {
            DiscordEvent::MessageCreate(e) => e.message,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn posted(event: &Event) -> &Message {
        match &event.kind {
            EventKind::MessagePosted(m) | EventKind::MessageEdited(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_text_message_with_mentions_and_its_channel_in_the_id() {
        let event = message(&created("message_create/plain_zh_en"), Role::Member).unwrap();
        assert_eq!(event.group.as_str(), "1100000000000000001");
        assert_eq!(event.member.id.as_str(), "1300000000000000005");
        assert_eq!(event.member.display_name.as_deref(), Some("Eve"));
        let m = posted(&event);
        assert_eq!(m.kind, MessageKind::Text);
        assert_eq!(m.text, "加我微信 buy followers at https://spam.example/x");
        assert_eq!(
            m.id.as_ref().unwrap().as_str(),
            "1200000000000000002/1400000000000000010"
        );
        assert_eq!(
            m.mentions,
            [
                UserId::from("1300000000000000006"),
                UserId::from("&1500000000000000001"),
                UserId::from("@everyone")
            ]
        );
        assert_eq!(event.at, Timestamp(1_795_000_000_000));
        assert_eq!(
            parse_message_id("1200000000000000002/1400000000000000010"),
            Some((
                ChannelId::new(1_200_000_000_000_000_002),
                DiscordMessageId::new(1_400_000_000_000_000_010)
            ))
        );
        assert_eq!(parse_message_id("12"), None);
    }

    #[test]
    fn attachments_stickers_voice_and_forwards_have_their_kinds() {
        let image = message(&created("message_create/attachment_image"), Role::Member).unwrap();
        let m = posted(&image);
        assert_eq!(m.kind, MessageKind::Image);
        assert_eq!(m.attachments[0].mime.as_deref(), Some("image/png"));
        assert_eq!(m.attachments[1].mime.as_deref(), Some("video/mp4"));
        let sticker = message(&created("message_create/sticker"), Role::Member).unwrap();
        assert_eq!(posted(&sticker).kind, MessageKind::Sticker);
        let voice = message(&created("message_create/voice"), Role::Member).unwrap();
        assert_eq!(posted(&voice).kind, MessageKind::Voice);
        let forward = message(&created("message_create/forward_snapshot"), Role::Member).unwrap();
        let m = posted(&forward);
        assert_eq!(m.kind, MessageKind::ChatRecord);
        assert_eq!(m.text, "forwarded: 加我微信 for cheap followers");
    }

    #[test]
    fn bots_and_webhooks_are_not_judged() {
        assert!(message(&created("message_create/bot_author"), Role::Member).is_none());
    }

    #[test]
    fn an_edit_is_judged_on_its_new_text_and_a_preview_update_is_not_an_edit() {
        let DiscordEvent::MessageUpdate(update) = dispatch("message_update/edit") else {
            panic!()
        };
        let event = edit(&update, Role::Member).unwrap();
        assert!(matches!(event.kind, EventKind::MessageEdited(_)));
        assert_eq!(posted(&event).text, "now with 加我微信");
        assert_eq!(
            posted(&event).id.as_ref().unwrap().as_str(),
            "1200000000000000002/1400000000000000010"
        );
        let DiscordEvent::MessageUpdate(preview) = dispatch("message_update/embed_only") else {
            panic!()
        };
        assert!(edit(&preview, Role::Member).is_none());
    }

    #[test]
    fn an_accounts_age_comes_from_its_id() {
        // Discord's documented example: 175928847299117063 was made 2016-04-30 11:18:25.796 UTC.
        assert_eq!(
            account_created(175_928_847_299_117_063),
            Timestamp(1_462_015_105_796)
        );
    }

    #[test]
    fn roles_from_permissions() {
        assert_eq!(role_of(Permissions::empty(), true), Role::Owner);
        assert_eq!(role_of(Permissions::MANAGE_GUILD, false), Role::Admin);
        assert_eq!(role_of(Permissions::ADMINISTRATOR, false), Role::Admin);
        assert_eq!(role_of(Permissions::KICK_MEMBERS, false), Role::Moderator);
        assert_eq!(
            role_of(Permissions::MODERATE_MEMBERS, false),
            Role::Moderator
        );
        assert_eq!(role_of(Permissions::SEND_MESSAGES, false), Role::Member);
    }
}
