//! A loopback fake of the WeCom API (feature `testing`), speaking the documented JSON:
//! `gettoken` with expiring tokens, customer groups and external contacts, app chats, app
//! messages with the duplicate check, and smart-bot `response_url`s that work once. Tests
//! inject error codes per API and read back every call. [`CallbackClient`] sends the bot
//! callbacks as WeCom does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::routing::{any, post};
use serde_json::{Value, json};

use crate::crypto::MsgCrypt;

/// The fake's corp id and app secret.
pub const CORP_ID: &str = "wwfakecorp0000001";
/// The secret `gettoken` accepts.
pub const SECRET: &str = "fake-app-secret";

#[derive(Debug, Default)]
struct FakeState {
    serial: u32,
    token: Option<String>,
    token_expired: bool,
    token_requests: u32,
    groups: HashMap<String, Value>,
    externals: HashMap<String, Value>,
    app_chats: HashMap<String, Vec<String>>,
    failures: HashMap<String, VecDeque<i64>>,
    calls: Vec<(String, Value)>,
    delivered: Vec<Value>,
    suppressed: Vec<Value>,
    recent: HashMap<(String, String), Instant>,
    responses: Vec<(String, Value)>,
    used_responses: HashSet<String>,
}

/// A running fake.
#[derive(Debug, Clone)]
pub struct FakeWecom {
    /// Its base URL, for `api_base`.
    pub base: String,
    state: Arc<Mutex<FakeState>>,
}

type Shared = Arc<Mutex<FakeState>>;

impl FakeWecom {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeWecom {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/cgi-bin/{*path}", any(cgi))
            .route("/aibot/response", post(respond))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeWecom { base, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a customer group as `groupchat/get` returns it (`chat_id`, `owner`,
    /// `member_list`, `admin_list`, `member_version`, …).
    pub fn put_group(&self, group: Value) {
        let id = group["chat_id"].as_str().expect("chat_id").to_owned();
        self.lock().groups.insert(id, group);
    }

    /// Sets an external contact as `externalcontact/get` returns it.
    pub fn put_external(&self, contact: Value) {
        let id = contact["external_userid"]
            .as_str()
            .expect("external_userid")
            .to_owned();
        self.lock().externals.insert(id, contact);
    }

    /// Makes a chat the app created.
    pub fn put_app_chat(&self, chat_id: &str, members: &[&str]) {
        self.lock().app_chats.insert(
            chat_id.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// The members of an app chat now.
    pub fn app_chat(&self, chat_id: &str) -> Vec<String> {
        self.lock()
            .app_chats
            .get(chat_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The next calls of `path` (`message/send`) answer these error codes, in order.
    pub fn fail(&self, path: &str, codes: &[i64]) {
        self.lock()
            .failures
            .entry(path.to_owned())
            .or_default()
            .extend(codes);
    }

    /// The current token stops working early: calls answer 42001 until a new one is fetched.
    pub fn expire_token(&self) {
        self.lock().token_expired = true;
    }

    /// How many times `gettoken` was called.
    pub fn token_requests(&self) -> u32 {
        self.lock().token_requests
    }

    /// The bodies (or queries, for GETs) of every call of `path` that reached the API.
    pub fn calls(&self, path: &str) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// App messages members saw.
    pub fn delivered(&self) -> Vec<Value> {
        self.lock().delivered.clone()
    }

    /// App messages the duplicate check held back.
    pub fn suppressed(&self) -> Vec<Value> {
        self.lock().suppressed.clone()
    }

    /// A smart-bot `response_url` that works once.
    pub fn response_url(&self, code: &str) -> String {
        format!("{}/aibot/response?response_code={code}", self.base)
    }

    /// What was posted to `response_url`s: (response code, body).
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.lock().responses.clone()
    }
}

fn error(code: i64, message: &str) -> Json<Value> {
    Json(json!({ "errcode": code, "errmsg": message }))
}

fn ok(mut body: Value) -> Json<Value> {
    body["errcode"] = json!(0);
    body["errmsg"] = json!("ok");
    Json(body)
}

async fn cgi(
    State(state): State<Shared>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if path == "gettoken" {
        s.token_requests += 1;
        if query.get("corpid").map(String::as_str) != Some(CORP_ID) {
            return error(40013, "invalid corpid");
        }
        if query.get("corpsecret").map(String::as_str) != Some(SECRET) {
            return error(40001, "invalid credential");
        }
        s.serial += 1;
        let token = format!("fake-token-{}", s.serial);
        s.token = Some(token.clone());
        s.token_expired = false;
        return ok(json!({ "access_token": token, "expires_in": 7200 }));
    }
    match (query.get("access_token"), &s.token) {
        (Some(given), Some(current)) if given == current => {
            if s.token_expired {
                return error(42001, "access_token expired");
            }
        }
        _ => return error(40014, "invalid access_token"),
    }
    let body = if method == Method::GET {
        json!(query)
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(body) => body,
            Err(_) => return error(47001, "data format error"),
        }
    };
    if let Some(code) = s.failures.get_mut(&path).and_then(VecDeque::pop_front) {
        s.calls.push((path, body));
        return error(code, "injected");
    }
    s.calls.push((path.clone(), body.clone()));
    match path.as_str() {
        "externalcontact/groupchat/get" => {
            let id = body["chat_id"].as_str().unwrap_or_default();
            match s.groups.get(id) {
                Some(group) => ok(json!({ "group_chat": group })),
                None => error(49008, "group not found or dismissed"),
            }
        }
        "externalcontact/get" => {
            let id = body["external_userid"].as_str().unwrap_or_default();
            match s.externals.get(id) {
                Some(contact) => ok(json!({ "external_contact": contact, "follow_user": [] })),
                None => error(84061, "not external contact"),
            }
        }
        "appchat/get" => {
            let id = body["chatid"].as_str().unwrap_or_default();
            match s.app_chats.get(id) {
                Some(members) => ok(json!({ "chat_info": { "chatid": id, "userlist": members } })),
                None => error(86003, "chat not exist"),
            }
        }
        "appchat/update" => {
            let id = body["chatid"].as_str().unwrap_or_default().to_owned();
            let Some(members) = s.app_chats.get_mut(&id) else {
                return error(86003, "chat not exist");
            };
            let gone: Vec<&str> = body["del_user_list"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            members.retain(|m| !gone.contains(&m.as_str()));
            ok(json!({}))
        }
        "appchat/send" => {
            if !s
                .app_chats
                .contains_key(body["chatid"].as_str().unwrap_or_default())
            {
                return error(86003, "chat not exist");
            }
            s.delivered.push(body);
            ok(json!({}))
        }
        "message/send" => {
            let to = body["touser"].as_str().unwrap_or_default().to_owned();
            let content = body.to_string();
            let key = (to, content);
            let now = Instant::now();
            let interval =
                Duration::from_secs(body["duplicate_check_interval"].as_u64().unwrap_or(1800));
            let duplicate = body["enable_duplicate_check"] == 1
                && s.recent
                    .get(&key)
                    .is_some_and(|at| now.duration_since(*at) < interval);
            if duplicate {
                s.suppressed.push(body);
            } else {
                s.recent.insert(key, now);
                s.delivered.push(body);
            }
            ok(json!({ "invaliduser": "", "msgid": format!("msg{}", s.calls.len()) }))
        }
        _ => error(-40001, "unknown API in the fake"),
    }
}

async fn respond(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let code = query.get("response_code").cloned().unwrap_or_default();
    if !s.used_responses.insert(code.clone()) {
        return error(600039, "response_code used");
    }
    s.responses.push((code, body));
    ok(json!({}))
}

/// A push as WeCom sends it: query parameters and body.
#[derive(Debug, Clone)]
pub struct Push {
    /// `timestamp`.
    pub timestamp: String,
    /// `nonce`.
    pub nonce: String,
    /// `msg_signature`.
    pub signature: String,
    /// The ciphertext inside the body.
    pub encrypted: String,
    /// The body.
    pub body: String,
}

impl Push {
    /// The query string.
    pub fn query(&self) -> String {
        format!(
            "msg_signature={}&timestamp={}&nonce={}",
            self.signature, self.timestamp, self.nonce
        )
    }
}

/// Sends callbacks to a bot as WeCom does: encrypted, signed, with a fresh nonce each.
#[derive(Debug)]
pub struct CallbackClient {
    /// The crypto, for tests that tamper with pushes.
    pub crypt: MsgCrypt,
    /// The callback URL.
    pub url: String,
    corp_id: String,
    http: reqwest::Client,
    nonce: AtomicU64,
}

/// Seconds since the epoch, as callbacks carry them.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl CallbackClient {
    /// A client of the callback at `url`, with the bot's token and key.
    pub fn new(url: &str, token: &str, encoding_aes_key: &str, corp_id: &str) -> CallbackClient {
        CallbackClient {
            crypt: MsgCrypt::new(token, encoding_aes_key).expect("a valid key"),
            url: url.to_owned(),
            corp_id: corp_id.to_owned(),
            http: reqwest::Client::new(),
            nonce: AtomicU64::new(1),
        }
    }

    /// The push of an encrypted `body` built around `encrypted`, signed at `timestamp`.
    fn signed(&self, encrypted: String, body: String, timestamp: i64) -> Push {
        let timestamp = timestamp.to_string();
        let nonce = format!("n{}", self.nonce.fetch_add(1, Ordering::Relaxed));
        Push {
            signature: self.crypt.signature(&timestamp, &nonce, &encrypted),
            timestamp,
            nonce,
            encrypted,
            body,
        }
    }

    /// An XML push of `inner` (the decrypted document) for `receive_id`, sent at `timestamp`.
    pub fn xml_at(&self, inner: &str, receive_id: &str, timestamp: i64) -> Push {
        let encrypted = self.crypt.encrypt(inner, receive_id);
        let body = format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>",
            self.corp_id
        );
        self.signed(encrypted, body, timestamp)
    }

    /// An XML push of `inner` for the corp, sent now.
    pub fn xml(&self, inner: &str) -> Push {
        self.xml_at(inner, &self.corp_id, now_secs())
    }

    /// A smart-bot push (JSON, empty receive id), sent now.
    pub fn bot(&self, message: &Value) -> Push {
        let encrypted = self.crypt.encrypt(&message.to_string(), "");
        let body = json!({ "encrypt": encrypted }).to_string();
        self.signed(encrypted, body, now_secs())
    }

    /// The same push sent again, as WeCom retries: same body, new nonce and signature.
    pub fn again(&self, push: &Push) -> Push {
        self.signed(push.encrypted.clone(), push.body.clone(), now_secs())
    }

    /// Sends a push; the status and body of the answer.
    pub async fn send(&self, push: &Push) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}?{}", self.url, push.query()))
            .body(push.body.clone())
            .send()
            .await
            .expect("the bot answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// The console's URL check: an encrypted echo for `receive_id`; the answer's status and
    /// body.
    pub async fn verify_url(&self, echo: &str, receive_id: &str) -> (u16, String) {
        let encrypted = self.crypt.encrypt(echo, receive_id);
        let timestamp = now_secs().to_string();
        let signature = self.crypt.signature(&timestamp, "e1", &encrypted);
        // Base64 in a query, percent-encoded as WeCom sends it.
        let echostr = encrypted
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let response = self
            .http
            .get(format!(
                "{}?msg_signature={signature}&timestamp={timestamp}&nonce=e1&echostr={echostr}",
                self.url
            ))
            .send()
            .await
            .expect("the bot answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// A text a member sends to the app.
    pub fn app_text(&self, from: &str, msg_id: u64, content: &str) -> Push {
        self.xml(&format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
             <MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>",
            self.corp_id,
            now_secs()
        ))
    }

    /// `change_external_chat` for a member change in `chat`.
    pub fn member_change(
        &self,
        chat: &str,
        detail: &str,
        listed: &[&str],
        version: &str,
        quit_scene: u8,
    ) -> Push {
        let items: String = listed.iter().map(|m| format!("<Item>{m}</Item>")).collect();
        self.xml(&format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event>\
             <ChatId><![CDATA[{chat}]]></ChatId><ChangeType><![CDATA[update]]></ChangeType>\
             <UpdateDetail><![CDATA[{detail}]]></UpdateDetail><JoinScene>0</JoinScene><QuitScene>{quit_scene}</QuitScene>\
             <MemChangeCnt>{}</MemChangeCnt><MemChangeList>{items}</MemChangeList><CurMemVer>{version}</CurMemVer></xml>",
            self.corp_id,
            now_secs(),
            listed.len()
        ))
    }

    /// The chat archive's wake-up.
    pub fn archive_notify(&self) -> Push {
        self.xml(&format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><AgentID>1000002</AgentID>\
             <Event><![CDATA[msgaudit_notify]]></Event></xml>",
            self.corp_id,
            now_secs()
        ))
    }
}
