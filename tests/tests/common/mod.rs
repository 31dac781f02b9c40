mod amqp;
mod config;
mod envelope;
mod compose;
