//! Task name → handler, fixed before the worker starts.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use serde::Serialize;

use crate::celery::{CeleryHandler, ErasedCelery, TypedCelery};
use crate::handler::{Erased, Handler, Typed};

/// The handlers a worker can run, by task name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    handlers: HashMap<String, Arc<dyn Erased>>,
    /// Handlers under Celery task names (docs/design.md §12); one namespace with `handlers`.
    celery: HashMap<String, Arc<dyn ErasedCelery>>,
    /// The first name registered twice: the builder is chainable, so the error waits for
    /// `build()`.
    duplicate: Option<String>,
}

impl Registry {
    /// Registers `handler` under `name`; a second handler for one name is remembered as an
    /// error (the first one stays).
    pub(crate) fn insert<A, H>(&mut self, name: &str, handler: H)
    where
        A: DeserializeOwned + Send + 'static,
        H: Handler<A>,
    {
        if self.taken(name) {
            return;
        }
        self.handlers
            .insert(name.to_string(), Arc::new(Typed::<A, H>::new(handler)));
    }

    /// Registers a Celery handler under `name`; a name taken by any handler is a duplicate.
    pub(crate) fn insert_celery<A, K, R, H>(&mut self, name: &str, handler: H)
    where
        A: DeserializeOwned + Send + 'static,
        K: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        H: CeleryHandler<A, K, R>,
    {
        if self.taken(name) {
            return;
        }
        self.celery.insert(
            name.to_string(),
            Arc::new(TypedCelery::<A, K, R, H>::new(handler)),
        );
    }

    /// Whether `name` is registered already (remembering the first such name).
    fn taken(&mut self, name: &str) -> bool {
        let taken = self.handlers.contains_key(name) || self.celery.contains_key(name);
        if taken {
            self.duplicate.get_or_insert_with(|| name.to_string());
        }
        taken
    }

    pub(crate) fn get_celery(&self, name: &str) -> Option<&Arc<dyn ErasedCelery>> {
        self.celery.get(name)
    }

    /// The first task name that was registered twice, if any.
    pub(crate) fn duplicate(&self) -> Option<&str> {
        self.duplicate.as_deref()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Erased>> {
        self.handlers.get(name)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self
            .handlers
            .keys()
            .chain(self.celery.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.handlers.is_empty() && self.celery.is_empty()
    }
}
