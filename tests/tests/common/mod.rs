mod amqp;
mod compose;
mod config;
mod envelope;
