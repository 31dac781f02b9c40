mod amqp;
mod compose;
mod config;
mod envelope;
mod fuzz;
mod fuzz_gen;
mod fuzz_pools;
mod metrics;
