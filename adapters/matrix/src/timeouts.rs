//! Timeouts on Matrix: the member's power level goes below the room's `events_default`, so
//! the homeserver refuses their messages, and comes back when the timeout ends. What to
//! restore is written to the data directory before the level is lowered, so neither a
//! restart nor a crash forgets to give it back.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One member muted in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Muted {
    /// The room id.
    pub room: String,
    /// The user id.
    pub user: String,
    /// Their level before, when the power levels named them (else the room's default).
    pub previous: Option<i64>,
    /// When the timeout ends, epoch milliseconds.
    pub until: i64,
}

/// The timeouts in force, kept in a file.
#[derive(Debug)]
pub struct Timeouts {
    path: PathBuf,
    entries: Mutex<Vec<Muted>>,
}

impl Timeouts {
    /// The timeouts saved at `path` (none when the file does not exist yet).
    pub fn load(path: PathBuf) -> Timeouts {
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "the timeouts file is unreadable; muted members must be restored by hand");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Timeouts {
            path,
            entries: Mutex::new(entries),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Muted>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a timeout before it takes effect. A member already muted keeps the level
    /// saved first (a retried or repeated timeout must not save the muted level), and the
    /// later end wins.
    pub fn add(&self, muted: Muted) -> std::io::Result<()> {
        let mut entries = self.lock();
        match entries
            .iter_mut()
            .find(|m| m.room == muted.room && m.user == muted.user)
        {
            Some(existing) => existing.until = existing.until.max(muted.until),
            None => entries.push(muted),
        }
        self.save(&entries)
    }

    /// The timeouts that have ended at `now`.
    pub fn due(&self, now: i64) -> Vec<Muted> {
        self.lock()
            .iter()
            .filter(|m| m.until <= now)
            .cloned()
            .collect()
    }

    /// Forgets a timeout whose level was given back.
    pub fn remove(&self, room: &str, user: &str) -> std::io::Result<()> {
        let mut entries = self.lock();
        entries.retain(|m| !(m.room == room && m.user == user));
        self.save(&entries)
    }

    fn save(&self, entries: &[Muted]) -> std::io::Result<()> {
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, serde_json::to_string(entries)?)?;
        std::fs::rename(&temp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_survive_a_restart_and_a_repeat_keeps_the_first_level() {
        let dir = std::env::temp_dir().join(format!("gg-timeouts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("timeouts.json");
        let _ = std::fs::remove_file(&path);
        let timeouts = Timeouts::load(path.clone());
        let muted = |previous, until| Muted {
            room: "!r:x".to_owned(),
            user: "@eve:x".to_owned(),
            previous,
            until,
        };
        timeouts.add(muted(Some(10), 1_000)).unwrap();
        timeouts.add(muted(Some(-1), 5_000)).unwrap();
        let reloaded = Timeouts::load(path);
        assert_eq!(reloaded.due(4_999), []);
        assert_eq!(reloaded.due(5_000), [muted(Some(10), 5_000)]);
        reloaded.remove("!r:x", "@eve:x").unwrap();
        assert_eq!(reloaded.due(i64::MAX), []);
    }
}
