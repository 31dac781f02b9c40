//! The web console at `/` on the beat's ops server (docs/design.md §11): one page and its two
//! assets, compiled into the binary so it works offline, with no build step.
//!
//! The page is a shell: its data and actions come from `/api/v1` (§10), called by
//! `assets/console.js` with the operator's token from the tab's session storage as a Bearer
//! header, so the shell itself is open (§14) and holds nothing secret. No cookies are used,
//! so there is no CSRF to defend against; the `Content-Security-Policy` allows this origin
//! only and no inline script, so even a value that slipped past the script's text-only
//! rendering could not run or call another host.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// Self only: scripts, styles and API calls from this origin; no frames, no forms posted
/// anywhere, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /`, `/assets/console.js` and `/assets/console.css`. Stateless: mount it open (not
/// behind the token guard), beside `/api/v1`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(style))
}

async fn index() -> Response {
    // The shell changes only with the binary; never cached, so an upgraded beat is seen at once.
    asset(INDEX, "text/html; charset=utf-8", "no-store", None)
}

async fn script(headers: HeaderMap) -> Response {
    asset(
        SCRIPT,
        "text/javascript; charset=utf-8",
        "no-cache",
        Some(&headers),
    )
}

async fn style(headers: HeaderMap) -> Response {
    asset(STYLE, "text/css; charset=utf-8", "no-cache", Some(&headers))
}

/// One asset with its type, caching and security headers. Assets are revalidated by ETag
/// (a hash of the content), so a browser re-downloads them only after an upgrade.
fn asset(
    body: &'static str,
    content_type: &'static str,
    cache: &'static str,
    request: Option<&HeaderMap>,
) -> Response {
    let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let fresh = request
        .and_then(|h| h.get(header::IF_NONE_MATCH))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if request.is_some() {
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
    }
    resp
}

/// FNV-1a, 64 bit: a stable content hash for the ETag (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_assets_from_this_origin_only() {
        for asset in ["/assets/console.js", "/assets/console.css"] {
            assert!(INDEX.contains(asset), "{asset}");
        }
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(
            !INDEX.contains("<script>"),
            "no inline script: the CSP forbids it"
        );
        assert!(
            !INDEX.contains("style="),
            "no inline style: the CSP forbids it"
        );
    }

    #[test]
    fn the_script_never_renders_data_as_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "{sink}");
        }
    }

    #[test]
    fn etag_changes_with_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
