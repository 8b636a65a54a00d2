//! A `groupguard run` process for end-to-end tests: its own directory, database and port.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use groupguard_sql::SqlStore;

/// A running bot with its own directory, database and port.
pub struct Bot {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    pub config: String,
    /// Wait for `/readyz` on start (else for `/healthz`).
    pub expect_ready: bool,
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

pub fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Bot {
    /// A bot in `dir`, not started: `top` at the top level, then `sections` (the adapters').
    pub fn new(dir: PathBuf, top: &str, sections: &str) -> Bot {
        let port = free_port();
        let config = format!(
            "data_dir = \"{data}\"\n{top}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[dispatcher]\nlease = \"1s\"\n{sections}\n",
            data = dir.join("data").display(),
        );
        Bot {
            child: None,
            dir,
            port,
            config,
            expect_ready: true,
        }
    }
    pub fn spawn(&mut self) {
        let path = self.dir.join("config.toml");
        std::fs::write(&path, &self.config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_groupguard"))
            .args(["run", "--config", path.to_str().unwrap()])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the bot starts");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&self) {
        let path = if self.expect_ready {
            "/readyz"
        } else {
            "/healthz"
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if http_get(self.port, path).is_some_and(|r| r.split(' ').nth(1) == Some("200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the bot did not become ready:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "the bot exits cleanly on SIGTERM: {status}\n{}",
                self.log()
            );
        }
    }

    pub async fn store(&self) -> SqlStore {
        SqlStore::open(&format!(
            "sqlite://{}",
            self.dir.join("data").join("groupguard.db").display()
        ))
        .await
        .unwrap()
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
