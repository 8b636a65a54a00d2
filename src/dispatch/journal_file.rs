//! The inbound journal on disk: events the platforms handed over and may now forget (a WeCom
//! callback answered, a Matrix sync position advanced), kept until their decisions are
//! stored, so a crash in between loses none of them.
//!
//! Segment files of JSON lines in `data_dir/journal`, appended to and synced before an
//! append returns. An event leaves the journal when it is released (its decision stored, or
//! dropped as a redelivery); a segment file is deleted once every event in it has left.
//! Opening the journal reads back the events of the segments still there, in the order they
//! came: those not released, and released ones whose segment was not deleted yet (releases are
//! not written down: the caller skips the events its store has recorded). A line
//! that cannot be read (written by another version) is moved to `unreadable.jsonl` for the
//! operator; a torn last line (the process died mid-append, before the append returned, so
//! no platform was told the event was taken) is dropped.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use groupguard_core::model::{Event, Platform};

/// A segment is closed for appends past this size.
const SEGMENT_BYTES: u64 = 16 << 20;

/// Where lines that cannot be read are kept.
const UNREADABLE: &str = "unreadable.jsonl";

/// An event's key: its platform and id (what redelivery is recognised by).
pub type EventKey = (Platform, String);

/// `event`'s key.
pub fn key_of(event: &Event) -> EventKey {
    (event.platform, event.id.to_string())
}

/// A journal that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("the inbound journal in {dir}: {source}")]
pub struct JournalError {
    dir: PathBuf,
    source: std::io::Error,
}

/// The journal; cheap to clone, one writer at a time.
#[derive(Debug, Clone)]
pub struct FileJournal {
    dir: Arc<PathBuf>,
    state: Arc<Mutex<State>>,
    /// Held locked while the journal is open: two processes must not share it.
    _lock: Arc<File>,
}

#[derive(Debug)]
struct State {
    active: File,
    active_number: u64,
    active_bytes: u64,
    /// The segment holding each unreleased event's latest copy.
    pending: HashMap<EventKey, u64>,
    /// Unreleased events per segment.
    live: BTreeMap<u64, usize>,
}

impl State {
    /// Counts `key` in `segment`; a copy kept earlier no longer holds its segment open.
    fn keep(&mut self, key: EventKey, segment: u64) -> Option<u64> {
        *self.live.entry(segment).or_default() += 1;
        let earlier = self.pending.insert(key, segment)?;
        self.leave(earlier)
    }

    /// One event left `segment`: the segment, when it is now empty and closed.
    fn leave(&mut self, segment: u64) -> Option<u64> {
        let count = self.live.get_mut(&segment)?;
        *count -= 1;
        if *count == 0 && segment != self.active_number {
            self.live.remove(&segment);
            return Some(segment);
        }
        None
    }
}

impl FileJournal {
    /// Opens the journal in `dir` (created when missing) and returns the events its segments
    /// hold, once each, in the order they came: every event not released, and possibly some
    /// released ones (releases are not written down; their decisions are in the store).
    pub fn open(dir: &Path) -> Result<(FileJournal, Vec<Event>), JournalError> {
        let failed = |source| JournalError {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(failed)?;
        let lock = File::create(dir.join("lock")).map_err(failed)?;
        lock.try_lock().map_err(|e| {
            failed(match e {
                fs::TryLockError::WouldBlock => {
                    std::io::Error::other("in use by another groupguard process")
                }
                fs::TryLockError::Error(e) => e,
            })
        })?;
        let mut numbers = Vec::new();
        for entry in fs::read_dir(dir).map_err(failed)? {
            let name = entry.map_err(failed)?.file_name();
            if let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        let active_number = numbers.last().map_or(1, |last| last + 1);
        let mut state = State {
            active: create_segment(dir, active_number).map_err(failed)?,
            active_number,
            active_bytes: 0,
            pending: HashMap::new(),
            live: BTreeMap::new(),
        };
        let mut events = Vec::new();
        let mut empty = Vec::new();
        for number in numbers {
            for event in read_segment(dir, number).map_err(failed)? {
                let key = key_of(&event);
                let first_copy = !state.pending.contains_key(&key);
                empty.extend(state.keep(key, number));
                if first_copy {
                    events.push(event);
                }
            }
            if !state.live.contains_key(&number) {
                empty.push(number);
            }
        }
        let journal = FileJournal {
            dir: Arc::new(dir.to_owned()),
            state: Arc::new(Mutex::new(state)),
            _lock: Arc::new(lock),
        };
        journal.remove(&empty).map_err(failed)?;
        Ok((journal, events))
    }

    /// Appends `events` and syncs them to disk: once this returns they survive a crash.
    pub async fn append(&self, events: &[Event]) -> Result<(), JournalError> {
        let mut lines = Vec::with_capacity(events.len() * 256);
        let mut keys = Vec::with_capacity(events.len());
        for event in events {
            serde_json::to_writer(&mut lines, event).map_err(|e| self.failed(e.into()))?;
            lines.push(b'\n');
            keys.push(key_of(event));
        }
        let journal = self.clone();
        tokio::task::spawn_blocking(move || journal.append_lines(&lines, keys))
            .await
            .map_err(|e| self.failed(std::io::Error::other(e)))?
    }

    fn append_lines(&self, lines: &[u8], keys: Vec<EventKey>) -> Result<(), JournalError> {
        let mut state = self.lock();
        let written = state
            .active
            .write_all(lines)
            .and_then(|()| state.active.sync_data());
        if let Err(e) = written {
            // Whatever part was written is a torn line for the next start to drop; a
            // fresh segment takes the next append.
            self.rotate(&mut state)?;
            return Err(self.failed(e));
        }
        state.active_bytes += lines.len() as u64;
        let segment = state.active_number;
        let mut empty = Vec::new();
        for key in keys {
            empty.extend(state.keep(key, segment));
        }
        if state.active_bytes >= SEGMENT_BYTES {
            self.rotate(&mut state)?;
        }
        drop(state);
        self.remove(&empty).map_err(|e| self.failed(e))
    }

    /// Starts the next segment; the one before is deleted when nothing in it is pending.
    fn rotate(&self, state: &mut State) -> Result<(), JournalError> {
        let closed = state.active_number;
        state.active = create_segment(&self.dir, closed + 1).map_err(|e| self.failed(e))?;
        state.active_number = closed + 1;
        state.active_bytes = 0;
        if state.live.get(&closed).is_none_or(|count| *count == 0) {
            state.live.remove(&closed);
            self.remove(&[closed]).map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    /// Events that left: their decisions are stored, or they were redeliveries.
    pub fn release(&self, keys: &[EventKey]) -> Result<(), JournalError> {
        let mut state = self.lock();
        let mut empty = Vec::new();
        for key in keys {
            if let Some(segment) = state.pending.remove(key) {
                empty.extend(state.leave(segment));
            }
        }
        drop(state);
        self.remove(&empty).map_err(|e| self.failed(e))
    }

    /// How many events are kept and not released.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// At shutdown: with nothing pending, no segment is left to read at the next start.
    pub fn close(&self) -> Result<(), JournalError> {
        let state = self.lock();
        if !state.pending.is_empty() {
            return Ok(());
        }
        let mut segments: Vec<u64> = state.live.keys().copied().collect();
        segments.push(state.active_number);
        drop(state);
        self.remove(&segments).map_err(|e| self.failed(e))
    }

    fn remove(&self, segments: &[u64]) -> std::io::Result<()> {
        for number in segments {
            match fs::remove_file(segment_path(&self.dir, *number)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic mid-update leaves counts that at worst keep a segment one start longer.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, source: std::io::Error) -> JournalError {
        JournalError {
            dir: self.dir.as_ref().clone(),
            source,
        }
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.jsonl"))
}

/// A new, empty segment; the directory is synced so the file itself survives a power loss.
fn create_segment(dir: &Path, number: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, number))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// The events of a segment; lines that cannot be read go to `unreadable.jsonl`, a torn last
/// line is dropped.
fn read_segment(dir: &Path, number: u64) -> std::io::Result<Vec<Event>> {
    let path = segment_path(dir, number);
    let mut reader = BufReader::new(File::open(&path)?);
    let mut events = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            tracing::warn!(segment = %path.display(), "an append cut short by a crash is dropped (it was never acknowledged)");
            break;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) => events.push(event),
            Err(e) => {
                tracing::error!(
                    error = %e, segment = %path.display(),
                    "an entry of the inbound journal cannot be read; it is kept in {UNREADABLE}"
                );
                let mut aside = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(UNREADABLE))?;
                aside.write_all(&line)?;
                aside.sync_data()?;
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupguard_core::testing::{EventFactory, member};

    fn segments(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".jsonl") && n != UNREADABLE)
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn events_not_released_come_back_in_order_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut factory = EventFactory::new(Platform::WeCom, "g1");
        let events: Vec<Event> = (0..4)
            .map(|i| factory.text(&member("a"), &format!("message {i}")))
            .collect();
        let (journal, replayed) = FileJournal::open(dir.path()).unwrap();
        assert!(replayed.is_empty());
        journal.append(&events[..3]).await.unwrap();
        // A redelivery of the first while it is pending is kept once.
        journal
            .append(&[events[0].clone(), events[3].clone()])
            .await
            .unwrap();
        journal.release(&[key_of(&events[1])]).unwrap();
        assert_eq!(journal.pending(), 3);
        // Crash: no close. The released event's segment is still there: it comes back too.
        drop(journal);
        let (journal, replayed) = FileJournal::open(dir.path()).unwrap();
        assert_eq!(replayed, events, "in order, the repeat once");
        assert_eq!(journal.pending(), 4);
        journal
            .release(&events.iter().map(key_of).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(
            segments(dir.path()).len(),
            1,
            "the segment read back is deleted once its events left; the new one stays open"
        );
        journal.close().unwrap();
        assert!(segments(dir.path()).is_empty());
        drop(journal);
        let (_, replayed) = FileJournal::open(dir.path()).unwrap();
        assert!(replayed.is_empty());
    }

    #[tokio::test]
    async fn a_full_segment_is_deleted_once_its_events_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = FileJournal::open(dir.path()).unwrap();
        let mut factory = EventFactory::new(Platform::Matrix, "!room");
        let big = "x".repeat(64 * 1024);
        let events: Vec<Event> = (0..300)
            .map(|_| factory.text(&member("@a:hs"), &big))
            .collect();
        let ids = |events: &[Event]| events.iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
        for pair in events.chunks(2) {
            journal.append(pair).await.unwrap();
        }
        let open = segments(dir.path());
        assert!(open.len() >= 2, "segments rotate: {open:?}");
        let keys: Vec<EventKey> = events.iter().map(key_of).collect();
        journal.release(&keys[..keys.len() - 1]).unwrap();
        assert_eq!(
            segments(dir.path()),
            [open.last().unwrap().clone()],
            "only the segment holding the last event is left"
        );
        drop(journal);
        let (_, replayed) = FileJournal::open(dir.path()).unwrap();
        let last_segment = 300 - replayed.len();
        assert!(replayed.len() < 300 / 2, "{} read back", replayed.len());
        assert_eq!(
            ids(&replayed),
            ids(&events[last_segment..]),
            "the last segment's events only"
        );
    }

    #[test]
    fn a_journal_is_used_by_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = FileJournal::open(dir.path()).unwrap();
        let second = FileJournal::open(dir.path()).unwrap_err();
        assert!(
            second
                .to_string()
                .contains("in use by another groupguard process"),
            "{second}"
        );
        drop(journal);
        FileJournal::open(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn an_unreadable_line_is_set_aside_and_a_torn_append_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = FileJournal::open(dir.path()).unwrap();
        let mut factory = EventFactory::new(Platform::Discord, "1");
        let first = factory.text(&member("7"), "one");
        let second = factory.text(&member("7"), "two");
        journal.append(std::slice::from_ref(&first)).await.unwrap();
        drop(journal);
        let segment = dir.path().join(&segments(dir.path())[0]);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(b"{\"written by\": \"another version\"}\n")
            .unwrap();
        let mut line = serde_json::to_vec(&second).unwrap();
        line.push(b'\n');
        file.write_all(&line).unwrap();
        file.write_all(b"{\"torn").unwrap();
        drop(file);
        let (journal, replayed) = FileJournal::open(dir.path()).unwrap();
        assert_eq!(replayed, [first.clone(), second.clone()]);
        assert_eq!(
            fs::read_to_string(dir.path().join(UNREADABLE)).unwrap(),
            "{\"written by\": \"another version\"}\n"
        );
        journal.release(&[key_of(&first), key_of(&second)]).unwrap();
        journal.close().unwrap();
        assert!(segments(dir.path()).is_empty());
    }
}
