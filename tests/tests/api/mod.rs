//! The beat's HTTP API `/api/v1` and ops authorisation (docs/design.md §10, §14), against a
//! real `beat` binary on a free port with real Redis and RabbitMQ: bearer tokens from the
//! file, the environment and a tokens file; 401/403 decided before any handler; request bodies
//! refused with 400 naming what is wrong and nothing written; the dead-letter endpoints; the
//! schedule verbs with their audit entries (`by` = the token's name).

mod auth;
mod bodies;
mod dlq;
mod schedules;
pub(crate) mod support;
mod tokens;
