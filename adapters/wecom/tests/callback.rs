//! The callback route on its own, with a sink that can be full: a push the queue cannot take
//! is refused with a 503 and taken when WeCom sends it again, and what is not an event for
//! groupguard is acknowledged without queueing anything.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use groupguard_core::model::{Event, EventKind, GroupChange};
use groupguard_core::platform::{EventSink, PushError, SinkClosed};
use groupguard_core::ports::Clock;
use groupguard_core::time::Timestamp;
use groupguard_wecom::Wecom;
use groupguard_wecom::config::RawWecomConfig;
use groupguard_wecom::crypto::MsgCrypt;
use groupguard_wecom::fake::{CORP_ID, FakeWecom, SECRET};

const TOKEN: &str = "t0ken";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const NOW: i64 = 1_700_000_000;

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(NOW * 1000)
    }
}

/// A sink that refuses while `full` is set and keeps what it takes.
#[derive(Debug, Default)]
struct TestSink {
    full: Mutex<bool>,
    taken: Mutex<Vec<Event>>,
}

#[async_trait]
impl EventSink for TestSink {
    async fn push(&self, event: Event) -> Result<(), SinkClosed> {
        self.taken.lock().unwrap().push(event);
        Ok(())
    }

    async fn push_within(&self, event: Event, _wait: Duration) -> Result<(), PushError> {
        if *self.full.lock().unwrap() {
            return Err(PushError::Full);
        }
        self.taken.lock().unwrap().push(event);
        Ok(())
    }
}

async fn serve(max_age: &str) -> (String, Arc<TestSink>, FakeWecom) {
    let fake = FakeWecom::start().await;
    let raw: RawWecomConfig = toml::from_str(&format!(
        "corp_id = \"{CORP_ID}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\nagent_id = 1\n\
         secret = \"{SECRET}\"\napi_base = \"{}\"\nmax_callback_age = \"{max_age}\"\n",
        fake.base
    ))
    .unwrap();
    let mut errors = Vec::new();
    let config = raw
        .check(&|_| None, std::path::Path::new("/tmp"), &mut errors)
        .unwrap();
    let wecom = Wecom::new(config, Arc::new(FixedClock));
    let sink = Arc::new(TestSink::default());
    let app = wecom.router(Arc::clone(&sink) as Arc<dyn EventSink>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wecom/callback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sink, fake)
}

/// A signed push of `inner` sent at `timestamp` with `nonce`.
async fn push(url: &str, inner: &str, timestamp: i64, nonce: &str) -> u16 {
    let crypt = MsgCrypt::new(TOKEN, KEY).unwrap();
    let encrypted = crypt.encrypt(inner, CORP_ID);
    let signature = crypt.signature(&timestamp.to_string(), nonce, &encrypted);
    reqwest::Client::new()
        .post(format!(
            "{url}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        ))
        .body(format!(
            "<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const DISMISS: &str = "<xml><CreateTime>1700000000</CreateTime><MsgType>event</MsgType>\
    <Event>change_external_chat</Event><ChatId>wr1</ChatId><ChangeType>dismiss</ChangeType></xml>";

#[tokio::test]
async fn a_full_queue_answers_503_and_the_same_push_is_taken_when_sent_again() {
    let (url, sink, _fake) = serve("5m").await;
    *sink.full.lock().unwrap() = true;
    assert_eq!(push(&url, DISMISS, NOW, "n1").await, 503);
    assert!(sink.taken.lock().unwrap().is_empty());
    *sink.full.lock().unwrap() = false;
    assert_eq!(
        push(&url, DISMISS, NOW, "n1").await,
        200,
        "the refused nonce was not remembered"
    );
    let taken = sink.taken.lock().unwrap().clone();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].kind,
        EventKind::GroupChanged(GroupChange::Dismissed)
    );
    assert_eq!(
        push(&url, DISMISS, NOW, "n1").await,
        403,
        "a taken nonce is a replay"
    );
}

#[tokio::test]
async fn the_timestamp_window_applies_unless_it_is_off() {
    let (url, sink, _fake) = serve("5m").await;
    assert_eq!(push(&url, DISMISS, NOW - 301, "a").await, 403);
    assert_eq!(push(&url, DISMISS, NOW + 301, "b").await, 403);
    assert_eq!(push(&url, DISMISS, NOW - 299, "c").await, 200);
    assert_eq!(sink.taken.lock().unwrap().len(), 1);
    let (url, sink, _fake) = serve("off").await;
    assert_eq!(
        push(&url, DISMISS, 1_409_659_813, "d").await,
        200,
        "a recorded callback replays"
    );
    assert_eq!(sink.taken.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn events_groupguard_does_not_use_are_acknowledged_and_nothing_is_queued() {
    let (url, sink, _fake) = serve("5m").await;
    for inner in [
        "<xml><MsgType>event</MsgType><Event>change_external_tag</Event></xml>",
        "<xml><MsgType>image</MsgType><FromUserName>a</FromUserName></xml>",
        "<xml><Unexpected>1</Unexpected></xml>",
    ] {
        assert_eq!(push(&url, inner, NOW, inner).await, 200, "{inner}");
    }
    assert!(sink.taken.lock().unwrap().is_empty());
    // Not XML at all once decrypted: a 400, never a 5xx.
    assert_eq!(push(&url, "plain text", NOW, "x").await, 400);
    let missing = reqwest::Client::new()
        .post(format!("{url}?timestamp={NOW}&nonce=z"))
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 400);
}
