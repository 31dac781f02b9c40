//! Worker tests: real Redis and RabbitMQ, one namespace each; process faults use the real binary.

mod alarm;
mod bad_input;
mod blocking;
mod cancelled;
mod claim_retry;
mod client;
mod control;
mod crash_loop;
mod deadline;
mod dedup;
mod dlq;
mod drain_record;
mod http;
mod legacy;
mod library;
mod outage;
mod outcome_publish;
pub(crate) mod process;
pub(crate) mod support;
