//! Cloudflare's bulk-write JSON format, shared by `PUT /{ns}/bulk` and `kv bulk put`.
//!
//! ```json
//! [{"key": "a", "value": "text"},
//!  {"key": "b", "value": "AAEC", "base64": true, "expiration_ttl": 3600, "metadata": {"n": 1}}]
//! ```

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kv_core::{BulkPut, PutOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One item of a bulk write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkWriteItem {
    /// The key.
    pub key: String,
    /// The value: text, or base64 when `base64` is true.
    pub value: String,
    /// Whether `value` is base64 of the bytes to store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    /// Absolute expiration, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<u64>,
    /// Expiration as seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_ttl: Option<u64>,
    /// JSON metadata; a present `null` is kept as `null` metadata, distinct from none.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Value>,
}

/// Deserializes a present field, even `null`, as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Why a bulk item cannot become a write (limits are checked later, by the store handle).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkItemError {
    /// `base64` is true but `value` does not decode.
    #[error("item {index} (key {key:?}): value is not base64: {reason}")]
    Base64 {
        /// The item's position in the array.
        index: usize,
        /// The item's key.
        key: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// Both `expiration` and `expiration_ttl` are set.
    #[error("item {index} (key {key:?}): send either expiration or expiration_ttl, not both")]
    BothExpirations {
        /// The item's position in the array.
        index: usize,
        /// The item's key.
        key: String,
    },
}

impl BulkWriteItem {
    /// The write this item asks for; `index` is its position, for error messages.
    pub fn into_put(self, index: usize) -> Result<BulkPut, BulkItemError> {
        let value = if self.base64 {
            STANDARD
                .decode(self.value.as_bytes())
                .map_err(|e| BulkItemError::Base64 {
                    index,
                    key: self.key.clone(),
                    reason: e.to_string(),
                })?
        } else {
            self.value.into_bytes()
        };
        let mut options = match (self.expiration, self.expiration_ttl) {
            (Some(_), Some(_)) => {
                return Err(BulkItemError::BothExpirations {
                    index,
                    key: self.key,
                })
            }
            (Some(at), None) => PutOptions::new().expiration(at),
            (None, Some(ttl)) => PutOptions::new().ttl(Duration::from_secs(ttl)),
            (None, None) => PutOptions::new(),
        };
        if let Some(metadata) = self.metadata {
            options = options.metadata(metadata);
        }
        Ok(BulkPut::new(self.key, value).with_options(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> BulkWriteItem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn text_and_base64_values() {
        let put = item(r#"{"key":"a","value":"hi"}"#).into_put(0).unwrap();
        assert_eq!(&put.value[..], b"hi");
        let put = item(r#"{"key":"b","value":"AAH/","base64":true,"expiration_ttl":120}"#)
            .into_put(1)
            .unwrap();
        assert_eq!(&put.value[..], &[0, 1, 255]);
        assert_eq!(
            put.options.expiry,
            Some(kv_core::Expiry::Ttl(Duration::from_secs(120)))
        );
    }

    #[test]
    fn bad_items_name_their_position() {
        let err = item(r#"{"key":"k","value":"%%","base64":true}"#)
            .into_put(7)
            .unwrap_err();
        assert!(err.to_string().starts_with("item 7 (key \"k\")"));
        let err = item(r#"{"key":"k","value":"v","expiration":1,"expiration_ttl":60}"#)
            .into_put(0)
            .unwrap_err();
        assert!(matches!(err, BulkItemError::BothExpirations { .. }));
        assert!(serde_json::from_str::<BulkWriteItem>(r#"{"key":"k","value":"v","x":1}"#).is_err());
    }

    #[test]
    fn null_metadata_is_kept() {
        let put = item(r#"{"key":"k","value":"v","metadata":null}"#)
            .into_put(0)
            .unwrap();
        assert_eq!(put.options.metadata, Some(Value::Null));
        let put = item(r#"{"key":"k","value":"v"}"#).into_put(0).unwrap();
        assert_eq!(put.options.metadata, None);
    }
}
