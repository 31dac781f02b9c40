//! Redis over TLS (docs/design.md §14): a fire end to end on `rediss://` with `redis.tls.ca_file`,
//! a wrong CA and a wrong host name refused with errors that say so, and a client certificate
//! when the server requires one.

use std::time::Duration;

use drumbeat_common::redis::Redis;
use drumbeat_common::Settings;
use drumbeat_tests::redis_topo::TlsRedis;
use drumbeat_tests::tls::TestCa;
use drumbeat_tests::{poll_until, TestNs};

use super::{beat, config, counts, runs, stop, worker};

/// Settings for `url` with `tls` lines in `[redis.tls]`.
fn settings(ns: &TestNs, url: &str, tls: &str) -> Settings {
    let text =
        std::fs::read_to_string(config(ns, url, "", &format!("[redis.tls]\n{tls}\n"))).unwrap();
    Settings::from_toml(&text).unwrap()
}

/// PING through a fresh client: Ok, or the error text.
async fn ping(s: &Settings) -> Result<(), String> {
    let r = Redis::new(&s.redis).map_err(|e| e.to_string())?;
    r.ping().await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_runs_over_tls_and_bad_certificates_are_refused_saying_why() {
    let ca = TestCa::new("redis");
    let other = TestCa::new("other");
    // For `localhost` only: connecting to 127.0.0.1 is then the wrong-host case.
    let server = ca.server("redis", &["localhost"]);
    let tls = TlsRedis::start(&server.cert_file, &server.key_file, &ca.ca_file, false);
    let ns = TestNs::new("redis-tls");
    let url = format!("rediss://localhost:{}/0", tls.port());
    // The handshake fails before AUTH: a password in the URL must still never be quoted.
    let url_pw = format!("rediss://:hunter2@localhost:{}/0", tls.port());
    let ca_line = format!("ca_file = \"{}\"", ca.ca_file.display());

    // End to end: beat and worker on rediss://, verified against ca_file.
    let cfg = config(&ns, &url, "", &format!("[redis.tls]\n{ca_line}\n"));
    let mut b = beat(&ns, &cfg, "b1");
    let mut w = worker(&ns, &cfg, "w1");
    poll_until("two runs over TLS", Duration::from_secs(30), || async {
        (counts(&runs(&[&w])).len() >= 2).then_some(())
    })
    .await;
    stop(&mut b);
    stop(&mut w);
    let key = ns.key("beat:cursor:tick");
    let cursor = tls_get(&ca, tls.port(), &key);
    assert!(cursor.is_some(), "the cursor was written over TLS");

    // A CA that did not sign the server's certificate.
    let wrong_ca = format!("ca_file = \"{}\"", other.ca_file.display());
    let e = ping(&settings(&ns, &url_pw, &wrong_ca)).await.unwrap_err();
    println!("wrong CA: {e}");
    assert!(
        e.contains("certificate") && e.contains("UnknownIssuer"),
        "wrong CA: {e}"
    );
    assert!(!e.contains("hunter2"), "{e}");

    // The same server by a name its certificate does not carry.
    let wrong_host = format!("rediss://127.0.0.1:{}/0", tls.port());
    let e = ping(&settings(&ns, &wrong_host, &ca_line))
        .await
        .unwrap_err();
    println!("wrong host: {e}");
    assert!(
        e.contains("certificate not valid for name"),
        "wrong host: {e}"
    );

    // The escape hatch: no verification at all, so the wrong CA passes.
    ping(&settings(
        &ns,
        &url,
        &format!("{wrong_ca}\ninsecure = true"),
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_sent_when_the_server_requires_one() {
    let ca = TestCa::new("redis-mtls");
    let server = ca.server("redis", &["localhost"]);
    let client = ca.client("client", "drumbeat");
    let tls = TlsRedis::start(&server.cert_file, &server.key_file, &ca.ca_file, true);
    let ns = TestNs::new("redis-mtls");
    let url = format!("rediss://localhost:{}/0", tls.port());
    let ca_line = format!("ca_file = \"{}\"", ca.ca_file.display());

    let e = ping(&settings(&ns, &url, &ca_line)).await.unwrap_err();
    println!("no client certificate: {e}");
    assert!(e.contains("CertificateRequired"), "{e}");
    let with_cert = format!(
        "{ca_line}\ncert_file = \"{}\"\nkey_file = \"{}\"",
        client.cert_file.display(),
        client.key_file.display()
    );
    ping(&settings(&ns, &url, &with_cert)).await.unwrap();
}

/// GET over TLS with redis-cli (verifying against the test CA).
fn tls_get(ca: &TestCa, port: u16, key: &str) -> Option<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&ca.ca_file)
        .args([
            "-h",
            "localhost",
            "-p",
            &port.to_string(),
            "--raw",
            "GET",
            key,
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}
