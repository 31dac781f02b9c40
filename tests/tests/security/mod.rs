//! docs/design.md §14: reserved ids, least-privilege users, log hygiene. Users are made by
//! the tests on the shared services (`drumbeat_tests::users`) and removed on drop.

mod least_privilege;
mod markers;
mod reserved_ids;
