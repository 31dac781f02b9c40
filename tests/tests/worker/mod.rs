//! Worker tests: real Redis and RabbitMQ, one namespace each; process faults use the real binary.

mod bad_input;
mod dedup;
mod http;
mod library;
mod process;
mod support;
