//! The beat against real Redis and RabbitMQ, as real processes with injected faults.

mod catch_up;
mod control;
mod cursor_retry;
mod failover;
mod first_term;
mod lease_retry;
mod lease_steal;
mod ledger;
mod outage;
mod race;
pub(crate) mod support;
mod trigger_change;
mod unroutable;
