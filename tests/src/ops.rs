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

/// One HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The header block, as sent.
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON (panics with the response when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A bare HTTP/1.1 request on `127.0.0.1:port` with `headers` and `body` (Content-Length
/// added when the body is not empty). The body is written while the response is read, so a
/// server that answers before reading a large body (a size limit) is still heard.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        // The server may stop reading (and close) before the end of a too-large body.
        let _ = wr.write_all(&all).await;
        let _ = wr.flush().await;
        wr
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut raw)).await;
    writer.abort();
    if let Ok(Err(e)) = &read {
        // A reset after the response arrived still leaves the response in `raw`.
        assert!(!raw.is_empty(), "{method} {path}: {e}");
    }
    assert!(read.is_ok(), "{method} {path}: no response within 30 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
