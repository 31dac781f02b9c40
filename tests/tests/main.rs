//! drumbeat's integration tests: one binary (fast linking), real Redis and RabbitMQ,
//! one namespace per test.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod api;
mod beat;
mod celery;
mod common;
mod console;
mod cluster_amqp;
mod ctl;
mod e2e;
mod scheduling;
mod worker;
