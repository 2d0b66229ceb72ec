//! The stored form of a session and the data overlay a request works on.
//!
//! A loaded session keeps its data as the JSON text it was stored as (a slice of the entry's
//! bytes, no copy) and looks keys up in it on demand; only this request's changes are kept as
//! values. Reading a session thus builds no map, and writing it copies the unchanged values
//! through verbatim.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::expiry::StoredExpiry;

/// One stored session: its end, its own expiry if any, and where its data object is.
///
/// A record is a JSON document under the hash of the session ID, written in this key order
/// (readers accept any order):
///
/// ```json
/// {"expires_at": 1700086400, "expiry": {"inactivity": 86400}, "data": {"user": "ada"}}
/// ```
///
/// `expires_at` (seconds since the Unix epoch) is the session's own end, checked on load with
/// the store's clock; the entry's TTL follows it (but is at least the store's minimum TTL).
/// `expiry` is present only when the session's handler chose one; otherwise the layer's
/// configured expiry applies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordHead {
    pub(crate) expires_at: u64,
    pub(crate) expiry: Option<StoredExpiry>,
    data: Range<usize>,
}

/// The general form, for records not in our own key order.
#[derive(Deserialize)]
struct AnyOrder<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    expires_at: u64,
    #[serde(default)]
    expiry: Option<StoredExpiry>,
}

impl RecordHead {
    /// Parses a stored record (an error when it is not one).
    ///
    /// Records as [`write_record`] writes them are read without parsing the data, which is
    /// looked into only when used (and a malformed one makes saving fail, never loses data);
    /// any other layout goes through a full JSON parse.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        if let Some(head) = Self::parse_own(bytes) {
            return Ok(head);
        }
        let any: AnyOrder<'_> = serde_json::from_slice(bytes)?;
        let text = any.data.get();
        if !text.starts_with('{') {
            return Err(de::Error::custom("session data is not a JSON object"));
        }
        let start = (text.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
        let data = start..start.saturating_add(text.len());
        if bytes.get(data.clone()) != Some(text.as_bytes()) {
            return Err(de::Error::custom("session data is not part of the record"));
        }
        Ok(RecordHead {
            expires_at: any.expires_at,
            expiry: any.expiry,
            data,
        })
    }

    /// `{"expires_at":N[,"expiry":{...}],"data":{...}}` exactly.
    fn parse_own(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(b"{\"expires_at\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 {
            return None;
        }
        let expires_at: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let mut rest = &rest[digits..];
        let mut expiry = None;
        if let Some(after) = rest.strip_prefix(b",\"expiry\":") {
            let mut stream =
                serde_json::Deserializer::from_slice(after).into_iter::<StoredExpiry>();
            expiry = Some(stream.next()?.ok()?);
            rest = &after[stream.byte_offset()..];
        }
        let data = rest.strip_prefix(b",\"data\":")?.strip_suffix(b"}")?;
        if data.first() != Some(&b'{') || data.last() != Some(&b'}') {
            return None;
        }
        let start = bytes.len() - 1 - data.len();
        Some(RecordHead {
            expires_at,
            expiry,
            data: start..start + data.len(),
        })
    }

    /// The data object, as a handle on `bytes` (which `self` was parsed from).
    pub(crate) fn data(&self, bytes: &Bytes) -> RawObject {
        RawObject::new(bytes.clone(), self.data.clone())
    }
}

/// Writes a record: `{"expires_at":...,"expiry":...,"data":...}`; returns the bytes and where
/// the data object is in them.
pub(crate) fn write_record(
    data: &Data,
    expires_at: u64,
    expiry: Option<StoredExpiry>,
) -> Result<(Bytes, Range<usize>), serde_json::Error> {
    let mut out = Vec::with_capacity(64 + data.base.text().len());
    out.extend_from_slice(b"{\"expires_at\":");
    serde_json::to_writer(&mut out, &expires_at)?;
    if let Some(expiry) = expiry {
        out.extend_from_slice(b",\"expiry\":");
        serde_json::to_writer(&mut out, &expiry)?;
    }
    out.extend_from_slice(b",\"data\":");
    let start = out.len();
    serde_json::to_writer(&mut out, data)?;
    let end = out.len();
    out.push(b'}');
    Ok((Bytes::from(out), start..end))
}

/// A JSON object kept as text: a range of a shared buffer.
#[derive(Clone, PartialEq)]
pub(crate) struct RawObject {
    bytes: Bytes,
    range: Range<usize>,
}

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Default for RawObject {
    fn default() -> Self {
        RawObject {
            bytes: Bytes::from_static(b"{}"),
            range: 0..2,
        }
    }
}

impl RawObject {
    /// A handle on `range` of `bytes`, which must hold a JSON object there.
    pub(crate) fn new(bytes: Bytes, range: Range<usize>) -> Self {
        RawObject { bytes, range }
    }

    /// The object's text; not valid UTF-8 reads as `"\u{fffd}"`, which no scan accepts.
    fn text(&self) -> &str {
        self.bytes
            .get(self.range.clone())
            .and_then(|slice| std::str::from_utf8(slice).ok())
            .unwrap_or("\u{fffd}")
    }

    /// Whether this is the empty object a new session starts with (no scan needed).
    fn is_blank(&self) -> bool {
        self.range.len() == 2 && self.bytes.get(self.range.clone()) == Some(b"{}".as_slice())
    }

    /// The value under `key`; `None` also when the stored data is malformed.
    fn find(&self, key: &str) -> Option<&RawValue> {
        if self.is_blank() {
            return None;
        }
        let mut found = None;
        let scanned = self.scan(|k, v| {
            if found.is_none() && k == key {
                found = Some(v);
            }
        });
        scanned.ok().and(found)
    }

    /// Every entry, in stored order; an error when the stored data is malformed.
    fn entries(&self) -> Result<Vec<(Cow<'_, str>, &RawValue)>, serde_json::Error> {
        let mut entries = Vec::new();
        if self.is_blank() {
            return Ok(entries);
        }
        self.scan(|k, v| entries.push((k, v)))?;
        Ok(entries)
    }

    /// Calls `f` for every entry, then checks that nothing follows the object.
    fn scan<'a>(
        &'a self,
        f: impl FnMut(Cow<'a, str>, &'a RawValue),
    ) -> Result<(), serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(self.text());
        de::Deserializer::deserialize_map(&mut deserializer, ScanVisitor(f))?;
        deserializer.end()
    }
}

/// Visits a JSON object's entries with borrowed keys and raw values.
struct ScanVisitor<F>(F);

impl<'de, F: FnMut(Cow<'de, str>, &'de RawValue)> Visitor<'de> for ScanVisitor<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            (self.0)(key, value);
        }
        Ok(())
    }
}

/// A map key, borrowed from the input unless it holds escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A value found in the session: one this request set, or one as stored.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found<'a> {
    Value(&'a Value),
    Raw(&'a RawValue),
}

impl Found<'_> {
    pub(crate) fn decode<T: DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        match self {
            Found::Value(value) => T::deserialize(value),
            Found::Raw(raw) => serde_json::from_str(raw.get()),
        }
    }

    pub(crate) fn to_value(self) -> Value {
        match self {
            Found::Value(value) => value.clone(),
            // Stored text was validated as JSON; an impossible failure reads as null.
            Found::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }

    fn equals(self, value: &Value) -> bool {
        match self {
            Found::Value(found) => found == value,
            Found::Raw(raw) => serde_json::from_str::<Value>(raw.get()).is_ok_and(|v| &v == value),
        }
    }
}

/// The session's data during one request: what was loaded, plus this request's changes key by
/// key, so that a save that meets a concurrent write can re-apply exactly those changes on top
/// of the newer record.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Data {
    /// The data as loaded (or as last written by this request).
    base: RawObject,
    /// This request's changes, each different from the loaded data: `Some` sets a key, `None`
    /// removes it.
    changes: BTreeMap<String, Option<Value>>,
}

impl Data {
    pub(crate) fn new(base: RawObject) -> Self {
        Data {
            base,
            changes: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Found<'_>> {
        match self.changes.get(key) {
            Some(change) => change.as_ref().map(Found::Value),
            None => self.base.find(key).map(Found::Raw),
        }
    }

    /// Sets a key; an equal value is not a change.
    pub(crate) fn insert(&mut self, key: &str, value: Value) {
        let stored_equal = || {
            self.base
                .find(key)
                .is_some_and(|stored| Found::Raw(stored).equals(&value))
        };
        match self.changes.get(key) {
            // Already set to this value by this request.
            Some(Some(current)) if *current == value => {}
            // Back to the loaded value: no longer a change.
            Some(_) if stored_equal() => {
                self.changes.remove(key);
            }
            Some(_) => {
                self.changes.insert(key.to_owned(), Some(value));
            }
            // Unchanged so far: a change only if it differs from the loaded value.
            None if stored_equal() => {}
            None => {
                self.changes.insert(key.to_owned(), Some(value));
            }
        }
    }

    /// Removes a key; removing an absent key is not a change.
    pub(crate) fn remove(&mut self, key: &str) {
        let stored = self.base.find(key).is_some();
        match self.changes.get(key) {
            Some(None) => {}
            Some(Some(_)) if stored => {
                self.changes.insert(key.to_owned(), None);
            }
            Some(Some(_)) => {
                self.changes.remove(key);
            }
            None if stored => {
                self.changes.insert(key.to_owned(), None);
            }
            None => {}
        }
    }

    /// Removes every key, one by one (so a concurrent request's new keys survive a merge).
    pub(crate) fn clear(&mut self) {
        self.changes.clear();
        for (key, _) in self.base.entries().unwrap_or_default() {
            self.changes.insert(key.into_owned(), None);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changes.values().all(Option::is_none)
            && self
                .base
                .entries()
                .unwrap_or_default()
                .iter()
                .all(|(key, _)| self.changes.contains_key(&**key))
    }

    /// Whether the data differs from what was loaded.
    pub(crate) fn is_modified(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Replaces the loaded data with a newer version, keeping this request's changes (the
    /// merge after a conflicting concurrent write). Changes that the newer data already holds
    /// stop being changes.
    pub(crate) fn rebase(&mut self, base: RawObject) {
        self.base = base;
        let base = &self.base;
        self.changes
            .retain(|key, change| match (change, base.find(key)) {
                (Some(value), Some(stored)) => !Found::Raw(stored).equals(value),
                (None, stored) => stored.is_some(),
                (Some(_), None) => true,
            });
    }

    /// This request's changes are now stored, as `written`.
    pub(crate) fn commit(&mut self, written: RawObject) {
        self.base = written;
        self.changes.clear();
    }
}

/// Serializes as the JSON object of the data with this request's changes applied; unchanged
/// values are copied through as stored.
impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.base.entries().map_err(|error| {
            serde::ser::Error::custom(format!("the stored session data is malformed: {error}"))
        })?;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in entries {
            if !self.changes.contains_key(&*key) {
                map.serialize_entry(&key, value)?;
            }
        }
        for (key, change) in &self.changes {
            if let Some(value) = change {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: Value) -> RawObject {
        let text = serde_json::to_vec(&value).unwrap();
        let len = text.len();
        RawObject::new(Bytes::from(text), 0..len)
    }

    fn view(data: &Data) -> Value {
        serde_json::to_value(data).unwrap()
    }

    #[test]
    fn lookups_in_stored_text() {
        let text = br#"{"a":1,"b":{"c":[1,2]},"e\u0073c":"x"}"#;
        let data = Data::new(RawObject::new(Bytes::from_static(text), 0..text.len()));
        assert_eq!(data.get("a").unwrap().to_value(), json!(1));
        assert_eq!(
            data.get("b").unwrap().decode::<Value>().unwrap(),
            json!({"c": [1, 2]})
        );
        assert_eq!(
            data.get("esc").unwrap().to_value(),
            json!("x"),
            "escaped key"
        );
        assert!(data.get("c").is_none());
        assert!(data.get("a").unwrap().decode::<String>().is_err());
    }

    #[test]
    fn equal_inserts_and_absent_removes_are_not_changes() {
        let mut data = Data::new(raw(json!({"a": 1})));
        data.insert("a", json!(1));
        assert!(!data.is_modified());
        data.remove("missing");
        assert!(!data.is_modified());
        data.insert("a", json!(2));
        assert!(data.is_modified());
        data.insert("a", json!(1));
        assert!(!data.is_modified(), "back to the loaded value");
        data.insert("b", json!(true));
        data.remove("b");
        assert!(!data.is_modified(), "added then removed");
    }

    #[test]
    fn clear_and_emptiness() {
        let mut data = Data::new(raw(json!({"a": 1, "b": 2})));
        assert!(!data.is_empty());
        data.insert("c", json!(3));
        data.clear();
        assert!(data.is_empty());
        assert!(data.is_modified());
        assert_eq!(view(&data), json!({}));
        data.insert("a", json!(1));
        assert!(!data.is_empty());
        assert_eq!(view(&data), json!({"a": 1}));

        let mut empty = Data::default();
        assert!(empty.is_empty());
        empty.clear();
        assert!(empty.is_empty());
        assert!(!empty.is_modified());
    }

    #[test]
    fn rebase_reapplies_changes_key_by_key() {
        let mut data = Data::new(raw(json!({"a": 1, "b": 1, "gone": 0})));
        data.insert("a", json!(2));
        data.remove("gone");
        // A concurrent request changed "b" and added "c".
        data.rebase(raw(json!({"a": 1, "b": 5, "c": 7, "gone": 0})));
        assert_eq!(view(&data), json!({"a": 2, "b": 5, "c": 7}));
        // A concurrent request made the same change: nothing left to write.
        let mut same = Data::new(raw(json!({"a": 1})));
        same.insert("a", json!(2));
        same.rebase(raw(json!({"a": 2})));
        assert!(!same.is_modified());
    }

    #[test]
    fn records_round_trip() {
        let mut data = Data::new(raw(json!({"user": "ada", "n": 1})));
        data.insert("n", json!(2));
        let (bytes, range) = write_record(&data, 1_700_086_400, None).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"expires_at":1700086400,"data":{"user":"ada","n":2}}"#
        );
        data.commit(RawObject::new(bytes.clone(), range.clone()));
        assert!(!data.is_modified());
        assert_eq!(data.get("n").unwrap().to_value(), json!(2));

        let head = RecordHead::parse(&bytes).unwrap();
        assert_eq!(head.expires_at, 1_700_086_400);
        assert_eq!(head.expiry, None);
        assert_eq!(head.data(&bytes), RawObject::new(bytes.clone(), range));

        let (bytes, _) = write_record(&data, 5, Some(StoredExpiry::SessionEnd(600))).unwrap();
        let head = RecordHead::parse(&bytes).unwrap();
        assert_eq!(head.expiry, Some(StoredExpiry::SessionEnd(600)));

        assert!(RecordHead::parse(br#"{"data":[1],"expires_at":5}"#).is_err());
        assert!(RecordHead::parse(br#"{"expires_at":5,"data":[1]}"#).is_err());
        assert!(RecordHead::parse(b"not json").is_err());
        assert!(RecordHead::parse(b"").is_err());
        assert!(RecordHead::parse(br#"{"expires_at":5,"data":{"a":1}"#).is_err());

        // Any key order and spacing is read too.
        let other = Bytes::from_static(
            br#" { "data" : {"a": [1]}, "expiry": {"at": 9}, "expires_at": 7 } "#,
        );
        let head = RecordHead::parse(&other).unwrap();
        assert_eq!(
            (head.expires_at, head.expiry),
            (7, Some(StoredExpiry::At(9)))
        );
        let data = Data::new(head.data(&other));
        assert_eq!(data.get("a").unwrap().to_value(), json!([1]));
    }

    #[test]
    fn malformed_stored_data_fails_to_save_instead_of_losing_it() {
        let bytes = Bytes::from_static(br#"{"expires_at":5,"data":{"a":1,"b":}}"#);
        let head = RecordHead::parse(&bytes).unwrap();
        let mut data = Data::new(head.data(&bytes));
        assert!(data.get("a").is_none());
        data.insert("c", json!(1));
        assert!(write_record(&data, 6, None).is_err());
    }
}
