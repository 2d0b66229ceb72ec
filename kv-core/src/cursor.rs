//! The opaque list cursor shared by the backends that page by key.
//!
//! A cursor names the last key of the page it ends, so the next page starts strictly after that
//! key: keys inserted or deleted between pages never make a listing skip or repeat a key that
//! was present throughout.

use std::ops::Bound;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::clock::is_expired;
use crate::error::{KvError, Result};
use crate::types::{KeyInfo, ListPage};

const TAG: &[u8] = b"k1:";

/// Encodes the cursor that resumes a listing after `last_key`.
pub fn encode_cursor(last_key: &str) -> String {
    let mut raw = Vec::with_capacity(TAG.len() + last_key.len());
    raw.extend_from_slice(TAG);
    raw.extend_from_slice(last_key.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a cursor made by [`encode_cursor`] back into the key to resume after.
pub fn decode_cursor(cursor: &str) -> Result<String> {
    let invalid = |reason| KvError::InvalidCursor {
        cursor: cursor.to_owned(),
        reason,
    };
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid("not base64url"))?;
    let key = raw
        .strip_prefix(TAG)
        .ok_or_else(|| invalid("not a cursor of this store"))?;
    String::from_utf8(key.to_vec()).map_err(|_| invalid("not UTF-8"))
}

/// Where a listing with this prefix and optional cursor starts in key order.
///
/// A cursor from before the prefix's range (for example one made for another prefix) starts at
/// the prefix.
pub fn list_start(prefix: &str, cursor: Option<&str>) -> Result<Bound<String>> {
    match cursor {
        Some(cursor) => {
            let after = decode_cursor(cursor)?;
            if after.as_str() < prefix {
                Ok(Bound::Included(prefix.to_owned()))
            } else {
                Ok(Bound::Excluded(after))
            }
        }
        None => Ok(Bound::Included(prefix.to_owned())),
    }
}

/// Builds one page from keys in byte order starting at [`list_start`]: skips expired keys,
/// stops at the end of the prefix, and looks one visible key ahead to know whether the listing
/// is complete.
pub fn collect_page<I>(items: I, prefix: &str, limit: usize, now: SystemTime) -> Result<ListPage>
where
    I: IntoIterator<Item = Result<KeyInfo>>,
{
    let mut keys = Vec::with_capacity(limit.min(1024));
    for item in items {
        let item = item?;
        if !item.name.starts_with(prefix) {
            break;
        }
        if is_expired(item.expiration, now) {
            continue;
        }
        if keys.len() == limit {
            let cursor = keys.last().map(|last: &KeyInfo| encode_cursor(&last.name));
            return Ok(ListPage {
                keys,
                list_complete: false,
                cursor,
            });
        }
        keys.push(item);
    }
    Ok(ListPage {
        keys,
        list_complete: true,
        cursor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for key in ["a", "ключ/с пробелом", "\u{0}x"] {
            assert_eq!(decode_cursor(&encode_cursor(key)).unwrap(), key);
        }
    }

    #[test]
    fn rejects_foreign_cursors() {
        for bad in ["!!", "", "aGVsbG8"] {
            assert!(matches!(
                decode_cursor(bad),
                Err(KvError::InvalidCursor { .. })
            ));
        }
    }

    #[test]
    fn start_is_clamped_to_prefix() {
        assert_eq!(
            list_start("b", Some(&encode_cursor("a"))).unwrap(),
            Bound::Included("b".to_owned())
        );
        assert_eq!(
            list_start("b", Some(&encode_cursor("bb"))).unwrap(),
            Bound::Excluded("bb".to_owned())
        );
    }
}
