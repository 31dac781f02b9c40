//! Worker tests: real Redis and RabbitMQ, one namespace each; process faults use the real binary.

mod alarm;
mod bad_input;
mod cancelled;
mod client;
mod deadline;
mod dedup;
mod http;
mod legacy;
mod library;
mod outage;
mod process;
mod support;
