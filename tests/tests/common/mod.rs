mod amqp;
mod audit;
mod compose;
mod config;
mod envelope;
