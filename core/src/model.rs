//! The platform-neutral model: who said what, where, and when.
//!
//! Adapters translate platform payloads into these types; rules never see a platform payload.
//! Identifiers are typed so a user id cannot be passed where a group id is expected.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::names::{UnknownName, named};
use crate::time::Timestamp;

named! {
    /// The chat platforms groupguard moderates. Exhaustive on purpose: adding one must break
    /// every `match` that has to handle it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Platform as "platform" {
        /// Enterprise WeChat.
        WeCom = "wecom",
        /// Matrix.
        Matrix = "matrix",
        /// Discord.
        Discord = "discord",
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a raw platform identifier.
            pub fn new(raw: impl Into<Arc<str>>) -> Self {
                Self(raw.into())
            }

            /// The raw identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                Self(raw.into())
            }
        }

        impl From<String> for $name {
            fn from(raw: String) -> Self {
                Self(raw.into())
            }
        }
    };
}

string_id!(
    /// A user on one platform (WeCom userid or external userid, Matrix `@user:server`,
    /// Discord snowflake).
    UserId
);
string_id!(
    /// A group on one platform: a WeCom chat id (`wr…` customer groups, app chats), a Matrix
    /// room id (`!abc:server`), a Discord guild id. Kicks, timeouts and bans act on the group.
    GroupId
);
string_id!(
    /// A message on one platform. Where a message lives in a part of the group, the part
    /// rides in the id: a Discord message is `channel_id/message_id`, because deleting it or
    /// replying to it needs the channel while the group is the guild.
    MessageId
);
string_id!(
    /// A platform event; doubles as the idempotency key because platforms re-deliver.
    EventId
);
string_id!(
    /// An organisation: a WeCom corp id or a Matrix homeserver name.
    OrgId
);
string_id!(
    /// A rule's stable identifier.
    RuleId
);

impl RuleId {
    /// Whether `id` can name a rule: 1 to 64 letters, digits, `-` or `_`.
    pub fn is_valid(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

named! {
    /// What a member is to the group. Ordered: a higher role can do what a lower one can.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub enum Role as "role" {
        /// An external member (a customer, a guest, anyone not of the home organisation).
        #[default]
        Member = "member",
        /// An internal member of the home organisation.
        Staff = "staff",
        /// A moderator.
        Moderator = "moderator",
        /// An administrator.
        Admin = "admin",
        /// The group's owner.
        Owner = "owner",
    }
}

/// A member of a group, as the adapter saw them when the event happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The platform user id.
    pub id: UserId,
    /// The display name, when known.
    #[serde(default, rename = "name", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The member's organisation: WeCom corp, Matrix homeserver; none for personal accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// The member's role in the group.
    #[serde(default)]
    pub role: Role,
    /// When the member joined the group, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<Timestamp>,
    /// When the account was made, where the platform tells (Discord's ids carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_created: Option<Timestamp>,
    /// Whether the account is a bot.
    #[serde(default, rename = "bot", skip_serializing_if = "is_false")]
    pub is_bot: bool,
}

impl Member {
    /// An external member with only an id.
    pub fn new(id: impl Into<UserId>) -> Member {
        Member {
            id: id.into(),
            display_name: None,
            org: None,
            role: Role::Member,
            joined_at: None,
            account_created: None,
            is_bot: false,
        }
    }

    /// The display name, or the id when there is none.
    pub fn label(&self) -> &str {
        self.display_name.as_deref().unwrap_or(self.id.as_str())
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// What kind of content a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Plain text.
    Text,
    /// A picture.
    Image,
    /// A voice note.
    Voice,
    /// A video.
    Video,
    /// A file.
    File,
    /// A link card.
    Link,
    /// A WeChat mini-program card.
    MiniProgram {
        /// The mini-program's app id, when the platform reports it.
        app_id: Option<String>,
    },
    /// A forwarded chat history.
    ChatRecord,
    /// A contact (business) card.
    ContactCard,
    /// A sticker or custom emoji.
    Sticker,
    /// A shared location.
    Location,
    /// Anything else.
    Other,
}

named! {
    /// The name of a [`MessageKind`], used to ban kinds in rules.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum KindName as "message kind" {
        /// [`MessageKind::Text`]
        Text = "text",
        /// [`MessageKind::Image`]
        Image = "image",
        /// [`MessageKind::Voice`]
        Voice = "voice",
        /// [`MessageKind::Video`]
        Video = "video",
        /// [`MessageKind::File`]
        File = "file",
        /// [`MessageKind::Link`]
        Link = "link",
        /// [`MessageKind::MiniProgram`]
        MiniProgram = "mini_program",
        /// [`MessageKind::ChatRecord`]
        ChatRecord = "chat_record",
        /// [`MessageKind::ContactCard`]
        ContactCard = "contact_card",
        /// [`MessageKind::Sticker`]
        Sticker = "sticker",
        /// [`MessageKind::Location`]
        Location = "location",
        /// [`MessageKind::Other`]
        Other = "other",
    }
}

impl KindName {
    /// A bit for kind sets.
    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl MessageKind {
    /// The kind's name.
    pub fn name(&self) -> KindName {
        match self {
            MessageKind::Text => KindName::Text,
            MessageKind::Image => KindName::Image,
            MessageKind::Voice => KindName::Voice,
            MessageKind::Video => KindName::Video,
            MessageKind::File => KindName::File,
            MessageKind::Link => KindName::Link,
            MessageKind::MiniProgram { .. } => KindName::MiniProgram,
            MessageKind::ChatRecord => KindName::ChatRecord,
            MessageKind::ContactCard => KindName::ContactCard,
            MessageKind::Sticker => KindName::Sticker,
            MessageKind::Location => KindName::Location,
            MessageKind::Other => KindName::Other,
        }
    }
}

/// A file or picture attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The file name.
    #[serde(default)]
    pub name: String,
    /// The MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// The size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The picture's bytes, when the adapter fetched them (for image checks).
    #[serde(
        default,
        rename = "image_base64",
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub image: Option<Arc<[u8]>>,
}

impl Attachment {
    /// The kind its MIME type makes it, when it has one: `image/…`, `video/…`, `audio/…`
    /// (voice) or another file.
    pub fn kind(&self) -> Option<KindName> {
        let mime = self.mime.as_deref()?;
        Some(match mime.split('/').next().unwrap_or_default() {
            "image" => KindName::Image,
            "video" => KindName::Video,
            "audio" => KindName::Voice,
            _ => KindName::File,
        })
    }
}

mod base64_bytes {
    use std::sync::Arc;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Arc<[u8]>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<[u8]>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            STANDARD
                .decode(t.as_bytes())
                .map(Arc::from)
                .map_err(|e| serde::de::Error::custom(format_args!("invalid base64: {e}")))
        })
        .transpose()
    }
}

/// A posted or edited message, with content the adapter already extracted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "crate::eventlog::MessageLine",
    into = "crate::eventlog::MessageLine"
)]
pub struct Message {
    /// The platform message id; defaults to the event id in logs.
    pub id: Option<MessageId>,
    /// What the message carries.
    pub kind: MessageKind,
    /// The text, caption or title.
    pub text: String,
    /// Links the platform reported separately from the text (link cards, embeds).
    pub links: Vec<String>,
    /// Members mentioned.
    pub mentions: Vec<UserId>,
    /// Attached files and pictures.
    pub attachments: Vec<Attachment>,
    /// The platform's own filter blocked it before anyone saw it (Discord AutoMod): it is
    /// judged and counts on the ladder, but there is nothing to delete.
    pub blocked: bool,
}

impl Message {
    /// A plain text message.
    pub fn text(text: impl Into<String>) -> Message {
        Message::of_kind(MessageKind::Text, text)
    }

    /// A message of the given kind with a text or caption.
    pub fn of_kind(kind: MessageKind, text: impl Into<String>) -> Message {
        Message {
            id: None,
            kind,
            text: text.into(),
            links: Vec::new(),
            mentions: Vec::new(),
            attachments: Vec::new(),
            blocked: false,
        }
    }
}

named! {
    /// How a member came to join a group.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum JoinScene as "join scene" {
        /// Invited directly by a member.
        DirectInvite = "direct_invite",
        /// Through an invite link shared by a member.
        InviteLink = "invite_link",
        /// By scanning the group's QR code.
        QrCode = "qr_code",
        /// The platform did not say.
        #[default]
        Unknown = "unknown",
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A new message.
    MessagePosted(Message),
    /// An existing message was edited; carries the new content.
    MessageEdited(Message),
    /// The member joined the group.
    MemberJoined {
        /// Who invited them, when known.
        inviter: Option<Member>,
        /// How they joined.
        scene: JoinScene,
    },
    /// The member left of their own accord.
    MemberLeft,
    /// Someone else removed the member: a kick, or a ban.
    MemberRemoved {
        /// Who removed them, when the platform says (the bot itself included).
        by: Option<Member>,
        /// Banned (cannot come back) rather than kicked.
        banned: bool,
    },
    /// The group itself changed; [`Event::member`] is who changed it, where known.
    GroupChanged(GroupChange),
    /// A shared ban list the bot follows changed (a Matrix policy list);
    /// [`Event::group`] is the list, [`Event::member`] who changed it.
    ListChanged(ListChange),
    /// The member issued a `!guard` command.
    Command {
        /// The full command text as typed.
        text: String,
        /// Where the answer goes.
        reply_to: ReplyTo,
    },
}

impl EventKind {
    /// The event type's name in chat logs: `message`, `edit`, `join`, `leave`, `remove`,
    /// `group` or `command`.
    pub fn name(&self) -> &'static str {
        crate::eventlog::EventType::of(self).as_str()
    }
}

/// A change to a group as a platform reports it: groups the bot is in are registered and
/// kept current in the store without commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GroupChange {
    /// The group was created, or the bot joined it: what the platform knows of it.
    Created {
        /// Its name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Its owner (WeCom group owner, Matrix room creator, Discord guild owner).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<UserId>,
        /// The organisation it belongs to (WeCom corp, Matrix homeserver).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home_org: Option<OrgId>,
        /// Its administrators, owner excluded.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        admins: Vec<UserId>,
    },
    /// The group was renamed.
    Renamed {
        /// The new name.
        name: String,
    },
    /// The group has a new owner.
    OwnerChanged {
        /// The new owner.
        owner: UserId,
    },
    /// The group's administrators changed (Matrix power levels, WeCom group admins).
    AdminsChanged {
        /// Every administrator now, owner excluded.
        admins: Vec<UserId>,
    },
    /// The group was dismissed, or the bot left it for good.
    Dismissed,
}

/// A change to a shared ban list. groupguard's blacklist follows it: the list is the source of
/// the entries it makes, and only the list lifts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ListChange {
    /// Ban the members matching `member`: one id, or a pattern with `*` and `?`
    /// (`@*:spam.example` bans a whole server).
    Ban {
        /// Who.
        member: UserId,
        /// Why, as the list says.
        #[serde(default)]
        reason: String,
    },
    /// The list no longer bans `member`.
    Lift {
        /// Who.
        member: UserId,
    },
}

/// A value that only the adapter that made it understands and that must not be logged: a
/// Discord interaction token, a WeCom smart bot's `response_url`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplyHandle(String);

impl ReplyHandle {
    /// Wraps an adapter's handle.
    pub fn new(raw: impl Into<String>) -> ReplyHandle {
        ReplyHandle(raw.into())
    }

    /// The handle, for the adapter that made it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ReplyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyHandle(***)")
    }
}

/// Where a command's answer goes, made by the adapter that received the command: the group
/// and the asker, the command's message (to thread or quote the answer) and, where the
/// platform answers through something else (a Discord interaction, a WeCom `response_url`),
/// that handle and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The group the command came from.
    pub group: GroupId,
    /// Who asked.
    pub sender: UserId,
    /// The command's message, when it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageId>,
    /// The adapter's handle for answering, if it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<ReplyHandle>,
    /// When the handle stops working; an answer after that is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl ReplyTo {
    /// An answer in the group, replying to the command's message.
    pub fn in_group(group: GroupId, sender: UserId, message: Option<MessageId>) -> ReplyTo {
        ReplyTo {
            group,
            sender,
            message,
            handle: None,
            expires_at: None,
        }
    }

    /// Whether the handle has stopped working at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// One thing that happened in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "crate::eventlog::EventLine",
    into = "crate::eventlog::EventLine"
)]
pub struct Event {
    /// The idempotency key.
    pub id: EventId,
    /// When it happened.
    pub at: Timestamp,
    /// Where.
    pub platform: Platform,
    /// Which group.
    pub group: GroupId,
    /// Who did it (the author, the joiner, the leaver).
    pub member: Member,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The message this event carries, if any.
    pub fn message(&self) -> Option<&Message> {
        match &self.kind {
            EventKind::MessagePosted(m) | EventKind::MessageEdited(m) => Some(m),
            _ => None,
        }
    }

    /// The text this event carries: a message's text or a command line.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            EventKind::MessagePosted(m) | EventKind::MessageEdited(m) => Some(&m.text),
            EventKind::Command { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The id of the message this event is about: the message id, or the event id.
    pub fn message_id(&self) -> Option<MessageId> {
        match &self.kind {
            // Sharing the event id's text rather than copying it.
            EventKind::MessagePosted(m) | EventKind::MessageEdited(m) => Some(
                m.id.clone()
                    .unwrap_or_else(|| MessageId(Arc::clone(&self.id.0))),
            ),
            EventKind::Command { .. } => Some(MessageId(Arc::clone(&self.id.0))),
            _ => None,
        }
    }
}

/// A member on a platform, written `platform:id` in files and commands
/// (`wecom:wmAbc`, `matrix:@bob:example.org`, `discord:80351110224678912`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberRef {
    /// The platform.
    pub platform: Platform,
    /// The user id on that platform.
    pub id: UserId,
}

/// A group on a platform, written `platform:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupRef {
    /// The platform.
    pub platform: Platform,
    /// The group id on that platform.
    pub id: GroupId,
}

/// A malformed `platform:id` reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// No `:` separating platform and id.
    #[error("`{0}` is not of the form platform:id (for example wecom:wmAbc)")]
    Shape(String),
    /// The platform part is unknown.
    #[error(transparent)]
    Platform(#[from] UnknownName),
}

fn split_ref(s: &str) -> Result<(Platform, &str), RefError> {
    match s.split_once(':') {
        Some((platform, id)) if !id.is_empty() => Ok((platform.parse()?, id)),
        _ => Err(RefError::Shape(s.to_owned())),
    }
}

macro_rules! platform_ref {
    ($name:ident, $id:ident) => {
        impl $name {
            /// A reference to `id` on `platform`.
            pub fn new(platform: Platform, id: impl Into<$id>) -> Self {
                Self {
                    platform,
                    id: id.into(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.platform, self.id)
            }
        }

        impl From<(Platform, String)> for $name {
            fn from((platform, id): (Platform, String)) -> Self {
                Self::new(platform, id)
            }
        }

        impl FromStr for $name {
            type Err = RefError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let (platform, id) = split_ref(s)?;
                Ok(Self::new(platform, id))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

platform_ref!(MemberRef, UserId);
platform_ref!(GroupRef, GroupId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip_and_keep_colons_in_ids() {
        let r: MemberRef = "matrix:@bob:example.org".parse().unwrap();
        assert_eq!(r.platform, Platform::Matrix);
        assert_eq!(r.id.as_str(), "@bob:example.org");
        assert_eq!(r.to_string(), "matrix:@bob:example.org");
        assert!(matches!(
            "bob".parse::<MemberRef>(),
            Err(RefError::Shape(_))
        ));
        assert!(matches!(
            "telegram:1".parse::<MemberRef>(),
            Err(RefError::Platform(_))
        ));
    }

    #[test]
    fn roles_are_ordered_from_member_to_owner() {
        assert!(Role::Member < Role::Staff);
        assert!(Role::Staff < Role::Moderator);
        assert!(Role::Admin < Role::Owner);
    }
}
