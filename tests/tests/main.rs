//! drumbeat's integration tests: one binary (fast linking), real Redis and RabbitMQ,
//! one namespace per test.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod api;
mod beat;
mod celery;
mod cluster;
mod cluster_amqp;
mod common;
mod console;
mod ctl;
mod e2e;
mod overlap;
mod scheduling;
mod security;
mod worker;
