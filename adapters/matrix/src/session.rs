//! Logging in once: the session (user, device, token) is kept in the data directory next to
//! the SDK's store (sync state, device keys), so a restart resumes the same device instead of
//! creating a new one.

use std::path::Path;
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::RequestConfig;
use matrix_sdk::{Client, SessionMeta, SessionTokens};

use crate::config::{Credentials, MatrixConfig};

/// Why the bot could not log in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The homeserver refused or could not be reached; the SDK's message.
    #[error("cannot log in to {homeserver}: {reason}")]
    Refused {
        /// Where.
        homeserver: String,
        /// Why.
        reason: String,
    },
    /// The session file could not be read or written.
    #[error("the session in {path}: {reason}")]
    Store {
        /// Which file or directory.
        path: String,
        /// Why.
        reason: String,
    },
}

fn refused(config: &MatrixConfig, e: impl std::fmt::Display) -> LoginError {
    LoginError::Refused {
        homeserver: config.homeserver.clone(),
        reason: e.to_string(),
    }
}

fn store(path: &Path, e: impl std::fmt::Display) -> LoginError {
    LoginError::Store {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The SDK's own retries are bounded: the dispatcher owns retrying actions.
pub fn request_config() -> RequestConfig {
    RequestConfig::new()
        .retry_limit(3)
        .timeout(Duration::from_secs(60))
}

/// A client logged in as the bot, its store in `config.store_dir`; whether the session is new
/// (a fresh device with no sync history).
pub async fn connect(config: &MatrixConfig) -> Result<(Client, bool), LoginError> {
    let dir = &config.store_dir;
    std::fs::create_dir_all(dir).map_err(|e| store(dir, e))?;
    let session_file = dir.join("session.json");
    let saved = match std::fs::read_to_string(&session_file) {
        Ok(text) => Some(
            serde_json::from_str::<MatrixSession>(&text).map_err(|e| store(&session_file, e))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(store(&session_file, e)),
    };
    let client = Client::builder()
        .homeserver_url(&config.homeserver)
        .sqlite_store(dir.join("store"), None)
        .request_config(request_config())
        .build()
        .await
        .map_err(|e| refused(config, e))?;
    if let Some(session) = saved {
        client
            .restore_session(session)
            .await
            .map_err(|e| refused(config, e))?;
        return Ok((client, false));
    }
    let session = match &config.credentials {
        Credentials::Password(password) => {
            let auth = client.matrix_auth();
            auth.login_username(&config.user, password.expose())
                .initial_device_display_name(&config.device_name)
                .send()
                .await
                .map_err(|e| refused(config, e))?;
            auth.session()
                .ok_or_else(|| refused(config, "no session after login"))?
        }
        Credentials::AccessToken(token) => {
            // The token's device comes from the homeserver, asked by a client without a store.
            let probe = Client::builder()
                .homeserver_url(&config.homeserver)
                .request_config(request_config())
                .build()
                .await
                .map_err(|e| refused(config, e))?;
            let user_id = config
                .user
                .as_str()
                .try_into()
                .map_err(|e| refused(config, e))?;
            let tokens = SessionTokens {
                access_token: token.expose().to_owned(),
                refresh_token: None,
            };
            probe
                .restore_session(MatrixSession {
                    meta: SessionMeta {
                        user_id,
                        device_id: "GROUPGUARDPROBE".into(),
                    },
                    tokens: tokens.clone(),
                })
                .await
                .map_err(|e| refused(config, e))?;
            let whoami = probe.whoami().await.map_err(|e| refused(config, e))?;
            let device_id = whoami
                .device_id
                .ok_or_else(|| refused(config, "the access token has no device"))?;
            let session = MatrixSession {
                meta: SessionMeta {
                    user_id: whoami.user_id,
                    device_id,
                },
                tokens,
            };
            client
                .restore_session(session.clone())
                .await
                .map_err(|e| refused(config, e))?;
            session
        }
    };
    save(&session_file, &session)?;
    Ok((client, true))
}

/// Writes the session readable by its owner only, through a temporary file.
fn save(path: &Path, session: &MatrixSession) -> Result<(), LoginError> {
    let text = serde_json::to_string(session).map_err(|e| store(path, e))?;
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).map_err(|e| store(&temp, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| store(&temp, e))?;
    }
    std::fs::rename(&temp, path).map_err(|e| store(path, e))
}
