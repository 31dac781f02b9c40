//! Celery interop against the real Celery 5 library (docs/design.md §12).

mod outbound;
