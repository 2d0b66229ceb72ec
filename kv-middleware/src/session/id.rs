//! Session IDs: random, URL-safe, and stored only as a hash.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::error::SessionError;

/// Bytes of randomness in a session ID (256 bits).
const ID_BYTES: usize = 32;
/// Length of an ID's text form: unpadded URL-safe base64 of 32 bytes.
const ID_TEXT_LEN: usize = 43;

/// A session ID: 256 bits from the operating system's CSPRNG, written as 43 characters of
/// unpadded URL-safe base64 (`A-Z a-z 0-9 - _`).
///
/// The ID is the secret a browser holds in its cookie. The store never sees it: a session is
/// stored under [`store_key`](Self::store_key), the SHA-256 hash of the ID, so whoever can read
/// the store (a backup, a shared Redis) still cannot present a valid cookie.
///
/// `Debug` does not print the ID; `Display` does (it is what goes into the cookie).
///
/// ```
/// use kv_middleware::session::SessionId;
///
/// let id = SessionId::generate().expect("the OS has randomness");
/// let text = id.to_string();
/// assert_eq!(text.len(), 43);
/// assert_eq!(text.parse::<SessionId>().unwrap(), id);
/// assert_ne!(id.store_key(), text);
/// assert!("not an id".parse::<SessionId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; ID_BYTES]);

impl SessionId {
    /// A new random ID from the operating system's CSPRNG.
    ///
    /// Fails only when the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).map_err(SessionError::Random)?;
        Ok(SessionId(bytes))
    }

    /// Appends the ID's text form to `out`.
    pub(crate) fn encode_into(&self, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.0, out);
    }

    /// The key the session is stored under: the lowercase hex SHA-256 of the ID's bytes.
    pub fn store_key(&self) -> String {
        sha256_hex(&self.0)
    }
}

/// The lowercase hex SHA-256 of `bytes`: the stored name of a secret ID, which whoever reads
/// the store cannot turn back into the ID.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    crate::shared::hex::hex(&Sha256::digest(bytes))
}

/// Decodes exactly 43 characters of unpadded URL-safe base64 into 32 bytes. The `base64`
/// engine refuses any other character, padding and non-zero trailing bits, so every ID has
/// exactly one text form.
fn decode_id(text: &[u8]) -> Option<[u8; ID_BYTES]> {
    if text.len() != ID_TEXT_LEN {
        return None;
    }
    // The engine's conservative estimate for 43 characters is 33 bytes.
    let mut bytes = [0u8; ID_BYTES + 1];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
        Ok(ID_BYTES) => {
            let mut id = [0u8; ID_BYTES];
            id.copy_from_slice(&bytes[..ID_BYTES]);
            Some(id)
        }
        _ => None,
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID_TEXT_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut buf)
            .map_err(|_| fmt::Error)?;
        let text = std::str::from_utf8(&buf[..written]).map_err(|_| fmt::Error)?;
        f.write_str(text)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// The text is not a session ID (43 characters of unpadded URL-safe base64).
///
/// The rejected text is deliberately not kept: it came from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSessionIdError;

impl fmt::Display for ParseSessionIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session ID (expected 43 characters of URL-safe base64)")
    }
}

impl std::error::Error for ParseSessionIdError {}

impl FromStr for SessionId {
    type Err = ParseSessionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_id(s.as_bytes())
            .map(SessionId)
            .ok_or(ParseSessionIdError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_round_trip() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), ID_TEXT_LEN);
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(text.parse::<SessionId>(), Ok(a.clone()));
        assert_eq!(format!("{a:?}"), "SessionId(<redacted>)");
    }

    #[test]
    fn the_decoder_agrees_with_the_base64_crate() {
        for _ in 0..1000 {
            let id = SessionId::generate().unwrap();
            let text = URL_SAFE_NO_PAD.encode(id.0);
            assert_eq!(decode_id(text.as_bytes()), Some(id.0));
        }
        for last in 0u8..=255 {
            let mut text = URL_SAFE_NO_PAD.encode([7u8; ID_BYTES]).into_bytes();
            text[42] = last;
            let ours = decode_id(&text);
            let theirs = URL_SAFE_NO_PAD.decode(&text).ok();
            assert_eq!(ours.map(|b| b.to_vec()), theirs, "last byte {last}");
        }
    }

    #[test]
    fn store_key_is_the_sha256_hex() {
        let id = SessionId([0u8; ID_BYTES]);
        // sha256 of 32 zero bytes.
        assert_eq!(
            id.store_key(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let good = SessionId::generate().unwrap().to_string();
        for bad in [
            String::new(),
            "short".to_owned(),
            format!("{good}A"),
            good.replace(|_: char| true, "+"),
            format!("{}=", &good[..42]),
            "é".repeat(21) + "a",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?}");
        }
        // Non-canonical trailing bits: the last character of 43 carries 2 unused bits.
        let mut chars: Vec<char> = good.chars().collect();
        chars[42] = 'B';
        let non_canonical: String = chars.into_iter().collect();
        assert!(non_canonical.parse::<SessionId>().is_err());
    }
}
