//! TLS for `amqps://` nodes: rustls with the ring provider, the stack Redis uses too
//! (docs/design.md §14 TLS).
//!
//! lapin's own TLS options can only *add* CAs to the system roots and have no way to skip
//! verification, while `amqp.tls.ca_file` must *replace* the roots. So drumbeat builds the
//! rustls [`ClientConfig`] here, once per [`Connector`](super::Connector), and hands lapin a
//! transport that connects plain TCP and then runs the handshake with it. A handshake failure is
//! an I/O error whose text starts with `TLS handshake with <host>:<port>` and carries rustls's
//! reason (`invalid peer certificate: UnknownIssuer`, `... not valid for name ...`), so the
//! supervisor's `amqp connect failed` line says what went wrong. The URL's password never
//! appears: only host and port are named.

use std::io;
use std::path::Path;
use std::sync::Arc;

use lapin::tcp::{AMQPUriTcpExt, AsyncTcpStream, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsSettings;

/// A TLS client set-up that could not be built from `amqp.tls` (a file that does not parse, no
/// usable root). Files are named by their config field, never by content.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TlsSetupError {
    /// The config field at fault (`amqp.tls.ca_file`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn setup_err(field: &'static str, reason: impl ToString) -> TlsSetupError {
    TlsSetupError {
        field,
        reason: reason.to_string(),
    }
}

/// The one crypto provider (ring) for every AMQP TLS connection.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration `amqp.tls` describes: the CAs of `ca_file` (which
/// replace the system roots) or the system roots, an optional client certificate, or, with
/// `insecure`, no verification at all.
pub fn client_config(tls: &TlsSettings) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_err("amqp.tls", e))?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots(tls.ca_file.as_deref())?)
    };
    let config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let certs = read_certs("amqp.tls.cert_file", &c.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&c.key_file)
                .map_err(|e| setup_err("amqp.tls.key_file", format!("no PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| setup_err("amqp.tls.key_file", e))?
        }
    };
    Ok(Arc::new(config))
}

/// The trusted roots: every certificate of `ca_file`, or else the system's.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let (added, _) = store.add_parsable_certificates(read_certs("amqp.tls.ca_file", path)?);
            if added == 0 {
                return Err(setup_err("amqp.tls.ca_file", "no usable CA certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "amqp tls: could not read some system root certificates");
            }
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(setup_err(
                    "amqp.tls.ca_file",
                    "no system root certificates found; name a CA file",
                ));
            }
        }
    }
    Ok(store)
}

/// All PEM certificates in `path` (at least one).
fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| setup_err(field, format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(setup_err(field, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Connects to `uri` through `tls` when the scheme is `amqps`, plain TCP otherwise.
pub(super) async fn connect(
    uri: AMQPUri,
    props: ConnectionProperties,
    tls: Option<Arc<ClientConfig>>,
) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    let tls = match (uri.scheme.clone(), tls) {
        (AMQPScheme::AMQPS, Some(tls)) => RustlsConnector::from(tls),
        // No TLS config means no node is amqps (see Connector::new): plain lapin.
        _ => return Connection::connect_uri(uri, props).await,
    };
    Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, runtime| {
            let host = uri.authority.host.clone();
            let port = uri.authority.port;
            let mut plain = uri;
            plain.scheme = AMQPScheme::AMQP;
            let tcp: AsyncTcpStream<_> = plain.connect_async(&runtime).await?;
            tcp.into_rustls(&tls, &host).await.map_err(|e| {
                let e = io::Error::new(e.kind(), format!("TLS handshake with {host}:{port}: {e}"));
                lapin::Error::from(e)
            })
        },
        props,
    )
    .await
}

/// `amqp.tls.insecure = true`: accepts any certificate for any name, still checking that the
/// peer holds the key of the certificate it showed (so the handshake itself is sound).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientCert;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("drumbeat-tls-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_field() {
        let ca = temp("empty-ca.pem", "not a certificate\n");
        let tls = TlsSettings {
            ca_file: Some(ca.clone()),
            ..TlsSettings::default()
        };
        let e = client_config(&tls).unwrap_err();
        assert_eq!(e.field, "amqp.tls.ca_file", "{e}");
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_client_certificate_file_without_certificates_is_refused_naming_the_field() {
        let junk = temp("junk.pem", "junk\n");
        let tls = TlsSettings {
            client: Some(ClientCert {
                cert_file: junk.clone(),
                key_file: junk.clone(),
            }),
            insecure: true,
            ..TlsSettings::default()
        };
        let e = client_config(&tls).unwrap_err();
        assert_eq!(e.field, "amqp.tls.cert_file", "{e}");
        let _ = std::fs::remove_file(junk);
    }

    #[test]
    fn insecure_needs_no_roots() {
        let tls = TlsSettings {
            insecure: true,
            ..TlsSettings::default()
        };
        assert!(client_config(&tls).is_ok());
    }
}
