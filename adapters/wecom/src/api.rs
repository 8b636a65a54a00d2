//! The WeCom API client: one access token cached and refreshed by one caller at a time,
//! errors classified into the port's kinds, budgets that keep under WeCom's limits, and
//! nothing secret in any message (the token rides in URLs, so URLs never reach an error).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use groupguard_core::platform::{AdapterError, AdapterErrorKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Secret;

/// Refresh this long before the token's announced expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// WeCom allows 10,000 calls per minute per API and corp; keep a margin for other tools.
const CALLS_PER_MINUTE: u32 = 9_000;
/// App messages per member and app: 30 per minute, the excess silently dropped.
const MESSAGES_PER_MEMBER_MINUTE: u32 = 30;
/// Attempts at a call answered `-1` (system busy).
const BUSY_ATTEMPTS: u32 = 3;
/// How long a request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A WeCom API error code with its message, or a transport failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// WeCom answered an error code.
    #[error("WeCom error {code}: {message}")]
    Code {
        /// `errcode`.
        code: i64,
        /// `errmsg`, which never carries secrets.
        message: String,
    },
    /// Too many calls: wait this long.
    #[error("WeCom rate limit: retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// How long.
        retry_after: Duration,
    },
    /// The request did not complete.
    #[error("cannot reach WeCom: {0}")]
    Transport(String),
    /// The answer was not the documented JSON.
    #[error("unexpected answer from WeCom: {0}")]
    Protocol(String),
}

impl ApiError {
    /// The `errcode`, when WeCom answered one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Code { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<ApiError> for AdapterError {
    fn from(e: ApiError) -> AdapterError {
        let kind = match &e {
            ApiError::RateLimited { retry_after } => AdapterErrorKind::RateLimited {
                retry_after: *retry_after,
            },
            ApiError::Transport(_) => AdapterErrorKind::Transient,
            ApiError::Protocol(_) => AdapterErrorKind::Protocol,
            ApiError::Code { code, .. } => match code {
                -1 => AdapterErrorKind::Transient,
                48002 => AdapterErrorKind::Forbidden {
                    permission: Some(
                        "API access for this app (客户联系 → 可调用接口的应用)".to_owned(),
                    ),
                },
                60011 => AdapterErrorKind::Forbidden {
                    permission: Some("this member in the app's visible range".to_owned()),
                },
                60020 => AdapterErrorKind::Forbidden {
                    permission: Some("this server's IP as a trusted IP of the app".to_owned()),
                },
                // The group is dismissed, the member or chat unknown.
                49008 | 81013 | 86003 | 86004 => AdapterErrorKind::NotFound,
                _ => AdapterErrorKind::Protocol,
            },
        };
        AdapterError::new(kind, e.to_string())
    }
}

#[derive(Debug)]
struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// Calls per API path in the current minute, and paths WeCom told us to leave alone.
#[derive(Debug, Default)]
struct Budgets {
    minute_started: Option<Instant>,
    calls: HashMap<String, u32>,
    messages: HashMap<String, u32>,
    blocked_until: HashMap<String, Instant>,
}

impl Budgets {
    fn roll(&mut self, now: Instant) {
        if self
            .minute_started
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(60))
        {
            self.minute_started = Some(now);
            self.calls.clear();
            self.messages.clear();
        }
        self.blocked_until.retain(|_, until| *until > now);
    }

    fn until_next_minute(&self, now: Instant) -> Duration {
        self.minute_started.map_or(Duration::ZERO, |s| {
            Duration::from_secs(60).saturating_sub(now.duration_since(s))
        })
    }
}

/// The client.
#[derive(Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: Secret,
    /// Held while refreshing, so concurrent callers wait for one `gettoken`.
    token: tokio::sync::Mutex<Option<Token>>,
    budgets: Mutex<Budgets>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl Api {
    /// A client of the API at `base` for the app with `secret`.
    pub fn new(base: &str, corp_id: &str, secret: Secret) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap_or_default(),
            base: base.to_owned(),
            corp_id: corp_id.to_owned(),
            secret,
            token: tokio::sync::Mutex::new(None),
            budgets: Mutex::new(Budgets::default()),
        }
    }

    /// `GET /cgi-bin/{path}` with the access token.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        self.call(path, query, None).await
    }

    /// `POST /cgi-bin/{path}` with a JSON body and the access token.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ApiError> {
        self.call(path, &[], Some(body)).await
    }

    /// Sends an app message to members, within their per-member cap.
    pub async fn send_message(&self, to: &[&str], body: &Value) -> Result<Value, ApiError> {
        {
            let now = Instant::now();
            let mut budgets = self.lock_budgets();
            budgets.roll(now);
            if to.iter().any(|member| {
                budgets.messages.get(*member).copied().unwrap_or(0) >= MESSAGES_PER_MEMBER_MINUTE
            }) {
                return Err(ApiError::RateLimited {
                    retry_after: budgets.until_next_minute(now),
                });
            }
            for member in to {
                *budgets.messages.entry((*member).to_owned()).or_default() += 1;
            }
        }
        self.post("message/send", body).await
    }

    /// Posts to a URL WeCom handed out (a smart bot's `response_url`), which needs no token.
    pub async fn post_url(&self, url: &str, body: &Value) -> Result<(), ApiError> {
        let answer = read(self.http.post(url).json(body)).await?;
        let status = Status::deserialize(&answer).map_err(|e| ApiError::Protocol(e.to_string()))?;
        match status.errcode {
            0 => Ok(()),
            code => Err(ApiError::Code {
                code,
                message: status.errmsg,
            }),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        self.spend(path)?;
        let mut refreshed = false;
        let mut busy = 0;
        loop {
            let token = self.token(false).await?;
            let url = format!("{}/cgi-bin/{path}", self.base);
            let mut request = match body {
                Some(body) => self.http.post(&url).json(body),
                None => self.http.get(&url),
            };
            request = request
                .query(&[("access_token", token.expose())])
                .query(query);
            let answer = read(request).await?;
            let status =
                Status::deserialize(&answer).map_err(|e| ApiError::Protocol(e.to_string()))?;
            match status.errcode {
                0 => {
                    return serde_json::from_value(answer)
                        .map_err(|e| ApiError::Protocol(format!("{path}: {e}")));
                }
                // The token was revoked or expired early: one fresh token, one more try.
                40014 | 42001 | 40001 if !refreshed => {
                    refreshed = true;
                    self.token(true).await?;
                }
                -1 if busy + 1 < BUSY_ATTEMPTS => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(200 << busy)).await;
                }
                45009 => {
                    // WeCom blocks the rest of the limit's window: a minute.
                    let retry_after = Duration::from_secs(60);
                    self.lock_budgets()
                        .blocked_until
                        .insert(path.to_owned(), Instant::now() + retry_after);
                    return Err(ApiError::RateLimited { retry_after });
                }
                45033 => {
                    return Err(ApiError::RateLimited {
                        retry_after: Duration::from_secs(1),
                    });
                }
                code => {
                    return Err(ApiError::Code {
                        code,
                        message: status.errmsg,
                    });
                }
            }
        }
    }

    /// Counts a call against its API's budget, or says how long to wait.
    fn spend(&self, path: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut budgets = self.lock_budgets();
        budgets.roll(now);
        if let Some(until) = budgets.blocked_until.get(path) {
            return Err(ApiError::RateLimited {
                retry_after: until.duration_since(now),
            });
        }
        let calls = budgets.calls.entry(path.to_owned()).or_default();
        if *calls >= CALLS_PER_MINUTE {
            return Err(ApiError::RateLimited {
                retry_after: budgets.until_next_minute(now),
            });
        }
        *calls += 1;
        Ok(())
    }

    fn lock_budgets(&self) -> std::sync::MutexGuard<'_, Budgets> {
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token, or a fresh one when it is due (or `force`d after WeCom refused it).
    async fn token(&self, force: bool) -> Result<Secret, ApiError> {
        let mut cached = self.token.lock().await;
        if !force
            && let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let answer = read(
            self.http
                .get(format!("{}/cgi-bin/gettoken", self.base))
                .query(&[
                    ("corpid", self.corp_id.as_str()),
                    ("corpsecret", self.secret.expose()),
                ]),
        )
        .await?;
        let status = Status::deserialize(&answer).map_err(|e| ApiError::Protocol(e.to_string()))?;
        if status.errcode != 0 {
            return Err(ApiError::Code {
                code: status.errcode,
                message: format!("gettoken: {}", status.errmsg),
            });
        }
        let fresh = TokenAnswer::deserialize(&answer)
            .map_err(|e| ApiError::Protocol(format!("gettoken: {e}")))?;
        let lifetime = Duration::from_secs(fresh.expires_in);
        let token = Token {
            value: Secret::new(fresh.access_token),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2),
        };
        let value = token.value.clone();
        *cached = Some(token);
        tracing::debug!(
            expires_in = fresh.expires_in,
            "WeCom access token refreshed"
        );
        Ok(value)
    }

    /// Fetches a token now, to tell whether the configuration works.
    pub async fn check(&self) -> Result<(), ApiError> {
        self.token(false).await.map(drop)
    }
}

/// Sends a request and reads its JSON answer; a server error may pass, so it is transient.
async fn read(request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
    // Errors lose their URL: it carries the token.
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(ApiError::Transport(format!("HTTP {status}")));
    }
    response
        .json()
        .await
        .map_err(|_| ApiError::Protocol(format!("the answer (HTTP {status}) is not JSON")))
}
