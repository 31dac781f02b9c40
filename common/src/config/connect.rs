//! Where the broker and Redis are and how to talk to them: node lists, Sentinel and Cluster
//! URLs, TLS files (docs/design.md §13, §14).
//!
//! URLs are split and checked here, once, so the connection code never parses a string a user
//! wrote. No error quotes a URL: it may hold a password.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::secret::{RawSecret, Secret, SecretUrl};

type Result<T> = std::result::Result<T, ConfigError>;

/// `amqp.url` as written: one URL, a comma-separated list, or a TOML array (one per node).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawUrls {
    /// `url = "amqp://a/%2f"` or `"amqp://a/%2f,amqp://b/%2f"` (the environment's form).
    One(RawSecret),
    /// `url = ["amqp://a/%2f", "amqp://b/%2f"]`.
    Many(Vec<RawSecret>),
}

impl RawUrls {
    fn split(&self) -> Vec<&str> {
        match self {
            Self::One(s) => s.0.split(',').map(str::trim).collect(),
            Self::Many(v) => v.iter().map(|s| s.0.trim()).collect(),
        }
    }
}

/// `amqp.tls` / `redis.tls` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of the CA(s) to trust instead of the system roots.
    pub ca_file: Option<String>,
    /// PEM client certificate (chain), with `key_file`.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<String>,
    /// Skip certificate and host-name verification: an escape hatch, logged loudly.
    #[serde(default)]
    pub insecure: bool,
}

/// TLS options for one connection kind (used only when its URL is `amqps://` / `rediss://`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trust these CAs instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and its key, when the server asks for one.
    pub client: Option<ClientCert>,
    /// No verification at all (`tls.insecure = true`).
    pub insecure: bool,
}

/// A client certificate (PEM chain) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

/// Validates a `tls` table: files must be readable, `cert_file` and `key_file` come together.
pub(super) fn tls(path: &str, raw: &RawTls) -> Result<TlsSettings> {
    let file = |name: &str, v: &Option<String>| -> Result<Option<PathBuf>> {
        let Some(v) = v else { return Ok(None) };
        let p = PathBuf::from(v);
        std::fs::metadata(&p).map_err(|e| {
            ConfigError::field(format!("{path}.{name}"), format!("cannot read: {e}"))
        })?;
        Ok(Some(p))
    };
    let ca_file = file("ca_file", &raw.ca_file)?;
    let client = match (
        file("cert_file", &raw.cert_file)?,
        file("key_file", &raw.key_file)?,
    ) {
        (Some(cert_file), Some(key_file)) => Some(ClientCert {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::field(
                format!("{path}.key_file"),
                "required with cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::field(
                format!("{path}.cert_file"),
                "required with key_file",
            ))
        }
    };
    Ok(TlsSettings {
        ca_file,
        client,
        insecure: raw.insecure,
    })
}

/// `amqp.url`: the nodes in the order to try them.
pub(super) fn amqp_urls(raw: &RawUrls) -> Result<(SecretUrl, Vec<SecretUrl>)> {
    let parts = raw.split();
    if parts.iter().all(|p| p.is_empty()) {
        return Err(ConfigError::field(
            "amqp.url",
            "must name at least one node",
        ));
    }
    let mut urls = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let field = if parts.len() == 1 {
            "amqp.url".to_string()
        } else {
            format!("amqp.url[{i}]")
        };
        urls.push(
            SecretUrl::parse(p, &["amqp", "amqps"])
                .map_err(|e| ConfigError::field(field, e.to_string()))?,
        );
    }
    // Every publish carries the user as `user_id`, which RabbitMQ checks against the
    // connection's user: a node reached as someone else would refuse every publish.
    let user = amqp_user(&urls[0]);
    if let Some(i) = urls.iter().position(|u| amqp_user(u) != user) {
        return Err(ConfigError::field(
            format!("amqp.url[{i}]"),
            "every node must be reached as the same user (it is sent as user_id)",
        ));
    }
    let first = urls.remove(0);
    Ok((first, urls))
}

/// The AMQP user a URL logs in as (RabbitMQ's default `guest` when it names none): the
/// `user_id` every publish carries (docs/design.md §14).
pub fn amqp_user(url: &SecretUrl) -> String {
    let user = url::Url::parse(url.expose())
        .ok()
        .map(|u| u.username().to_string())
        .unwrap_or_default();
    if user.is_empty() {
        return "guest".into();
    }
    percent_encoding::percent_decode_str(&user)
        .decode_utf8_lossy()
        .into_owned()
}

/// How Redis is deployed, from the scheme of `redis.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// `redis://` or `rediss://`: one server.
    Single,
    /// `redis+sentinel://` (`rediss+sentinel://`): ask the sentinels in `nodes` for `master`.
    Sentinel {
        /// The monitored master's name.
        master: String,
        /// Database number on the master.
        db: i64,
    },
    /// `redis+cluster://` (`rediss+cluster://`): `nodes` are seed nodes of a Redis Cluster.
    Cluster,
}

/// `redis.url` split into what a client needs.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// Single server, Sentinel or Cluster.
    pub mode: RedisMode,
    /// TLS to every node (`rediss…` schemes).
    pub tls: bool,
    /// One `redis://` or `rediss://` URL per host, each with the URL's user and password: the
    /// server itself (single), the sentinels, or the cluster's seed nodes. For Sentinel the
    /// password is the master's (docs/design.md §13), not the sentinels'.
    pub nodes: Vec<SecretUrl>,
}

/// Parses `redis.url`; `field` names it in errors.
pub(super) fn redis_target(field: &str, raw: &str) -> Result<RedisTarget> {
    let bad = |m: &str| ConfigError::field(field, m.to_string());
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(bad("not a valid URL (no scheme)"));
    };
    let (mode_word, tls) = match scheme {
        "redis" => ("single", false),
        "rediss" => ("single", true),
        "redis+sentinel" => ("sentinel", false),
        "rediss+sentinel" => ("sentinel", true),
        "redis+cluster" => ("cluster", false),
        "rediss+cluster" => ("cluster", true),
        other => {
            return Err(ConfigError::field(
                field,
                format!(
                    "scheme must be one of redis, rediss, redis+sentinel, rediss+sentinel, \
                     redis+cluster, rediss+cluster, got `{}`",
                    super::bounds::quote(other)
                ),
            ))
        }
    };
    let base = if tls { "rediss" } else { "redis" };
    if mode_word == "single" {
        let url = SecretUrl::parse(raw, &["redis", "rediss"])
            .map_err(|e| ConfigError::field(field, e.to_string()))?;
        return Ok(RedisTarget {
            mode: RedisMode::Single,
            tls,
            nodes: vec![url],
        });
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for (i, host) in hosts.split(',').enumerate() {
        let host = host.trim();
        if host.is_empty() {
            return Err(bad(&format!("host {i} is empty")));
        }
        let node = match userinfo {
            Some(u) => format!("{base}://{u}@{host}/"),
            None => format!("{base}://{host}/"),
        };
        let url = SecretUrl::parse(&node, &["redis", "rediss"])
            .map_err(|e| ConfigError::field(field, format!("host {i}: {e}")))?;
        if url::Url::parse(url.expose())
            .ok()
            .and_then(|u| u.port())
            .is_none()
        {
            return Err(bad(&format!("host {i} needs a port")));
        }
        nodes.push(url);
    }
    let path: Vec<&str> = tail
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let mode = if mode_word == "sentinel" {
        let Some(master) = path.first() else {
            return Err(bad(
                "names no master: use redis+sentinel://host:26379,host:26379/{master}/{db}",
            ));
        };
        let db = match path.get(1) {
            None => 0,
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| bad("the database after the master must be a number >= 0"))?,
        };
        if path.len() > 2 {
            return Err(bad("too many path parts after /{master}/{db}"));
        }
        RedisMode::Sentinel {
            master: (*master).to_string(),
            db,
        }
    } else {
        if !path.is_empty() {
            return Err(bad(
                "a cluster URL has no database path (Redis Cluster has only db 0)",
            ));
        }
        RedisMode::Cluster
    };
    Ok(RedisTarget { mode, tls, nodes })
}

/// `redis.sentinel_password`, kept secret.
pub(super) fn secret(raw: &Option<RawSecret>) -> Option<Secret> {
    raw.as_ref().map(|s| Secret::new(s.0.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_url_is_split_per_host_with_the_masters_password() {
        let t = redis_target(
            "redis.url",
            "redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/2",
        )
        .unwrap();
        assert_eq!(
            t.mode,
            RedisMode::Sentinel {
                master: "mymaster".into(),
                db: 2
            }
        );
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[1].expose(), "redis://:pw@127.0.0.1:26380/");
        assert!(!format!("{:?}", t).contains("pw@"));
    }

    #[test]
    fn cluster_and_single_urls() {
        let t = redis_target("redis.url", "rediss+cluster://a:7000,b:7001").unwrap();
        assert_eq!(
            (t.mode, t.tls, t.nodes.len()),
            (RedisMode::Cluster, true, 2)
        );
        let t = redis_target("redis.url", "redis://127.0.0.1:6379/3").unwrap();
        assert_eq!(t.mode, RedisMode::Single);
        assert_eq!(t.nodes[0].expose(), "redis://127.0.0.1:6379/3");
    }

    #[test]
    fn bad_redis_urls_name_the_problem_without_the_password() {
        for (url, want) in [
            ("redis+sentinel://:hunter2@a:1/", "names no master"),
            ("redis+sentinel://:hunter2@a:1/m/x", "must be a number"),
            ("redis+cluster://:hunter2@a:1/0", "no database"),
            ("redis+cluster://:hunter2@a,b:2", "needs a port"),
            ("memcached://:hunter2@a:1", "scheme must be"),
        ] {
            let e = redis_target("redis.url", url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn amqp_url_lists_and_users() {
        let (first, rest) = amqp_urls(&RawUrls::One(RawSecret(
            "amqp://a:5672/%2f, amqp://guest:pw@b:5673/%2f".into(),
        )))
        .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(amqp_user(&first), "guest");
        let e = amqp_urls(&RawUrls::One(RawSecret(
            "amqp://u%40x:pw@a:5672/%2f,amqp://b:5673/%2f".into(),
        )))
        .unwrap_err();
        assert_eq!(e.field_path(), Some("amqp.url[1]"));
        let (one, _) = amqp_urls(&RawUrls::One(RawSecret("amqp://u%40x:pw@a/%2f".into()))).unwrap();
        assert_eq!(amqp_user(&one), "u@x");
        let e = amqp_urls(&RawUrls::Many(vec![
            RawSecret("amqp://a/%2f".into()),
            RawSecret("http://u:hunter2@b".into()),
        ]))
        .unwrap_err();
        assert_eq!(e.field_path(), Some("amqp.url[1]"));
        assert!(!e.to_string().contains("hunter2"));
    }
}
