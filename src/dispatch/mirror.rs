//! Keeps platforms that mirror the blacklist in step with it: after every change to the
//! running index, and now and then so expiries and failed attempts are made good.

use std::sync::Arc;
use std::time::Duration;

use groupguard_core::model::{MemberRef, Platform};
use groupguard_core::platform::{BlacklistMirror, BlacklistSnapshot};
use groupguard_core::ports::StoreError;
use groupguard_core::rule::{BlacklistEntry, Source};
use tokio::sync::watch;

use super::Shared;

/// How often the index is looked at for a change.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often the platforms are brought in step without a change.
const AGAIN_EVERY: Duration = Duration::from_secs(60);
/// Entries read from the store per page.
const PAGE: u32 = 1_000;

/// Mirrors the blacklist through `mirrors` until `stop`.
pub async fn run(
    shared: Arc<Shared>,
    mirrors: Vec<Arc<dyn BlacklistMirror>>,
    mut stop: watch::Receiver<bool>,
) {
    if mirrors.is_empty() {
        return;
    }
    let mut mirrored = None;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let index = shared.rules.blacklist();
        let changed = mirrored.as_ref().is_none_or(|m| !Arc::ptr_eq(m, &index));
        if !changed && last.elapsed() < AGAIN_EVERY {
            continue;
        }
        last = tokio::time::Instant::now();
        let mut all_done = true;
        for mirror in &mirrors {
            let now = shared.clock.now();
            let own = match own_entries(&shared, mirror.platform()).await {
                Ok(own) => own
                    .into_iter()
                    .filter(|e| {
                        e.expires_at.is_none_or(|t| t > now) && !matches!(e.source, Source::List(_))
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the blacklist to mirror it");
                    all_done = false;
                    continue;
                }
            };
            let snapshot = BlacklistSnapshot {
                own,
                index: Arc::clone(&index),
                now,
            };
            match mirror.mirror(&snapshot).await {
                Ok(in_step) => all_done &= in_step,
                Err(e) => {
                    tracing::warn!(platform = %mirror.platform(), error = %e, "cannot mirror the blacklist; trying again");
                    all_done = false;
                }
            }
        }
        // Not done: the next look tries again.
        mirrored = all_done.then_some(index);
    }
}

/// The platform's org-wide entries, read page by page from where its entries start.
async fn own_entries(
    shared: &Shared,
    platform: Platform,
) -> Result<Vec<BlacklistEntry>, StoreError> {
    let start = MemberRef::new(platform, "");
    let mut entries: Vec<BlacklistEntry> = Vec::new();
    loop {
        let after = entries
            .last()
            .map_or((&start, None), |e| (&e.member, e.owner.as_ref()));
        let page = shared.store.blacklist_page(Some(after), PAGE).await?;
        let full = page.len() == PAGE as usize;
        let before = entries.len();
        entries.extend(
            page.into_iter()
                .take_while(|e| e.member.platform == platform),
        );
        if !full || entries.len() - before < PAGE as usize {
            break;
        }
    }
    entries.retain(|e| e.owner.is_none());
    Ok(entries)
}
