//! Bearer-token authentication.
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither the content nor the
//! length of the configured token leaks through response timing.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{codes, ApiError};
use crate::state::AppState;

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn tokens_match(presented: &[u8], expected: &[u8]) -> bool {
    let presented = Sha256::digest(presented);
    let expected = Sha256::digest(expected);
    presented.ct_eq(&expected).into()
}

/// Rejects requests without the configured bearer token with 401.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config.token.as_deref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .map(|token| token.trim_ascii());
    match presented {
        Some(token) if tokens_match(token, expected.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("invalid bearer token"),
        None => unauthorized("missing `Authorization: Bearer <token>` header"),
    }
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        codes::AUTHENTICATION,
        format!("Authentication error: {message}"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn token_comparison() {
        assert!(tokens_match(b"secret", b"secret"));
        assert!(!tokens_match(b"secret", b"secreT"));
        assert!(!tokens_match(b"secre", b"secret"));
        assert!(!tokens_match(b"", b"secret"));
    }
}
