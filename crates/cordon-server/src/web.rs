//! The web chat: `/` and `/assets/*` served from files embedded in the binary (`web/` at the repo root), and the security headers every response carries.
//!
//! The assets are compiled in with `rust-embed` (also in debug builds), so
//! `cordon serve` needs no Node.js, no CDN and no network at run time. They are
//! not content-hashed, so they are served with `Cache-Control: no-cache` and an
//! `ETag`: browsers revalidate and get `304 Not Modified` while they are current.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

use crate::error::ApiError;

/// Only this origin: no inline script or style, no other origin for anything
/// (`connect-src 'self'` covers the same-origin `ws://` socket in CSP 3 browsers).
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

#[derive(Embed)]
#[folder = "../../web/"]
struct Assets;

/// `GET /` (the chat page) and `GET /assets/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

/// Adds the security headers to a response that does not set them itself
/// (use with `axum::middleware::map_response` on the whole router).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // The page itself lives at `/` only.
    if path == "index.html" {
        return ApiError::NotFound("asset").into_response();
    }
    serve(&path, &headers)
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::NotFound("asset").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = [
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (ETAG, etag_value),
    ];
    let matches = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let content_type = (CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    (cache, [content_type], file.data.into_owned()).into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every embedded asset with its size in bytes (for the size budget test).
pub fn asset_sizes() -> Vec<(String, usize)> {
    Assets::iter()
        .filter_map(|name| Assets::get(&name).map(|file| (name.into_owned(), file.data.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn the_page_and_its_scripts_are_embedded() {
        let names: Vec<String> = asset_sizes().into_iter().map(|(n, _)| n).collect();
        for expected in ["index.html", "app.js", "app.css"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
    }
}
