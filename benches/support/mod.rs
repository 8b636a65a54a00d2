//! What the end-to-end benches share: a release `groupguard run` in its own directory, its
//! HTTP endpoints, and how samples are reported. Each bench uses part of it.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The runtime a bench drives the bot from: two workers, like the machines the figures are
/// for.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Whether this is a full run: `cargo bench` passes `--bench`; `cargo test --benches` passes
/// nothing and wants a quick one.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A fresh directory for one bench run.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("groupguard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    dir
}

/// A port nobody listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
}

/// Imports `rules` (a rule file) into the store the bot in `dir` will use.
pub fn import_rules(dir: &Path, database_url: Option<&str>, rules: &str) {
    let path = dir.join("rules.toml");
    std::fs::write(&path, rules).expect("the rules");
    let mut import = Command::new(env!("CARGO_BIN_EXE_groupguard"));
    import
        .args(["config", "import", path.to_str().expect("a path")])
        .env("GROUPGUARD_DATA_DIR", dir.join("data"))
        .env_remove("DATABASE_URL");
    if let Some(url) = database_url {
        import.env("DATABASE_URL", url);
    }
    let output = import.output().expect("the import runs");
    assert!(
        output.status.success(),
        "the import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts `groupguard run` with `config` (written to `dir`), its log in `dir/log`.
pub fn start_bot(dir: &Path, config: &str) -> Child {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("the config");
    Command::new(env!("CARGO_BIN_EXE_groupguard"))
        .args(["run", "--config", path.to_str().expect("a path")])
        .env_remove("DATABASE_URL")
        .stderr(std::fs::File::create(dir.join("log")).expect("a log file"))
        .spawn()
        .expect("the bot starts")
}

/// Stops the bot with SIGTERM and waits for it.
pub fn stop_bot(mut bot: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &bot.id().to_string()])
        .status();
    let _ = bot.wait();
}

/// A GET on the bot's HTTP port; `None` when it does not answer within a few seconds.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Waits until `/readyz` answers 200, up to 30 seconds.
pub fn wait_ready(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if http_get(port, "/readyz").is_some_and(|a| a.split(' ').nth(1) == Some("200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the bot did not become ready (see its log in the bench directory)");
}

/// Prints p50, p99 and the maximum of `samples`.
pub fn percentiles(label: &str, unit: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: {} {unit}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}
