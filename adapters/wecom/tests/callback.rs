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
use groupguard_wecom::fake::{CORP_ID, CallbackClient, FakeWecom, SECRET};

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

async fn serve(max_age: &str) -> (CallbackClient, Arc<TestSink>, FakeWecom) {
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
    (CallbackClient::new(&url, TOKEN, KEY, CORP_ID), sink, fake)
}

/// Sends a push of `inner` signed at `timestamp`; the status.
async fn push(client: &CallbackClient, inner: &str, timestamp: i64) -> u16 {
    client
        .send(&client.xml_at(inner, CORP_ID, timestamp))
        .await
        .0
}

const DISMISS: &str = "<xml><CreateTime>1700000000</CreateTime><MsgType>event</MsgType>\
    <Event>change_external_chat</Event><ChatId>wr1</ChatId><ChangeType>dismiss</ChangeType></xml>";

#[tokio::test]
async fn a_full_queue_answers_503_and_the_same_push_is_taken_when_sent_again() {
    let (client, sink, _fake) = serve("5m").await;
    let dismiss = client.xml_at(DISMISS, CORP_ID, NOW);
    *sink.full.lock().unwrap() = true;
    assert_eq!(client.send(&dismiss).await.0, 503);
    assert!(sink.taken.lock().unwrap().is_empty());
    *sink.full.lock().unwrap() = false;
    let again = client.send(&dismiss).await.0;
    assert_eq!(again, 200, "the refused nonce was not remembered");
    let taken = sink.taken.lock().unwrap().clone();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].kind,
        EventKind::GroupChanged(GroupChange::Dismissed)
    );
    let replay = client.send(&dismiss).await.0;
    assert_eq!(replay, 403, "a taken nonce is a replay");
}

#[tokio::test]
async fn the_timestamp_window_applies_unless_it_is_off() {
    let (client, sink, _fake) = serve("5m").await;
    assert_eq!(push(&client, DISMISS, NOW - 301).await, 403);
    assert_eq!(push(&client, DISMISS, NOW + 301).await, 403);
    assert_eq!(push(&client, DISMISS, NOW - 299).await, 200);
    assert_eq!(sink.taken.lock().unwrap().len(), 1);
    let (client, sink, _fake) = serve("off").await;
    let recorded = push(&client, DISMISS, 1_409_659_813).await;
    assert_eq!(recorded, 200, "a recorded callback replays");
    assert_eq!(sink.taken.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn events_groupguard_does_not_use_are_acknowledged_and_nothing_is_queued() {
    let (client, sink, _fake) = serve("5m").await;
    for inner in [
        "<xml><MsgType>event</MsgType><Event>change_external_tag</Event></xml>",
        "<xml><MsgType>image</MsgType><FromUserName>a</FromUserName></xml>",
        "<xml><Unexpected>1</Unexpected></xml>",
    ] {
        assert_eq!(push(&client, inner, NOW).await, 200, "{inner}");
    }
    assert!(sink.taken.lock().unwrap().is_empty());
    // Not XML at all once decrypted: a 400, never a 5xx.
    assert_eq!(push(&client, "plain text", NOW).await, 400);
    let missing = reqwest::Client::new()
        .post(format!("{}?timestamp={NOW}&nonce=z", client.url))
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 400);
}
