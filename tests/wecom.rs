//! `groupguard run` with the WeCom adapter against the loopback fake WeCom API: callbacks
//! encrypted here as WeCom encrypts them, decisions in SQLite, notices, kicks and answers
//! read back from the fake.

use std::time::{Duration, Instant};

use groupguard_core::model::{MemberRef, Platform};
use groupguard_core::ports::{ListStore, ViolationQuery, ViolationStore};
use groupguard_wecom::fake::{CORP_ID, CallbackClient, FakeWecom, Push, SECRET, now_secs};
use serde_json::{Value, json};

use crate::bot::{Bot, fresh_dir};

const TOKEN: &str = "ggToken2026";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const OWNER: &str = "boss";
const GROUP: &str = "wrVipCustomers";

const RULES: &str = "!guard config import
[settings]
home_orgs = { wecom = \"wwfakecorp0000001\" }

[[rules]]
id = \"ads\"
keywords = { substrings = [\"代购\", \"加微信\"] }
ladder = [\"warn\", \"kick\"]
exempt = { roles = [\"admin\", \"owner\"] }

[[rules]]
id = \"outsiders\"
invites = { refuse_other_orgs = true }
ladder = [\"kick\"]

[[rules]]
id = \"banned\"
blacklist = { on_join = true, on_message = true }
ladder = [\"kick\"]
";

/// Delivers a push that must be taken: an empty 200.
async fn deliver(client: &CallbackClient, push: &Push) {
    let (status, body) = client.send(push).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "a good callback is taken with an empty 200"
    );
}

fn member(userid: &str, kind: u8, join_time: i64) -> Value {
    json!({ "userid": userid, "type": kind, "join_time": join_time, "join_scene": 1,
            "invitor": { "userid": OWNER }, "name": userid })
}

/// The customer group with `members` (besides its owner) at `version`.
fn group(members: &[Value], version: &str) -> Value {
    let mut list = vec![member(OWNER, 1, 1_600_000_000)];
    list.extend(members.iter().cloned());
    json!({ "chat_id": GROUP, "name": "VIP 客户群", "owner": OWNER, "create_time": 1_600_000_000,
            "member_list": list, "admin_list": [], "member_version": version })
}

/// A bot configured for the fake, with the archive file in its directory.
fn start(fake: &FakeWecom) -> (Bot, CallbackClient) {
    let dir = fresh_dir();
    let sections = format!(
        "[wecom]\ncorp_id = \"{CORP_ID}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\nagent_id = 1000002\n\
         secret = \"{SECRET}\"\napi_base = \"{}\"\nmember_sync_delay = \"50ms\"\nadmins = [\"{OWNER}\"]\n\
         [wecom.archive]\nfile = \"{}\"\npoll_every = \"30s\"\n",
        fake.base,
        dir.join("archive.jsonl").display()
    );
    let mut bot = Bot::new(dir, "", &sections);
    tokio::task::block_in_place(|| bot.spawn());
    let client = CallbackClient::new(
        &format!("http://127.0.0.1:{}/wecom/callback", bot.port),
        TOKEN,
        KEY,
        CORP_ID,
    );
    (bot, client)
}

/// Waits until `done` holds, up to 20 seconds.
async fn wait_until(what: &str, bot: &Bot, done: impl Fn() -> bool) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}\nlog:\n{}", bot.log());
}

/// App messages to `who` whose markdown contains `text`.
fn messages_to(fake: &FakeWecom, who: &str, text: &str) -> Vec<Value> {
    fake.delivered()
        .into_iter()
        .filter(|m| m["touser"] == who)
        .filter(|m| {
            m["markdown"]["content"]
                .as_str()
                .is_some_and(|c| c.contains(text))
        })
        .collect()
}

/// A bot with [`RULES`] imported, the fake serving `group`.
async fn ready_with(fake: &FakeWecom, group: Value) -> (Bot, CallbackClient) {
    fake.put_group(group);
    let (bot, client) = start(fake);
    import_rules(fake, &bot, &client).await;
    (bot, client)
}

/// Imports [`RULES`] as the owner, through an app message, and waits for the answer.
async fn import_rules(fake: &FakeWecom, bot: &Bot, client: &CallbackClient) {
    deliver(client, &client.app_text(OWNER, 1, RULES)).await;
    wait_until("the import's answer", bot, || {
        !messages_to(fake, OWNER, "rule").is_empty()
    })
    .await;
}

fn append_archive(bot: &Bot, record: &Value) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(bot.dir.join("archive.jsonl"))
        .unwrap();
    writeln!(file, "{record}").unwrap();
}

fn text_record(msgid: &str, room: &str, from: &str, text: &str) -> Value {
    json!({ "msgid": msgid, "action": "send", "from": from, "tolist": [OWNER], "roomid": room,
            "msgtime": now_secs() * 1000, "msgtype": "text", "text": { "content": text } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_in_an_archived_customer_message_becomes_one_owner_notice() {
    let fake = FakeWecom::start().await;
    let (mut bot, client) = ready_with(
        &fake,
        group(&[member("wmCustomer", 2, 1_600_000_100)], "v1"),
    )
    .await;

    append_archive(
        &bot,
        &text_record("m-1", GROUP, "wmCustomer", "要代购的加我"),
    );
    deliver(&client, &client.archive_notify()).await;
    wait_until("the owner's notice", &bot, || {
        !messages_to(&fake, OWNER, "wmCustomer").is_empty()
    })
    .await;
    let notice = &messages_to(&fake, OWNER, "wmCustomer")[0];
    let content = notice["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("VIP 客户群"), "{content}");
    assert!(
        content.contains("rule ads asks to warn wmCustomer"),
        "{content}"
    );
    assert!(
        content.contains("WeCom has no API") || content.contains("cannot post in customer groups"),
        "{content}"
    );
    assert!(content.contains("> evidence: `代购`"), "{content}");
    assert!(content.contains("> message: 要代购的加我"), "{content}");
    assert_eq!(notice["msgtype"], "markdown");
    assert_eq!(notice["agentid"], 1_000_002);
    assert_eq!(notice["enable_duplicate_check"], 1);

    // The same notify again, and the archive re-read: nothing new.
    deliver(&client, &client.archive_notify()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| bot.stop());
    let store = bot.store().await;
    let violations = store.violations(&ViolationQuery::default()).await.unwrap();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].record.member.as_str(), "wmCustomer");
    assert_eq!(messages_to(&fake, OWNER, "wmCustomer").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_company_s_member_joining_is_reported_once_though_the_callback_came_three_times() {
    let fake = FakeWecom::start().await;
    let (mut bot, client) = ready_with(&fake, group(&[], "v1")).await;
    // The group as groupguard first sees it.
    deliver(
        &client,
        &client.member_change(GROUP, "add_member", &[], "v1", 0),
    )
    .await;
    wait_until("the group's first read", &bot, || {
        !fake.calls("externalcontact/groupchat/get").is_empty()
    })
    .await;

    fake.put_external(
        json!({ "external_userid": "wmRival", "name": "王五", "type": 2, "corp_name": "竞品公司" }),
    );
    fake.put_external(json!({ "external_userid": "wmFan", "name": "粉丝", "type": 1 }));
    fake.put_group(group(
        &[
            member("wmRival", 2, now_secs()),
            member("wmFan", 2, now_secs()),
        ],
        "v2",
    ));
    let push = client.member_change(GROUP, "add_member", &["wmRival", "wmFan"], "v2", 0);
    deliver(&client, &push).await;
    // WeCom's retries of the same push carry new nonces.
    for _ in 0..2 {
        deliver(&client, &client.again(&push)).await;
    }
    wait_until("the notice about the outsider", &bot, || {
        !messages_to(&fake, OWNER, "wmRival").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let notices = messages_to(&fake, OWNER, "wmRival");
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let content = notices[0]["markdown"]["content"].as_str().unwrap();
    assert!(
        content.contains("remove 王五") || content.contains("remove wmRival"),
        "{content}"
    );
    assert!(content.contains("竞品公司"), "{content}");
    assert!(
        messages_to(&fake, OWNER, "wmFan").is_empty(),
        "a WeChat user belongs to no company"
    );
    // Two reads of the group: the first sight, and v2; the retries found v2 known.
    assert_eq!(fake.calls("externalcontact/groupchat/get").len(), 2);

    tokio::task::block_in_place(|| bot.stop());
    let store = bot.store().await;
    let violations = store.violations(&ViolationQuery::default()).await.unwrap();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0].record.rule.as_str(), "outsiders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_customer_joining_reaches_the_owner_and_an_owner_s_removal_blacklists() {
    let fake = FakeWecom::start().await;
    let (mut bot, client) = ready_with(&fake, group(&[], "v1")).await;
    deliver(
        &client,
        &client.app_text(OWNER, 2, "!guard blacklist add wmBad spam in another group"),
    )
    .await;
    wait_until("the blacklist answer", &bot, || {
        messages_to(&fake, OWNER, "wmBad").len() == 1
    })
    .await;

    fake.put_group(group(&[member("wmBad", 2, now_secs())], "v2"));
    let started = Instant::now();
    deliver(
        &client,
        &client.member_change(GROUP, "add_member", &["wmBad"], "v2", 0),
    )
    .await;
    wait_until("the notice about the blacklisted member", &bot, || {
        messages_to(&fake, OWNER, "wmBad").len() == 2
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "within seconds of the callback: {elapsed:?}"
    );
    let notice = messages_to(&fake, OWNER, "wmBad")[1].clone();
    let content = notice["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("rule banned asks to remove"), "{content}");
    assert!(content.contains("blacklist"), "{content}");

    // With manual removals blacklisted, the owner removing a member (QuitScene 1) lists them.
    deliver(
        &client,
        &client.app_text(OWNER, 3, "!guard settings manual-removals org"),
    )
    .await;
    fake.put_group(group(
        &[
            member("wmBad", 2, now_secs()),
            member("wmTroll", 2, now_secs()),
        ],
        "v3",
    ));
    deliver(
        &client,
        &client.member_change(GROUP, "add_member", &["wmTroll"], "v3", 0),
    )
    .await;
    fake.put_group(group(&[member("wmBad", 2, now_secs())], "v4"));
    deliver(
        &client,
        &client.member_change(GROUP, "del_member", &["wmTroll"], "v4", 1),
    )
    .await;
    wait_until("the removal blacklisted", &bot, || {
        bot.log().contains("manual removal blacklisted")
    })
    .await;

    tokio::task::block_in_place(|| bot.stop());
    let store = bot.store().await;
    let listed = store.blacklist_page(None, 10).await.unwrap();
    let members: Vec<&str> = listed.iter().map(|e| e.member.id.as_str()).collect();
    assert_eq!(members, ["wmBad", "wmTroll"]);
    assert_eq!(listed[1].member, MemberRef::new(Platform::WeCom, "wmTroll"));
    assert_eq!(
        listed[1].source.to_string(),
        format!("moderator:wecom:{OWNER}")
    );
    let violations = store.violations(&ViolationQuery::default()).await.unwrap();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].record.rule.as_str(), "banned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_chat_the_app_created_a_warning_is_posted_and_a_second_offence_kicks() {
    let fake = FakeWecom::start().await;
    fake.put_app_chat("salesteam", &[OWNER, "lisi", "wangwu"]);
    let (mut bot, client) = start(&fake);
    import_rules(&fake, &bot, &client).await;
    append_archive(
        &bot,
        &text_record("a-1", "salesteam", "lisi", "私下代购找我"),
    );
    deliver(&client, &client.archive_notify()).await;
    wait_until("the warning", &bot, || {
        !fake.calls("appchat/send").is_empty()
    })
    .await;
    append_archive(&bot, &text_record("a-2", "salesteam", "lisi", "加微信 abc"));
    deliver(&client, &client.archive_notify()).await;
    wait_until("the kick", &bot, || {
        !fake.calls("appchat/update").is_empty()
    })
    .await;
    assert_eq!(
        fake.calls("appchat/update")[0]["del_user_list"],
        json!(["lisi"])
    );
    assert_eq!(fake.app_chat("salesteam"), [OWNER, "wangwu"]);
    assert_eq!(fake.calls("appchat/send")[0]["chatid"], "salesteam");
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smart_bot_command_is_answered_at_its_response_url_and_the_url_check_echoes() {
    let fake = FakeWecom::start().await;
    let (mut bot, client) = start(&fake);
    // URL verification, for the app (corp id) and for the smart bot (empty receive id).
    for receive_id in [CORP_ID, ""] {
        let answer = client.verify_url("1616140317555161061", receive_id).await;
        assert_eq!(answer, (200, "1616140317555161061".to_owned()));
    }
    let message = json!({
        "msgid": "CAIQ16HMjQYY", "aibotid": "AIBOT", "chatid": "wrkInternal1", "chattype": "group",
        "from": { "userid": OWNER }, "response_url": fake.response_url("rc1"),
        "msgtype": "text", "text": { "content": "@groupguard rule list" }
    });
    deliver(&client, &client.bot(&message)).await;
    wait_until("the answer at the response_url", &bot, || {
        !fake.responses().is_empty()
    })
    .await;
    let (code, body) = &fake.responses()[0];
    assert_eq!(code, "rc1");
    assert_eq!(body["msgtype"], "markdown");
    assert!(
        body["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("rule"),
        "{body}"
    );
    tokio::task::block_in_place(|| bot.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_get_a_4xx_and_nothing_is_queued_or_stored() {
    let fake = FakeWecom::start().await;
    let (mut bot, client) = start(&fake);
    // Each payload would blacklist someone if it were taken.
    let payload =
        |n: u64| client.app_text(OWNER, 100 + n, &format!("!guard blacklist add wmVictim{n}"));

    let mut bad_signature = payload(1);
    bad_signature.signature = "0".repeat(40);
    let mut stale = payload(2);
    stale.timestamp = (now_secs() - 3600).to_string();
    stale.signature = client
        .crypt
        .signature(&stale.timestamp, &stale.nonce, &stale.encrypted);
    let wrong_receiver = client.xml_at(
        &format!("<xml><FromUserName>{OWNER}</FromUserName><MsgType>text</MsgType><Content>!guard blacklist add wmVictim3</Content><MsgId>3</MsgId></xml>"),
        "wwSomeoneElse",
        now_secs(),
    );
    // Ciphertext of whole blocks that does not unpad.
    let garbage = base64_encode(&[7u8; 64]);
    let bad_padding = {
        let mut p = payload(4);
        p.body = format!("<xml><Encrypt><![CDATA[{garbage}]]></Encrypt></xml>");
        p.signature = client.crypt.signature(&p.timestamp, &p.nonce, &garbage);
        p
    };
    let malformed = {
        let mut p = payload(5);
        p.body = "<xml><Encrypt>".to_owned();
        p
    };
    let too_large = {
        let mut p = payload(6);
        p.body = format!("<xml><Pad>{}</Pad></xml>", "x".repeat(70 * 1024));
        p
    };
    let cases = [
        ("bad signature", bad_signature, 401),
        ("stale timestamp", stale, 403),
        ("wrong receive id", wrong_receiver, 403),
        ("bad padding", bad_padding, 400),
        ("malformed XML", malformed, 400),
        ("body over 64 KiB", too_large, 413),
    ];
    for (what, push, status) in &cases {
        let (got, _) = client.send(push).await;
        assert_eq!(got, *status, "{what}");
    }
    // A good push taken once; its replay refused.
    let good = payload(7);
    deliver(&client, &good).await;
    let (replayed, _) = client.send(&good).await;
    assert_eq!(replayed, 403, "replayed nonce");
    wait_until("the good push's answer", &bot, || {
        !messages_to(&fake, OWNER, "wmVictim7").is_empty()
    })
    .await;

    let log = bot.log();
    for code in ["-40001", "-40005", "-40007", "-40002"] {
        assert!(log.contains(code), "the log names {code}:\n{log}");
    }
    assert!(
        !log.contains(SECRET) && !log.contains("fake-token"),
        "no secrets in the log:\n{log}"
    );
    tokio::task::block_in_place(|| bot.stop());
    let store = bot.store().await;
    let listed = store.blacklist_page(None, 10).await.unwrap();
    let members: Vec<&str> = listed.iter().map(|e| e.member.id.as_str()).collect();
    assert_eq!(members, ["wmVictim7"], "only the good push was taken");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
