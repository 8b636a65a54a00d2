//! Time from a WeCom callback to the owner's notice, through the real `groupguard run`
//! against the loopback fake WeCom API: a keyword in a customer-group message (the archive
//! record appended, `msgaudit_notify` sent) and a blacklisted customer joining
//! (`change_external_chat`, the group read back), one at a time. Each sample is in its own
//! group with its own owner: WeCom lets an app send a member 30 messages a minute, and
//! groupguard keeps to that.
//!
//! `cargo bench -p groupguard --bench wecom_notice`

use std::io::Write as _;
use std::time::{Duration, Instant};

use groupguard_wecom::fake::{CORP_ID, CallbackClient, FakeWecom, SECRET, now_secs};
use serde_json::{Value, json};

#[allow(dead_code)]
mod support;

const TOKEN: &str = "benchToken";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

fn member(userid: &str) -> Value {
    json!({ "userid": userid, "type": 2, "join_time": now_secs(), "join_scene": 1 })
}

/// Group `i`, owned by `boss{i}`, with `members`.
fn group(i: usize, members: &[&str], version: &str) -> Value {
    let mut list =
        vec![json!({ "userid": format!("boss{i}"), "type": 1, "join_time": 1_600_000_000 })];
    list.extend(members.iter().map(|m| member(m)));
    json!({ "chat_id": format!("wrBench{i}"), "name": "bench", "owner": format!("boss{i}"),
            "member_list": list, "admin_list": [], "member_version": version })
}

/// Waits until the fake has delivered a message to `owner`; how long that took.
async fn until_notified(fake: &FakeWecom, owner: &str, since: Instant) -> Duration {
    while !fake.delivered().iter().any(|m| m["touser"] == owner) {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no notice in 30 s"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    since.elapsed()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let samples = if support::full_run() { 300 } else { 5 };
    let dir = support::fresh_dir("wecom-bench");
    let fake = FakeWecom::start().await;
    for i in 0..samples {
        fake.put_group(group(i, &[&format!("wmCustomer{i}")], "v1"));
    }

    let blacklist: String = (0..samples)
        .map(|i| format!("[[blacklist]]\nmember = \"wecom:wmBanned{i}\"\nreason = \"bench\"\nsource = \"import\"\ncreated_at = \"2026-01-01T00:00:00Z\"\n"))
        .collect();
    let rules = format!(
        "[[rules]]\nid = \"ads\"\nkeywords = {{ substrings = [\"代购\"] }}\nladder = [\"kick\"]\n\n\
         [[rules]]\nid = \"banned\"\nblacklist = {{ on_join = true }}\nladder = [\"kick\"]\n\n{blacklist}"
    );
    support::import_rules(&dir, None, &rules);
    let port = support::free_port();
    let archive = dir.join("archive.jsonl");
    let config = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
         [wecom]\ncorp_id = \"{CORP_ID}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\nagent_id = 1000002\n\
         secret = \"{SECRET}\"\napi_base = \"{}\"\nmember_sync_delay = \"1ms\"\n\
         [wecom.archive]\nfile = \"{}\"\n",
        dir.join("data").display(),
        fake.base,
        archive.display()
    );
    let bot = support::start_bot(&dir, &config);
    support::wait_ready(port);
    let client = CallbackClient::new(
        &format!("http://127.0.0.1:{port}/wecom/callback"),
        TOKEN,
        KEY,
        CORP_ID,
    );

    // Groups register themselves on their first read.
    for i in 0..samples {
        let push = client.member_change(&format!("wrBench{i}"), "add_member", &[], "v1", 0);
        client.send(&push).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut keyword = Vec::with_capacity(samples);
    for i in 0..samples {
        let record = json!({ "msgid": format!("bench-{i}"), "action": "send",
            "from": format!("wmCustomer{i}"), "tolist": [format!("boss{i}")],
            "roomid": format!("wrBench{i}"), "msgtime": now_secs() * 1000,
            "msgtype": "text", "text": { "content": "专业代购，私聊" } });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&archive)
            .expect("the archive file");
        writeln!(file, "{record}").expect("a record");
        let sent = Instant::now();
        let (status, _) = client.send(&client.archive_notify()).await;
        assert_eq!(status, 200);
        keyword.push(until_notified(&fake, &format!("boss{i}"), sent).await);
    }

    let mut joins = Vec::with_capacity(samples);
    for i in 0..samples {
        // A new owner: the group's first had the keyword notice.
        let (customer, banned) = (format!("wmCustomer{i}"), format!("wmBanned{i}"));
        let mut joined = group(i, &[&customer, &banned], "v2");
        joined["owner"] = json!(format!("owner{i}"));
        fake.put_group(joined);
        let sent = Instant::now();
        let push = client.member_change(&format!("wrBench{i}"), "add_member", &[&banned], "v2", 0);
        let (status, _) = client.send(&push).await;
        assert_eq!(status, 200);
        joins.push(until_notified(&fake, &format!("owner{i}"), sent).await);
    }
    support::stop_bot(bot);
    let _ = std::fs::remove_dir_all(&dir);

    support::percentiles("archive keyword → owner notice", "notices", keyword);
    support::percentiles(
        "blacklisted join → owner notice (member_sync_delay 1 ms; the default 2 s adds to it)",
        "notices",
        joins,
    );
}
