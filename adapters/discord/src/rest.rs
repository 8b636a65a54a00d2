//! The moderation calls to Discord's REST API (v10), made directly so every request is known
//! exactly (path, body, audit-log reason, nonce) and Discord's rate limits are kept: a bucket
//! that has run out is waited for before the next call, a 429 answers with its `retry_after`
//! and holds back every call of that bucket (or every call, when global). Errors become the
//! port's kinds: 403 with 50013 is a missing permission, 404 with 10007/10008/10013/10026 is
//! already gone, 5xx and network trouble may pass. The token never reaches an error or a log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use groupguard_core::platform::{AdapterError, AdapterErrorKind};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::Token;

/// The longest a call waits for its bucket before it is handed back as rate-limited.
const LONGEST_WAIT: Duration = Duration::from_secs(5);
/// How long a call may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Discord's REST API.
#[derive(Debug)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: Token,
    limits: Mutex<Limits>,
}

/// What the rate-limit headers said.
#[derive(Debug, Default)]
struct Limits {
    /// Until when a route's bucket is empty.
    empty_until: HashMap<String, Instant>,
    /// Until when every call waits (a global 429).
    global_until: Option<Instant>,
}

/// A call that failed, with Discord's error code when it gave one.
fn error(kind: AdapterErrorKind, message: impl Into<String>) -> AdapterError {
    AdapterError::new(kind, message)
}

/// The route's bucket: the method and the path with ids other than the top-level one
/// (channel, guild, webhook) made alike, as Discord groups its limits.
fn bucket(method: &Method, path: &str) -> String {
    let mut parts = Vec::new();
    let mut major_seen = false;
    for part in path.split('/') {
        let is_id = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if is_id && major_seen {
            parts.push(":id");
        } else {
            major_seen |= is_id;
            parts.push(part);
        }
    }
    format!("{method} {}", parts.join("/"))
}

/// Seconds as a duration, from a header or a JSON number.
fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.0, 3_600.0))
}

impl Rest {
    /// A client for the API at `base` (`https://discord.com`, or a loopback fake).
    pub fn new(base: &str, token: Token) -> Rest {
        Rest {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a TLS backend is compiled in"),
            base: base.to_owned(),
            token,
            limits: Mutex::new(Limits::default()),
        }
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the route must still wait, if at all.
    fn wait_for(&self, route: &str) -> Option<Duration> {
        let limits = self.limits();
        let now = Instant::now();
        [limits.global_until, limits.empty_until.get(route).copied()]
            .into_iter()
            .flatten()
            .filter(|until| *until > now)
            .max()
            .map(|until| until - now)
    }

    /// Calls `method path` (under `/api/v10`) with an optional JSON body and audit-log reason;
    /// the JSON answer, or `Null` for 204.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        reason: Option<&str>,
    ) -> Result<Value, AdapterError> {
        let route = bucket(&method, path);
        if let Some(wait) = self.wait_for(&route) {
            if wait > LONGEST_WAIT {
                return Err(error(
                    AdapterErrorKind::RateLimited { retry_after: wait },
                    format!("{route}: rate-limited for {} ms", wait.as_millis()),
                ));
            }
            tokio::time::sleep(wait).await;
        }
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v10{path}", self.base))
            .header("Authorization", format!("Bot {}", self.token.expose()));
        if let Some(reason) = reason {
            // The header must be ASCII: Discord reads it percent-encoded.
            request = request.header("X-Audit-Log-Reason", encode_reason(reason));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            error(
                AdapterErrorKind::Transient,
                format!("{route}: {}", e.without_url()),
            )
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if header("x-ratelimit-remaining") == Some(0.0)
            && let Some(reset_after) = header("x-ratelimit-reset-after")
        {
            self.limits()
                .empty_until
                .insert(route.clone(), Instant::now() + seconds(reset_after));
        }
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = seconds(
                json["retry_after"]
                    .as_f64()
                    .or_else(|| header("retry-after"))
                    .unwrap_or(1.0),
            );
            let until = Instant::now() + retry_after;
            let mut limits = self.limits();
            if json["global"] == true {
                limits.global_until = Some(until);
            } else {
                limits.empty_until.insert(route.clone(), until);
            }
            return Err(error(
                AdapterErrorKind::RateLimited { retry_after },
                format!("{route}: 429, retry after {} ms", retry_after.as_millis()),
            ));
        }
        let code = json["code"].as_i64().unwrap_or(0);
        let message = json["message"].as_str().unwrap_or_default();
        let kind = match (status.as_u16(), code) {
            // 50013 Missing Permissions, 50001 Missing Access.
            (403, _) => AdapterErrorKind::Forbidden { permission: None },
            // 10007 Unknown Member, 10008 Unknown Message, 10013 Unknown User, 10026 Unknown Ban.
            (404, _) => AdapterErrorKind::NotFound,
            (500..=599, _) => AdapterErrorKind::Transient,
            _ => AdapterErrorKind::Protocol,
        };
        Err(error(
            kind,
            format!("{route}: {} {code} {message}", status.as_u16()),
        ))
    }
}

/// What an audit-log reason leaves as it is: letters, digits and `-_.~:`.
const REASON_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// An audit-log reason percent-encoded (Discord decodes it), at most 512 characters.
fn encode_reason(reason: &str) -> String {
    let short: String = reason.chars().take(512).collect();
    utf8_percent_encode(&short, REASON_KEEPS).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_ids_below_the_top_level_one() {
        assert_eq!(
            bucket(&Method::DELETE, "/channels/1/messages/2"),
            "DELETE /channels/1/messages/:id"
        );
        assert_eq!(
            bucket(&Method::DELETE, "/channels/1/messages/3"),
            bucket(&Method::DELETE, "/channels/1/messages/2")
        );
        assert_ne!(
            bucket(&Method::DELETE, "/channels/9/messages/2"),
            bucket(&Method::DELETE, "/channels/1/messages/2")
        );
        assert_eq!(
            bucket(&Method::PUT, "/guilds/5/bans/6"),
            "PUT /guilds/5/bans/:id"
        );
    }

    #[test]
    fn reasons_are_percent_encoded() {
        assert_eq!(
            encode_reason("groupguard: rule ads"),
            "groupguard:%20rule%20ads"
        );
        assert_eq!(encode_reason("广告"), "%E5%B9%BF%E5%91%8A");
    }
}
