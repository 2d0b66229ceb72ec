//! The page, its script and its style sheet, built into the binary and served under a strict
//! Content-Security-Policy: nothing inline, nothing from another origin, no framing.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiResult;
use crate::extract::ApiPath;

/// The policy of every console page and asset: scripts, styles, fetches and images from this
/// origin only (images also as `data:` for the favicon-free page), no plugins, no framing, and
/// forms that post only here.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

fn security_headers(content_type: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The assets change with the binary; revalidating costs little on a console.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers
}

/// `GET /console`: the page.
pub(crate) async fn index() -> Response {
    (security_headers("text/html; charset=utf-8"), INDEX_HTML).into_response()
}

/// `GET /console/assets/{file}`: the script and the style sheet.
pub(crate) async fn asset(ApiPath(file): ApiPath<String>) -> ApiResult<Response> {
    let (content_type, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        _ => return Ok(crate::routes::not_found().await),
    };
    Ok((security_headers(content_type), body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_nothing_inline_and_nothing_remote() {
        // The policy forbids inline script and style; the page must not need them.
        assert!(!INDEX_HTML.contains("<script>"), "no inline script");
        assert!(!INDEX_HTML.contains("<style"), "no inline style");
        assert!(!INDEX_HTML.contains(" style="), "no style attributes");
        let handler = INDEX_HTML.split(" on").skip(1).any(|rest| {
            let name = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name > 0 && rest.as_bytes().get(name) == Some(&b'=')
        });
        assert!(!handler, "no inline event handlers");
        for asset in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!asset.contains("http://"), "nothing from another origin");
            assert!(!asset.contains("https://"), "nothing from another origin");
            assert!(!asset.contains("@import"), "no external style sheets");
        }
        assert!(
            !APP_JS.contains("innerHTML"),
            "data goes into the page as text"
        );
        assert!(!APP_JS.contains("eval("), "no eval under the policy");
    }
}
