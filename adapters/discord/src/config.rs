//! `[discord]`: what the adapter needs, checked in one pass that lists every problem.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;

/// Discord's API, which `api_base` replaces in tests.
pub const DISCORD: &str = "https://discord.com";

/// `[discord]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscordConfig {
    token: Option<String>,
    token_file: Option<PathBuf>,
    application_id: Option<String>,
    log_channel: Option<String>,
    #[serde(default)]
    warn_by_dm: bool,
    #[serde(default)]
    global_commands: bool,
    api_base: Option<String>,
    gateway: Option<String>,
    shards: Option<String>,
}

/// The bot token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The value, for the calls that need it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which gateway shards this instance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shards {
    /// As many as Discord recommends, all here.
    Auto,
    /// Shards `range` of `total`: two instances split a large bot (`0-3/8` and `4-7/8`).
    Range {
        /// The shards run here.
        range: Range<u32>,
        /// All shards of the bot.
        total: u32,
    },
}

/// The checked `[discord]` settings.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The bot token.
    pub token: Token,
    /// The application, for command registration; learnt from READY when absent.
    pub application_id: Option<u64>,
    /// Where admin notices go when a guild has not set its own log channel.
    pub log_channel: Option<u64>,
    /// Warnings as direct messages rather than replies in the channel.
    pub warn_by_dm: bool,
    /// `/guard` registered for every guild at once (it takes Discord up to an hour to show),
    /// besides each guild's own registration on join.
    pub global_commands: bool,
    /// The REST API's origin (tests point it at a loopback fake).
    pub api_base: String,
    /// The gateway's URL, when not the one the API names (tests).
    pub gateway: Option<String>,
    /// Which shards run here.
    pub shards: Shards,
}

impl DiscordConfig {
    /// Whether the API is Discord's own (serenity's rate limiter can only run against it).
    pub fn is_discord(&self) -> bool {
        self.api_base == DISCORD
    }
}

fn snowflake(field: &str, value: Option<String>, errors: &mut Vec<String>) -> Option<u64> {
    let value = value?;
    match value.parse::<u64>() {
        Ok(id) if id > 0 => Some(id),
        _ => {
            errors.push(format!(
                "discord.{field}: `{value}` is not a Discord id (digits)"
            ));
            None
        }
    }
}

fn shards(text: &str) -> Option<Shards> {
    if text == "auto" {
        return Some(Shards::Auto);
    }
    let (range, total) = text.split_once('/')?;
    let (first, last) = range.split_once('-').unwrap_or((range, range));
    let (first, last, total) = (
        first.trim().parse::<u32>().ok()?,
        last.trim().parse::<u32>().ok()?,
        total.trim().parse::<u32>().ok()?,
    );
    (first <= last && last < total).then_some(Shards::Range {
        range: first..last + 1,
        total,
    })
}

impl RawDiscordConfig {
    /// Checks the section; `env` supplies `GROUPGUARD_DISCORD_TOKEN`.
    pub fn check(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        errors: &mut Vec<String>,
    ) -> Option<DiscordConfig> {
        let before = errors.len();
        let token = match (
            env("GROUPGUARD_DISCORD_TOKEN").or(self.token),
            self.token_file,
        ) {
            (Some(_), Some(_)) => {
                errors.push("discord: give token or token_file, not both".to_owned());
                None
            }
            (Some(token), None) => Some(token),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    errors.push(format!(
                        "discord.token_file: cannot read {}: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => {
                errors.push(
                    "discord.token: missing (or token_file, GROUPGUARD_DISCORD_TOKEN)".to_owned(),
                );
                None
            }
        };
        let token = token.map(|t| t.trim_start_matches("Bot ").to_owned());
        if token.as_deref() == Some("") {
            errors.push("discord.token: empty".to_owned());
        }
        let application_id = snowflake("application_id", self.application_id, errors);
        let log_channel = snowflake("log_channel", self.log_channel, errors);
        let api_base = self
            .api_base
            .map(|b| b.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| DISCORD.to_owned());
        if !api_base.starts_with("http://") && !api_base.starts_with("https://") {
            errors.push(format!(
                "discord.api_base: `{api_base}` is not an http(s) URL"
            ));
        }
        if let Some(gateway) = &self.gateway
            && !gateway.starts_with("ws://")
            && !gateway.starts_with("wss://")
        {
            errors.push(format!("discord.gateway: `{gateway}` is not a ws(s) URL"));
        }
        let shards = match self.shards.as_deref() {
            None => Some(Shards::Auto),
            Some(text) => shards(text).or_else(|| {
                errors.push(format!(
                    "discord.shards: `{text}` is neither `auto` nor a range like `0-3/8` (shards 0 to 3 of 8)"
                ));
                None
            }),
        };
        if errors.len() > before {
            return None;
        }
        Some(DiscordConfig {
            token: Token(token?),
            application_id,
            log_channel,
            warn_by_dm: self.warn_by_dm,
            global_commands: self.global_commands,
            api_base,
            gateway: self.gateway,
            shards: shards?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, env: &[(&str, &str)]) -> Result<DiscordConfig, Vec<String>> {
        let raw: RawDiscordConfig = toml::from_str(text).unwrap();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut errors = Vec::new();
        raw.check(&env, &mut errors).ok_or(errors)
    }

    #[test]
    fn a_token_from_the_environment_discord_by_default_and_shard_ranges() {
        let config = check(
            "application_id = \"1100\"\nlog_channel = \"42\"\nshards = \"4-7/8\"\n",
            &[("GROUPGUARD_DISCORD_TOKEN", "Bot sekrit")],
        )
        .unwrap();
        assert_eq!(config.token.expose(), "sekrit");
        assert_eq!(config.application_id, Some(1100));
        assert_eq!(config.log_channel, Some(42));
        assert!(config.is_discord());
        assert_eq!(
            config.shards,
            Shards::Range {
                range: 4..8,
                total: 8
            }
        );
        assert!(!format!("{config:?}").contains("sekrit"));
        let one = check("token = \"t\"\nshards = \"2/4\"\n", &[]).unwrap();
        assert_eq!(
            one.shards,
            Shards::Range {
                range: 2..3,
                total: 4
            }
        );
        assert_eq!(check("token = \"t\"\n", &[]).unwrap().shards, Shards::Auto);
    }

    #[test]
    fn every_problem_is_listed() {
        let errors = check(
            "token = \"t\"\ntoken_file = \"/nowhere\"\napplication_id = \"app\"\n\
             api_base = \"127.0.0.1:9\"\ngateway = \"http://x\"\nshards = \"8-9/8\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "discord: give token or token_file, not both",
                "discord.application_id: `app` is not a Discord id (digits)",
                "discord.api_base: `127.0.0.1:9` is not an http(s) URL",
                "discord.gateway: `http://x` is not a ws(s) URL",
                "discord.shards: `8-9/8` is neither `auto` nor a range like `0-3/8` (shards 0 to 3 of 8)",
            ]
        );
        assert_eq!(
            check("", &[]).unwrap_err(),
            ["discord.token: missing (or token_file, GROUPGUARD_DISCORD_TOKEN)"]
        );
    }
}
