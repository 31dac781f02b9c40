//! The runtime overlay (docs/design.md §10): pauses, resume marks and runtime schedules read
//! from Redis, validated, and published to the fire loop.
//!
//! [`overlay_loop`] polls the one integer `{ns}:ctl:version` and reloads the whole state (one
//! transaction) only when it moved, so 100 000 schedules cost one `GET` per poll. A runtime
//! record is validated through the config's own path; a record that fails, or whose name is a
//! file schedule's, is ignored (the file wins) with one warning per version. On a Redis error
//! the last overlay stays in force and polling backs off (capped); a term's start does not
//! rely on this loop but reads the overlay itself ([`OverlayReader::load`]), so a paused
//! schedule never fires because the poll was behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_common::backoff::Backoff;
use drumbeat_common::config::Schedule;
use drumbeat_common::control::ControlStore;
use drumbeat_common::redis::RedisError;
use drumbeat_common::text::printable;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest pause between polls while Redis fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runtime state as the fire loop applies it.
#[derive(Debug)]
pub struct Overlay {
    /// `{ns}:ctl:version` of the snapshot.
    pub version: u64,
    /// Paused schedule names.
    pub paused: HashSet<String>,
    /// Resume instants, cut to whole seconds (cursors are whole seconds).
    pub resumed: HashMap<String, DateTime<Utc>>,
    /// Valid runtime schedules by name: record version and definition.
    pub runtime: BTreeMap<String, (u64, Arc<Schedule>)>,
    /// Taken before the snapshot was requested and after it arrived: which of two overlays is
    /// newer when their versions cannot tell (a Redis whose version was reset).
    pub read_started: Instant,
    /// See [`Self::read_started`].
    pub read_finished: Instant,
}

impl Overlay {
    /// Whether this overlay should replace `applied`: a higher version, or a different one read
    /// entirely after `applied` was (the version went back: Redis was reset).
    pub fn supersedes(&self, applied: &Overlay) -> bool {
        self.version > applied.version
            || (self.version != applied.version && self.read_started >= applied.read_finished)
    }
}

/// Reads and validates overlays; shared by the poll loop and term starts.
#[derive(Clone)]
pub struct OverlayReader {
    store: ControlStore,
    /// File schedule names: a runtime record with one of them is ignored.
    files: Arc<HashSet<String>>,
    /// Version + 1 whose problems were last logged (0: none yet).
    warned: Arc<AtomicU64>,
}

impl OverlayReader {
    /// A reader for `store`, with the names of the file schedules.
    pub fn new(store: ControlStore, files: HashSet<String>) -> Self {
        Self {
            store,
            files: Arc::new(files),
            warned: Arc::default(),
        }
    }

    /// `{ns}:ctl:version`.
    pub async fn version(&self) -> Result<u64, RedisError> {
        self.store.version().await
    }

    /// Loads the whole overlay fresh from Redis.
    pub async fn load(&self) -> Result<Overlay, RedisError> {
        let read_started = Instant::now();
        let snap = self.store.snapshot().await?;
        let read_finished = Instant::now();
        let warn = self.warned.swap(snap.version + 1, Ordering::SeqCst) != snap.version + 1;
        let mut runtime = BTreeMap::new();
        for (name, record) in snap.schedules {
            let shown = printable(&name, 100);
            if self.files.contains(&name) {
                if warn {
                    tracing::warn!(schedule = %shown, "runtime schedule has a file schedule's name; the file wins");
                }
                continue;
            }
            match Schedule::from_json(&format!("ctl.schedules.{name}"), &record.spec) {
                Ok(s) if s.name == name => {
                    runtime.insert(name, (record.version, Arc::new(s)));
                }
                Ok(_) => {
                    if warn {
                        tracing::warn!(schedule = %shown, "runtime schedule record names another schedule; ignored");
                    }
                }
                Err(e) => {
                    if warn {
                        tracing::warn!(schedule = %shown, error = %e, "invalid runtime schedule record; ignored");
                    }
                }
            }
        }
        let resumed = snap
            .resumed
            .into_iter()
            .filter_map(|(n, t)| DateTime::from_timestamp(t.timestamp(), 0).map(|t| (n, t)))
            .collect();
        Ok(Overlay {
            version: snap.version,
            paused: snap.paused.into_keys().collect(),
            resumed,
            runtime,
            read_started,
            read_finished,
        })
    }
}

/// How often the leader polls the version: twice per `renew_every`, at least once a second, so
/// a change is applied within one `renew_every`.
pub fn poll_every(renew_every: Duration) -> Duration {
    (renew_every / 2).min(Duration::from_secs(1))
}

/// Polls every `every` until `stop`, publishing each new overlay to `tx`.
pub async fn overlay_loop(
    reader: OverlayReader,
    every: Duration,
    tx: watch::Sender<Option<Arc<Overlay>>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(every, MAX_BACKOFF.max(every));
    let mut have: Option<u64> = None;
    loop {
        let round = async {
            let v = reader.version().await?;
            if have == Some(v) {
                return Ok(None);
            }
            reader.load().await.map(Some)
        };
        let wait = tokio::select! {
            _ = stop.cancelled() => return,
            r = round => match r {
                Ok(got) => {
                    if backoff.failures() > 0 {
                        tracing::info!("runtime state readable again");
                        backoff.reset();
                    }
                    if let Some(o) = got {
                        have = Some(o.version);
                        tx.send_replace(Some(Arc::new(o)));
                    }
                    every
                }
                Err(e) => {
                    if backoff.failures() == 0 {
                        tracing::warn!(error = %e, "reading runtime state failed; keeping the last one and retrying");
                    }
                    backoff.next_delay()
                }
            },
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(version: u64, started: Instant, finished: Instant) -> Overlay {
        Overlay {
            version,
            paused: HashSet::new(),
            resumed: HashMap::new(),
            runtime: BTreeMap::new(),
            read_started: started,
            read_finished: finished,
        }
    }

    #[test]
    fn a_newer_version_or_a_later_read_of_a_reset_one_supersedes() {
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        let applied = overlay(7, t(0), t(10));
        assert!(overlay(8, t(0), t(5)).supersedes(&applied));
        assert!(!overlay(7, t(20), t(30)).supersedes(&applied));
        assert!(!overlay(6, t(5), t(30)).supersedes(&applied), "older read");
        assert!(overlay(0, t(20), t(30)).supersedes(&applied), "reset Redis");
    }

    #[test]
    fn polls_twice_per_renew_at_most_a_second_apart() {
        assert_eq!(
            poll_every(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(poll_every(Duration::from_secs(10)), Duration::from_secs(1));
    }
}
