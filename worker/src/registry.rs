//! Task name → handler, fixed before the worker starts.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::handler::{Erased, Handler, Typed};

/// The handlers a worker can run, by task name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    handlers: HashMap<String, Arc<dyn Erased>>,
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
        if self.handlers.contains_key(name) {
            self.duplicate.get_or_insert_with(|| name.to_string());
            return;
        }
        self.handlers
            .insert(name.to_string(), Arc::new(Typed::<A, H>::new(handler)));
    }

    /// The first task name that was registered twice, if any.
    pub(crate) fn duplicate(&self) -> Option<&str> {
        self.duplicate.as_deref()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Erased>> {
        self.handlers.get(name)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.handlers.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}
