//! Customer-group messages reach a third party only through the chat archive (会话内容存档),
//! whose SDK is a closed native library. groupguard reads the records the SDK returns,
//! decrypted, from one of two sources: a JSON-lines file that something else appends to, or
//! a sidecar that runs the SDK and answers `POST /v1/pull`. Either way the adapter owns the
//! cursor, pulls when WeCom's `msgaudit_notify` says there is something new (and on a timer),
//! and turns each record into a message event.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::model::{Attachment, Message, MessageKind};
use serde::Deserialize;
use serde_json::{Value, json};

/// Records asked for per pull (the SDK's maximum).
pub const PAGE: usize = 1000;

/// A pull that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The file could not be read.
    #[error("cannot read the archive file: {0}")]
    File(String),
    /// The sidecar could not be reached, or failed in a way that may pass.
    #[error("the archive sidecar is unavailable: {0}")]
    Unavailable(String),
    /// The sidecar refused for a reason that will not pass by itself (a config error).
    #[error("the archive sidecar refused: {0}")]
    Refused(String),
}

/// Records after a cursor, and the cursor after them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Decrypted archive records, as the SDK returns them.
    pub records: Vec<Value>,
    /// Where the next pull starts.
    pub next: u64,
}

/// Where archive records come from. The cursor is the source's own position (a byte offset,
/// an SDK `seq`); the adapter keeps it across restarts.
#[async_trait]
pub trait ArchiveSource: Send + Sync + std::fmt::Debug {
    /// At most `limit` records after `cursor`.
    async fn pull(&self, cursor: u64, limit: usize) -> Result<Batch, ArchiveError>;
}

/// A JSON-lines file of records, followed as it grows. The cursor is a byte offset; a line
/// not yet ended by a newline is left for the next pull.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// Follows `path`.
    pub fn new(path: PathBuf) -> FileSource {
        FileSource { path }
    }

    fn read(&self, cursor: u64, limit: usize) -> Result<Batch, ArchiveError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            // Not written yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Batch {
                    records: Vec::new(),
                    next: cursor,
                });
            }
            Err(e) => return Err(ArchiveError::File(e.to_string())),
        };
        let length = file
            .metadata()
            .map_err(|e| ArchiveError::File(e.to_string()))?
            .len();
        // A file shorter than the cursor was replaced: start it over.
        let start = if length < cursor {
            tracing::warn!(path = %self.path.display(), "the archive file shrank; reading it from the start");
            0
        } else {
            cursor
        };
        let mut reader = BufReader::new(file);
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| ArchiveError::File(e.to_string()))?;
        let mut batch = Batch {
            records: Vec::new(),
            next: start,
        };
        let mut line = Vec::new();
        while batch.records.len() < limit {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| ArchiveError::File(e.to_string()))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            batch.next += n as u64;
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&text) {
                Ok(record) => batch.records.push(record),
                Err(e) => tracing::warn!(error = %e, "archive file: a malformed record skipped"),
            }
        }
        Ok(batch)
    }
}

#[async_trait]
impl ArchiveSource for FileSource {
    async fn pull(&self, cursor: u64, limit: usize) -> Result<Batch, ArchiveError> {
        self.read(cursor, limit)
    }
}

/// A sidecar that owns the vendor SDK and the private keys. The contract:
/// `POST {base}/v1/pull {"corp","seq","limit","timeout_s"}` answers
/// `{"next_seq", "records": [{"seq","msgid","record": {…}} | {"seq","msgid","error": {…}}]}`;
/// a record that failed to decrypt carries `error` and is skipped, so it does not block the
/// cursor; a `5xx` may pass and is retried at the next pull.
#[derive(Debug)]
pub struct SidecarSource {
    http: reqwest::Client,
    base: String,
    corp_id: String,
}

#[derive(Deserialize)]
struct PullAnswer {
    next_seq: u64,
    #[serde(default)]
    records: Vec<PulledRecord>,
}

#[derive(Deserialize)]
struct PulledRecord {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    msgid: String,
    record: Option<Value>,
    error: Option<Value>,
}

impl SidecarSource {
    /// The sidecar at `base` for the archive of `corp_id`.
    pub fn new(base: &str, corp_id: &str) -> SidecarSource {
        SidecarSource {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: base.to_owned(),
            corp_id: corp_id.to_owned(),
        }
    }
}

#[async_trait]
impl ArchiveSource for SidecarSource {
    async fn pull(&self, cursor: u64, limit: usize) -> Result<Batch, ArchiveError> {
        let response = self
            .http
            .post(format!("{}/v1/pull", self.base))
            .json(&json!({ "corp": self.corp_id, "seq": cursor, "limit": limit, "timeout_s": 5 }))
            .send()
            .await
            .map_err(|e| ArchiveError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            let body: Value = response.json().await.unwrap_or_default();
            return Err(if body["retryable"] == false {
                ArchiveError::Refused(format!("HTTP {status}, SDK code {}", body["sdk_code"]))
            } else {
                ArchiveError::Unavailable(format!("HTTP {status}, SDK code {}", body["sdk_code"]))
            });
        }
        if !status.is_success() {
            return Err(ArchiveError::Refused(format!("HTTP {status}")));
        }
        let answer: PullAnswer = response.json().await.map_err(|_| {
            ArchiveError::Refused("the answer is not the pull contract's JSON".to_owned())
        })?;
        let records = answer
            .records
            .into_iter()
            .filter_map(|r| match (r.record, r.error) {
                (Some(record), None) => Some(record),
                (_, error) => {
                    tracing::warn!(seq = r.seq, msgid = %r.msgid, error = ?error, "archive record could not be decrypted; skipped");
                    None
                }
            })
            .collect();
        Ok(Batch {
            records,
            next: answer.next_seq.max(cursor),
        })
    }
}

/// A group message from an archive record: the group (`roomid`), sender, time, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// `msgid`.
    pub id: String,
    /// `roomid`.
    pub room: String,
    /// `from`.
    pub from: String,
    /// `msgtime`, milliseconds.
    pub at: i64,
    /// What it carries.
    pub message: Message,
}

/// The message a record carries, when it is one sent to a group. Recalls, consent records,
/// enterprise switches and one-to-one chats are not.
pub fn message(record: &Value) -> Option<ArchivedMessage> {
    let room = record["roomid"].as_str().filter(|r| !r.is_empty())?;
    if record["action"] != "send" {
        return None;
    }
    let msgtype = record["msgtype"].as_str()?;
    let body = &record[msgtype];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let joined = |parts: &[&Value]| {
        parts
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut links = Vec::new();
    let mut attachments = Vec::new();
    let (kind, content) = match msgtype {
        "text" => (MessageKind::Text, text(&body["content"])),
        "image" => (MessageKind::Image, String::new()),
        "voice" => (MessageKind::Voice, String::new()),
        "video" => (MessageKind::Video, String::new()),
        "emotion" => (MessageKind::Sticker, String::new()),
        "file" => {
            attachments.push(Attachment {
                name: text(&body["filename"]),
                mime: None,
                size: body["filesize"].as_u64(),
                image: None,
            });
            (MessageKind::File, text(&body["filename"]))
        }
        "link" => {
            links.extend(body["link_url"].as_str().map(str::to_owned));
            (
                MessageKind::Link,
                joined(&[&body["title"], &body["description"]]),
            )
        }
        "location" => (
            MessageKind::Location,
            joined(&[&body["title"], &body["address"]]),
        ),
        "weapp" => (
            MessageKind::MiniProgram {
                app_id: body["username"].as_str().map(str::to_owned),
            },
            joined(&[&body["title"], &body["description"], &body["displayname"]]),
        ),
        "card" => (MessageKind::ContactCard, text(&body["corpname"])),
        "chatrecord" => (
            MessageKind::ChatRecord,
            std::iter::once(text(&body["title"]))
                .chain(items(&body["item"]).map(|item| item_text(&item)))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        "mixed" => {
            let parts: Vec<Value> = items(&body["item"]).collect();
            let text = parts
                .iter()
                .filter(|p| p["type"] == "text")
                .map(item_text)
                .collect::<Vec<_>>()
                .join("\n");
            let kind = if text.is_empty() && parts.iter().any(|p| p["type"] == "image") {
                MessageKind::Image
            } else {
                MessageKind::Text
            };
            (kind, text)
        }
        "markdown" => (MessageKind::Text, text(&record["info"]["content"])),
        "news" => {
            let news: Vec<Value> = record["info"]["item"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            links.extend(
                news.iter()
                    .filter_map(|n| n["url"].as_str())
                    .map(str::to_owned),
            );
            (
                MessageKind::Link,
                news.iter()
                    .map(|n| joined(&[&n["title"], &n["description"]]))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        "docmsg" => {
            let doc = &record["doc"];
            links.extend(doc["link_url"].as_str().map(str::to_owned));
            (MessageKind::Link, text(&doc["title"]))
        }
        "revoke" | "agree" | "disagree" => return None,
        _ => (
            MessageKind::Other,
            joined(&[&body["title"], &body["content"], &body["wish"]]),
        ),
    };
    let mut message = Message::of_kind(kind, content);
    message.id = record["msgid"].as_str().map(Into::into);
    message.links = links;
    message.attachments = attachments;
    Some(ArchivedMessage {
        id: record["msgid"].as_str()?.to_owned(),
        room: room.to_owned(),
        from: record["from"].as_str()?.to_owned(),
        at: record["msgtime"].as_i64().unwrap_or(0),
        message,
    })
}

/// The items of a chat record or mixed message, whose `content` is itself JSON text.
fn items(list: &Value) -> impl Iterator<Item = Value> + '_ {
    list.as_array().into_iter().flatten().map(|item| {
        let mut item = item.clone();
        if let Some(parsed) = item["content"]
            .as_str()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
        {
            item["content"] = parsed;
        }
        item
    })
}

/// The text of one item: its `content.content`, or a title.
fn item_text(item: &Value) -> String {
    let content = &item["content"];
    [&content["content"], &content["title"], content]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use groupguard_core::model::KindName;

    use super::*;

    fn record(msgtype: &str, payload: Value) -> Value {
        let mut r = json!({
            "msgid": "CAQQluDa4QUY0On2rYSAgAMgzPrShAE=", "action": "send", "from": "wmCustomer",
            "tolist": ["zhangsan"], "roomid": "wrGroup1", "msgtime": 1_700_000_000_123_i64,
            "msgtype": msgtype,
        });
        r[msgtype] = payload;
        r
    }

    #[test]
    fn every_documented_type_maps_to_a_kind() {
        let cases = [
            (
                "text",
                json!({ "content": "加微信 abc" }),
                KindName::Text,
                "加微信 abc",
            ),
            ("image", json!({ "sdkfileid": "x" }), KindName::Image, ""),
            ("voice", json!({ "play_length": 3 }), KindName::Voice, ""),
            ("video", json!({ "play_length": 3 }), KindName::Video, ""),
            ("emotion", json!({ "type": 1 }), KindName::Sticker, ""),
            (
                "file",
                json!({ "filename": "报价.xlsx", "filesize": 10 }),
                KindName::File,
                "报价.xlsx",
            ),
            (
                "link",
                json!({ "title": "优惠", "description": "点我", "link_url": "https://spam.example/x" }),
                KindName::Link,
                "优惠 点我",
            ),
            (
                "location",
                json!({ "title": "门店", "address": "北京" }),
                KindName::Location,
                "门店 北京",
            ),
            (
                "weapp",
                json!({ "title": "抽奖", "username": "gh_abc@app", "displayname": "抽奖助手" }),
                KindName::MiniProgram,
                "抽奖 抽奖助手",
            ),
            (
                "card",
                json!({ "corpname": "某公司", "userid": "u" }),
                KindName::ContactCard,
                "某公司",
            ),
            (
                "chatrecord",
                json!({ "title": "群聊记录", "item": [{ "type": "ChatRecordText", "content": "{\"content\":\"代购\"}" }] }),
                KindName::ChatRecord,
                "群聊记录\n代购",
            ),
            (
                "mixed",
                json!({ "item": [{ "type": "text", "content": "{\"content\":\"看图\"}" }, { "type": "image", "content": "{}" }] }),
                KindName::Text,
                "看图",
            ),
            (
                "redpacket",
                json!({ "wish": "恭喜发财" }),
                KindName::Other,
                "恭喜发财",
            ),
            ("sphfeed", json!({ "feed_desc": "x" }), KindName::Other, ""),
        ];
        for (msgtype, payload, kind, text) in cases {
            let m = message(&record(msgtype, payload)).unwrap_or_else(|| panic!("{msgtype}"));
            assert_eq!(
                (m.message.kind.name(), m.message.text.as_str()),
                (kind, text),
                "{msgtype}"
            );
            assert_eq!(
                (m.room.as_str(), m.from.as_str(), m.at),
                ("wrGroup1", "wmCustomer", 1_700_000_000_123)
            );
        }
        let weapp = message(&record("weapp", json!({ "username": "gh_abc@app" }))).unwrap();
        assert_eq!(
            weapp.message.kind,
            MessageKind::MiniProgram {
                app_id: Some("gh_abc@app".to_owned())
            }
        );
        let link = message(&record(
            "link",
            json!({ "link_url": "https://spam.example/x" }),
        ))
        .unwrap();
        assert_eq!(link.message.links, ["https://spam.example/x"]);
        let mut news = record("news", Value::Null);
        news["info"] = json!({ "item": [{ "title": "t", "url": "https://a.example" }] });
        assert_eq!(message(&news).unwrap().message.links, ["https://a.example"]);
    }

    #[test]
    fn recalls_single_chats_and_switches_are_not_group_messages() {
        let mut recall = record("revoke", json!({ "pre_msgid": "x" }));
        recall["action"] = json!("recall");
        assert_eq!(message(&recall), None);
        let mut single = record("text", json!({ "content": "hi" }));
        single["roomid"] = json!("");
        assert_eq!(message(&single), None);
        assert_eq!(
            message(&json!({ "msgid": "x", "action": "switch", "time": 1, "user": "u" })),
            None
        );
    }

    #[tokio::test]
    async fn the_file_source_follows_complete_lines_from_its_cursor() {
        let dir = std::env::temp_dir().join(format!("gg-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("archive.jsonl");
        let _ = std::fs::remove_file(&path);
        let source = FileSource::new(path.clone());
        assert_eq!(source.pull(0, 10).await.unwrap(), Batch::default());
        std::fs::write(
            &path,
            "{\"msgid\":\"a\"}\nnot json\n{\"msgid\":\"b\"}\n{\"msgid\":\"c\"",
        )
        .unwrap();
        let first = source.pull(0, 10).await.unwrap();
        assert_eq!(
            first.records,
            [json!({ "msgid": "a" }), json!({ "msgid": "b" })]
        );
        let again = source.pull(first.next, 10).await.unwrap();
        assert!(again.records.is_empty(), "the unfinished line waits");
        std::fs::write(
            &path,
            "{\"msgid\":\"a\"}\nnot json\n{\"msgid\":\"b\"}\n{\"msgid\":\"c\"}\n",
        )
        .unwrap();
        let rest = source.pull(first.next, 10).await.unwrap();
        assert_eq!(rest.records, [json!({ "msgid": "c" })]);
        let limited = source.pull(0, 1).await.unwrap();
        assert_eq!(limited.records.len(), 1);
        std::fs::write(&path, "{\"msgid\":\"z\"}\n").unwrap();
        assert_eq!(
            source.pull(rest.next, 10).await.unwrap().records,
            [json!({ "msgid": "z" })]
        );
    }
}
