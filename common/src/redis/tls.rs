//! `rediss://`: rustls (pure Rust, no system OpenSSL to match at run time; the same stack for
//! every deployment) verifying the server's certificate and host name against the system roots,
//! or against `redis.tls.ca_file` alone when set, with an optional client certificate
//! (docs/design.md §14). `redis.tls.insecure = true` turns verification off and says so loudly.

use std::sync::Once;

use redis::{Client, ConnectionAddr, IntoConnectionInfo, TlsCertificates};

use super::RedisError;
use crate::config::TlsSettings;

/// The TLS material for every node of one deployment.
pub(super) struct Tls {
    /// `None`: system roots, no client certificate.
    pub certs: Option<TlsCertificates>,
    /// No verification at all.
    pub insecure: bool,
}

impl Tls {
    /// Reads the files named in `redis.tls` (validated readable at start; read here, once).
    pub fn load(settings: &TlsSettings) -> Result<Self, RedisError> {
        install_crypto_provider();
        if settings.insecure {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "redis.tls.insecure = true: the Redis server's certificate and host name are \
                     NOT verified; anyone on the path can read and change what drumbeat stores"
                );
            });
        }
        let read = |field: &str, p: &std::path::Path| {
            std::fs::read(p).map_err(|e| {
                RedisError::Unavailable(format!("redis.tls.{field}: cannot read: {e}"))
            })
        };
        let root_cert = match &settings.ca_file {
            Some(p) => Some(read("ca_file", p)?),
            None => None,
        };
        let client_tls = match &settings.client {
            Some(c) => Some(redis::ClientTlsConfig {
                client_cert: read("cert_file", &c.cert_file)?,
                client_key: read("key_file", &c.key_file)?,
            }),
            None => None,
        };
        let certs = (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        });
        Ok(Self {
            certs,
            insecure: settings.insecure,
        })
    }

    /// The redis crate's TLS mode for nodes it discovers (cluster peers, sentinel masters).
    pub fn mode(&self) -> redis::TlsMode {
        if self.insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        }
    }
}

/// rustls needs one process-wide crypto provider; ring, unless something installed one first.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for one `redis://` / `rediss://` node URL with this deployment's TLS material.
pub(super) fn client(url: &str, tls: Option<&Tls>) -> Result<Client, RedisError> {
    let bad = |e: redis::RedisError| RedisError::Unavailable(format!("{:?}", e.kind()));
    let mut info = url.into_connection_info().map_err(bad)?;
    let Some(tls) = tls else {
        return Client::open(info).map_err(bad);
    };
    if tls.insecure {
        if let ConnectionAddr::TcpTls { host, port, .. } = info.addr().clone() {
            info = info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params: None,
            });
        }
    }
    match &tls.certs {
        Some(certs) => Client::build_with_tls(info, certs.clone()).map_err(tls_setup),
        None => Client::open(info).map_err(bad),
    }
}

/// A bad CA / client certificate file: says which part, never quotes the file.
pub(super) fn tls_setup(e: redis::RedisError) -> RedisError {
    RedisError::Unavailable(format!("redis TLS setup failed: {e}"))
}
