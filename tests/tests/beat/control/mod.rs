//! The beat applying runtime control state (docs/design.md §10), against real processes: state
//! is written with `ControlStore` directly, as `beat ctl` and the API do.

mod pause;
mod runtime;
mod support;
