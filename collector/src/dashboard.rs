//! The web dashboard's files, embedded at build time (`build.rs`) and
//! served at `/` of the HTTP status port beside `/healthz`, `/metrics` and
//! gRPC-web. The page reads everything through gRPC-web, so serving it
//! needs no token: the data it shows asks for one.

use std::io::Read as _;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Whether the real dashboard (not the "not built" page) is embedded.
pub const BUILT: bool = assets::BUILT;

/// What the browser may do with the page: only this origin's scripts and
/// styles (uPlot sets inline styles), data only from this origin, not in
/// frames.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The dashboard's routes.
pub fn router() -> axum::Router {
    let mut router = axum::Router::new();
    for &(path, content_type, gzipped, etag) in assets::ASSETS {
        if gzipped.is_empty() {
            continue;
        }
        router = router.route(
            path,
            axum::routing::get(move |headers: HeaderMap| async move {
                serve(&headers, content_type, gzipped, etag)
            }),
        );
    }
    router
}

fn serve(headers: &HeaderMap, content_type: &str, gzipped: &'static [u8], etag: &str) -> Response {
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap(),
    );
    out.insert(header::ETAG, HeaderValue::from_str(etag).unwrap());
    // Not hashed file names: revalidate every time (a 304 when unchanged).
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    if accepts_gzip(headers) {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (StatusCode::OK, out, gzipped).into_response();
    }
    // A client without gzip (rare: curl without --compressed).
    let mut body = Vec::new();
    match flate2::read::GzDecoder::new(gzipped).read_to_end(&mut body) {
        Ok(_) => (StatusCode::OK, out, body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("embedded asset is damaged: {e}\n"),
        )
            .into_response(),
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let refused = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn gzip_is_sent_only_to_who_accepts_it() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1, *;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn the_index_is_served_plain_gzipped_or_not_modified() {
        let (_, content_type, gz, etag) = assets::ASSETS[0];
        let plain = serve(&headers(&[]), content_type, gz, etag);
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let zipped = serve(
            &headers(&[("accept-encoding", "gzip")]),
            content_type,
            gz,
            etag,
        );
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(
            zipped.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let again = serve(&headers(&[("if-none-match", etag)]), content_type, gz, etag);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
}
