//! The typed API for Rust handlers registered under Celery task names.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::handler::{BoxFuture, TaskError};

/// One run of a Celery task call, as a handler sees it: positional arguments typed as `A`
/// (from the call's `args` array: a tuple such as `(i64, String)`, a `Vec<T>`, [`NoArgs`]),
/// keyword arguments typed as `K` (from `kwargs`: a struct, a map, [`NoKwargs`], [`Kwargs`]).
#[derive(Debug, Clone)]
pub struct CeleryTask<A, K = Kwargs> {
    /// The Celery task id: the dedup id, stable across retries and redeliveries.
    pub id: String,
    /// The Celery task name it was registered under.
    pub name: String,
    /// The Celery queue it came from.
    pub queue: String,
    /// drumbeat's 1-based attempt number.
    pub attempt: u32,
    /// Celery's `retries` field as the client sent it.
    pub retries: u32,
    /// Positional arguments.
    pub args: A,
    /// Keyword arguments.
    pub kwargs: K,
}

/// Keyword arguments kept as they came.
pub type Kwargs = Map<String, Value>;

/// What a Celery handler returns: its result (sent to an `rpc://` caller as `SUCCESS`) or how
/// it failed.
pub type CeleryResult<R> = Result<R, TaskError>;

/// No positional arguments: anything but an empty `args` is `invalid-args`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoArgs;

/// No keyword arguments: anything but an empty `kwargs` is `invalid-args`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoKwargs {}

impl<'de> Deserialize<'de> for NoArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Empty;
        impl<'de> Visitor<'de> for Empty {
            type Value = NoArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("no positional arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<NoArgs, S::Error> {
                match seq.next_element::<IgnoredAny>()? {
                    None => Ok(NoArgs),
                    Some(_) => Err(serde::de::Error::custom("takes no positional arguments")),
                }
            }
        }
        d.deserialize_seq(Empty)
    }
}

/// A handler for a Celery task name. Implemented for every
/// `Fn(CeleryTask<A, K>) -> impl Future<Output = CeleryResult<R>>`.
pub trait CeleryHandler<A, K, R>: Send + Sync + 'static {
    /// Runs one attempt.
    fn call(&self, task: CeleryTask<A, K>) -> CeleryFuture<R>;
}

/// A boxed, sendable Celery handler future.
pub type CeleryFuture<R> =
    std::pin::Pin<Box<dyn Future<Output = CeleryResult<R>> + Send + 'static>>;

impl<A, K, R, F, Fut> CeleryHandler<A, K, R> for F
where
    F: Fn(CeleryTask<A, K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CeleryResult<R>> + Send + 'static,
{
    fn call(&self, task: CeleryTask<A, K>) -> CeleryFuture<R> {
        Box::pin(self(task))
    }
}

/// The fields of a Celery call every handler gets, before the arguments are typed.
#[derive(Debug, Clone)]
pub(crate) struct CeleryMeta {
    pub id: String,
    pub name: String,
    pub queue: String,
    pub attempt: u32,
    pub retries: u32,
}

/// Where a successful run leaves its result for the reply.
pub(crate) type ResultSlot = Arc<OnceLock<Value>>;

/// A Celery handler with its types erased, as the registry stores it.
pub(crate) trait ErasedCelery: Send + Sync + 'static {
    /// Types the arguments and returns the run (its result lands in the slot), or why they do
    /// not fit.
    fn prepare(
        &self,
        meta: CeleryMeta,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<(BoxFuture, ResultSlot), serde_json::Error>;
}

/// The type parameters a [`TypedCelery`] remembers (`fn() ->`: neither owned nor borrowed).
type Types<A, K, R> = fn() -> (A, K, R);

/// Adapts a typed [`CeleryHandler`] to [`ErasedCelery`].
pub(crate) struct TypedCelery<A, K, R, H> {
    handler: H,
    _types: PhantomData<Types<A, K, R>>,
}

impl<A, K, R, H> TypedCelery<A, K, R, H> {
    pub(crate) fn new(handler: H) -> Self {
        Self {
            handler,
            _types: PhantomData,
        }
    }
}

impl<A, K, R, H> ErasedCelery for TypedCelery<A, K, R, H>
where
    A: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: CeleryHandler<A, K, R>,
{
    fn prepare(
        &self,
        meta: CeleryMeta,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<(BoxFuture, ResultSlot), serde_json::Error> {
        let args: A = serde_json::from_value(Value::Array(args))?;
        let kwargs: K = serde_json::from_value(Value::Object(kwargs))?;
        let run = self.handler.call(CeleryTask {
            id: meta.id,
            name: meta.name,
            queue: meta.queue,
            attempt: meta.attempt,
            retries: meta.retries,
            args,
            kwargs,
        });
        let slot = ResultSlot::default();
        let out = slot.clone();
        let fut: BoxFuture = Box::pin(async move {
            let value = run.await?;
            // The run succeeded; a result JSON cannot hold (a map with non-string keys) is
            // answered as null rather than turning success into failure.
            let value = serde_json::to_value(value).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "task result is not JSON; answered as null");
                Value::Null
            });
            let _ = out.set(value);
            Ok(())
        });
        Ok((fut, slot))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_argument_types_accept_only_empty() {
        assert!(serde_json::from_str::<NoArgs>("[]").is_ok());
        assert!(serde_json::from_str::<NoArgs>("[1]").is_err());
        assert!(serde_json::from_str::<NoKwargs>("{}").is_ok());
        assert!(serde_json::from_str::<NoKwargs>(r#"{"a":1}"#).is_err());
    }
}
