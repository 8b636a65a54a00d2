//! Start-up: the stored configuration compiled, and the blacklist indexed as it is read.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::{CommandError, compile};
use crate::engine::Live;
use crate::lists::{BlacklistBuilder, BlacklistIndex, IndexedEntry};
use crate::model::{MemberRef, UserId};
use crate::ports::{Store, StoreError};

/// Entries per page read.
const PAGE: u32 = 10_000;

/// Runs of a long blacklist read at once. The database takes about ten times as long to
/// hand a page over as indexing it does, so two runs keep two cores busy, which is what
/// every deployment has.
const RUNS: u32 = 2;

/// Compiles the stored configuration, and indexes the blacklist page by page: a few pages
/// of entries at most are in memory at a time.
pub async fn load_rules(store: &dyn Store) -> Result<Live, CommandError> {
    let revision = store.revision().await?;
    let rules = compile(store.config().await?)?.at_revision(revision);
    let first = store.blacklist_index_page(None, PAGE).await?;
    let splits = if first.len() == PAGE as usize {
        store.blacklist_splits(RUNS).await?
    } else {
        Vec::new()
    };
    let blacklist = read_blacklist(store, first, splits).await?;
    Ok(Live::new(rules, blacklist))
}

/// An entry's key: member and owner.
type Key = (MemberRef, Option<UserId>);

type PageRead<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<IndexedEntry>, StoreError>> + Send + 'a>>;

/// One run of the list: from after the previous run's last key to its own.
struct Run<'a> {
    /// The key this run ends with; none for the last run.
    until: Option<Key>,
    page: PageState<'a>,
}

impl Run<'_> {
    /// Moves the read on; a page that has arrived waits as `Read`.
    fn poll(&mut self, cx: &mut std::task::Context<'_>) {
        if let PageState::Reading(read) = &mut self.page
            && let Poll::Ready(page) = read.as_mut().poll(cx)
        {
            self.page = PageState::Read(page);
        }
    }
}

enum PageState<'a> {
    Reading(PageRead<'a>),
    Read(Result<Vec<IndexedEntry>, StoreError>),
    Done,
}

fn read_after(store: &dyn Store, after: Option<Key>) -> PageRead<'_> {
    Box::pin(async move {
        let after = after
            .as_ref()
            .map(|(member, owner)| (member, owner.as_ref()));
        store.blacklist_index_page(after, PAGE).await
    })
}

/// Indexes the list whose first page is `first`, reading the runs that `splits` end at once.
/// A run ends at the entry with its split key; should that entry be gone meanwhile, the run
/// reads on to the end and the entries read twice are indexed once.
async fn read_blacklist(
    store: &dyn Store,
    first: Vec<IndexedEntry>,
    splits: Vec<Key>,
) -> Result<BlacklistIndex, StoreError> {
    let mut runs: Vec<Run<'_>> = Vec::with_capacity(splits.len() + 1);
    let mut first = Some(first);
    let mut after: Option<Key> = None;
    for until in splits.into_iter().map(Some).chain([None]) {
        let page = match first.take() {
            Some(page) => PageState::Read(Ok(page)),
            None => PageState::Reading(read_after(store, after.clone())),
        };
        after.clone_from(&until);
        runs.push(Run { until, page });
    }
    let mut index = BlacklistBuilder::default();
    while let Some((run, page)) = next_page(&mut runs).await {
        let mut page = page?;
        let full = page.len() == PAGE as usize;
        let run = &mut runs[run];
        let end = run.until.as_ref().and_then(|(member, owner)| {
            page.iter()
                .position(|e| e.member == *member && e.meta.owner == *owner)
        });
        if let Some(end) = end {
            page.truncate(end + 1);
        }
        run.page = match page.last() {
            Some(last) if full && end.is_none() => PageState::Reading(read_after(
                store,
                Some((last.member.clone(), last.meta.owner.clone())),
            )),
            _ => PageState::Done,
        };
        // Reads are polled between chunks of this page, so each is asked of the database
        // at once, and the database reads while this page is indexed.
        for chunk in page.chunks(PAGE as usize / 16) {
            chunk.iter().for_each(|e| index.add_indexed(e));
            std::future::poll_fn(|cx| {
                runs.iter_mut().for_each(|run| run.poll(cx));
                Poll::Ready(())
            })
            .await;
        }
    }
    Ok(index.finish())
}

/// The next page read, and the run it belongs to; none when every run is done.
async fn next_page(runs: &mut [Run<'_>]) -> Option<(usize, Result<Vec<IndexedEntry>, StoreError>)> {
    std::future::poll_fn(|cx| {
        runs.iter_mut().for_each(|run| run.poll(cx));
        if let Some(at) = runs
            .iter()
            .position(|run| matches!(run.page, PageState::Read(_)))
            && let PageState::Read(page) = std::mem::replace(&mut runs[at].page, PageState::Done)
        {
            return Poll::Ready(Some((at, page)));
        }
        if runs
            .iter()
            .any(|run| matches!(run.page, PageState::Reading(_)))
        {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::model::Platform;
    use crate::ports::{Edit, ListStore};
    use crate::rule::{BlacklistEntry, Source};
    use crate::time::Timestamp;

    fn entry(i: usize) -> BlacklistEntry {
        BlacklistEntry {
            member: MemberRef::new(Platform::WeCom, format!("wm{i:06}")),
            owner: i.is_multiple_of(7).then(|| UserId::from("owner")),
            reason: format!("batch {}", i % 3),
            source: Source::Import,
            created_at: Timestamp(0),
            expires_at: None,
        }
    }

    async fn store_of(n: usize) -> MemoryStore {
        let store = MemoryStore::new();
        let edit = Edit::new(Source::Import, Timestamp(0));
        let entries = (0..n).map(entry).collect();
        store.import_blacklist(entries, &edit).await.unwrap();
        store
    }

    fn assert_indexes_all(index: &BlacklistIndex, n: usize) {
        assert_eq!(index.len(), n);
        for i in (0..n).step_by(97).chain([n - 1]) {
            let e = entry(i);
            let found = index.entry(&e.member, e.owner.as_ref());
            assert_eq!(found.map(|m| &*m.reason), Some(e.reason.as_str()), "{i}");
        }
    }

    #[tokio::test]
    async fn a_long_list_is_read_in_runs_at_once() {
        let store = store_of(35_000).await;
        let splits = store.blacklist_splits(3).await.unwrap();
        assert_eq!(splits.len(), 2);
        let first = store.blacklist_index_page(None, PAGE).await.unwrap();
        let index = read_blacklist(&store, first, splits).await.unwrap();
        assert_indexes_all(&index, 35_000);
        // A split inside the first page ends the first run there.
        let splits = vec![(entry(4_000).member, entry(4_000).owner)];
        let first = store.blacklist_index_page(None, PAGE).await.unwrap();
        let index = read_blacklist(&store, first, splits).await.unwrap();
        assert_indexes_all(&index, 35_000);
    }

    #[tokio::test]
    async fn a_run_whose_last_entry_went_away_reads_on() {
        let store = store_of(25_000).await;
        // No entry has this key: the first run reads to the end, over the second's entries.
        let gone = (MemberRef::new(Platform::WeCom, "wm012000x"), None);
        let first = store.blacklist_index_page(None, PAGE).await.unwrap();
        let index = read_blacklist(&store, first, vec![gone]).await.unwrap();
        assert_indexes_all(&index, 25_000);
    }
}
