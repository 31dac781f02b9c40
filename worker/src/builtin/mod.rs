//! The tasks the `worker` binary ships with (docs/design.md §7): `http` and `log`.

pub mod http;
pub mod log;

use crate::worker::WorkerBuilder;

/// Registers `http` and `log` on `builder`.
pub fn register(builder: WorkerBuilder) -> WorkerBuilder {
    let http = http::HttpTask::new();
    builder
        .task("http", move |task| http.call(task))
        .task("log", log::run)
}
