//! The adapters this build knows.
//!
//! Each adapter owns its configuration section (`[wecom]`, `[matrix]`, `[discord]`, and
//! `[testing]` in test builds) with its own raw → checked step; [`AdapterConfig`] holds the
//! checked settings of every configured one, and [`AdapterConfig::start`] turns them into a
//! running [`Adapter`]. `run` loops over adapters; adding a platform adds a variant here and
//! a field to the raw configuration, nothing else.

use std::sync::Arc;

use groupguard_core::engine::RulesHandle;
use groupguard_core::ports::Clock;

use crate::adapter::Adapter;

/// The checked settings of one configured adapter.
#[derive(Debug)]
pub enum AdapterConfig {
    /// WeCom: the callback, customer groups, the chat archive, app messages.
    Wecom(groupguard_wecom::config::WecomConfig),
    /// Matrix: sync, power levels, the management room.
    Matrix(groupguard_matrix::config::MatrixConfig),
    /// Discord: the gateway, permissions, the log channel.
    Discord(groupguard_discord::config::DiscordConfig),
    /// The in-process test platform.
    #[cfg(feature = "testing")]
    Testing(crate::testing::TestingConfig),
}

impl AdapterConfig {
    /// Starts the adapter (opens what it needs; connecting happens in [`Adapter::run`]).
    pub fn start(
        &self,
        clock: &Arc<dyn Clock>,
        rules: &RulesHandle,
    ) -> anyhow::Result<Arc<dyn Adapter>> {
        match *self {
            AdapterConfig::Wecom(ref config) => Ok(Arc::new(crate::wecom::WecomAdapter(
                groupguard_wecom::Wecom::new(config.clone(), Arc::clone(clock)),
            ))),
            AdapterConfig::Matrix(ref config) => Ok(Arc::new(crate::matrix::MatrixAdapter(
                groupguard_matrix::Matrix::new(config.clone(), Arc::clone(clock)),
            ))),
            AdapterConfig::Discord(ref config) => Ok(Arc::new(crate::discord::DiscordAdapter(
                groupguard_discord::Discord::new(
                    config.clone(),
                    Arc::clone(clock),
                    Arc::clone(rules),
                ),
            ))),
            #[cfg(feature = "testing")]
            AdapterConfig::Testing(ref config) => Ok(Arc::new(crate::testing::TestPlatform::open(
                config.clone(),
                Arc::clone(clock),
            )?)),
        }
    }
}

/// The adapters this build can run, for the message that says none is configured.
pub fn in_build() -> &'static str {
    if cfg!(feature = "testing") {
        "wecom, matrix, discord, testing"
    } else {
        "wecom, matrix, discord"
    }
}
