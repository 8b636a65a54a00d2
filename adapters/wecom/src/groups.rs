//! Customer groups as groupguard sees them: WeCom reports a member change without the
//! member's details, and its group data is eventually consistent, so after a change the
//! adapter waits a moment, reads the group (`externalcontact/groupchat/get`), compares it
//! with the member list it knew, and emits one event per member who joined or left. A
//! member version equal to the one already read means the group was read since: no call.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use groupguard_core::model::{
    Event, EventId, EventKind, GroupChange, GroupId, JoinScene, Member, OrgId, Platform, Role,
    UserId,
};
use groupguard_core::time::Timestamp;
use serde::Deserialize;
use serde_json::json;

use crate::api::{Api, ApiError};

/// A customer group as `groupchat/get` returns it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupChat {
    /// `wr…`.
    pub chat_id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its owner's userid.
    #[serde(default)]
    pub owner: String,
    /// Members now.
    #[serde(default)]
    pub member_list: Vec<ChatMember>,
    /// Admins (owner excluded).
    #[serde(default)]
    pub admin_list: Vec<AdminRef>,
    /// Changes whenever the member list does.
    #[serde(default)]
    pub member_version: String,
}

/// One member of a customer group.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatMember {
    /// A member's userid or an external userid.
    pub userid: String,
    /// 1 a member of the corp, 2 an external contact.
    #[serde(rename = "type", default)]
    pub kind: u8,
    /// Seconds since the epoch.
    #[serde(default)]
    pub join_time: i64,
    /// 1 direct invite, 2 invite link, 3 QR code.
    #[serde(default)]
    pub join_scene: u8,
    /// Who invited them.
    #[serde(default)]
    pub invitor: Option<AdminRef>,
    /// The name shown in the group.
    #[serde(default)]
    pub group_nickname: String,
    /// Their name.
    #[serde(default)]
    pub name: String,
}

/// A `{ "userid": … }`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdminRef {
    /// The userid.
    pub userid: String,
}

#[derive(Deserialize)]
struct GroupChatAnswer {
    group_chat: GroupChat,
}

#[derive(Deserialize)]
struct ContactAnswer {
    external_contact: Contact,
}

#[derive(Deserialize)]
struct Contact {
    #[serde(rename = "type", default)]
    kind: u8,
    #[serde(default)]
    corp_name: String,
    #[serde(default)]
    corp_full_name: String,
}

impl GroupChat {
    fn admins(&self) -> Vec<UserId> {
        self.admin_list
            .iter()
            .filter(|a| a.userid != self.owner)
            .map(|a| UserId::from(a.userid.as_str()))
            .collect()
    }

    fn member(&self, id: &str) -> Option<&ChatMember> {
        self.member_list.iter().find(|m| m.userid == id)
    }

    fn role_of(&self, id: &str, kind: u8) -> Role {
        if id == self.owner {
            Role::Owner
        } else if self.admin_list.iter().any(|a| a.userid == id) {
            Role::Admin
        } else if kind == 1 {
            Role::Staff
        } else {
            Role::Member
        }
    }
}

/// What a `change_external_chat` callback reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatChange {
    /// The group.
    pub chat_id: String,
    /// The callback's `CreateTime`.
    pub at: Timestamp,
    /// What changed.
    pub detail: ChangeDetail,
    /// `MemChangeList`: who joined or left, when WeCom said.
    pub listed: Vec<String>,
    /// `CurMemVer`: the member version after the change.
    pub version: Option<String>,
}

/// `ChangeType` and `UpdateDetail` together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeDetail {
    /// `create`.
    Created,
    /// `add_member`.
    Joined,
    /// `del_member`; `QuitScene` 1 means the owner or an admin removed them.
    Left {
        /// Removed by the owner or an admin, not of their own accord.
        removed: bool,
    },
    /// `change_owner`, `change_name`, `change_notice` and anything newer.
    Changed,
}

/// The customer groups read so far, and the companies of external contacts.
#[derive(Debug, Default)]
pub struct Groups {
    known: Mutex<HashMap<String, Arc<GroupChat>>>,
    /// One change at a time per group, so events leave in the order they happened.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    orgs: Mutex<HashMap<String, Option<OrgId>>>,
}

/// Entries kept of external contacts' companies before the cache starts over.
const ORG_CACHE: usize = 50_000;
/// Without a known member list, members who joined this shortly before the change count as
/// new (the callback's time and the join time come from different clocks).
const JOIN_SLACK_MS: i64 = 60_000;

impl Groups {
    /// The group as last read, if it was.
    pub fn get(&self, chat_id: &str) -> Option<Arc<GroupChat>> {
        self.lock_known().get(chat_id).cloned()
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<GroupChat>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn group_lock(&self, chat_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(chat_id.to_owned()).or_default())
    }

    /// Reads a group from WeCom.
    pub async fn fetch(api: &Api, chat_id: &str) -> Result<GroupChat, ApiError> {
        let answer: GroupChatAnswer = api
            .post(
                "externalcontact/groupchat/get",
                &json!({ "chat_id": chat_id, "need_name": 1 }),
            )
            .await?;
        Ok(answer.group_chat)
    }

    /// The group, read once if it is not known yet; the events that register it then.
    pub async fn ensure(
        &self,
        api: &Api,
        corp_id: &str,
        chat_id: &str,
        at: Timestamp,
    ) -> Result<(Arc<GroupChat>, Vec<Event>), ApiError> {
        if let Some(known) = self.get(chat_id) {
            return Ok((known, Vec::new()));
        }
        let lock = self.group_lock(chat_id);
        let _held = lock.lock().await;
        if let Some(known) = self.get(chat_id) {
            return Ok((known, Vec::new()));
        }
        let chat = Arc::new(Groups::fetch(api, chat_id).await?);
        let created = created(&chat, corp_id, at);
        self.lock_known()
            .insert(chat_id.to_owned(), Arc::clone(&chat));
        Ok((chat, vec![created]))
    }

    /// Reads the group after a change and returns what happened, as events.
    pub async fn apply(
        &self,
        api: &Api,
        corp_id: &str,
        change: &ChatChange,
    ) -> Result<Vec<Event>, ApiError> {
        let lock = self.group_lock(&change.chat_id);
        let _held = lock.lock().await;
        let before = self.get(&change.chat_id);
        let member_change = matches!(
            change.detail,
            ChangeDetail::Joined | ChangeDetail::Left { .. }
        );
        // The group as known already reflects this change (a redelivery, or an earlier read
        // that saw it): no call. The members WeCom listed still make their events, which
        // carry the same ids as before, so the store drops repeats.
        let now = match (&before, &change.version) {
            (Some(before), Some(version)) if member_change && before.member_version == *version => {
                tracing::debug!(chat = %change.chat_id, "member version known: group not read again");
                Arc::clone(before)
            }
            _ => Arc::new(Groups::fetch(api, &change.chat_id).await?),
        };
        let mut events = Vec::new();
        let group = GroupId::from(change.chat_id.as_str());
        let stamp = change.at.millis();
        let owner = owner(&now);
        let event = |suffix: String, member: Member, kind: EventKind| Event {
            id: EventId::new(format!("{}:{suffix}", change.chat_id)),
            at: change.at,
            platform: Platform::WeCom,
            group: group.clone(),
            member,
            kind,
        };
        match &before {
            None => events.push(created(&now, corp_id, change.at)),
            Some(before) => {
                if before.name != now.name && !now.name.is_empty() {
                    events.push(event(
                        format!("name:{stamp}"),
                        owner.clone(),
                        EventKind::GroupChanged(GroupChange::Renamed {
                            name: now.name.clone(),
                        }),
                    ));
                }
                if before.owner != now.owner && !now.owner.is_empty() {
                    events.push(event(
                        format!("owner:{stamp}"),
                        owner.clone(),
                        EventKind::GroupChanged(GroupChange::OwnerChanged {
                            owner: UserId::from(now.owner.as_str()),
                        }),
                    ));
                }
                if before.admins() != now.admins() {
                    events.push(event(
                        format!("admins:{stamp}"),
                        owner.clone(),
                        EventKind::GroupChanged(GroupChange::AdminsChanged {
                            admins: now.admins(),
                        }),
                    ));
                }
            }
        }
        match change.detail {
            ChangeDetail::Joined | ChangeDetail::Created => {
                for joined in joined(before.as_deref(), &now, change) {
                    let member = self.member(api, corp_id, &now, joined).await;
                    let inviter = match &joined.invitor {
                        Some(i) if !i.userid.is_empty() => {
                            let kind = now.member(&i.userid).map_or(1, |m| m.kind);
                            let mut inviter = Member::new(i.userid.as_str());
                            inviter.role = now.role_of(&i.userid, kind);
                            Some(inviter)
                        }
                        _ => None,
                    };
                    let scene = match joined.join_scene {
                        1 => JoinScene::DirectInvite,
                        2 => JoinScene::InviteLink,
                        3 => JoinScene::QrCode,
                        _ => JoinScene::Unknown,
                    };
                    events.push(Event {
                        at: Timestamp(joined.join_time.saturating_mul(1000)).max(change.at),
                        ..event(
                            format!("join:{}:{}", joined.userid, joined.join_time),
                            member,
                            EventKind::MemberJoined { inviter, scene },
                        )
                    });
                }
            }
            ChangeDetail::Left { removed } => {
                for (id, kind) in left(before.as_deref(), &now, change) {
                    let mut member = Member::new(id.as_str());
                    member.role = before
                        .as_deref()
                        .map_or(Role::Member, |b| b.role_of(&id, kind));
                    let what = if removed {
                        EventKind::MemberRemoved {
                            by: Some(owner.clone()),
                            banned: false,
                        }
                    } else {
                        EventKind::MemberLeft
                    };
                    events.push(event(format!("left:{id}:{stamp}"), member, what));
                }
            }
            ChangeDetail::Changed => {}
        }
        self.lock_known().insert(change.chat_id.clone(), now);
        Ok(events)
    }

    /// Forgets a dismissed group.
    pub fn forget(&self, chat_id: &str) {
        self.lock_known().remove(chat_id);
    }

    /// A group member as an event's member: role, organisation, name, join time.
    pub async fn member(
        &self,
        api: &Api,
        corp_id: &str,
        chat: &GroupChat,
        m: &ChatMember,
    ) -> Member {
        let mut member = Member::new(m.userid.as_str());
        member.role = chat.role_of(&m.userid, m.kind);
        member.display_name = [&m.group_nickname, &m.name]
            .into_iter()
            .find(|n| !n.is_empty())
            .cloned();
        member.joined_at = (m.join_time > 0).then(|| Timestamp(m.join_time.saturating_mul(1000)));
        member.is_bot = m.userid.starts_with("wb");
        member.org = match m.kind {
            1 => Some(OrgId::from(corp_id)),
            _ => self.external_org(api, &m.userid).await,
        };
        member
    }

    /// The company of an external contact: another company's WeCom user (type 2) belongs
    /// to it, a WeChat user (type 1) to none.
    pub async fn external_org(&self, api: &Api, external_userid: &str) -> Option<OrgId> {
        if let Some(org) = self
            .orgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(external_userid)
        {
            return org.clone();
        }
        let org = match api
            .get::<ContactAnswer>(
                "externalcontact/get",
                &[("external_userid", external_userid)],
            )
            .await
        {
            Ok(answer) => {
                let c = answer.external_contact;
                let name = if c.corp_name.is_empty() {
                    c.corp_full_name
                } else {
                    c.corp_name
                };
                (c.kind == 2 && !name.is_empty()).then(|| OrgId::from(name))
            }
            Err(e) => {
                // Not a contact of any member (a friend's friend): no company known.
                tracing::debug!(error = %e, "external contact not readable; no organisation");
                return None;
            }
        };
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        if orgs.len() >= ORG_CACHE {
            orgs.clear();
        }
        orgs.insert(external_userid.to_owned(), org.clone());
        org
    }
}

fn owner(chat: &GroupChat) -> Member {
    let mut owner = Member::new(chat.owner.as_str());
    owner.role = Role::Owner;
    owner
}

/// The event that registers a group: name, owner, admins, the corp as home organisation.
fn created(chat: &GroupChat, corp_id: &str, at: Timestamp) -> Event {
    Event {
        id: EventId::new(format!("{}:created", chat.chat_id)),
        at,
        platform: Platform::WeCom,
        group: GroupId::from(chat.chat_id.as_str()),
        member: owner(chat),
        kind: EventKind::GroupChanged(GroupChange::Created {
            name: (!chat.name.is_empty()).then(|| chat.name.clone()),
            owner: (!chat.owner.is_empty()).then(|| UserId::from(chat.owner.as_str())),
            home_org: Some(OrgId::from(corp_id)),
            admins: chat.admins(),
        }),
    }
}

/// Who joined: those WeCom listed, else those not in the list known before, else (the list
/// unknown) those whose join time is not before the change.
fn joined<'a>(
    before: Option<&GroupChat>,
    now: &'a GroupChat,
    change: &ChatChange,
) -> Vec<&'a ChatMember> {
    if change.detail == ChangeDetail::Created {
        return Vec::new();
    }
    if !change.listed.is_empty() {
        return change
            .listed
            .iter()
            .filter_map(|id| now.member(id))
            .collect();
    }
    match before {
        Some(before) => {
            let known: HashSet<&str> = before
                .member_list
                .iter()
                .map(|m| m.userid.as_str())
                .collect();
            now.member_list
                .iter()
                .filter(|m| !known.contains(m.userid.as_str()))
                .collect()
        }
        None => now
            .member_list
            .iter()
            .filter(|m| m.join_time.saturating_mul(1000) >= change.at.millis() - JOIN_SLACK_MS)
            .collect(),
    }
}

/// Who left, with their member type when known: those WeCom listed, else those no longer
/// in the list known before.
fn left(before: Option<&GroupChat>, now: &GroupChat, change: &ChatChange) -> Vec<(String, u8)> {
    let kind = |id: &str| before.and_then(|b| b.member(id)).map_or(2, |m| m.kind);
    if !change.listed.is_empty() {
        return change
            .listed
            .iter()
            .filter(|id| now.member(id).is_none())
            .map(|id| (id.clone(), kind(id)))
            .collect();
    }
    let Some(before) = before else {
        return Vec::new();
    };
    before
        .member_list
        .iter()
        .filter(|m| now.member(&m.userid).is_none())
        .map(|m| (m.userid.clone(), m.kind))
        .collect()
}
