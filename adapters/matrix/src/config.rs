//! `[matrix]`: what the adapter needs, checked in one pass that lists every problem.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[matrix]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatrixConfig {
    homeserver: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    access_token: Option<String>,
    device_name: Option<String>,
    management_room: Option<String>,
    #[serde(default)]
    invite_from: Vec<String>,
    #[serde(default)]
    policy_rooms: Vec<String>,
    policy_room: Option<String>,
}

/// A value that never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
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

/// How the bot logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// With its password; the device and session are kept in the data directory.
    Password(Secret),
    /// With an access token made elsewhere.
    AccessToken(Secret),
}

/// Who may invite the bot into a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inviter {
    /// One user, `@alice:example.org`.
    User(String),
    /// Everyone on a server, written `*:example.org`.
    Server(String),
}

impl Inviter {
    /// Whether `user` (`@name:server`) is allowed.
    pub fn allows(&self, user: &str) -> bool {
        match self {
            Inviter::User(id) => id == user,
            Inviter::Server(server) => server_of(user) == Some(server.as_str()),
        }
    }
}

/// The server part of a user id.
pub fn server_of(user: &str) -> Option<&str> {
    user.split_once(':').map(|(_, server)| server)
}

/// The checked `[matrix]` settings.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// The homeserver's client API URL.
    pub homeserver: String,
    /// The bot's user id.
    pub user: String,
    /// How it logs in.
    pub credentials: Credentials,
    /// The name of its device.
    pub device_name: String,
    /// Where admins talk to the bot and notices go (room id or alias).
    pub management_room: Option<String>,
    /// Who may invite the bot; empty: anyone.
    pub invite_from: Vec<Inviter>,
    /// Rooms whose policy lists are followed.
    pub policy_rooms: Vec<String>,
    /// Where the org-wide blacklist is published.
    pub policy_room: Option<String>,
    /// Where the session, device keys and sync state are kept.
    pub store_dir: PathBuf,
}

impl MatrixConfig {
    /// Whether `user` may invite the bot.
    pub fn may_invite(&self, user: &str) -> bool {
        self.invite_from.is_empty() || self.invite_from.iter().any(|i| i.allows(user))
    }
}

fn is_user_id(id: &str) -> bool {
    id.starts_with('@') && server_of(id).is_some_and(|s| !s.is_empty())
}

fn is_room(id: &str) -> bool {
    (id.starts_with('!') || id.starts_with('#')) && id.len() > 1
}

impl RawMatrixConfig {
    /// Checks the section; `env` supplies `GROUPGUARD_MATRIX_PASSWORD` and
    /// `GROUPGUARD_MATRIX_ACCESS_TOKEN`, `data_dir` the store.
    pub fn check(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        data_dir: &Path,
        errors: &mut Vec<String>,
    ) -> Option<MatrixConfig> {
        let before = errors.len();
        let homeserver = self
            .homeserver
            .map(|h| h.trim_end_matches('/').to_owned())
            .unwrap_or_default();
        if homeserver.is_empty() {
            errors.push("matrix.homeserver: missing (the client API URL, https://…)".to_owned());
        } else if !homeserver.starts_with("https://") && !homeserver.starts_with("http://") {
            errors.push(format!(
                "matrix.homeserver: `{homeserver}` is not an http(s) URL"
            ));
        }
        let user = self.user.unwrap_or_default();
        if !is_user_id(&user) {
            errors.push(if user.is_empty() {
                "matrix.user: missing (@bot:example.org)".to_owned()
            } else {
                format!("matrix.user: `{user}` is not a user id like @bot:example.org")
            });
        }
        let password = env("GROUPGUARD_MATRIX_PASSWORD").or(self.password);
        let password = match (password, self.password_file) {
            (Some(p), None) => Some(p),
            (Some(_), Some(_)) => {
                errors.push("matrix: give password or password_file, not both".to_owned());
                None
            }
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    errors.push(format!(
                        "matrix.password_file: cannot read {}: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let token = env("GROUPGUARD_MATRIX_ACCESS_TOKEN").or(self.access_token);
        let credentials = match (password, token) {
            (Some(p), None) => Some(Credentials::Password(Secret(p))),
            (None, Some(t)) => Some(Credentials::AccessToken(Secret(t))),
            (Some(_), Some(_)) => {
                errors.push("matrix: give a password or an access token, not both".to_owned());
                None
            }
            (None, None) => {
                errors.push(
                    "matrix.password: missing (or password_file, access_token, GROUPGUARD_MATRIX_PASSWORD, GROUPGUARD_MATRIX_ACCESS_TOKEN)"
                        .to_owned(),
                );
                None
            }
        };
        let room = |field: &str, id: &str, errors: &mut Vec<String>| {
            if !is_room(id) {
                errors.push(format!(
                    "matrix.{field}: `{id}` is not a room id (!…) or alias (#…:server)"
                ));
            }
        };
        if let Some(id) = &self.management_room {
            room("management_room", id, errors);
        }
        if let Some(id) = &self.policy_room {
            room("policy_room", id, errors);
        }
        for id in &self.policy_rooms {
            room("policy_rooms", id, errors);
        }
        let invite_from = self
            .invite_from
            .iter()
            .filter_map(|pattern| match pattern.strip_prefix("*:") {
                Some(server) if !server.is_empty() => Some(Inviter::Server(server.to_owned())),
                _ if is_user_id(pattern) => Some(Inviter::User(pattern.clone())),
                _ => {
                    errors.push(format!(
                        "matrix.invite_from: `{pattern}` is neither a user id (@alice:example.org) nor a server (*:example.org)"
                    ));
                    None
                }
            })
            .collect();
        if errors.len() > before {
            return None;
        }
        Some(MatrixConfig {
            homeserver,
            user,
            credentials: credentials?,
            device_name: self.device_name.unwrap_or_else(|| "groupguard".to_owned()),
            management_room: self.management_room,
            invite_from,
            policy_rooms: self.policy_rooms,
            policy_room: self.policy_room,
            store_dir: data_dir.join("matrix"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, env: &[(&str, &str)]) -> Result<MatrixConfig, Vec<String>> {
        let raw: RawMatrixConfig = toml::from_str(text).unwrap();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut errors = Vec::new();
        raw.check(&env, Path::new("/data"), &mut errors)
            .ok_or(errors)
    }

    #[test]
    fn a_password_from_the_environment_and_the_store_in_the_data_directory() {
        let config = check(
            "homeserver = \"https://matrix.example.org/\"\nuser = \"@guard:example.org\"\n\
             management_room = \"#mods:example.org\"\ninvite_from = [\"@alice:example.org\", \"*:partner.org\"]\n",
            &[("GROUPGUARD_MATRIX_PASSWORD", "hunter2")],
        )
        .unwrap();
        assert_eq!(config.homeserver, "https://matrix.example.org");
        assert_eq!(
            config.credentials,
            Credentials::Password(Secret("hunter2".to_owned()))
        );
        assert_eq!(config.store_dir, Path::new("/data/matrix"));
        assert_eq!(config.device_name, "groupguard");
        assert!(config.may_invite("@alice:example.org"));
        assert!(config.may_invite("@bob:partner.org"));
        assert!(!config.may_invite("@mallory:example.org"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn every_problem_is_listed() {
        let errors = check(
            "homeserver = \"matrix.example.org\"\nuser = \"guard\"\npassword = \"p\"\naccess_token = \"t\"\n\
             management_room = \"mods\"\ninvite_from = [\"alice\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "matrix.homeserver: `matrix.example.org` is not an http(s) URL",
                "matrix.user: `guard` is not a user id like @bot:example.org",
                "matrix: give a password or an access token, not both",
                "matrix.management_room: `mods` is not a room id (!…) or alias (#…:server)",
                "matrix.invite_from: `alice` is neither a user id (@alice:example.org) nor a server (*:example.org)",
            ]
        );
        let missing = check("", &[]).unwrap_err();
        assert_eq!(
            missing,
            [
                "matrix.homeserver: missing (the client API URL, https://…)",
                "matrix.user: missing (@bot:example.org)",
                "matrix.password: missing (or password_file, access_token, GROUPGUARD_MATRIX_PASSWORD, GROUPGUARD_MATRIX_ACCESS_TOKEN)",
            ]
        );
    }
}
