//! `amqps://` against a real TLS endpoint (docs/design.md §14): `stunnel4` with a throw-away
//! CA's certificate for `localhost` in front of the shared broker. A fire runs end to end over
//! TLS; a wrong CA, a wrong host name and a missing client certificate are refused, and the
//! error (returned in process, logged by a real beat) says why, never with the password.

use std::time::{Duration, Instant};

use drumbeat_common::amqp::Connector;
use drumbeat_common::config::{ClientCert, TlsSettings};
use drumbeat_common::secret::SecretUrl;
use drumbeat_common::Settings;
use drumbeat_tests::stunnel::Stunnel;
use drumbeat_tests::tls::TestCa;
use drumbeat_tests::{free_port, poll_until, Proc, TestNs};

/// The shared broker's plain port, behind every stunnel here.
const BROKER_PORT: u16 = 5672;
/// The password of every URL here; must never show in an error or a log.
const SECRET: &str = "guest@";

fn amqps(host: &str, port: u16) -> String {
    format!("amqps://guest:guest@{host}:{port}/%2f")
}

/// Settings pointing at `url` with `tls`.
fn settings(ns: &TestNs, url: &str, tls: TlsSettings) -> Settings {
    let mut s = ns.settings("");
    s.amqp.url = SecretUrl::parse(url, &["amqp", "amqps"]).unwrap();
    s.amqp.tls = tls;
    s
}

fn trusting(ca: &TestCa) -> TlsSettings {
    TlsSettings {
        ca_file: Some(ca.ca_file.clone()),
        ..TlsSettings::default()
    }
}

/// One connect attempt; `Ok` only if a channel opens on the connection too.
async fn try_connect(s: &Settings) -> Result<(), String> {
    let c = Connector::new(&s.amqp, "drumbeat-test tls");
    let conn = c.connect_once().await.map_err(|e| error_chain(&e))?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string());
    let _ = conn.close(200, "bye".into()).await;
    ch.map(|_| ())
}

/// An error and all its sources, as one line (what a log line with `error = %e` shows is the
/// top; the sources are checked too so nothing secret hides below).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(" <- ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[tokio::test]
async fn wrong_ca_wrong_host_and_missing_client_cert_are_refused_saying_why() {
    let ns = TestNs::new("amqps-refuse");
    let ca = TestCa::new("amqps-good");
    let other = TestCa::new("amqps-other");
    let server = ca.server("broker", &["localhost"]);
    let tunnel = Stunnel::start(&server, BROKER_PORT, None);

    // The right CA and the name in the certificate: connects.
    let ok = settings(&ns, &amqps("localhost", tunnel.port), trusting(&ca));
    try_connect(&ok).await.expect("amqps with the right CA");

    // Another CA: the server's certificate has an unknown issuer.
    let wrong_ca = settings(&ns, &amqps("localhost", tunnel.port), trusting(&other));
    let e = try_connect(&wrong_ca)
        .await
        .expect_err("wrong CA must be refused");
    println!("wrong CA: {e}");
    assert!(e.contains("TLS handshake with localhost:"), "{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(!e.contains(SECRET), "password in the error: {e}");

    // The certificate names only `localhost`; connecting as 127.0.0.1 is a wrong host name.
    let wrong_host = settings(&ns, &amqps("127.0.0.1", tunnel.port), trusting(&ca));
    let e = try_connect(&wrong_host)
        .await
        .expect_err("wrong host must be refused");
    println!("wrong host: {e}");
    assert!(e.contains("TLS handshake with 127.0.0.1:"), "{e}");
    assert!(e.contains("not valid for name"), "{e}");
    assert!(!e.contains(SECRET), "password in the error: {e}");

    // The escape hatch: insecure accepts the wrong CA and the wrong name.
    let insecure = TlsSettings {
        insecure: true,
        ..trusting(&other)
    };
    let s = settings(&ns, &amqps("127.0.0.1", tunnel.port), insecure);
    try_connect(&s).await.expect("insecure skips verification");

    // A terminator that requires a client certificate from `ca`.
    let mtls = Stunnel::start(&server, BROKER_PORT, Some(&ca.ca_file));
    let url = amqps("localhost", mtls.port);
    let e = try_connect(&settings(&ns, &url, trusting(&ca)))
        .await
        .expect_err("no client certificate must be refused");
    println!("no client certificate: {e}");
    // TLS 1.3: the server's alert arrives after the client's side of the handshake is done.
    assert!(e.contains("CertificateRequired"), "{e}");
    let client = ca.client("client", "drumbeat-beat");
    let with_cert = TlsSettings {
        client: Some(ClientCert {
            cert_file: client.cert_file.clone(),
            key_file: client.key_file.clone(),
        }),
        ..trusting(&ca)
    };
    try_connect(&settings(&ns, &url, with_cert))
        .await
        .expect("client certificate accepted");
    // A client certificate from another CA is refused as well.
    let stranger = other.client("stranger", "stranger");
    let s = settings(
        &ns,
        &url,
        TlsSettings {
            client: Some(ClientCert {
                cert_file: stranger.cert_file.clone(),
                key_file: stranger.key_file.clone(),
            }),
            ..trusting(&ca)
        },
    );
    let e = try_connect(&s)
        .await
        .expect_err("foreign client certificate");
    println!("foreign client certificate: {e}");
    assert!(e.contains("UnknownCA"), "{e}");
}

/// Done tasks as the worker's `/metrics` counts them.
async fn done(port: u16) -> f64 {
    drumbeat_tests::http_get(port, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("drumbeat_tasks_total") && l.contains("outcome=\"done\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_fire_runs_end_to_end_over_amqps_and_a_beat_with_the_wrong_ca_retries_saying_why() {
    let ns = TestNs::new("amqps-e2e");
    let ca = TestCa::new("amqps-e2e");
    let other = TestCa::new("amqps-e2e-other");
    let server = ca.server("broker", &["localhost"]);
    let tunnel = Stunnel::start(&server, BROKER_PORT, None);
    let url = amqps("localhost", tunnel.port);
    let ops = free_port();
    let body = |ca_file: &std::path::Path| {
        format!(
            "[amqp.tls]\nca_file = \"{}\"\n\
             [beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
             [worker]\nops_addr = \"127.0.0.1:{ops}\"\n\
             [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n",
            ca_file.display()
        )
    };
    let cfg = ns.config_file("tls.toml", &body(&ca.ca_file));
    let cfg = cfg.to_str().unwrap();
    let env = [("NO_COLOR", "1"), ("DRUMBEAT__AMQP__URL", url.as_str())];
    let started = Instant::now();
    let beat = Proc::spawn(
        "beat",
        &["--config", cfg, "--id", "b1", "run"],
        &env,
        &ns.dir,
        "beat",
    );
    let worker = Proc::spawn(
        "worker",
        &["--config", cfg, "--id", "w1", "run"],
        &env,
        &ns.dir,
        "worker",
    );
    poll_until(
        "3 fires done over amqps",
        Duration::from_secs(60),
        || async {
            let up = tokio::net::TcpStream::connect(("127.0.0.1", ops))
                .await
                .is_ok();
            (up && done(ops).await >= 3.0).then_some(())
        },
    )
    .await;
    println!(
        "3 fires ran over amqps {:.1?} after start",
        started.elapsed()
    );
    for p in [&beat, &worker] {
        let log = p.log_text();
        assert!(log.contains("amqp connected"), "{}: {log}", p.name);
        assert!(
            !log.contains(SECRET),
            "{} logged the password: {log}",
            p.name
        );
    }

    // A beat of another namespace trusting the wrong CA: it keeps retrying, and says why.
    let bad_ns = TestNs::new("amqps-badca");
    let bad_cfg = bad_ns.config_file("bad.toml", &body(&other.ca_file));
    let bad = Proc::spawn(
        "beat",
        &["--config", bad_cfg.to_str().unwrap(), "--id", "bad", "run"],
        &env,
        &bad_ns.dir,
        "beat-bad-ca",
    );
    let lines = poll_until(
        "two refused connects logged",
        Duration::from_secs(30),
        || async {
            let log = bad.log_text();
            let lines: Vec<String> = log
                .lines()
                .filter(|l| l.contains("amqp connect failed"))
                .map(str::to_string)
                .collect();
            (lines.len() >= 2).then_some(lines)
        },
    )
    .await;
    println!("wrong-CA beat logs: {}", lines[0]);
    assert!(lines[0].contains("UnknownIssuer"), "{}", lines[0]);
    assert!(
        lines[0].contains("TLS handshake with localhost:"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("retry_in"), "{}", lines[0]);
    let log = bad.log_text();
    assert!(
        !log.contains(SECRET),
        "wrong-CA beat logged the password: {log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
