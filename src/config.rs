//! The service's configuration: a TOML file and/or `GROUPGUARD_*` environment variables.
//!
//! Read in two stages: [`RawConfig`] takes whatever was written (unknown fields refused),
//! [`Config::from_raw`] checks it all and reports every problem at once. Secrets (the
//! database URL) come from the environment or from a file named by `*_FILE`, and never
//! appear in logs or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use groupguard_core::model::Platform;
use groupguard_core::raid::RaidPolicy;
use groupguard_core::time::duration_text;
use serde::Deserialize;

use crate::platforms::AdapterConfig;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    http: Option<RawHttp>,
    log: Option<RawLog>,
    dispatcher: Option<RawDispatcher>,
    raid: Option<RawRaid>,
    rate_limits: Option<BTreeMap<String, f64>>,
    wecom: Option<groupguard_wecom::config::RawWecomConfig>,
    matrix: Option<groupguard_matrix::config::RawMatrixConfig>,
    discord: Option<groupguard_discord::config::RawDiscordConfig>,
    #[cfg(feature = "testing")]
    testing: Option<crate::testing::RawTestingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDispatcher {
    queue: Option<usize>,
    lease: Option<String>,
    max_attempts: Option<u32>,
    reload_every: Option<String>,
    keep_events: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRaid {
    members: Option<u32>,
    window: Option<String>,
    lockdown: Option<bool>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// A database URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatcherConfig {
    /// Events waiting to be judged before adapters must wait.
    pub queue: usize,
    /// How long a claimed action is reserved for one executor.
    pub lease: Duration,
    /// Attempts before an action is given up.
    pub max_attempts: u32,
    /// How often to check whether another instance changed the configuration.
    pub reload_every: Duration,
    /// How long recorded events are remembered (redeliveries recognised, `why` answered).
    pub keep_events: Duration,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the SQLite file lives.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: Secret,
    /// The HTTP address for health, readiness and metrics.
    pub http_listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`info`, `groupguard=debug`, …).
    pub log_level: String,
    /// Dispatcher settings.
    pub dispatcher: DispatcherConfig,
    /// Raid alerts.
    pub raid: RaidPolicy,
    /// Actions per second per platform.
    pub rate_limits: BTreeMap<Platform, f64>,
    /// The configured platform adapters.
    pub adapters: Vec<AdapterConfig>,
}

impl Config {
    /// Reads the file (when given) and the environment, and checks everything.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<String>> {
        let raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
                toml::from_str::<RawConfig>(&text).map_err(|e| {
                    vec![format!("{}: {}", path.display(), e.to_string().trim_end())]
                })?
            }
            None => RawConfig::default(),
        };
        Config::from_raw(raw, env)
    }

    /// Checks a raw configuration, with environment variables taking precedence.
    pub fn from_raw(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let var = |name: &str| env(&format!("GROUPGUARD_{name}"));

        let data_dir = var("DATA_DIR")
            .map(PathBuf::from)
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));

        let database_url = secret(
            env,
            &["GROUPGUARD_DATABASE_URL", "DATABASE_URL"],
            &mut errors,
        )
        .or(raw.database_url)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("groupguard.db").display()));
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|s| database_url.starts_with(s))
        {
            errors.push(
                "database_url: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB".to_owned(),
            );
        }

        let http = raw.http.unwrap_or_default();
        let listen = var("HTTP_LISTEN")
            .or(http.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let http_listen = listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(format!(
                "http.listen: `{listen}` is not an address like 127.0.0.1:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let log = raw.log.unwrap_or_default();
        let format = var("LOG_FORMAT")
            .or(log.format)
            .unwrap_or_else(|| "text".to_owned());
        let log_format = match format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                errors.push(format!("log.format: `{other}` is not text or json"));
                LogFormat::Text
            }
        };
        let log_level = var("LOG_LEVEL")
            .or(log.level)
            .unwrap_or_else(|| "info".to_owned());

        let d = raw.dispatcher.unwrap_or_default();
        let mut duration = |field: &str, text: Option<String>, default: Duration| match text {
            Some(text) => duration_text::parse(&text).unwrap_or_else(|e| {
                errors.push(format!("{field}: {e}"));
                default
            }),
            None => default,
        };
        let lease = duration("dispatcher.lease", d.lease, Duration::from_secs(30));
        let reload_every = duration(
            "dispatcher.reload_every",
            d.reload_every,
            Duration::from_millis(500),
        );
        let keep_events = duration(
            "dispatcher.keep_events",
            d.keep_events,
            Duration::from_secs(7 * 86_400),
        );
        let r = raw.raid.unwrap_or_default();
        let window = duration("raid.window", r.window, Duration::from_secs(60));
        let dispatcher = DispatcherConfig {
            queue: d.queue.unwrap_or(10_000),
            lease,
            max_attempts: d.max_attempts.unwrap_or(8),
            reload_every,
            keep_events,
        };
        if dispatcher.queue == 0 {
            errors.push("dispatcher.queue: must be at least 1".to_owned());
        }
        if dispatcher.max_attempts == 0 {
            errors.push("dispatcher.max_attempts: must be at least 1".to_owned());
        }
        let raid = RaidPolicy {
            members: r.members.unwrap_or(5),
            window,
            lockdown: r.lockdown.unwrap_or(false),
        };
        if raid.members < 2 {
            errors.push("raid.members: must be at least 2".to_owned());
        }

        // Below each platform's documented ceiling: Discord 50 requests/s, WeCom 10,000 calls
        // per minute per API, Matrix as the homeserver allows a bot.
        let mut rate_limits = BTreeMap::from([
            (Platform::Discord, 40.0),
            (Platform::Matrix, 10.0),
            (Platform::WeCom, 100.0),
        ]);
        for (name, rate) in raw.rate_limits.unwrap_or_default() {
            match name.parse::<Platform>() {
                Ok(_) if !(rate > 0.0 && rate.is_finite()) => {
                    errors.push(format!(
                        "rate_limits.{name}: must be a positive number of actions per second"
                    ));
                }
                Ok(platform) => {
                    rate_limits.insert(platform, rate);
                }
                Err(e) => errors.push(format!("rate_limits.{name}: {e}")),
            }
        }

        // Each adapter checks its own section.
        let mut adapters = Vec::new();
        if let Some(wecom) = raw.wecom
            && let Some(checked) = wecom.check(env, &data_dir, &mut errors)
        {
            adapters.push(AdapterConfig::Wecom(checked));
        }
        if let Some(matrix) = raw.matrix
            && let Some(checked) = matrix.check(env, &data_dir, &mut errors)
        {
            adapters.push(AdapterConfig::Matrix(checked));
        }
        if let Some(discord) = raw.discord
            && let Some(checked) = discord.check(env, &mut errors)
        {
            adapters.push(AdapterConfig::Discord(checked));
        }
        #[cfg(feature = "testing")]
        if let Some(testing) = raw.testing {
            adapters.push(AdapterConfig::Testing(testing.check(&mut errors)));
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            data_dir,
            database_url: Secret(database_url),
            http_listen,
            log_format,
            log_level,
            dispatcher,
            raid,
            rate_limits,
            adapters,
        })
    }
}

/// A secret from the first variable set, directly or through `NAME_FILE`.
fn secret(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&str],
    errors: &mut Vec<String>,
) -> Option<String> {
    for name in names {
        if let Some(value) = env(name) {
            return Some(value);
        }
        if let Some(path) = env(&format!("{name}_FILE")) {
            return match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    errors.push(format!("{name}_FILE: cannot read {path}: {e}"));
                    None
                }
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_use_an_embedded_sqlite_file() {
        let config = Config::from_raw(RawConfig::default(), &env(&[])).unwrap();
        assert_eq!(config.database_url.expose(), "sqlite://data/groupguard.db");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.raid,
            RaidPolicy {
                members: 5,
                window: Duration::from_secs(60),
                lockdown: false
            }
        );
        assert!(config.adapters.is_empty());
    }

    #[test]
    fn environment_wins_and_secrets_come_from_files() {
        let dir = std::env::temp_dir().join(format!("groupguard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db-url");
        std::fs::write(&file, "postgres://bot:s3cret@db/guard\n").unwrap();
        let raw: RawConfig =
            toml::from_str("data_dir = \"/srv\"\n[log]\nformat = \"text\"\n").unwrap();
        let config = Config::from_raw(
            raw,
            &env(&[
                ("DATABASE_URL_FILE", file.to_str().unwrap()),
                ("GROUPGUARD_LOG_FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.database_url.expose(),
            "postgres://bot:s3cret@db/guard"
        );
        assert_eq!(config.log_format, LogFormat::Json);
        let shown = format!("{config:?}");
        assert!(shown.contains("postgres://bot:***@db/guard"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn every_error_is_listed() {
        let raw: RawConfig = toml::from_str(
            "database_url = \"mysql://x\"\n[http]\nlisten = \"everywhere\"\n[log]\nformat = \"xml\"\n\
             [dispatcher]\nlease = \"soon\"\nqueue = 0\n[raid]\nmembers = 1\n[rate_limits]\ntelegram = 5\ndiscord = -1\n",
        )
        .unwrap();
        let errors = Config::from_raw(raw, &env(&[("DATABASE_URL_FILE", "/nonexistent/secret")]))
            .unwrap_err();
        assert_eq!(
            errors,
            [
                "DATABASE_URL_FILE: cannot read /nonexistent/secret: No such file or directory (os error 2)",
                "database_url: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
                "http.listen: `everywhere` is not an address like 127.0.0.1:8080",
                "log.format: `xml` is not text or json",
                "dispatcher.lease: invalid duration `soon` (expected number at 0): write it like 30s, 10m, 24h or 7d",
                "dispatcher.queue: must be at least 1",
                "raid.members: must be at least 2",
                "rate_limits.discord: must be a positive number of actions per second",
                "rate_limits.telegram: unknown platform `telegram`: expected wecom, matrix or discord",
            ]
        );
    }

    #[test]
    fn an_adapter_s_problems_join_the_list() {
        let raw: RawConfig = toml::from_str(
            "[log]\nformat = \"xml\"\n[wecom]\ncorp_id = \"ww1\"\ntoken = \"t\"\nagent_id = 1\n\
             encoding_aes_key = \"too-short\"\n",
        )
        .unwrap();
        let errors = Config::from_raw(raw, &env(&[("GROUPGUARD_WECOM_SECRET", "s")])).unwrap_err();
        assert_eq!(
            errors,
            [
                "log.format: `xml` is not text or json",
                "wecom.encoding_aes_key: the EncodingAESKey has 9 characters; WeCom's have 43 (-40004)",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = toml::from_str::<RawConfig>("[http]\nport = 80\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }
}
