//! Callback throughput over loopback: WeCom pushes (encrypted XML) verified, decrypted,
//! parsed, queued and answered, with a load generator of 64 keep-alive connections in the
//! same process. Prints requests per second and per-request latency.
//!
//! `cargo bench -p groupguard-wecom --bench callback`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use groupguard_core::model::Event;
use groupguard_core::platform::{EventSink, PushError, SinkClosed};
use groupguard_core::ports::Clock;
use groupguard_core::time::Timestamp;
use groupguard_wecom::Wecom;
use groupguard_wecom::config::RawWecomConfig;
use groupguard_wecom::crypto::MsgCrypt;
use tokio::sync::mpsc;

const TOKEN: &str = "benchToken";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wwbenchcorp000001";
const NOW: i64 = 1_700_000_000;
const CONNECTIONS: usize = 64;

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(NOW * 1000)
    }
}

/// The dispatcher's queue, drained by a task that only counts.
#[derive(Debug)]
struct Queue(mpsc::Sender<Event>);

#[async_trait]
impl EventSink for Queue {
    async fn push(&self, event: Event) -> Result<(), SinkClosed> {
        self.0.send(event).await.map_err(|_| SinkClosed)
    }

    async fn push_within(&self, event: Event, wait: Duration) -> Result<(), PushError> {
        match tokio::time::timeout(wait, self.0.send(event)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(PushError::Closed),
            Err(_) => Err(PushError::Full),
        }
    }
}

struct Request {
    url: String,
    body: String,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants a quick run.
    let total = if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        2_000
    };
    let raw: RawWecomConfig = toml::from_str(&format!(
        "corp_id = \"{CORP}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\nagent_id = 1\n\
         secret = \"unused\"\napi_base = \"http://127.0.0.1:9\"\n"
    ))
    .expect("a config");
    let mut errors = Vec::new();
    let config = raw
        .check(&|_| None, std::path::Path::new("."), &mut errors)
        .expect("a valid config");
    let (sender, mut receiver) = mpsc::channel(10_000);
    let queued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&queued);
    tokio::spawn(async move {
        while receiver.recv().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let app = Wecom::new(config, Arc::new(FixedClock)).router(Arc::new(Queue(sender)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!(
        "http://{}/wecom/callback",
        listener.local_addr().expect("an address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let crypt = MsgCrypt::new(TOKEN, KEY).expect("a key");
    let prepared = Instant::now();
    let requests: Arc<Vec<Request>> = Arc::new(
        (0..total)
            .map(|i| {
                let inner = format!(
                    "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>\
                     <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                     <Content><![CDATA[!guard stats 7 --group wrVipCustomers]]></Content>\
                     <MsgId>{}</MsgId><AgentID>1000002</AgentID></xml>",
                    7_000_000_000_000_000_000u64 + i as u64
                );
                let encrypted = crypt.encrypt(&inner, CORP);
                let nonce = format!("{i}");
                let signature = crypt.signature(&NOW.to_string(), &nonce, &encrypted);
                Request {
                    url: format!("{base}?msg_signature={signature}&timestamp={NOW}&nonce={nonce}"),
                    body: format!(
                        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
                    ),
                }
            })
            .collect(),
    );
    println!(
        "prepared {total} pushes ({} bytes each) in {:.1?}",
        requests[0].body.len(),
        prepared.elapsed()
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("a client");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, requests, next) =
                (client.clone(), Arc::clone(&requests), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    match client
                        .post(&request.url)
                        .body(request.body.clone())
                        .send()
                        .await
                    {
                        Ok(r) if r.status().as_u16() == 200 => {}
                        _ => failures += 1,
                    }
                    latencies.push(sent.elapsed());
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut failures = 0;
    for worker in workers {
        let (l, f) = worker.await.expect("a worker");
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{total} callbacks over {CONNECTIONS} connections in {:.2?}: {:.0} requests/s, {failures} not 200, {} events queued",
        elapsed,
        total as f64 / elapsed.as_secs_f64(),
        queued.load(Ordering::Relaxed)
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "per request: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (server and load generator share the 2 worker threads)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1])
    );
}
