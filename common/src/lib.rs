//! Shared plumbing for drumbeat's `beat` and `worker`.
//!
//! Both processes read the same configuration, speak the same envelope, declare the same AMQP
//! topology and talk to the same Redis, so all of that lives here, once.
//!
//! # Layout
//! - [`config`]: the TOML + environment settings, validated once into domain types.
//! - [`secret`]: URLs whose passwords never reach a log, an error or `--help`.
//! - [`schedule`]: crontab / `every` / `at` triggers with the DST rules of docs/design.md §3.
//! - [`envelope`]: the task message v1 and the dead-letter reasons its decoding maps to.
//! - [`amqp`]: connection supervisor, topology, confirmed publisher.
//! - [`redis`]: one connection (single node, Sentinel or Cluster) with a deadline on every call.
//! - [`keys`]: every Redis key, and the hash tags that keep each script in one cluster slot.
//! - [`audit`]: the capped log of control actions (who did what, when, why).
//! - [`control`]: runtime state of the control plane (pauses, runtime schedules, counters,
//!   last outcomes, presence) in Redis.
//! - [`dlq`]: list, replay and purge dead letters (`worker dlq`, the beat's `/api/v1/dlq`).
//! - [`backoff`]: capped, jittered exponential backoff shared by every reconnect loop.
//! - [`telemetry`], [`metrics`], [`ops`]: logs, Prometheus registry, the ops HTTP endpoint.
//! - [`shutdown`]: SIGINT/SIGTERM turned into one cancellation token.
//! - [`cli`]: the flags both binaries share.

pub mod amqp;
pub mod audit;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod control;
pub mod dlq;
pub mod envelope;
pub mod keys;
pub mod metrics;
pub mod ops;
pub mod redis;
pub mod schedule;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod text;

pub use config::Settings;
pub use envelope::{DeadReason, Envelope};
