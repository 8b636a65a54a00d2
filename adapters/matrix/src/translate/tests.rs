//! Events as Synapse sends them in `/sync`, translated.

use serde_json::json;

use super::*;

const ROOM: &str = "!room:localhost";
const BOT: &str = "@guard:localhost";

fn role(user: &str) -> Role {
    match user {
        "@mod:localhost" => Role::Moderator,
        "@admin:localhost" => Role::Admin,
        _ => Role::Member,
    }
}

fn ctx(management: bool) -> Context<'static> {
    Context {
        room: ROOM,
        bot: BOT,
        role: &role,
        management,
    }
}

fn one(event: &Value) -> Event {
    translate(event, &ctx(false)).expect("an event")
}

fn text_event(id: &str, sender: &str, content: Value) -> Value {
    let mut event = json!({ "type": "m.room.message", "event_id": id, "sender": sender,
            "origin_server_ts": 1_700_000_000_000_i64 });
    event["content"] = content;
    event
}

#[test]
fn a_text_message_with_links_pills_and_mentions() {
    let event = one(&text_event(
        "$m1",
        "@eve:other.example",
        json!({ "msgtype": "m.text", "body": "hi bob, see spam.example",
                "format": "org.matrix.custom.html",
                "formatted_body": "hi <a href=\"https://matrix.to/#/%40bob%3Alocalhost\">bob</a>, see <a href='https://spam.example/x?a=1&amp;b=2'>this</a>",
                "m.mentions": { "user_ids": ["@carol:localhost"] } }),
    ));
    assert_eq!(event.id.as_str(), "$m1");
    assert_eq!(event.at, Timestamp(1_700_000_000_000));
    assert_eq!(event.group.as_str(), ROOM);
    assert_eq!(event.member.org, Some(OrgId::from("other.example")));
    assert_eq!(event.member.role, Role::Member);
    let EventKind::MessagePosted(m) = &event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text, "hi bob, see spam.example");
    assert_eq!(m.links, ["https://spam.example/x?a=1&b=2"]);
    let mentions: Vec<&str> = m.mentions.iter().map(UserId::as_str).collect();
    assert_eq!(mentions, ["@bob:localhost", "@carol:localhost"]);
    assert_eq!(m.id, Some(MessageId::from("$m1")));
}

#[test]
fn kinds_of_messages_and_stickers() {
    for (msgtype, kind) in [
        ("m.notice", MessageKind::Text),
        ("m.emote", MessageKind::Text),
        ("m.image", MessageKind::Image),
        ("m.file", MessageKind::File),
        ("m.audio", MessageKind::Voice),
        ("m.video", MessageKind::Video),
        ("m.location", MessageKind::Location),
        ("org.example.poll", MessageKind::Other),
    ] {
        let event = one(&text_event(
            "$k",
            "@eve:localhost",
            json!({ "msgtype": msgtype, "body": "x.png", "info": { "mimetype": "image/png", "size": 10 } }),
        ));
        assert_eq!(event.message().unwrap().kind, kind, "{msgtype}");
    }
    let image = one(&text_event(
        "$i",
        "@eve:localhost",
        json!({ "msgtype": "m.image", "body": "cat.png", "info": { "mimetype": "image/png", "size": 1234 } }),
    ));
    let attachment = &image.message().unwrap().attachments[0];
    assert_eq!(
        (
            attachment.name.as_str(),
            attachment.mime.as_deref(),
            attachment.size
        ),
        ("cat.png", Some("image/png"), Some(1234))
    );
    let sticker = one(
        &json!({ "type": "m.sticker", "event_id": "$s", "sender": "@eve:localhost",
        "origin_server_ts": 1, "content": { "body": "wave", "url": "mxc://x/y" } }),
    );
    assert_eq!(sticker.message().unwrap().kind, MessageKind::Sticker);
}

#[test]
fn an_edit_is_judged_on_its_new_content_and_points_at_the_original() {
    let event = one(&text_event(
        "$edit",
        "@eve:localhost",
        json!({ "msgtype": "m.text", "body": "* buy now at spam.example",
                "m.new_content": { "msgtype": "m.text", "body": "buy now at spam.example" },
                "m.relates_to": { "rel_type": "m.replace", "event_id": "$original" } }),
    ));
    let EventKind::MessageEdited(m) = &event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(m.text, "buy now at spam.example");
    assert_eq!(m.id, Some(MessageId::from("$original")));
    assert_eq!(event.id.as_str(), "$edit");
}

fn member_event(
    id: &str,
    sender: &str,
    target: &str,
    membership: &str,
    before: Option<&str>,
) -> Value {
    let mut event = json!({ "type": "m.room.member", "event_id": id, "sender": sender,
        "state_key": target, "origin_server_ts": 5, "content": { "membership": membership, "displayname": "Eve" } });
    if let Some(before) = before {
        event["unsigned"] =
            json!({ "prev_content": { "membership": before }, "prev_sender": "@mod:localhost" });
    }
    event
}

#[test]
fn joins_leaves_kicks_and_bans() {
    let invited = one(&member_event(
        "$j",
        "@eve:localhost",
        "@eve:localhost",
        "join",
        Some("invite"),
    ));
    assert_eq!(invited.member.display_name.as_deref(), Some("Eve"));
    let EventKind::MemberJoined { inviter, scene } = &invited.kind else {
        panic!("{invited:?}");
    };
    assert_eq!(
        inviter.as_ref().map(|i| (i.id.as_str(), i.role)),
        Some(("@mod:localhost", Role::Moderator))
    );
    assert_eq!(*scene, JoinScene::DirectInvite);
    let public = one(&member_event(
        "$p",
        "@eve:localhost",
        "@eve:localhost",
        "join",
        None,
    ));
    assert_eq!(
        public.kind,
        EventKind::MemberJoined {
            inviter: None,
            scene: JoinScene::Unknown
        }
    );

    let left = one(&member_event(
        "$l",
        "@eve:localhost",
        "@eve:localhost",
        "leave",
        Some("join"),
    ));
    assert_eq!(left.kind, EventKind::MemberLeft);
    let kicked = one(&member_event(
        "$k",
        "@mod:localhost",
        "@eve:localhost",
        "leave",
        Some("join"),
    ));
    let EventKind::MemberRemoved {
        by: Some(by),
        banned: false,
    } = &kicked.kind
    else {
        panic!("{kicked:?}");
    };
    assert_eq!(
        (by.id.as_str(), by.role),
        ("@mod:localhost", Role::Moderator)
    );
    let banned = one(&member_event(
        "$b",
        "@admin:localhost",
        "@eve:localhost",
        "ban",
        Some("join"),
    ));
    assert!(matches!(
        banned.kind,
        EventKind::MemberRemoved { banned: true, .. }
    ));
    let by_bot = one(&member_event(
        "$bb",
        BOT,
        "@eve:localhost",
        "ban",
        Some("join"),
    ));
    let EventKind::MemberRemoved { by: Some(by), .. } = &by_bot.kind else {
        panic!("{by_bot:?}");
    };
    assert!(
        by.is_bot,
        "the bot's own removals are marked, so they are never blacklisted"
    );

    // Profile changes, rejected invites and the bot's own join are not events here.
    for (sender, target, membership, before) in [
        ("@eve:localhost", "@eve:localhost", "join", Some("join")),
        ("@eve:localhost", "@eve:localhost", "leave", Some("invite")),
        ("@mod:localhost", "@eve:localhost", "invite", None),
        (BOT, BOT, "join", Some("invite")),
    ] {
        assert_eq!(
            translate(
                &member_event("$x", sender, target, membership, before),
                &ctx(false)
            ),
            None
        );
    }
}

#[test]
fn the_bot_s_own_messages_are_not_judged_and_the_management_room_takes_only_commands() {
    let own = text_event(
        "$o",
        BOT,
        json!({ "msgtype": "m.notice", "body": "warning" }),
    );
    assert_eq!(translate(&own, &ctx(false)), None);
    let chat = text_event(
        "$c",
        "@mod:localhost",
        json!({ "msgtype": "m.text", "body": "lunch?" }),
    );
    assert_eq!(translate(&chat, &ctx(true)), None);
    let command = text_event(
        "$g",
        "@mod:localhost",
        json!({ "msgtype": "m.text", "body": "!guard stats" }),
    );
    assert!(translate(&command, &ctx(true)).is_some());
    let renamed = one(
        &json!({ "type": "m.room.name", "event_id": "$n", "sender": "@admin:localhost",
        "state_key": "", "origin_server_ts": 5, "content": { "name": "Lobby" } }),
    );
    assert_eq!(
        renamed.kind,
        EventKind::GroupChanged(GroupChange::Renamed {
            name: "Lobby".to_owned()
        })
    );
    assert_eq!(
        translate(&json!({ "type": "m.room.message" }), &ctx(false)),
        None,
        "malformed"
    );
}
