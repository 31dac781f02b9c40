//! The web console (docs/design.md §11) in a real headless Chromium against a real beat and
//! worker: what the page shows from Redis, its actions through `/api/v1`, its refresh, and
//! that API data is rendered as text.

mod browser;
mod page;
