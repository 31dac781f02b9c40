//! AMQP beyond one plain broker (docs/design.md §13, §14): `amqps://` through a real TLS
//! terminator, and a private 3-node RabbitMQ cluster losing the node the leader beat uses.

mod failover;
mod tls;
