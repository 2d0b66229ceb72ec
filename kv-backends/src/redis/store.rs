//! One namespace of the Redis backend.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use ::redis::AsyncCommands;
use kv_core::{
    async_trait, collect_page, is_expired, list_start, Bytes, Capabilities, DeleteOutcome, Entry,
    KeyInfo, KvError, LimitError, ListOptions, ListPage, NamespaceStore, NewEntry, PutOutcome,
    Result, Version, WriteMode,
};
use serde_json::Value;

use super::{redis_error, Shared, KIND, MAX_EXPIRATION_SECS};

/// Names fetched from the index per round trip while filling a page.
const LIST_BATCH: usize = 256;

/// The Redis keys of one namespace; all share the hash tag `{PREFIX:ID}`.
#[derive(Debug, Clone)]
pub(crate) struct NamespaceKeys {
    tag: String,
    /// Sorted set of the key names.
    pub index: String,
    /// Version counter.
    pub versions: String,
    /// Present while the namespace exists.
    pub live: String,
}

impl NamespaceKeys {
    pub(crate) fn new(prefix: &str, id: &str) -> Self {
        let tag = format!("{{{prefix}:{id}}}");
        NamespaceKeys {
            index: format!("{tag}:i"),
            versions: format!("{tag}:v"),
            live: format!("{tag}:live"),
            tag,
        }
    }

    /// The record key of `name`.
    pub(crate) fn record(&self, name: impl AsRef<[u8]>) -> Vec<u8> {
        let name = name.as_ref();
        let mut key = Vec::with_capacity(self.tag.len() + 3 + name.len());
        key.extend_from_slice(self.tag.as_bytes());
        key.extend_from_slice(b":k:");
        key.extend_from_slice(name);
        key
    }
}

/// The fields of a record as `HMGET v m e ver` returns them.
type RawRecord = (Option<Vec<u8>>, Option<String>, Option<u64>, Option<u64>);

pub(crate) struct RedisNamespace {
    shared: Arc<Shared>,
    id: Arc<str>,
    keys: NamespaceKeys,
}

impl fmt::Debug for RedisNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNamespace")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn mode_args(mode: WriteMode) -> (&'static str, String) {
    match mode {
        WriteMode::Overwrite => ("overwrite", String::new()),
        WriteMode::OnlyIfAbsent => ("absent", String::new()),
        WriteMode::OnlyIfVersion(version) => ("version", version.raw().to_string()),
    }
}

/// A script refused its arguments (and wrote nothing): `record_args` and the scripts' own check
/// disagree, which is a bug here, not the caller's.
fn invalid_arguments() -> KvError {
    KvError::backend(
        KIND,
        kv_core::Message("a write script refused its arguments; nothing was written".into()),
    )
}

fn decode_metadata(key: &str, json: Option<String>) -> Result<Option<Value>> {
    json.map(|text| {
        serde_json::from_str(&text).map_err(|e| {
            KvError::backend(
                KIND,
                kv_core::Message(format!("metadata of key {key:?} is not JSON: {e}")),
            )
        })
    })
    .transpose()
}

impl RedisNamespace {
    pub(crate) fn new(shared: Arc<Shared>, id: &str, keys: NamespaceKeys) -> Self {
        RedisNamespace {
            shared,
            id: Arc::from(id),
            keys,
        }
    }

    fn now_ms(&self) -> u64 {
        self.shared
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// The script arguments of one record: value, has metadata, metadata, expiration, TTL ms.
    ///
    /// An expiration past [`MAX_EXPIRATION_SECS`] is refused here, before any round trip: the
    /// shared limits stop it by default, but limits can be relaxed, and the scripts could not
    /// apply it (they refuse it too, as a last line, before writing anything).
    fn record_args(
        &self,
        entry: &NewEntry,
    ) -> Result<(Bytes, &'static str, String, String, String)> {
        let (has_meta, meta) = match &entry.metadata {
            Some(metadata) => (
                "1",
                serde_json::to_string(metadata).map_err(|source| KvError::Encode {
                    what: "metadata",
                    source,
                })?,
            ),
            None => ("0", String::new()),
        };
        let (expiration, pttl) = match entry.expiration {
            Some(at) if at > MAX_EXPIRATION_SECS => {
                return Err(LimitError::ExpirationTooLate {
                    expiration: at,
                    max: MAX_EXPIRATION_SECS,
                }
                .into())
            }
            Some(at) => {
                // At most 2^53 - 1 ms after the bound check, so neither side can overflow; an
                // expiration already past (the clock moved) still gets the shortest Redis TTL.
                let remaining = (at * 1000).saturating_sub(self.now_ms()).max(1);
                (at.to_string(), remaining.to_string())
            }
            None => (String::new(), String::new()),
        };
        Ok((entry.value.clone(), has_meta, meta, expiration, pttl))
    }

    fn to_entry(&self, key: &str, raw: RawRecord) -> Result<Option<Entry>> {
        let (value, metadata, expiration, version) = raw;
        let (Some(value), Some(version)) = (value, version) else {
            return Ok(None);
        };
        if is_expired(expiration, self.shared.clock.now()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            value: Bytes::from(value),
            metadata: decode_metadata(key, metadata)?,
            expiration,
            version: Version::from_raw(version),
        }))
    }

    fn gone(&self) -> KvError {
        KvError::NamespaceNotFound {
            name: self.id.to_string(),
        }
    }
}

#[async_trait]
impl NamespaceStore for RedisNamespace {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let mut conn = self.shared.conn.clone();
        let raw: RawRecord = ::redis::cmd("HMGET")
            .arg(self.keys.record(key))
            .arg(&["v", "m", "e", "ver"])
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        self.to_entry(key, raw)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let mut pipe = ::redis::pipe();
        for key in keys {
            pipe.cmd("HMGET")
                .arg(self.keys.record(key))
                .arg(&["v", "m", "e", "ver"]);
        }
        let mut conn = self.shared.conn.clone();
        let raws: Vec<RawRecord> = pipe.query_async(&mut conn).await.map_err(redis_error)?;
        keys.iter()
            .zip(raws)
            .map(|(key, raw)| self.to_entry(key, raw))
            .collect()
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let (mode_name, expected) = mode_args(mode);
        let (value, has_meta, meta, expiration, pttl) = self.record_args(&entry)?;
        let mut conn = self.shared.conn.clone();
        let outcome: i64 = self
            .shared
            .scripts
            .put
            .key(self.keys.record(key))
            .key(&self.keys.index)
            .key(&self.keys.versions)
            .key(&self.keys.live)
            .arg(key)
            .arg(mode_name)
            .arg(expected)
            .arg(self.shared.clock.unix_secs())
            .arg(value.as_ref())
            .arg(has_meta)
            .arg(meta)
            .arg(expiration)
            .arg(pttl)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        match outcome {
            -1 => Ok(PutOutcome::ConditionFailed),
            -2 => Err(self.gone()),
            -3 => Err(invalid_arguments()),
            version => Ok(PutOutcome::Written(Version::from_raw(version as u64))),
        }
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let (mode_name, expected) = mode_args(mode);
        let mut conn = self.shared.conn.clone();
        let outcome: i64 = self
            .shared
            .scripts
            .delete
            .key(self.keys.record(key))
            .key(&self.keys.index)
            .arg(key)
            .arg(mode_name)
            .arg(expected)
            .arg(self.shared.clock.unix_secs())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(match outcome {
            -1 => DeleteOutcome::ConditionFailed,
            existed => DeleteOutcome::Deleted {
                existed: existed == 1,
            },
        })
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        let mut invocation = self.shared.scripts.put_many.prepare_invoke();
        invocation
            .key(&self.keys.index)
            .key(&self.keys.versions)
            .key(&self.keys.live);
        for (key, entry) in &items {
            let (value, has_meta, meta, expiration, pttl) = self.record_args(entry)?;
            invocation
                .key(self.keys.record(key))
                .arg(key)
                .arg(value.as_ref())
                .arg(has_meta)
                .arg(meta)
                .arg(expiration)
                .arg(pttl);
        }
        let mut conn = self.shared.conn.clone();
        let written: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        match written {
            -2 => Err(self.gone()),
            -3 => Err(invalid_arguments()),
            _ => Ok(()),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for key in keys {
            pipe.del(self.keys.record(key)).ignore();
        }
        pipe.zrem(&self.keys.index, keys).ignore();
        let mut conn = self.shared.conn.clone();
        let _: () = pipe.query_async(&mut conn).await.map_err(redis_error)?;
        Ok(())
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_deref().unwrap_or("");
        let mut min = match list_start(prefix, options.cursor.as_deref())? {
            Bound::Included(key) => [b"[".as_slice(), key.as_bytes()].concat(),
            Bound::Excluded(key) => [b"(".as_slice(), key.as_bytes()].concat(),
            Bound::Unbounded => b"-".to_vec(),
        };
        // Names with the prefix sort below prefix + 0xFF: no UTF-8 text holds that byte.
        let max = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            [b"(".as_slice(), prefix.as_bytes(), &[0xFF]].concat()
        };
        let now = self.shared.clock.now();
        let mut conn = self.shared.conn.clone();
        let mut visible: Vec<KeyInfo> = Vec::new();
        // Gather one more visible key than the page holds, so collect_page can tell whether
        // the listing is complete.
        while visible.len() <= options.limit {
            let names: Vec<String> = conn
                .zrangebylex_limit(&self.keys.index, &min, &max, 0, LIST_BATCH as isize)
                .await
                .map_err(redis_error)?;
            let Some(last) = names.last() else {
                break;
            };
            min = [b"(".as_slice(), last.as_bytes()].concat();
            let mut pipe = ::redis::pipe();
            for name in &names {
                pipe.cmd("HMGET")
                    .arg(self.keys.record(name))
                    .arg(&["e", "m", "ver"]);
            }
            let fields: Vec<(Option<u64>, Option<String>, Option<u64>)> =
                pipe.query_async(&mut conn).await.map_err(redis_error)?;
            let mut vanished = Vec::new();
            for (name, (expiration, metadata, version)) in names.iter().zip(fields) {
                if version.is_none() {
                    vanished.push(name);
                    continue;
                }
                if is_expired(expiration, now) {
                    continue;
                }
                visible.push(KeyInfo {
                    name: name.clone(),
                    expiration,
                    metadata: decode_metadata(name, metadata)?,
                });
            }
            if !vanished.is_empty() {
                self.prune(&vanished).await?;
            }
            if names.len() < LIST_BATCH {
                break;
            }
        }
        collect_page(visible.into_iter().map(Ok), prefix, options.limit, now)
    }
}

impl RedisNamespace {
    /// Removes index names whose records Redis has expired.
    async fn prune(&self, names: &[&String]) -> Result<()> {
        let mut invocation = self.shared.scripts.prune_index.prepare_invoke();
        invocation.key(&self.keys.index);
        for name in names {
            invocation
                .key(self.keys.record(name.as_bytes()))
                .arg(name.as_str());
        }
        let mut conn = self.shared.conn.clone();
        let removed: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        tracing::debug!(ns = %self.id, removed, "pruned expired names from the index");
        Ok(())
    }
}
