//! Reading a process's ops endpoint from a test (the tests crate has no HTTP client).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bare HTTP/1.1 `GET` on `127.0.0.1:port`; the whole response, headers included.
pub async fn http_get(port: u16, path: &str) -> String {
    http_get_with(port, path, &[]).await
}

/// [`http_get`] with extra request headers (`("Accept", "text/plain")`).
pub async fn http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// Sum of every `/metrics` series whose name contains `name` (all label sets together).
pub async fn metric(port: u16, name: &str) -> f64 {
    http_get(port, "/metrics")
        .await
        .lines()
        .filter(|l| {
            !l.starts_with('#') && l.split(['{', ' ']).next().is_some_and(|n| n.contains(name))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
