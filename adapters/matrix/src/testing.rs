//! Real users on a real homeserver, for tests and benchmarks (feature `testing`): users made
//! by Synapse's shared-secret registration, and the client-server calls a test needs (rooms,
//! invitations, messages, power levels, memberships), over plain HTTP; and a user on
//! matrix-sdk with end-to-end encryption, to talk in encrypted rooms.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{KeyInit, Mac};
use matrix_sdk::Client;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::RoomId;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use serde_json::{Value, json};

/// The homeserver of the tests.
#[derive(Debug)]
pub struct Homeserver {
    /// The client API URL.
    pub url: String,
    secret: String,
    http: reqwest::Client,
}

/// A registered user and their access token.
#[derive(Debug)]
pub struct User {
    /// `@name:server`.
    pub id: String,
    /// The password, for the bot's configuration.
    pub password: String,
    token: String,
    server: Arc<Homeserver>,
    txn: AtomicU64,
}

static NAMES: AtomicU64 = AtomicU64::new(0);

impl Homeserver {
    /// The Synapse `scripts/test` started, or `None` (the test then says it was skipped).
    pub fn from_env() -> Option<Arc<Homeserver>> {
        let (Ok(url), Ok(secret)) = (
            std::env::var("SYNAPSE_URL"),
            std::env::var("SYNAPSE_SECRET"),
        ) else {
            eprintln!(
                "skipped: SYNAPSE_URL and SYNAPSE_SECRET are not set (scripts/test starts Synapse)"
            );
            return None;
        };
        Some(Arc::new(Homeserver {
            url,
            secret,
            http: reqwest::Client::new(),
        }))
    }

    /// Registers a fresh user named after `name` with the shared secret.
    pub async fn register(self: &Arc<Self>, name: &str) -> User {
        let username = format!(
            "{name}{}x{}",
            std::process::id(),
            NAMES.fetch_add(1, Ordering::Relaxed)
        );
        let password = format!("pw-{username}");
        let url = format!("{}/_synapse/admin/v1/register", self.url);
        let nonce: Value = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let nonce = nonce["nonce"].as_str().unwrap();
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(self.secret.as_bytes()).unwrap();
        mac.update(format!("{nonce}\0{username}\0{password}\0notadmin").as_bytes());
        let mac = hex::encode(mac.finalize().into_bytes());
        let answer: Value = self
            .http
            .post(&url)
            .json(&json!({ "nonce": nonce, "username": username, "password": password, "admin": false, "mac": mac }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        User {
            id: answer["user_id"].as_str().expect("a user id").to_owned(),
            password,
            token: answer["access_token"].as_str().unwrap().to_owned(),
            server: Arc::clone(self),
            txn: AtomicU64::new(0),
        }
    }
}

/// An id percent-encoded for a URL path.
pub fn encode(id: &str) -> String {
    id.replace('!', "%21")
        .replace(':', "%3A")
        .replace('$', "%24")
        .replace('@', "%40")
        .replace('#', "%23")
}

impl User {
    /// A client-server call; the status and the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .server
            .http
            .request(
                method,
                format!("{}/_matrix/client/v3{path}", self.server.url),
            )
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// A call that must answer 200.
    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }

    /// Creates a room inviting `invite`, with these power levels for users.
    pub async fn create_room(&self, invite: &[&str], levels: Value, version: &str) -> String {
        // From room version 12 the creator holds unlimited power and must not be listed.
        let mut users = if version == "12" {
            json!({})
        } else {
            json!({ &self.id: 100 })
        };
        for (user, level) in levels.as_object().unwrap() {
            users[user] = level.clone();
        }
        let answer = self
            .ok(
                reqwest::Method::POST,
                "/createRoom",
                Some(
                    json!({ "preset": "private_chat", "invite": invite, "room_version": version,
                             "power_level_content_override": { "users": users } }),
                ),
            )
            .await;
        answer["room_id"].as_str().unwrap().to_owned()
    }

    /// Invites `user`.
    pub async fn invite(&self, room: &str, user: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/rooms/{}/invite", encode(room)),
            Some(json!({ "user_id": user })),
        )
        .await;
    }

    /// Joins a room; the status and answer (403 when banned).
    pub async fn join(&self, room: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/join/{}", encode(room)),
            Some(json!({})),
        )
        .await
    }

    /// Sends an `m.room.message`; its event id.
    pub async fn send(&self, room: &str, content: Value) -> String {
        self.send_event(room, "m.room.message", content).await
    }

    /// Sends a room event of any type; its event id.
    pub async fn send_event(&self, room: &str, kind: &str, content: Value) -> String {
        let txn = self.txn.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .ok(
                reqwest::Method::PUT,
                &format!("/rooms/{}/send/{kind}/t{txn}", encode(room)),
                Some(content),
            )
            .await;
        answer["event_id"].as_str().unwrap().to_owned()
    }

    /// Sends a text.
    pub async fn say(&self, room: &str, text: &str) -> String {
        self.send(room, json!({ "msgtype": "m.text", "body": text }))
            .await
    }

    /// An event as the user sees it.
    pub async fn event(&self, room: &str, id: &str) -> Value {
        self.ok(
            reqwest::Method::GET,
            &format!("/rooms/{}/event/{}", encode(room), encode(id)),
            None,
        )
        .await
    }

    /// The room's latest events, newest first.
    pub async fn messages(&self, room: &str) -> Vec<Value> {
        let answer = self
            .ok(
                reqwest::Method::GET,
                &format!("/rooms/{}/messages?dir=b&limit=100", encode(room)),
                None,
            )
            .await;
        answer["chunk"].as_array().cloned().unwrap_or_default()
    }

    /// A user's explicit power level in the room, if the power levels name them.
    pub async fn power_level(&self, room: &str, user: &str) -> Option<i64> {
        let levels = self
            .ok(
                reqwest::Method::GET,
                &format!("/rooms/{}/state/m.room.power_levels", encode(room)),
                None,
            )
            .await;
        levels["users"][user].as_i64()
    }

    /// Sets a state event (a policy rule, say).
    pub async fn set_state(&self, room: &str, kind: &str, key: &str, content: Value) {
        self.ok(
            reqwest::Method::PUT,
            &format!("/rooms/{}/state/{kind}/{}", encode(room), encode(key)),
            Some(content),
        )
        .await;
    }

    /// A state event's content, when the room has one.
    pub async fn state(&self, room: &str, kind: &str, key: &str) -> Option<Value> {
        let (status, answer) = self
            .call(
                reqwest::Method::GET,
                &format!("/rooms/{}/state/{kind}/{}", encode(room), encode(key)),
                None,
            )
            .await;
        (status == 200).then_some(answer)
    }

    /// A user's membership in the room, when they have one.
    pub async fn membership(&self, room: &str, user: &str) -> Option<String> {
        let (status, answer) = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "/rooms/{}/state/m.room.member/{}",
                    encode(room),
                    encode(user)
                ),
                None,
            )
            .await;
        (status == 200).then(|| answer["membership"].as_str().unwrap_or_default().to_owned())
    }
}

/// A user on matrix-sdk with its own device and end-to-end encryption (crypto store in
/// `store`): its messages in an encrypted room are encrypted for the members' devices.
#[derive(Debug)]
pub struct EncryptedUser {
    client: Client,
}

impl User {
    /// Logs this user in on a new encrypting device.
    pub async fn encrypting_device(&self, store: &Path) -> EncryptedUser {
        let client = Client::builder()
            .homeserver_url(&self.server.url)
            .sqlite_store(store, None)
            .build()
            .await
            .unwrap();
        client
            .matrix_auth()
            .login_username(&self.id, &self.password)
            .initial_device_display_name("encrypting test device")
            .send()
            .await
            .unwrap();
        EncryptedUser { client }
    }
}

impl EncryptedUser {
    /// Sends an encrypted text to a room the user is in; its event id.
    pub async fn say(&self, room: &str, text: &str) -> String {
        // Catch up: the room, its encryption and its members' devices.
        self.client
            .sync_once(SyncSettings::default().timeout(std::time::Duration::ZERO))
            .await
            .unwrap();
        let room = self
            .client
            .get_room(<&RoomId>::try_from(room).unwrap())
            .expect("the user is in the room");
        assert!(
            room.latest_encryption_state().await.unwrap().is_encrypted(),
            "the room is encrypted"
        );
        room.send(RoomMessageEventContent::text_plain(text))
            .await
            .unwrap()
            .response
            .event_id
            .to_string()
    }
}
