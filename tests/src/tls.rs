//! A throw-away certificate authority for TLS tests (docs/design.md §14), made with the
//! `openssl` command line, which every Debian machine has: a CA, server certificates for
//! chosen names, client certificates, and a second, unrelated CA for the wrong-CA case.
//!
//! Keys are P-256 (fast to make); certificates are X.509 v3 with subjectAltName, as rustls
//! requires, and live one day. Everything sits in a private directory removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in its own directory; issues leaf certificates signed by it.
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM): what a client's `ca_file` points at.
    pub ca_file: PathBuf,
}

/// A leaf certificate and its key, both PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_file: PathBuf,
    /// Its PKCS#8 private key.
    pub key_file: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new CA named `label` (its common name) in a fresh temporary directory.
    pub fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "drumbeat-ca-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let subj = format!("/CN=drumbeat test CA {label}");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self {
            ca_file: dir.join("ca.pem"),
            dir,
        }
    }

    /// The directory holding this CA's files (put server files next to them).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate valid for `names` (DNS names, or IP addresses such as `127.0.0.1`).
    pub fn server(&self, file_stem: &str, names: &[&str]) -> Issued {
        let sans: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        self.issue(
            file_stem,
            names.first().copied().unwrap_or("server"),
            &format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
                sans.join(",")
            ),
        )
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, file_stem: &str, cn: &str) -> Issued {
        self.issue(
            file_stem,
            cn,
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        )
    }

    fn issue(&self, stem: &str, cn: &str, ext: &str) -> Issued {
        let key = format!("{stem}.key");
        let csr = format!("{stem}.csr");
        let pem = format!("{stem}.pem");
        let ext_file = format!("{stem}.ext");
        std::fs::write(self.dir.join(&ext_file), ext).unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &pem,
                "-extfile",
                &ext_file,
            ],
        );
        Issued {
            cert_file: self.dir.join(pem),
            key_file: self.dir.join(key),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
