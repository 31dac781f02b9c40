//! What a task handler is: a function from a typed [`Task`] to a [`TaskResult`].
//!
//! Handlers are plain async closures (`|task: Task<MyArgs>| async move { .. }`); their argument
//! type is read from the envelope's `args` with serde *before* anything is claimed or run, so a
//! message whose args do not fit goes straight to the dead letters as `invalid-args` instead of
//! burning retries on an error that can never heal.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;

/// One run of a task, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Task<A> {
    /// Dedup ID from the envelope; stable across retries and redeliveries, so handlers can use
    /// it as an idempotency key towards other systems.
    pub id: String,
    /// Registered task name.
    pub name: String,
    /// Queue (without namespace) the task came from.
    pub queue: String,
    /// 1-based attempt number; retries count up, redeliveries after a crash do not.
    pub attempt: u32,
    /// The task input, deserialised from the envelope's `args`.
    pub args: A,
    /// Schedule that produced this fire, when the beat sent it.
    pub schedule: Option<String>,
    /// Fire time (RFC 3339), when the beat sent it.
    pub fire_time: Option<String>,
}

/// How a run failed; anything else is `Ok(())`, which means done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// Worth trying again: the worker republishes it to a delay tier (at least `after`, when
    /// given, capped at the queue's `backoff_max`) until `max_attempts` is reached.
    #[error("retryable: {message}")]
    Retry {
        /// Wanted delay before the next attempt; `None` uses the exponential backoff.
        after: Option<Duration>,
        /// Why; goes to the log and, at the last attempt, to `x-drumbeat-error`.
        message: String,
    },
    /// Will never succeed: dead-lettered at once with reason `rejected`.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl TaskError {
    /// A retryable failure using the queue's backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Retry {
            after: None,
            message: message.into(),
        }
    }

    /// A retryable failure that should wait at least `after`.
    pub fn retry_after(after: Duration, message: impl Into<String>) -> Self {
        Self::Retry {
            after: Some(after),
            message: message.into(),
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }
}

/// What a handler returns.
pub type TaskResult = Result<(), TaskError>;

/// A boxed, sendable handler future.
pub type BoxFuture = Pin<Box<dyn Future<Output = TaskResult> + Send + 'static>>;

/// A task handler taking args of type `A`. Implemented for every
/// `Fn(Task<A>) -> impl Future<Output = TaskResult>`; implement it yourself for handler structs.
pub trait Handler<A>: Send + Sync + 'static {
    /// Runs one attempt.
    fn call(&self, task: Task<A>) -> BoxFuture;
}

impl<A, F, Fut> Handler<A> for F
where
    F: Fn(Task<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    fn call(&self, task: Task<A>) -> BoxFuture {
        Box::pin(self(task))
    }
}

/// Envelope fields every handler gets, before the args are typed.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub id: String,
    pub name: String,
    pub queue: String,
    pub attempt: u32,
    pub schedule: Option<String>,
    pub fire_time: Option<String>,
}

/// A handler with its argument type erased, as the registry stores it.
pub(crate) trait Erased: Send + Sync + 'static {
    /// Types the args and returns the run, or why the args do not fit.
    fn prepare(&self, meta: Meta, args: serde_json::Value) -> Result<BoxFuture, serde_json::Error>;
}

/// Adapts a typed [`Handler`] to [`Erased`].
pub(crate) struct Typed<A, H> {
    handler: H,
    _args: PhantomData<fn() -> A>,
}

impl<A, H> Typed<A, H> {
    pub(crate) fn new(handler: H) -> Self {
        Self {
            handler,
            _args: PhantomData,
        }
    }
}

impl<A, H> Erased for Typed<A, H>
where
    A: DeserializeOwned + Send + 'static,
    H: Handler<A>,
{
    fn prepare(&self, meta: Meta, args: serde_json::Value) -> Result<BoxFuture, serde_json::Error> {
        let args: A = serde_json::from_value(args)?;
        Ok(self.handler.call(Task {
            id: meta.id,
            name: meta.name,
            queue: meta.queue,
            attempt: meta.attempt,
            args,
            schedule: meta.schedule,
            fire_time: meta.fire_time,
        }))
    }
}
