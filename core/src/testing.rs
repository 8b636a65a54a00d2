//! Test utilities shared by every crate's tests: an event factory and named members.

use std::time::Duration;

use crate::model::{
    Event, EventId, EventKind, GroupId, JoinScene, Member, Message, MessageKind, OrgId, Platform,
    Role,
};
use crate::time::Timestamp;

/// 2026-11-21T09:00:00Z, the start of every test day.
pub const T0: Timestamp = Timestamp(1_795_251_600_000);

/// An external member.
pub fn member(id: &str) -> Member {
    let mut m = Member::new(id);
    m.display_name = Some(id.to_owned());
    m
}

/// A member with a role.
pub fn with_role(id: &str, role: Role) -> Member {
    let mut m = member(id);
    m.role = role;
    m
}

/// A member of an organisation.
pub fn of_org(id: &str, org: &str) -> Member {
    let mut m = member(id);
    m.org = Some(OrgId::new(org));
    m
}

/// Makes events in one group with increasing ids and a clock that the test moves.
#[derive(Debug, Clone)]
pub struct EventFactory {
    platform: Platform,
    group: GroupId,
    now: Timestamp,
    seq: u64,
}

impl EventFactory {
    /// Events in `group` on `platform`, starting at [`T0`].
    pub fn new(platform: Platform, group: &str) -> EventFactory {
        EventFactory {
            platform,
            group: GroupId::new(group),
            now: T0,
            seq: 0,
        }
    }

    /// The same clock and numbering in another group.
    pub fn in_group(&self, group: &str) -> EventFactory {
        EventFactory {
            group: GroupId::new(group),
            ..self.clone()
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, d: Duration) -> &mut EventFactory {
        self.now = self.now.plus(d);
        self
    }

    /// An event of any kind by `member`, now.
    pub fn event(&mut self, member: &Member, kind: EventKind) -> Event {
        self.seq += 1;
        Event {
            id: EventId::new(format!("e{}", self.seq)),
            at: self.now,
            platform: self.platform,
            group: self.group.clone(),
            member: member.clone(),
            kind,
        }
    }

    /// A text message.
    pub fn text(&mut self, member: &Member, text: &str) -> Event {
        self.event(member, EventKind::MessagePosted(Message::text(text)))
    }

    /// A message of any kind.
    pub fn message(&mut self, member: &Member, message: Message) -> Event {
        self.event(member, EventKind::MessagePosted(message))
    }

    /// A message of a kind with no text.
    pub fn kind(&mut self, member: &Member, kind: MessageKind) -> Event {
        self.message(member, Message::of_kind(kind, ""))
    }

    /// A join.
    pub fn join(&mut self, member: &Member, inviter: Option<&Member>, scene: JoinScene) -> Event {
        self.event(
            member,
            EventKind::MemberJoined {
                inviter: inviter.cloned(),
                scene,
            },
        )
    }
}
