//! The on-disk encoding of one entry (the value stored under a key in a namespace table).
//!
//! Format version 1, all integers little-endian:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | format version, `1` |
//! | 1 | 1 | flags: bit 0 = expiration present, bit 1 = metadata present; other bits zero |
//! | 2 | 8 | entry version (`u64`) |
//! | 10 | 8 | expiration, unix seconds (`u64`), only when bit 0 is set |
//! | .. | 4 | metadata length `n` (`u32`), only when bit 1 is set |
//! | .. | n | metadata as JSON text, only when bit 1 is set |
//! | .. | rest | the value's bytes |
//!
//! Metadata that is the JSON `null` is stored as the 4 bytes `null` with bit 1 set, so it stays
//! distinct from "no metadata". Decoding never panics: a truncated or unknown record is a
//! [`RecordError`].

use std::fmt;

use serde_json::Value;

/// The format version this module writes and reads.
pub(crate) const FORMAT_V1: u8 = 1;

const FLAG_EXPIRATION: u8 = 0b01;
const FLAG_METADATA: u8 = 0b10;
const KNOWN_FLAGS: u8 = FLAG_EXPIRATION | FLAG_METADATA;

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The record is shorter than its header says.
    Truncated,
    /// The leading format byte is not one this build reads.
    UnknownFormat(u8),
    /// Flag bits this format does not define are set.
    UnknownFlags(u8),
    /// The metadata bytes are not valid JSON.
    BadMetadata(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated => f.write_str("record is truncated"),
            RecordError::UnknownFormat(format) => {
                write!(f, "unknown record format version {format}")
            }
            RecordError::UnknownFlags(flags) => write!(f, "unknown record flags {flags:#04x}"),
            RecordError::BadMetadata(error) => write!(f, "metadata is not valid JSON: {error}"),
        }
    }
}

/// A record that failed to decode, with where it was found; the source of the
/// [`KvError::Backend`](kv_core::KvError::Backend) a read of it returns.
#[derive(Debug)]
pub(crate) struct CorruptRecord {
    pub(crate) namespace: String,
    pub(crate) key: String,
    pub(crate) error: RecordError,
}

impl fmt::Display for CorruptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt record for key {:?} in namespace {:?}: {}",
            self.key, self.namespace, self.error
        )
    }
}

impl std::error::Error for CorruptRecord {}

/// The header of a record: everything before the value's bytes.
///
/// A write encodes the header first and then copies the value right behind it in the space
/// reserved in the table, so the value is copied once.
pub(crate) fn encode_header(
    version: u64,
    expiration: Option<u64>,
    metadata_json: Option<&[u8]>,
) -> Vec<u8> {
    let mut flags = 0;
    let mut len = 10;
    if expiration.is_some() {
        flags |= FLAG_EXPIRATION;
        len += 8;
    }
    if let Some(json) = metadata_json {
        flags |= FLAG_METADATA;
        len += 4 + json.len();
    }
    let mut header = Vec::with_capacity(len);
    header.push(FORMAT_V1);
    header.push(flags);
    header.extend_from_slice(&version.to_le_bytes());
    if let Some(expiration) = expiration {
        header.extend_from_slice(&expiration.to_le_bytes());
    }
    if let Some(json) = metadata_json {
        // The metadata limit is far below 4 GiB; a relaxed limit beyond that would be refused by
        // redb's own pair-size limit long before this point.
        let json_len = u32::try_from(json.len()).unwrap_or(u32::MAX);
        header.extend_from_slice(&json_len.to_le_bytes());
        header.extend_from_slice(json);
    }
    header
}

/// Encodes a whole record (header and value) into one buffer.
#[cfg(test)]
pub(crate) fn encode(
    version: u64,
    expiration: Option<u64>,
    metadata_json: Option<&[u8]>,
    value: &[u8],
) -> Vec<u8> {
    let mut record = encode_header(version, expiration, metadata_json);
    record.extend_from_slice(value);
    record
}

/// A decoded record borrowing the stored bytes; the metadata stays JSON text until asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    pub(crate) version: u64,
    pub(crate) expiration: Option<u64>,
    pub(crate) metadata_json: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Decodes a stored record.
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, RecordError> {
        let mut rest = bytes;
        let format = take_u8(&mut rest)?;
        if format != FORMAT_V1 {
            return Err(RecordError::UnknownFormat(format));
        }
        let flags = take_u8(&mut rest)?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(RecordError::UnknownFlags(flags));
        }
        let version = take_u64(&mut rest)?;
        let expiration = if flags & FLAG_EXPIRATION != 0 {
            Some(take_u64(&mut rest)?)
        } else {
            None
        };
        let metadata_json = if flags & FLAG_METADATA != 0 {
            let len = take_u32(&mut rest)? as usize;
            Some(take(&mut rest, len)?)
        } else {
            None
        };
        Ok(RecordRef {
            version,
            expiration,
            metadata_json,
            value: rest,
        })
    }

    /// Parses the metadata.
    pub(crate) fn metadata(&self) -> Result<Option<Value>, RecordError> {
        self.metadata_json
            .map(|json| {
                serde_json::from_slice(json).map_err(|e| RecordError::BadMetadata(e.to_string()))
            })
            .transpose()
    }
}

fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], RecordError> {
    if rest.len() < len {
        return Err(RecordError::Truncated);
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}

fn take_u8(rest: &mut &[u8]) -> Result<u8, RecordError> {
    Ok(take(rest, 1)?[0])
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, RecordError> {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(take(rest, 4)?);
    Ok(u32::from_le_bytes(bytes))
}

fn take_u64(rest: &mut &[u8]) -> Result<u64, RecordError> {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(take(rest, 8)?);
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(expiration: Option<u64>, metadata: Option<Value>, value: &[u8]) {
        let json = metadata.as_ref().map(|m| serde_json::to_vec(m).unwrap());
        let bytes = encode(42, expiration, json.as_deref(), value);
        let record = RecordRef::decode(&bytes).unwrap();
        assert_eq!(record.version, 42);
        assert_eq!(record.expiration, expiration);
        assert_eq!(record.metadata().unwrap(), metadata);
        assert_eq!(record.value, value);
    }

    #[test]
    fn round_trips() {
        round_trip(None, None, b"");
        round_trip(None, None, b"value");
        round_trip(Some(1_700_000_060), None, b"v");
        round_trip(None, Some(json!({"a": [1, 2]})), b"v");
        round_trip(Some(u64::MAX), Some(json!("text")), &[0, 1, 2, 255]);
    }

    #[test]
    fn null_metadata_is_not_absent_metadata() {
        let null = encode(1, None, Some(b"null"), b"v");
        let none = encode(1, None, None, b"v");
        assert_ne!(null, none);
        assert_eq!(
            RecordRef::decode(&null).unwrap().metadata().unwrap(),
            Some(Value::Null)
        );
        assert_eq!(RecordRef::decode(&none).unwrap().metadata().unwrap(), None);
    }

    #[test]
    fn layout_is_stable() {
        let bytes = encode(0x0102, Some(0x0a0b), Some(b"{}"), b"xy");
        let mut expected = vec![1, 0b11, 0x02, 0x01, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[0x0b, 0x0a, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[2, 0, 0, 0, b'{', b'}', b'x', b'y']);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn corrupt_records_are_errors() {
        assert_eq!(RecordRef::decode(&[]), Err(RecordError::Truncated));
        assert_eq!(
            RecordRef::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RecordError::UnknownFormat(9))
        );
        assert_eq!(
            RecordRef::decode(&[1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RecordError::UnknownFlags(0x80))
        );
        // Header cut short.
        assert_eq!(
            RecordRef::decode(&[1, 0, 1, 2]),
            Err(RecordError::Truncated)
        );
        // Expiration flag without the expiration.
        assert_eq!(
            RecordRef::decode(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(RecordError::Truncated)
        );
        // Metadata length past the end.
        let mut bytes = encode(1, None, Some(b"{}"), b"");
        bytes[10] = 200;
        assert_eq!(RecordRef::decode(&bytes), Err(RecordError::Truncated));
        // Metadata that is not JSON.
        let bytes = encode(1, None, Some(b"{nope"), b"v");
        let record = RecordRef::decode(&bytes).unwrap();
        assert!(matches!(
            record.metadata(),
            Err(RecordError::BadMetadata(_))
        ));
    }

    #[test]
    fn every_truncation_fails_or_decodes_without_panicking() {
        let bytes = encode(7, Some(99), Some(br#"{"k":"v"}"#), b"value");
        for len in 0..bytes.len() {
            let _ = RecordRef::decode(&bytes[..len]).map(|r| r.metadata());
        }
    }
}
