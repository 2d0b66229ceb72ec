//! Where a namespace's records live in Redis and how one record is encoded.
//!
//! See the [module docs](super) for the why; this file is the what: key names, the bucket a
//! key belongs to, the record string, and the versions the client hands out.

use std::sync::atomic::{AtomicU64, Ordering};

use ::redis::{RedisWrite, ToRedisArgs};

/// Buckets per namespace. Each bucket is one hash tag, so one cluster slot: 64 slots spread a
/// namespace over every master of any cluster up to a few dozen masters, while a listing page
/// still merges only 64 ordered indexes (one pipelined `ZRANGEBYLEX` each).
pub(crate) const BUCKETS: usize = 64;

/// The first bytes of every record: the format's name, so a value of another shape (an older
/// layout, a foreign key) reads as an error instead of as garbage.
const MAGIC: &[u8] = b"r1 ";

/// The longest header: `r1 ` + 20-digit version + ` ` + 13-digit expiration + ` ` + 20-digit
/// metadata length + `\n` is 59 bytes. The scripts read this much with `GETRANGE`.
pub(crate) const HEADER_MAX: usize = 64;

/// The bucket of `name`: FNV-1a over its bytes. Stable across processes and versions (it is
/// part of the stored layout), and cheap: it runs on every operation.
pub(crate) fn bucket_of(name: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the high half in: FNV's low bits alone mix the last byte least.
    ((hash ^ (hash >> 32)) % BUCKETS as u64) as usize
}

/// The Redis key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct NamespaceKeys {
    /// `{PREFIX:ID:` — a bucket's tag is this plus two hex digits and `}`.
    tag_start: String,
}

impl NamespaceKeys {
    pub(crate) fn new(prefix: &str, id: &str) -> Self {
        NamespaceKeys {
            tag_start: format!("{{{prefix}:{id}:"),
        }
    }

    fn push_tag(&self, bucket: usize, key: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        key.extend_from_slice(self.tag_start.as_bytes());
        key.push(HEX[bucket >> 4]);
        key.push(HEX[bucket & 15]);
        key.push(b'}');
    }

    fn bucket_key(&self, bucket: usize, suffix: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.tag_start.len() + 3 + suffix.len());
        self.push_tag(bucket, &mut key);
        key.extend_from_slice(suffix);
        key
    }

    /// The record key of `name` (in `name`'s bucket).
    pub(crate) fn record(&self, name: &[u8]) -> Vec<u8> {
        self.record_in(bucket_of(name), name)
    }

    /// The record key of `name`, whose bucket is already known.
    pub(crate) fn record_in(&self, bucket: usize, name: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.tag_start.len() + 6 + name.len());
        self.push_tag(bucket, &mut key);
        key.extend_from_slice(b":k:");
        key.extend_from_slice(name);
        key
    }

    /// The bucket's ordered index of key names (a sorted set, all scores 0); a string
    /// tombstone once the namespace is deleted.
    pub(crate) fn index(&self, bucket: usize) -> Vec<u8> {
        self.bucket_key(bucket, b":i")
    }

    /// Where a namespace deletion moves a bucket's index while it removes the records.
    pub(crate) fn retired(&self, bucket: usize) -> Vec<u8> {
        self.bucket_key(bucket, b":dead")
    }
}

/// What the header of a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: u64,
    pub expiration: Option<u64>,
    /// Bytes of metadata JSON after the header (0: none; JSON is never empty).
    pub meta_len: usize,
    /// Where the metadata starts (the header's length).
    pub body_start: usize,
}

impl Header {
    /// Where the value starts.
    pub(crate) fn value_start(&self) -> usize {
        self.body_start + self.meta_len
    }
}

/// Reads a record's header; `None` when `bytes` does not start with one.
pub(crate) fn parse_header(bytes: &[u8]) -> Option<Header> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let end = rest.iter().take(HEADER_MAX).position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&rest[..end]).ok()?;
    let mut fields = line.split(' ');
    let version = parse_decimal(fields.next()?)?;
    let expiration = match fields.next()? {
        "-" => None,
        text => Some(parse_decimal(text)?),
    };
    let meta_len = usize::try_from(parse_decimal(fields.next()?)?).ok()?;
    if fields.next().is_some() {
        return None;
    }
    Some(Header {
        version,
        expiration,
        meta_len,
        body_start: MAGIC.len() + end + 1,
    })
}

/// Digits only (no sign, no spaces), which is what the writer prints and the scripts match.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One record as a command argument: the header, the metadata and the value written straight
/// into the command buffer, so a 25 MiB value is copied once, not twice.
pub(crate) struct RecordArg<'a> {
    header: String,
    meta: &'a [u8],
    value: &'a [u8],
}

impl<'a> RecordArg<'a> {
    pub(crate) fn new(
        version: u64,
        expiration: Option<u64>,
        meta: Option<&'a str>,
        value: &'a [u8],
    ) -> Self {
        let meta = meta.map(str::as_bytes).unwrap_or_default();
        let header = match expiration {
            Some(at) => format!("r1 {version} {at} {}\n", meta.len()),
            None => format!("r1 {version} - {}\n", meta.len()),
        };
        RecordArg {
            header,
            meta,
            value,
        }
    }

    /// The encoded length.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.header.len() + self.meta.len() + self.value.len()
    }

    /// The record as one byte string (for tests and scripts' arguments).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        [self.header.as_bytes(), self.meta, self.value].concat()
    }
}

impl ToRedisArgs for RecordArg<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        use std::io::Write;
        let mut writer = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = writer.write_all(self.header.as_bytes());
        let _ = writer.write_all(self.meta);
        let _ = writer.write_all(self.value);
    }
}

/// Hands out record versions without a round trip: a per-process random salt plus a counter,
/// through a bijective mixer. Within one process two writes never share a version (the mixer
/// is a bijection of distinct counter values); between processes a repeat needs two 64-bit
/// random values to meet, about 2^-64 per pair of writes to one key. Since a version names one
/// write, the conditional `put` script sent again after its reply was lost recognises the
/// write it already made (see `scripts.rs`).
#[derive(Debug)]
pub(crate) struct Versions {
    salt: u64,
    counter: AtomicU64,
}

impl Versions {
    pub(crate) fn new() -> Self {
        // A fresh namespace id is 128 random bits in hex: 64 of them are the salt.
        let id = kv_core::new_namespace_id();
        let salt = u64::from_str_radix(&id[..16], 16).unwrap_or(0x9e37_79b9_7f4a_7c15);
        Versions {
            salt,
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh version, never 0.
    pub(crate) fn next(&self) -> u64 {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let version = splitmix64(self.salt.wrapping_add(n));
            if version != 0 {
                return version;
            }
        }
    }
}

/// SplitMix64's finalizer: a bijection on u64 that scatters consecutive inputs.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back() {
        for (version, expiration, meta, value) in [
            (
                u64::MAX,
                Some(9_007_199_254_740),
                Some("{\"a\":1}"),
                &b"v\nx"[..],
            ),
            (1, None, None, &b""[..]),
            (42, Some(1_700_000_060), None, &b"r1 9 - 0\n"[..]),
        ] {
            let arg = RecordArg::new(version, expiration, meta, value);
            let bytes = arg.to_vec();
            assert_eq!(bytes.len(), arg.len());
            assert!(bytes.len() - value.len() - meta.map_or(0, str::len) <= HEADER_MAX);
            let header = parse_header(&bytes).unwrap();
            assert_eq!(header.version, version);
            assert_eq!(header.expiration, expiration);
            let meta_bytes = &bytes[header.body_start..header.value_start()];
            assert_eq!(meta_bytes, meta.unwrap_or("").as_bytes());
            assert_eq!(&bytes[header.value_start()..], value);
        }
    }

    #[test]
    fn foreign_bytes_are_not_records() {
        for bytes in [
            &b""[..],
            b"hello",
            b"r1 1 - 0",
            b"r1 -1 - 0\n",
            b"r1 1 + 0\n",
            b"r1 1 - 0 9\n",
            b"r1 99999999999999999999 - 0\n",
            b"r2 1 - 0\n",
        ] {
            assert_eq!(parse_header(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn keys_spread_over_every_bucket_and_share_a_tag_with_their_index() {
        let keys = NamespaceKeys::new("kv", "abc");
        let mut seen = [0usize; BUCKETS];
        for i in 0..6400 {
            seen[bucket_of(format!("session:{i}").as_bytes())] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        let record = keys.record(b"k");
        let bucket = bucket_of(b"k");
        let tag = |key: &[u8]| key[..key.iter().position(|b| *b == b'}').unwrap() + 1].to_vec();
        assert_eq!(tag(&record), tag(&keys.index(bucket)));
        assert_eq!(tag(&record), tag(&keys.retired(bucket)));
        assert_eq!(
            tag(&record),
            format!("{{kv:abc:{bucket:02x}}}").into_bytes()
        );
    }

    #[test]
    fn versions_do_not_repeat() {
        let versions = Versions::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(versions.next()));
        }
        assert!(!seen.contains(&0));
        // Another process (another salt) starts elsewhere.
        let other = Versions::new();
        assert!(!seen.contains(&other.next()));
    }
}
