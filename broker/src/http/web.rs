//! The web chat app (web/ in the repository), served at `/` on the HTTP listener. Its
//! built files (web/dist, committed) are compiled into the binary, so a node serves the app
//! with nothing to install or build at run time, and the page and the node always match.
//!
//! Caching: every file is served `no-cache` with an `ETag`, so a browser revalidates on
//! each load (a 304 with no body when nothing changed) and never runs an old app against a
//! new node. `app.js` goes gzipped to browsers that accept it.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    /// The same bytes gzipped (built by web/build.sh), for `Accept-Encoding: gzip`.
    gzip: Option<&'static [u8]>,
    /// The page itself gets the security headers that only matter for documents.
    page: bool,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../../web/dist/index.html"),
    gzip: None,
    page: true,
};
const APP_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../../web/dist/app.js"),
    gzip: Some(include_bytes!("../../../web/dist/app.js.gz")),
    page: false,
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../../../web/dist/style.css"),
    gzip: None,
    page: false,
};

/// Scripts, styles and connections from this origin only (the WebSocket at `/mqtt` is
/// `'self'` too); the page may not be framed. MQTT.js runs its keepalive timer in a worker
/// made from a `blob:` URL, so that a background tab's throttled timers do not miss pings.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

/// Each asset's ETag, from its bytes (computed once).
static ETAGS: LazyLock<[HeaderValue; 3]> =
    LazyLock::new(|| [etag(INDEX.body), etag(APP_JS.body), etag(STYLE.body)]);

fn etag(body: &[u8]) -> HeaderValue {
    // Stable within one binary, which is all an ETag needs: the assets are in the binary.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    HeaderValue::from_str(&format!("\"{:016x}-{:x}\"", h.finish(), body.len()))
        .expect("hex is a valid header value")
}

pub(super) async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &ETAGS[0], &headers)
}

pub(super) async fn app_js(headers: HeaderMap) -> Response {
    serve(&APP_JS, &ETAGS[1], &headers)
}

pub(super) async fn style(headers: HeaderMap) -> Response {
    serve(&STYLE, &ETAGS[2], &headers)
}

fn serve(asset: &Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let mut out = HeaderMap::new();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::ETAG, etag.clone());
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.gzip.is_some() {
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if asset.page {
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        out.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if matches_etag(request, etag) {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    let body = match asset.gzip {
        Some(gz) if accepts_gzip(request) => {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gz
        }
        _ => asset.body,
    };
    (StatusCode::OK, out, body).into_response()
}

/// `If-None-Match` naming this ETag (or `*`).
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// `Accept-Encoding` listing gzip with a q-value above 0.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_is_compared_by_tag() {
        let tag = etag(b"x");
        let t = tag.to_str().unwrap().to_owned();
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{t}")).unwrap(),
        );
        assert!(matches_etag(&h, &tag));
        assert!(!matches_etag(
            &headers(&[("if-none-match", "\"other\"")]),
            &tag
        ));
        assert!(matches_etag(&headers(&[("if-none-match", "*")]), &tag));
    }

    #[test]
    fn the_page_loads_the_bundled_script_and_style() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        assert!(page.contains("src=\"app.js\"") && page.contains("href=\"style.css\""));
        assert!(APP_JS.gzip.is_some_and(|gz| gz.starts_with(&[0x1f, 0x8b])));
    }
}
