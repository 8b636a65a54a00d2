//! Store administration from the shell: load a rule file or a large blacklist into the
//! database the bot uses, or export its configuration. The bot picks changes up by itself.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use groupguard_core::compile::CompiledRules;
use groupguard_core::ports::{Clock as _, ConfigStore, Edit, ListStore};
use groupguard_core::rule::{BlacklistEntry, Source};
use groupguard_core::rulefile;
use groupguard_sql::SqlStore;

use crate::clock::SystemClock;
use crate::config::{Config, redact_url};

/// What to do with the store.
#[derive(Debug)]
pub enum Task<'a> {
    /// Replace rules, groups, settings and whitelist with a rule file's (its blacklist added).
    ImportConfig(&'a Path),
    /// Print the stored configuration as a rule file.
    ExportConfig,
    /// Add org-wide blacklist entries from lines of `platform:id [reason]`, all or nothing.
    ImportBlacklist(&'a Path),
}

pub fn run(service_config: Option<&Path>, task: &Task<'_>) -> anyhow::Result<ExitCode> {
    let config = match Config::load(service_config, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(perform(&config, task))
}

async fn perform(config: &Config, task: &Task<'_>) -> anyhow::Result<ExitCode> {
    let url = config.database_url.expose();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let store = SqlStore::open(url)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(url)))?;
    let edit = Edit::new(Source::Import, SystemClock.now());
    match task {
        Task::ImportConfig(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let errors = match rulefile::parse(&text) {
                Ok(set) => match CompiledRules::compile(set.clone()) {
                    Ok(_) => {
                        let (rules, groups, listed) =
                            (set.rules.len(), set.groups.len(), set.blacklist.len());
                        store.replace_config(set, &edit).await?;
                        println!(
                            "imported {rules} rules, {groups} groups and {listed} blacklist entries"
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(errors) => rulefile::locate_config_errors(&text, errors),
                },
                Err(errors) => errors,
            };
            for e in &errors {
                eprintln!("{}:{e}", path.display());
            }
            eprintln!("nothing was imported");
            Ok(ExitCode::FAILURE)
        }
        Task::ExportConfig => {
            print!("{}", rulefile::export(&store.config().await?));
            Ok(ExitCode::SUCCESS)
        }
        Task::ImportBlacklist(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let entries = match BlacklistEntry::parse_lines(&text, edit.at) {
                Ok(entries) => entries,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", path.display());
                    }
                    eprintln!("nothing was imported");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let started = Instant::now();
            let count = store.import_blacklist(entries, &edit).await?;
            println!(
                "imported {count} blacklist entries in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
