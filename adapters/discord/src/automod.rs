//! Keyword rules mirrored into Discord AutoMod, in guilds that turned it on (`!guard group
//! automod on`): each enforcing keyword rule that applies to the guild becomes an AutoMod
//! keyword rule named `groupguard: <rule>` that blocks the message before anyone sees it.
//! Discord allows six keyword rules per guild; the first six are mirrored. Rules named so
//! are the bot's own: kept equal to the configuration, and removed when the guild turns the
//! mirror off. Rules people made in Discord are left alone. What AutoMod cannot do stays with
//! groupguard's own checks (see `rule show`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupguard_core::model::{GroupRef, Platform};
use groupguard_core::native::{DISCORD_AUTOMOD, NativeFilter};
use groupguard_core::platform::AdapterError;
use groupguard_core::rule::{GroupConfig, Mode};
use reqwest::Method;
use serde_json::{Value, json};
use serenity::all::{GuildId, Permissions};
use tokio::sync::watch;

use crate::{Inner, access};

/// The name prefix that marks the bot's own AutoMod rules.
pub const PREFIX: &str = "groupguard: ";
/// Keyword rules Discord allows per guild.
pub const MAX_RULES: usize = 6;
/// How often the mirror looks for a configuration change.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// How often it brings every guild in step anyway (new guilds, rules edited by hand).
const AGAIN_EVERY: Duration = Duration::from_secs(60);

/// The AutoMod rules `group` should have, by name.
pub fn wanted(
    rules: &groupguard_core::compile::CompiledRules,
    group: &GroupConfig,
) -> Vec<(String, Value)> {
    if !group.native_filter {
        return Vec::new();
    }
    rules
        .config()
        .rules
        .iter()
        .filter(|r| r.enabled && r.mode == Mode::Enforce && r.scope.covers(group))
        .filter_map(|r| {
            let filter = NativeFilter::of(r, &DISCORD_AUTOMOD)?;
            if filter.keywords.is_empty() && filter.regexes.is_empty() {
                return None;
            }
            let name = format!("{PREFIX}{}", r.id);
            let message: String = format!("Not allowed here (groupguard rule {})", r.id)
                .chars()
                .take(150)
                .collect();
            Some((
                name.clone(),
                json!({
                    "name": name,
                    "event_type": 1,
                    "trigger_type": 1,
                    "trigger_metadata": {
                        "keyword_filter": filter.keywords,
                        "regex_patterns": filter.regexes,
                        "allow_list": [],
                    },
                    "actions": [{"type": 1, "metadata": {"custom_message": message}}],
                    "enabled": true,
                }),
            ))
        })
        .take(MAX_RULES)
        .collect()
}

/// Whether an existing AutoMod rule already says what `wanted` says.
fn same(existing: &Value, wanted: &Value) -> bool {
    existing["enabled"] == wanted["enabled"]
        && existing["trigger_metadata"]["keyword_filter"]
            == wanted["trigger_metadata"]["keyword_filter"]
        && existing["trigger_metadata"]["regex_patterns"]
            == wanted["trigger_metadata"]["regex_patterns"]
        && existing["actions"].as_array().map(Vec::len)
            == wanted["actions"].as_array().map(Vec::len)
}

impl Inner {
    /// Brings one guild's AutoMod rules in step, and remembers the ids of the bot's rules
    /// there so their executions are known as groupguard's.
    async fn mirror_guild(
        &self,
        guild: GuildId,
        wanted: &[(String, Value)],
    ) -> Result<(), AdapterError> {
        let path = format!("/guilds/{guild}/auto-moderation/rules");
        let existing = self.rest.call(Method::GET, &path, None, None).await?;
        let ours: HashMap<String, Value> = existing
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(PREFIX)))
            .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r.clone())))
            .collect();
        let reason = Some("groupguard: keyword rules mirrored");
        for (name, body) in wanted {
            match ours.get(name) {
                Some(current) if same(current, body) => {
                    self.remember_automod_rule(current["id"].as_str().unwrap_or_default());
                }
                Some(current) => {
                    let mut patch = body.clone();
                    // The trigger type is fixed at creation.
                    if let Some(patch) = patch.as_object_mut() {
                        patch.remove("trigger_type");
                    }
                    let id = current["id"].as_str().unwrap_or_default();
                    self.rest
                        .call(Method::PATCH, &format!("{path}/{id}"), Some(&patch), reason)
                        .await?;
                    self.remember_automod_rule(id);
                    tracing::info!(%guild, rule = name, "AutoMod rule updated");
                }
                None => {
                    let created = self
                        .rest
                        .call(Method::POST, &path, Some(body), reason)
                        .await?;
                    self.remember_automod_rule(created["id"].as_str().unwrap_or_default());
                    tracing::info!(%guild, rule = name, "AutoMod rule created");
                }
            }
        }
        for (name, rule) in &ours {
            if wanted.iter().any(|(n, _)| n == name) {
                continue;
            }
            let id = rule["id"].as_str().unwrap_or_default();
            self.rest
                .call(Method::DELETE, &format!("{path}/{id}"), None, reason)
                .await?;
            tracing::info!(%guild, rule = name, "AutoMod rule removed");
        }
        Ok(())
    }

    fn remember_automod_rule(&self, id: &str) {
        if let Ok(id) = id.parse::<u64>() {
            self.automod_rules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
        }
    }

    /// Whether an AutoMod rule is one the bot mirrors.
    pub(crate) fn is_automod_rule(&self, id: u64) -> bool {
        self.automod_rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

    /// Brings every guild where the bot may manage AutoMod in step; false if one failed.
    async fn mirror_automod(&self) -> bool {
        let (Some(cache), Some(bot)) = (self.cache.get(), self.bot.get().copied()) else {
            return false;
        };
        let rules = self.rules.rules();
        let mut all = true;
        for guild in cache.guilds() {
            let may = cache.guild(guild).is_some_and(|g| {
                g.members.get(&bot).is_some_and(|me| {
                    let a = access(&g, bot, &me.roles);
                    a.permissions
                        .intersects(Permissions::MANAGE_GUILD | Permissions::ADMINISTRATOR)
                })
            });
            let group = GroupRef::new(Platform::Discord, guild.to_string());
            let config = rules
                .group(&group)
                .cloned()
                .unwrap_or_else(|| GroupConfig::new(group));
            if !may {
                if config.native_filter {
                    tracing::warn!(%guild, "AutoMod mirror is on but the bot lacks Manage Guild");
                }
                continue;
            }
            if let Err(e) = self.mirror_guild(guild, &wanted(&rules, &config)).await {
                tracing::warn!(%guild, error = %e, "cannot mirror keyword rules into AutoMod; trying again");
                all = false;
            }
        }
        all
    }
}

/// Keeps AutoMod in step with the configuration until `stop`.
pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut mirrored = None;
    let mut last = Instant::now();
    let mut guilds = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let rules = inner.rules.rules();
        let now_guilds = inner.cache.get().map_or(0, |c| c.guilds().len());
        let changed =
            mirrored.as_ref().is_none_or(|m| !Arc::ptr_eq(m, &rules)) || now_guilds != guilds;
        if !changed && last.elapsed() < AGAIN_EVERY {
            continue;
        }
        last = Instant::now();
        guilds = now_guilds;
        mirrored = inner.mirror_automod().await.then_some(rules);
    }
}

#[cfg(test)]
mod tests {
    use groupguard_core::engine::Live;
    use groupguard_core::rulefile;

    use super::*;

    #[test]
    fn enforcing_keyword_rules_in_scope_are_wanted_only_where_the_mirror_is_on() {
        let set = rulefile::parse(
            "[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"代购\"], words = [\"spam\"] }\n\n\
             [[rules]]\nid = \"elsewhere\"\nkeywords = { substrings = [\"x\"] }\nscope = { tags = [\"other\"] }\n\n\
             [[rules]]\nid = \"trial\"\nmode = \"shadow\"\nkeywords = { substrings = [\"y\"] }\n\n\
             [[rules]]\nid = \"flood\"\nflood = { messages = 5, per = \"10s\" }\n",
        )
        .unwrap();
        let live = Live::compile(set).unwrap();
        let mut group = GroupConfig::new(GroupRef::new(Platform::Discord, "11"));
        assert!(wanted(&live.rules(), &group).is_empty(), "off by default");
        group.native_filter = true;
        let rules = wanted(&live.rules(), &group);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].0, "groupguard: ads");
        assert_eq!(
            rules[0].1["trigger_metadata"]["keyword_filter"],
            json!(["*代购*", "spam"])
        );
        assert_eq!(rules[0].1["actions"][0]["type"], 1);
    }
}
