//! `[wecom]`: what the adapter needs, checked in one pass that lists every problem.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use groupguard_core::model::UserId;
use groupguard_core::time::duration_text;
use serde::Deserialize;

use crate::crypto::MsgCrypt;

/// The official API host.
pub const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";

/// `[wecom]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWecomConfig {
    corp_id: Option<String>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
    agent_id: Option<i64>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    api_base: Option<String>,
    max_callback_age: Option<String>,
    member_sync_delay: Option<String>,
    #[serde(default)]
    admins: Vec<String>,
    archive: Option<RawArchive>,
}

/// `[wecom.archive]` as written: one of `file` or `sidecar`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    file: Option<PathBuf>,
    sidecar: Option<String>,
    poll_every: Option<String>,
    cursor_file: Option<PathBuf>,
}

/// A value that never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where chat-archive records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveSourceConfig {
    /// A JSON-lines file of decrypted records, followed as it grows.
    File(PathBuf),
    /// A sidecar that runs the vendor SDK (`POST {base}/v1/pull`).
    Sidecar(String),
}

/// The chat-archive settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// The source.
    pub source: ArchiveSourceConfig,
    /// How often to pull without a `msgaudit_notify` (WeCom sends one at most every 15 s).
    pub poll_every: Duration,
    /// Where the position read so far is kept across restarts.
    pub cursor_file: PathBuf,
}

/// The checked `[wecom]` settings.
#[derive(Debug, Clone)]
pub struct WecomConfig {
    /// The corp id: the receive id of app and customer-contact callbacks, and the home
    /// organisation of internal members.
    pub corp_id: String,
    /// The callback token and `EncodingAESKey`, checked.
    pub crypt: MsgCrypt,
    /// The app whose messages carry notices and answers.
    pub agent_id: i64,
    /// The app's secret, for `gettoken`.
    pub secret: Secret,
    /// Where the API is (the official host, or a loopback fake in tests).
    pub api_base: String,
    /// How old a callback's timestamp may be; `None` accepts any (replaying recordings).
    pub max_callback_age: Option<Duration>,
    /// How long to wait after a member change before reading the group (WeCom's group data
    /// is eventually consistent).
    pub member_sync_delay: Duration,
    /// Members who administer groupguard from the app or the smart bot.
    pub admins: Vec<UserId>,
    /// The chat archive, when configured.
    pub archive: Option<ArchiveConfig>,
}

impl RawWecomConfig {
    /// Checks the section; `env` supplies `GROUPGUARD_WECOM_SECRET`, `data_dir` the default
    /// archive cursor file.
    pub fn check(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        data_dir: &Path,
        errors: &mut Vec<String>,
    ) -> Option<WecomConfig> {
        let before = errors.len();
        let mut required = |field: &str, value: Option<String>| {
            value.filter(|v| !v.trim().is_empty()).unwrap_or_else(|| {
                errors.push(format!("wecom.{field}: missing"));
                String::new()
            })
        };
        let corp_id = required("corp_id", self.corp_id);
        let token = required("token", self.token);
        let key = required("encoding_aes_key", self.encoding_aes_key);
        let crypt = match MsgCrypt::new(&token, &key) {
            Ok(crypt) => Some(crypt),
            Err(e) => {
                if !key.is_empty() {
                    errors.push(format!("wecom.encoding_aes_key: {e}"));
                }
                None
            }
        };
        let agent_id = self.agent_id.unwrap_or_else(|| {
            errors.push("wecom.agent_id: missing (the app's AgentId, a number)".to_owned());
            0
        });
        let secret = match (
            env("GROUPGUARD_WECOM_SECRET"),
            self.secret,
            self.secret_file,
        ) {
            (Some(value), _, _) | (None, Some(value), None) => Some(value),
            (None, Some(_), Some(_)) => {
                errors.push("wecom: give secret or secret_file, not both".to_owned());
                None
            }
            (None, None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    errors.push(format!(
                        "wecom.secret_file: cannot read {}: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None, None) => {
                errors.push(
                    "wecom.secret: missing (or secret_file, or GROUPGUARD_WECOM_SECRET)".to_owned(),
                );
                None
            }
        };
        let api_base = self
            .api_base
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            errors.push(format!(
                "wecom.api_base: `{api_base}` is not an http(s) URL"
            ));
        }
        let max_callback_age = match self.max_callback_age.as_deref() {
            Some("off") => None,
            other => Some(duration(
                errors,
                "max_callback_age",
                other.map(str::to_owned),
                Duration::from_secs(300),
            )),
        };
        let member_sync_delay = duration(
            errors,
            "member_sync_delay",
            self.member_sync_delay,
            Duration::from_secs(2),
        );
        let archive = self.archive.and_then(|a| {
            let poll_every = duration(
                errors,
                "archive.poll_every",
                a.poll_every,
                Duration::from_secs(60),
            );
            let source = match (a.file, a.sidecar) {
                (Some(file), None) => Some(ArchiveSourceConfig::File(file)),
                (None, Some(url)) => {
                    if !url.starts_with("http://") && !url.starts_with("https://") {
                        errors.push(format!(
                            "wecom.archive.sidecar: `{url}` is not an http(s) URL"
                        ));
                    }
                    Some(ArchiveSourceConfig::Sidecar(
                        url.trim_end_matches('/').to_owned(),
                    ))
                }
                _ => {
                    errors.push(
                        "wecom.archive: give exactly one of file (a JSON-lines file) or sidecar (a URL)"
                            .to_owned(),
                    );
                    None
                }
            };
            source.map(|source| ArchiveConfig {
                source,
                poll_every,
                cursor_file: a
                    .cursor_file
                    .unwrap_or_else(|| data_dir.join("wecom-archive.cursor")),
            })
        });
        let admins = self.admins.into_iter().map(UserId::from).collect();
        if errors.len() > before {
            return None;
        }
        Some(WecomConfig {
            corp_id,
            crypt: crypt?,
            agent_id,
            secret: Secret(secret?),
            api_base,
            max_callback_age,
            member_sync_delay,
            admins,
            archive,
        })
    }
}

/// A duration field, or its default with the problem listed.
fn duration(
    errors: &mut Vec<String>,
    field: &str,
    text: Option<String>,
    default: Duration,
) -> Duration {
    match text {
        Some(text) => duration_text::parse(&text).unwrap_or_else(|e| {
            errors.push(format!("wecom.{field}: {e}"));
            default
        }),
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, env: &[(&str, &str)]) -> Result<WecomConfig, Vec<String>> {
        let raw: RawWecomConfig = toml::from_str(text).unwrap();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut errors = Vec::new();
        raw.check(&env, Path::new("/data"), &mut errors)
            .ok_or(errors)
    }

    const GOOD: &str = "corp_id = \"ww1\"\ntoken = \"t\"\n\
        encoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\"\nagent_id = 1000002\n";

    #[test]
    fn defaults_and_the_secret_from_the_environment() {
        let config = check(GOOD, &[("GROUPGUARD_WECOM_SECRET", "s3cret")]).unwrap();
        assert_eq!(config.api_base, DEFAULT_API_BASE);
        assert_eq!(config.max_callback_age, Some(Duration::from_secs(300)));
        assert_eq!(config.secret.expose(), "s3cret");
        assert!(config.archive.is_none());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("jWmYm7"), "{shown}");
    }

    #[test]
    fn off_accepts_any_callback_age_and_the_archive_has_a_cursor() {
        let text = format!(
            "{GOOD}secret = \"s\"\nmax_callback_age = \"off\"\napi_base = \"http://127.0.0.1:9/\"\n\
             [archive]\nsidecar = \"http://127.0.0.1:8089/\"\n"
        );
        let config = check(&text, &[]).unwrap();
        assert_eq!(config.max_callback_age, None);
        assert_eq!(config.api_base, "http://127.0.0.1:9");
        let archive = config.archive.unwrap();
        assert_eq!(
            archive.source,
            ArchiveSourceConfig::Sidecar("http://127.0.0.1:8089".to_owned())
        );
        assert_eq!(archive.cursor_file, Path::new("/data/wecom-archive.cursor"));
    }

    #[test]
    fn every_problem_is_listed_and_a_bad_key_is_named() {
        let errors = check(
            "token = \"t\"\nencoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2\"\n\
             max_callback_age = \"soon\"\n[archive]\npoll_every = \"1m\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "wecom.corp_id: missing",
                "wecom.encoding_aes_key: the EncodingAESKey has 42 characters; WeCom's have 43 (-40004)",
                "wecom.agent_id: missing (the app's AgentId, a number)",
                "wecom.secret: missing (or secret_file, or GROUPGUARD_WECOM_SECRET)",
                "wecom.max_callback_age: invalid duration `soon` (expected number at 0): write it like 30s, 10m, 24h or 7d",
                "wecom.archive: give exactly one of file (a JSON-lines file) or sidecar (a URL)",
            ]
        );
    }

    #[test]
    fn a_43_character_key_that_does_not_decode_to_32_bytes_is_named_as_such() {
        let text = GOOD.replace(
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B-_",
        );
        let errors = check(&format!("{text}secret = \"s\"\n"), &[]).unwrap_err();
        assert_eq!(
            errors,
            [
                "wecom.encoding_aes_key: the EncodingAESKey does not decode to 32 bytes: it must be base64 letters and digits (-40004)"
            ]
        );
    }
}
