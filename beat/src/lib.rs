//! drumbeat's beat: evaluates schedules; only the lease holder publishes due fires.
//!
//! Two or more beats run against the same Redis; exactly one holds the lease and publishes, the
//! others campaign every `renew_every` as hot standbys. The guarantees (docs/design.md §6.1–6.3, §6.10):
//! a leader publishes nothing after its local lease deadline (self-fencing); a schedule's cursor
//! moves only past broker-confirmed fires, only forward, only with the lease token; each fire
//! has a deterministic ID so a fire published twice runs once.
//!
//! # Layout
//! - [`clock`]: the wall-clock seam (tests jump it).
//! - [`lease`]: the Redis lease, its local deadline and the role it implies.
//! - [`renew`]: the lease loop on its own task.
//! - [`cursor`]: token-checked, forward-only, fingerprinted cursors in Redis.
//! - [`book`]: the one owner of cursors in this process (confirmed, stored, owed).
//! - [`catchup`]: the pure catch-up selection (grace, `latest`/`all` caps, skip counts).
//! - [`plan`]: the min-heap of next fires (armed at each fire's [`jitter`]ed publish instant).
//! - [`publish`]: fire IDs, envelopes and pipelined confirmed publishing.
//! - [`link`]: the supervised broker connection.
//! - [`roster`]: every schedule (file, then runtime) by stable index.
//! - [`overlay`]: runtime state (pauses, resume marks, runtime schedules) polled from Redis.
//! - [`ticker`]: the fire loop that ties them together while leading; [`term`] starts a
//!   term, [`apply`] applies a new overlay mid-term, [`send`] publishes one turn's fires,
//!   [`flush`] writes owed cursors, [`skips`] counts and logs skips (catch-up and paused).
//! - [`recorder`]: per-schedule stats (`sent`, `last_fire`, skips) written off the hot path.
//! - [`presence`]: the beat's heartbeat for `ctl list`.
//! - [`api`]: `/api/v1` on the ops server (docs/design.md §10).
//! - [`console`]: the web console at `/` over that API (§11).
//! - [`app`]: builds and runs a [`Beat`].
//! - [`metrics`]: Prometheus counters and `/status`.
//! - [`preview`]: `beat check` / `beat schedules --next N` output.

pub mod api;
pub mod app;
pub mod apply;
pub mod book;
pub mod catchup;
pub mod celery;
pub mod clock;
pub mod console;
pub mod ctl;
pub mod cursor;
pub mod flush;
pub mod jitter;
pub mod lease;
pub mod link;
pub mod metrics;
pub mod migrate;
pub mod overlay;
pub mod plan;
pub mod presence;
pub mod preview;
pub mod publish;
pub mod recorder;
pub mod renew;
pub mod roster;
pub mod send;
pub mod skips;
pub mod term;
#[cfg(test)]
mod testing;
pub mod ticker;

pub use app::{Beat, BeatError};
pub use clock::{Clock, OffsetClock, SystemClock};
pub use lease::Role;
