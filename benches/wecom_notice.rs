//! Time from a WeCom callback to the owner's notice, through the real `groupguard run`
//! against the loopback fake WeCom API: a keyword in a customer-group message (the archive
//! record appended, `msgaudit_notify` sent) and a blacklisted customer joining
//! (`change_external_chat`, the group read back), one at a time. Each sample is in its own
//! group with its own owner: WeCom lets an app send a member 30 messages a minute, and
//! groupguard keeps to that.
//!
//! `cargo bench -p groupguard --bench wecom_notice`

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use groupguard_wecom::fake::{CORP_ID, CallbackClient, FakeWecom, SECRET, now_secs};
use serde_json::{Value, json};

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

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: {} notices, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
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
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants a quick run.
    let samples = if std::env::args().any(|a| a == "--bench") {
        300
    } else {
        5
    };
    let dir = std::env::temp_dir().join(format!("groupguard-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
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
    std::fs::write(dir.join("rules.toml"), rules).expect("the rules");
    let imported = Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args([
            "config",
            "import",
            dir.join("rules.toml").to_str().expect("a path"),
        ])
        .env("GROUPGUARD_DATA_DIR", dir.join("data"))
        .env_remove("DATABASE_URL")
        .status()
        .expect("the import runs");
    assert!(imported.success());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
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
    std::fs::write(dir.join("config.toml"), config).expect("the config");
    let mut bot = Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args([
            "run",
            "--config",
            dir.join("config.toml").to_str().expect("a path"),
        ])
        .env_remove("DATABASE_URL")
        .stderr(std::fs::File::create(dir.join("log")).expect("a log file"))
        .spawn()
        .expect("the bot starts");
    wait_ready(port);
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
    let _ = Command::new("kill")
        .args(["-TERM", &bot.id().to_string()])
        .status();
    let _ = bot.wait();
    let _ = std::fs::remove_dir_all(&dir);

    percentiles("archive keyword → owner notice", keyword);
    percentiles(
        "blacklisted join → owner notice (member_sync_delay 1 ms; the default 2 s adds to it)",
        joins,
    );
}

fn wait_ready(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(stream, "GET /readyz HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the bot did not become ready (see its log in the bench directory)");
}
