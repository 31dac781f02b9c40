//! Task name → handler, fixed before the worker starts.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::handler::{Erased, Handler, Typed};

/// The handlers a worker can run, by task name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    handlers: HashMap<String, Arc<dyn Erased>>,
}

impl Registry {
    /// Registers `handler` under `name`, replacing an earlier one with the same name.
    pub(crate) fn insert<A, H>(&mut self, name: &str, handler: H)
    where
        A: DeserializeOwned + Send + 'static,
        H: Handler<A>,
    {
        self.handlers
            .insert(name.to_string(), Arc::new(Typed::<A, H>::new(handler)));
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
