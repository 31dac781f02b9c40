//! The normalised configuration as JSON, secrets redacted: what `beat check` and
//! `worker check` print, so an operator sees exactly what the process will use.

use serde_json::{json, Value};

use super::retry::tier_label;
use super::{RedisMode, RetryPolicy, Settings, TlsSettings};
use crate::schedule::Trigger;

fn dur(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn retry(r: &RetryPolicy) -> Value {
    json!({
        "max_attempts": r.max_attempts,
        "backoff_base": dur(r.backoff_base),
        "backoff_max": dur(r.backoff_max),
    })
}

fn tls(t: &TlsSettings) -> Value {
    json!({
        "ca_file": t.ca_file.as_ref().map(|p| p.display().to_string()),
        "cert_file": t.client.as_ref().map(|c| c.cert_file.display().to_string()),
        "insecure": t.insecure,
    })
}

impl Settings {
    /// The effective settings, with URL passwords shown as `***` and ops tokens by name only.
    pub fn summary(&self) -> Value {
        let addr = |a: &Option<std::net::SocketAddr>| {
            a.map(|a| a.to_string()).unwrap_or_else(|| "off".into())
        };
        json!({
            "namespace": self.namespace,
            "redis": {
                "url": self.redis.url.redacted(),
                "mode": match &self.redis.target.mode {
                    RedisMode::Single => "single".to_string(),
                    RedisMode::Sentinel { master, db } => format!("sentinel (master {master}, db {db})"),
                    RedisMode::Cluster => "cluster".to_string(),
                },
                "timeout": dur(self.redis.timeout),
                "wait_replicas": self.redis.wait_replicas,
                "sentinel_password": self.redis.sentinel_password.as_ref().map(|_| "***"),
                "tls": tls(&self.redis.tls),
            },
            "amqp": {
                "url": self.amqp.nodes().map(|u| u.redacted()).collect::<Vec<_>>(),
                "tls": tls(&self.amqp.tls),
                "confirm_timeout": dur(self.amqp.confirm_timeout),
                "connect_timeout": dur(self.amqp.connect_timeout),
                "max_body": self.amqp.max_body,
            },
            "beat": {
                "lease_ttl": dur(self.beat.lease_ttl),
                "renew_every": dur(self.beat.renew_every),
                "ops_addr": addr(&self.beat.ops_addr),
            },
            "worker": {
                "queues": self.worker.queues,
                "celery_queues": self.worker.celery_queues,
                "prefetch": self.worker.prefetch,
                "concurrency": self.worker.concurrency,
                "handler_timeout": dur(self.worker.handler_timeout),
                "drain_timeout": dur(self.worker.drain_timeout),
                "done_ttl": dur(self.worker.done_ttl),
                "ops_addr": addr(&self.worker.ops_addr),
                "retry": retry(&self.worker.retry),
                "beat_users": self.worker.beat_users,
                "queue_policies": self.worker.queues.iter().chain(&self.worker.celery_queues).map(|q| {
                    let p = self.retry_policy(q);
                    let tiers: Vec<String> = p.tiers().into_iter().map(tier_label).collect();
                    let mut v = retry(p);
                    v["delay_tiers"] = json!(tiers.join(", "));
                    (q.clone(), v)
                }).collect::<serde_json::Map<_, _>>(),
            },
            "ops": {
                "tokens": self.ops.tokens.names(),
                "tokens_file": self.ops.tokens_file,
            },
            "queues": self.queue_retry.iter()
                .map(|(q, r)| (q.clone(), json!({ "retry": retry(r) })))
                .collect::<serde_json::Map<_, _>>(),
            "schedules": self.schedules.iter().map(|s| {
                let (kind, value) = match &s.trigger {
                    Trigger::Cron(c) => ("cron", c.source().to_string()),
                    Trigger::Every(d) => ("every", dur(*d)),
                    Trigger::At(t) => ("at", t.to_rfc3339()),
                };
                json!({
                    "name": s.name,
                    "task": s.task,
                    "queue": s.queue,
                    kind: value,
                    "timezone": s.timezone.name(),
                    "misfire_grace": dur(s.misfire_grace),
                    "catch_up": s.catch_up.as_str(),
                    "expires": s.expires.map(dur),
                    "overlap": s.overlap.as_str(),
                    "jitter": s.jitter.map(dur),
                })
            }).collect::<Vec<_>>(),
        })
    }
}
