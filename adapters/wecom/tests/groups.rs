//! Reading customer groups back after a change, against the loopback fake: who joined (with
//! their company), who left or was removed, what else changed, and no call when the member
//! version says nothing did.

use groupguard_core::model::{EventKind, GroupChange, JoinScene, Member, OrgId, Role, UserId};
use groupguard_core::time::Timestamp;
use groupguard_wecom::api::Api;
use groupguard_wecom::config::Secret;
use groupguard_wecom::fake::{CORP_ID, FakeWecom, SECRET};
use groupguard_wecom::groups::{ChangeDetail, ChatChange, Groups};
use serde_json::{Value, json};

fn member(userid: &str, kind: u8, join_time: i64) -> Value {
    json!({ "userid": userid, "type": kind, "join_time": join_time, "join_scene": 3,
            "invitor": { "userid": "boss" }, "group_nickname": format!("nick-{userid}") })
}

fn group(name: &str, owner: &str, members: &[Value], admins: &[&str], version: &str) -> Value {
    let admins: Vec<Value> = admins.iter().map(|a| json!({ "userid": a })).collect();
    json!({ "chat_id": "wr1", "name": name, "owner": owner, "member_list": members,
            "admin_list": admins, "member_version": version })
}

fn change(detail: ChangeDetail, listed: &[&str], version: &str) -> ChatChange {
    ChatChange {
        chat_id: "wr1".to_owned(),
        at: Timestamp(1_700_000_000_000),
        detail,
        listed: listed.iter().map(|m| (*m).to_owned()).collect(),
        version: Some(version.to_owned()),
    }
}

async fn setup() -> (FakeWecom, Api, Groups) {
    let fake = FakeWecom::start().await;
    fake.put_external(json!({ "external_userid": "wmRival", "type": 2, "corp_name": "竞品公司" }));
    fake.put_external(json!({ "external_userid": "wmFan", "type": 1 }));
    let api = Api::new(&fake.base, CORP_ID, Secret::new(SECRET));
    (fake, api, Groups::default())
}

#[tokio::test]
async fn joins_come_with_role_company_inviter_and_scene_and_an_unchanged_version_is_not_read() {
    let (fake, api, groups) = setup().await;
    let base = [
        member("boss", 1, 1_600_000_000),
        member("staff1", 1, 1_600_000_000),
    ];
    fake.put_group(group("VIP", "boss", &base, &["staff1"], "v1"));
    let first = groups
        .apply(&api, CORP_ID, &change(ChangeDetail::Joined, &[], "v1"))
        .await
        .unwrap();
    // First sight: the group registers itself; nobody joined just now.
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].kind,
        EventKind::GroupChanged(GroupChange::Created {
            name: Some("VIP".to_owned()),
            owner: Some(UserId::from("boss")),
            home_org: Some(OrgId::from(CORP_ID)),
            admins: vec![UserId::from("staff1")],
        })
    );

    let mut members = base.to_vec();
    members.extend([
        member("wmRival", 2, 1_700_000_000),
        member("wmFan", 2, 1_700_000_000),
    ]);
    fake.put_group(group("VIP", "boss", &members, &["staff1"], "v2"));
    let joined = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Joined, &["wmRival", "wmFan"], "v2"),
        )
        .await
        .unwrap();
    assert_eq!(joined.len(), 2);
    let rival = &joined[0];
    assert_eq!(rival.id.as_str(), "wr1:join:wmRival:1700000000");
    assert_eq!(rival.member.org, Some(OrgId::from("竞品公司")));
    assert_eq!(rival.member.role, Role::Member);
    assert_eq!(rival.member.display_name.as_deref(), Some("nick-wmRival"));
    let EventKind::MemberJoined { inviter, scene } = &rival.kind else {
        panic!("{rival:?}");
    };
    assert_eq!(*scene, JoinScene::QrCode);
    let mut boss = Member::new("boss");
    boss.role = Role::Owner;
    assert_eq!(inviter.as_ref(), Some(&boss));
    assert_eq!(
        joined[1].member.org, None,
        "a WeChat user belongs to no company"
    );

    // A redelivered callback: the version is known, nothing is read, and the same events
    // (same ids: the store drops them) come out.
    let reads = fake.calls("externalcontact/groupchat/get").len();
    let again = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Joined, &["wmRival", "wmFan"], "v2"),
        )
        .await
        .unwrap();
    assert_eq!(again, joined);
    assert_eq!(fake.calls("externalcontact/groupchat/get").len(), reads);
    // Companies are looked up once per contact.
    assert_eq!(fake.calls("externalcontact/get").len(), 2);
}

#[tokio::test]
async fn changes_an_earlier_read_already_saw_still_make_their_events() {
    let (fake, api, groups) = setup().await;
    let base = [member("boss", 1, 1_600_000_000)];
    fake.put_group(group("VIP", "boss", &base, &[], "v1"));
    groups
        .apply(&api, CORP_ID, &change(ChangeDetail::Changed, &[], "v1"))
        .await
        .unwrap();
    // Two joins in quick succession: the first callback's read already shows both.
    let mut both = base.to_vec();
    both.extend([
        member("wmFan", 2, 1_700_000_000),
        member("wmRival", 2, 1_700_000_001),
    ]);
    fake.put_group(group("VIP", "boss", &both, &[], "v3"));
    let first = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Joined, &["wmFan"], "v2"),
        )
        .await
        .unwrap();
    let second = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Joined, &["wmRival"], "v3"),
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 1, "the second join is not lost");
    assert_eq!(second[0].member.id.as_str(), "wmRival");
    // A join and a leave: the leave's callback finds its version already read.
    fake.put_group(group("VIP", "boss", &both[..2], &[], "v4"));
    let removed = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Left { removed: true }, &["wmRival"], "v4"),
        )
        .await
        .unwrap();
    let again = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Left { removed: true }, &["wmRival"], "v4"),
        )
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(again, removed);
}

#[tokio::test]
async fn without_a_change_list_the_known_members_are_diffed() {
    let (fake, api, groups) = setup().await;
    let base = [
        member("boss", 1, 1_600_000_000),
        member("wmFan", 2, 1_600_000_000),
    ];
    fake.put_group(group("VIP", "boss", &base, &[], "v1"));
    groups
        .apply(&api, CORP_ID, &change(ChangeDetail::Changed, &[], "v1"))
        .await
        .unwrap();
    let mut members = base.to_vec();
    members.push(member("staff2", 1, 1_700_000_000));
    fake.put_group(group("VIP", "boss", &members, &[], "v2"));
    let joined = groups
        .apply(&api, CORP_ID, &change(ChangeDetail::Joined, &[], "v2"))
        .await
        .unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].member.id.as_str(), "staff2");
    assert_eq!(joined[0].member.role, Role::Staff);
    assert_eq!(joined[0].member.org, Some(OrgId::from(CORP_ID)));
}

#[tokio::test]
async fn removals_by_the_owner_leaves_renames_and_new_owners() {
    let (fake, api, groups) = setup().await;
    let all = [
        member("boss", 1, 1_600_000_000),
        member("wmFan", 2, 1_600_000_000),
        member("wmRival", 2, 1_600_000_000),
    ];
    fake.put_group(group("VIP", "boss", &all, &[], "v1"));
    groups
        .apply(&api, CORP_ID, &change(ChangeDetail::Changed, &[], "v1"))
        .await
        .unwrap();

    fake.put_group(group("VIP", "boss", &all[..2], &[], "v2"));
    let removed = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Left { removed: true }, &["wmRival"], "v2"),
        )
        .await
        .unwrap();
    let mut boss = Member::new("boss");
    boss.role = Role::Owner;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].member.id.as_str(), "wmRival");
    assert_eq!(
        removed[0].kind,
        EventKind::MemberRemoved {
            by: Some(boss),
            banned: false
        }
    );

    fake.put_group(group("VIP", "boss", &all[..1], &[], "v3"));
    let left = groups
        .apply(
            &api,
            CORP_ID,
            &change(ChangeDetail::Left { removed: false }, &[], "v3"),
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].member.id.as_str(), &left[0].kind),
        ("wmFan", &EventKind::MemberLeft)
    );

    fake.put_group(group("VIP 2", "boss2", &all[..1], &[], "v3"));
    let changed = groups
        .apply(&api, CORP_ID, &change(ChangeDetail::Changed, &[], "v3"))
        .await
        .unwrap();
    let kinds: Vec<&EventKind> = changed.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &EventKind::GroupChanged(GroupChange::Renamed {
                name: "VIP 2".to_owned()
            }),
            &EventKind::GroupChanged(GroupChange::OwnerChanged {
                owner: UserId::from("boss2")
            }),
        ]
    );
}
