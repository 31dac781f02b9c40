//! The wall clock, behind a seam so schedule and lease logic can be tested with jumped time.
//!
//! Leases and deadlines use the monotonic `tokio::time::Instant` (which `tokio::time::pause`
//! controls); only "what time is it for the schedules" goes through [`Clock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

/// Source of wall-clock time for schedules.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted by an adjustable offset: lets a test jump wall time back or forward
/// by an hour while everything else (Redis TTLs, tokio timers) keeps real time.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock {
    offset_ms: Arc<AtomicI64>,
}

impl OffsetClock {
    /// Moves this clock by `by` (negative goes back).
    pub fn jump(&self, by: ChronoDuration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + ChronoDuration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}
