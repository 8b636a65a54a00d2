//! The `groupguard` command.

mod adapter;
mod admin;
mod clock;
mod config;
mod discord;
mod dispatch;
mod http;
mod matrix;
mod metrics;
mod platforms;
mod run;
mod simulate;
#[cfg(feature = "testing")]
mod testing;
mod wecom;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use groupguard_core::engine::Live;
use groupguard_core::rulefile;

// Each thread allocates from its own heap: the engine never waits on an allocator lock held
// by a task compiling new rules or reading the database (with the system allocator it did,
// for milliseconds, during a large operator's rule change: `docs/PERFORMANCE.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for the process. The allocator asks for them, and then a
/// decision now and then waited 0.3–2 ms while the kernel zeroed a fresh 2 MiB page or split
/// one the allocator gave part of back; with 4 KiB pages the engine bench's slowest call
/// takes about 0.1 ms, and a million tracked members need a sixth less memory. Large random
/// reads (a blacklist hit) get slower by about a tenth. See docs/PERFORMANCE.md.
fn keep_pages_small() {
    // Where the kernel refuses (a sandbox), only the slowest decisions suffer.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// Self-hosted anti-harassment bot for WeCom, Matrix and Discord groups.
#[derive(Debug, Parser)]
#[command(name = "groupguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays a chat log (JSONL) against a rule file and prints every decision and a summary.
    Simulate(SimulateArgs),
    /// Works with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Runs the bot: judges events from the configured platforms and acts on them.
    Run {
        /// The configuration file (TOML); GROUPGUARD_* variables override it.
        #[arg(long, value_name = "FILE", env = "GROUPGUARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Loads or exports the configuration stored in the bot's database.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
        /// The service configuration (where the database is); GROUPGUARD_* variables override it.
        #[arg(long, value_name = "FILE", env = "GROUPGUARD_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Manages the blacklist stored in the bot's database.
    Blacklist {
        #[command(subcommand)]
        command: BlacklistCommand,
        /// The service configuration (where the database is); GROUPGUARD_* variables override it.
        #[arg(long, value_name = "FILE", env = "GROUPGUARD_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Exits 0 when a running bot answers its health check (for container health checks).
    Healthcheck {
        /// The health endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The rule file (TOML).
    #[arg(long, value_name = "FILE")]
    rules: PathBuf,
    /// The chat log: one JSON event per line.
    #[arg(long, value_name = "LOG.jsonl")]
    events: PathBuf,
    /// How to print decisions.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print every event with every rule's outcome, not only violations.
    #[arg(long)]
    all: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable lines and a summary.
    Table,
    /// One JSON object per decision, then a summary object.
    Json,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Replaces rules, groups, settings and whitelist with a rule file's, in one transaction.
    Import {
        /// The rule file (TOML).
        file: PathBuf,
    },
    /// Prints the stored configuration as a rule file.
    Export,
}

#[derive(Debug, Subcommand)]
enum BlacklistCommand {
    /// Adds org-wide entries from a file of `platform:id [reason]` lines, all or nothing.
    Import {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Validates a rule file and reports every problem with its line and column.
    Check {
        /// The rule file (TOML).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    keep_pages_small();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Rules {
            command: RulesCommand::Check { file },
        } => check(&file),
        Command::Run { config } => run::run(config.as_deref()),
        Command::Config {
            command: ConfigCommand::Import { file },
            config,
        } => admin::run(config.as_deref(), &admin::Task::ImportConfig(&file)),
        Command::Config {
            command: ConfigCommand::Export,
            config,
        } => admin::run(config.as_deref(), &admin::Task::ExportConfig),
        Command::Blacklist {
            command: BlacklistCommand::Import { file },
            config,
        } => admin::run(config.as_deref(), &admin::Task::ImportBlacklist(&file)),
        Command::Healthcheck { url } => healthcheck(&url),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and compiles a rule file, printing each problem as `FILE:LINE:COLUMN: message`.
fn load_rules(path: &Path) -> anyhow::Result<Live> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read rule file {}", path.display()))?;
    rulefile::load(&text).map_err(|errors| {
        for e in &errors {
            let location = format!("{}:{}:{}", path.display(), e.line, e.column);
            match &e.path {
                Some(p) => eprintln!("{location}: {p}: {}", e.message),
                None => eprintln!("{location}: {}", e.message),
            }
        }
        anyhow::anyhow!(
            "{} has {} problem{}",
            path.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        )
    })
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let live = load_rules(path)?;
    let rules = live.rules();
    let set = rules.config();
    let keywords: usize = set
        .rules
        .iter()
        .filter_map(|r| r.keywords.as_ref())
        .map(|k| k.substrings.len() + k.words.len())
        .sum();
    println!(
        "{}: ok: {}, {}, {}, {}, {}",
        path.display(),
        count(set.rules.len(), "rule"),
        count(set.groups.len(), "group"),
        count(keywords, "keyword"),
        count(live.blacklist().len(), "blacklist entry"),
        count(set.whitelist.len(), "whitelist entry"),
    );
    Ok(ExitCode::SUCCESS)
}

/// `1 rule`, `2 rules`, `3 entries`.
fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

/// A plain HTTP/1.0 GET: no client library needed for one request to localhost.
fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    use std::io::{Read as _, Write as _};
    let url = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let host = url.host_str().context("the URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let mut stream = std::net::TcpStream::connect((host, port))
        .with_context(|| format!("nothing answers on {host}:{port}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {} HTTP/1.0\r\nHost: {host}\r\n\r\n",
        url.path()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let healthy = response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200");
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
