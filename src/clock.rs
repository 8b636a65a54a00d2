//! The wall clock: read here at the edge; everything else gets the time passed in.

use groupguard_core::ports::Clock;
use groupguard_core::time::{Timestamp, duration_millis};

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(duration_millis(since_epoch))
    }
}
