//! Celery interop (docs/design.md §12), both directions, against the real Celery 5 library.

mod inbound;
mod outbound;
