//! groupguard-core: the platform-neutral heart of groupguard.
//!
//! Adapters turn platform payloads into [`model::Event`]s; the [`engine::Engine`] turns each
//! event into a [`verdict::Verdict`] that says, for every rule, whether it matched, did not,
//! or was skipped and why, and which actions to take. The engine does no I/O and reads no
//! clock: the caller passes `now`, so the same events always give the same decisions, which
//! is what makes `simulate`, shadow mode and `why` trustworthy.

#![warn(missing_docs)]

mod bloom;
pub mod command;
pub mod compile;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod delivery;
pub mod detect;
pub mod engine;
pub mod eventlog;
pub mod export;
mod keys;
pub mod lists;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod model;
pub mod names;
pub mod native;
pub mod normalize;
pub mod platform;
pub mod ports;
mod prefetch;
pub mod raid;
pub mod reply;
pub mod rule;
pub mod rulefile;
pub mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod verdict;
