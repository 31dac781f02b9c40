//! Celery interop, inbound (docs/design.md §12): Celery clients → drumbeat workers.
//!
//! `worker.celery_queues = ["celery"]` makes the worker also consume those queues, declared as
//! Celery 5 declares them (see `drumbeat_common::amqp::Topology::with_celery_queues`). A
//! message there is a Celery protocol v2 (or v1) JSON call (`decode`); its task name selects
//! the handler — one registered with [`WorkerBuilder::celery_task`](crate::WorkerBuilder::celery_task),
//! or a plain one such as the built-in `http` and `log`, which then get the call's keyword
//! arguments as their `args` (and refuse positional ones as `invalid-args`). The Celery task id
//! is the dedup id. An `eta` (a client's `countdown` arrives as one) waits in the delay tiers,
//! never unacked in memory; `expires` is honoured like `expires_at`. Retries and dead letters
//! work as for any queue: tiers route back to the Celery queue, dead letters go to
//! `{ns}.{queue}.dead`. The AMQP `expiration` a Celery client sets is never copied onto a tier
//! or dead-letter publish (it would make them vanish). When the call has a `reply_to` and
//! `ignore_result` is not `true`, the final state is answered like Celery's `rpc://` backend
//! (`reply`); an unknown task is dead-lettered `unknown-task` *and* answered with
//! `NotRegistered`, so an rpc caller does not wait for its timeout.
//!
//! ```no_run
//! use drumbeat_worker::celery::{CeleryTask, NoKwargs};
//! use drumbeat_worker::{TaskError, Worker};
//!
//! #[derive(serde::Deserialize)]
//! struct Greeting {
//!     greeting: String,
//! }
//!
//! # async fn demo(settings: drumbeat_common::Settings) -> anyhow::Result<()> {
//! // Python: app.send_task("tasks.add", args=[2, 3])  →  AsyncResult.get() == 5
//! // Python: app.send_task("tasks.greet", args=["Ada"], kwargs={"greeting": "hi"})
//! let worker = Worker::builder(settings)
//!     .celery_task("tasks.add", |t: CeleryTask<(i64, i64), NoKwargs>| async move {
//!         let (a, b) = t.args;
//!         a.checked_add(b).ok_or_else(|| TaskError::permanent("overflow"))
//!     })
//!     .celery_task("tasks.greet", |t: CeleryTask<(String,), Greeting>| async move {
//!         Ok(format!("{}, {}", t.kwargs.greeting, t.args.0))
//!     })
//!     .build()?;
//! worker.run(drumbeat_common::shutdown::on_signals()).await?;
//! # Ok(()) }
//! ```
//!
//! Arguments arrive as kombu's JSON serializer wrote them: a Python `datetime`, `date`, `time`,
//! `Decimal`, `UUID` or `bytes` argument is a tagged table `{"__type__": "datetime",
//! "__value__": "2026-12-01T10:00:00+00:00"}`, which a handler's types must expect. An `eta`
//! is honoured to within the queue's shortest tier (never early), and each wait in a tier is
//! counted as `deferred`.
//!
//! A handler's `Ok(value)` is recorded done and answered `SUCCESS` with `value` (any
//! `Serialize`); [`TaskError::Retry`](crate::TaskError::Retry) retries through the tiers (no
//! answer until the last attempt); a permanent failure, arguments that do not fit
//! (`TypeError`) or the last failed attempt are answered `FAILURE` — `get()` raises.

pub(crate) mod decode;
mod handler;
pub(crate) mod job;
pub(crate) mod reply;

pub use handler::{
    CeleryFuture, CeleryHandler, CeleryResult, CeleryTask, Kwargs, NoArgs, NoKwargs,
};
pub(crate) use handler::{CeleryMeta, ErasedCelery, ResultSlot, TypedCelery};
