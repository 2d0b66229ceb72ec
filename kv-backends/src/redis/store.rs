//! One namespace of the Redis backend.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use ::redis::{Cmd, RedisError, RedisResult, Script, Value};
use kv_core::{
    async_trait, collect_page, is_expired, list_start, Bytes, Capabilities, DeleteOutcome, Entry,
    KeyInfo, KvError, LimitError, ListOptions, ListPage, NamespaceStore, NewEntry, PutOutcome,
    Result, Version, WriteMode,
};
use serde_json::Value as Json;

use super::conn::server_error;
use super::layout::{bucket_of, parse_header, Header, NamespaceKeys, RecordArg, BUCKETS};
use super::{redis_error, Shared, KIND, MAX_EXPIRATION_SECS};

/// How much of a record a listing reads: the header and the metadata (1 KiB by default
/// limits); a record whose metadata runs past this is read again in full.
const LIST_READ: usize = 2048;

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

fn not_a_record(key: &str) -> KvError {
    KvError::backend(
        KIND,
        kv_core::Message(format!(
            "the Redis value of key {key:?} is not a tower-kv record (another layout?)"
        )),
    )
}

fn decode_metadata(key: &str, json: &[u8]) -> Result<Option<Json>> {
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(json).map(Some).map_err(|e| {
        KvError::backend(
            KIND,
            kv_core::Message(format!("metadata of key {key:?} is not JSON: {e}")),
        )
    })
}

/// A command's answer as a value, its server error included (as [`Value::ServerError`]);
/// a failure to get an answer at all is an error.
fn answer(result: RedisResult<Value>) -> Result<Value> {
    match result {
        Ok(value) => Ok(value),
        Err(error) => ::redis::ServerError::try_from(error)
            .map(Value::ServerError)
            .map_err(redis_error),
    }
}

/// The node did not know a script (its cache was flushed, or it is new to the cluster).
fn is_no_script(value: &Value) -> bool {
    server_error(value).is_some_and(|error| {
        error.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript)
    })
}

/// A deleted namespace's tombstone answered an index update.
fn is_wrong_type(error: &RedisError) -> bool {
    error.code() == Some("WRONGTYPE")
}

/// One record's write arguments, validated and encoded before any I/O.
struct Prepared {
    version: u64,
    expiration: Option<u64>,
    meta: Option<String>,
    /// The TTL in ms for `PX` (`None`: no expiry).
    pttl: Option<u64>,
}

/// One bucket's progress through a listing merge.
struct BucketScan {
    /// Names read from the index and not yet merged, in byte order.
    buffer: VecDeque<String>,
    /// `ZRANGEBYLEX` min for the next read.
    next_min: Vec<u8>,
    /// The index holds nothing past what was read.
    exhausted: bool,
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

    /// Validates and encodes one record's metadata and expiry, with a fresh version.
    ///
    /// An expiration past [`MAX_EXPIRATION_SECS`] is refused here, before any round trip: the
    /// shared limits stop it by default, but limits can be relaxed, and Redis could not apply
    /// it (the scripts refuse it too, as a last line, before writing anything).
    fn prepare(&self, entry: &NewEntry) -> Result<Prepared> {
        let meta = match &entry.metadata {
            Some(metadata) => {
                Some(
                    serde_json::to_string(metadata).map_err(|source| KvError::Encode {
                        what: "metadata",
                        source,
                    })?,
                )
            }
            None => None,
        };
        let pttl = match entry.expiration {
            Some(at) if at > MAX_EXPIRATION_SECS => {
                return Err(LimitError::ExpirationTooLate {
                    expiration: at,
                    max: MAX_EXPIRATION_SECS,
                }
                .into())
            }
            // At most 2^53 - 1 ms after the bound check, so neither side can overflow; an
            // expiration already past (the clock moved) still gets the shortest Redis TTL.
            Some(at) => Some((at * 1000).saturating_sub(self.now_ms()).max(1)),
            None => None,
        };
        Ok(Prepared {
            version: self.shared.versions.next(),
            expiration: entry.expiration,
            meta,
            pttl,
        })
    }

    /// `SET record PX ttl` for a prepared record.
    fn set_cmd(&self, record_key: Vec<u8>, prepared: &Prepared, value: &[u8]) -> Cmd {
        let record = RecordArg::new(
            prepared.version,
            prepared.expiration,
            prepared.meta.as_deref(),
            value,
        );
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(record_key).arg(record);
        if let Some(pttl) = prepared.pttl {
            cmd.arg("PX").arg(pttl);
        }
        cmd
    }

    /// Decodes a whole record read with `GET`.
    fn to_entry(&self, key: &str, raw: Option<Vec<u8>>) -> Result<Option<Entry>> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let header = parse_header(&raw).ok_or_else(|| not_a_record(key))?;
        if raw.len() < header.value_start() {
            return Err(not_a_record(key));
        }
        if is_expired(header.expiration, self.shared.clock.now()) {
            return Ok(None);
        }
        let metadata = decode_metadata(key, &raw[header.body_start..header.value_start()])?;
        let value = Bytes::from(raw).slice(header.value_start()..);
        Ok(Some(Entry {
            value,
            metadata,
            expiration: header.expiration,
            version: Version::from_raw(header.version),
        }))
    }

    /// Writes one validated record: the record's own write (a `SET` when unconditional, the
    /// `put` script otherwise), then the `ZADD` that names it in its bucket's index.
    ///
    /// In this order a listing never misses a record present for its whole run: a name is only
    /// pruned while its record is absent, and the write re-adds it once the record exists. A
    /// delete between the two leaves a name without a record, which listings prune. When the
    /// `ZADD` fails after the record was written, the put reports the error (as any write
    /// whose outcome is unknown) and the record is listed once a later write of its key names
    /// it.
    async fn put_prepared(
        &self,
        key: &str,
        entry: &NewEntry,
        prepared: Prepared,
        mode: WriteMode,
    ) -> Result<PutOutcome> {
        let bucket = bucket_of(key.as_bytes());
        let record_key = self.keys.record_in(bucket, key.as_bytes());
        let write = match mode {
            WriteMode::Overwrite => self.set_cmd(record_key.clone(), &prepared, &entry.value),
            _ => {
                let (mode_name, expected) = mode_args(mode);
                let record = RecordArg::new(
                    prepared.version,
                    prepared.expiration,
                    prepared.meta.as_deref(),
                    &entry.value,
                );
                let pttl = prepared.pttl.map(|ms| ms.to_string()).unwrap_or_default();
                let mut cmd = ::redis::cmd("EVALSHA");
                cmd.arg(self.shared.scripts.put.get_hash())
                    .arg(1)
                    .arg(record_key.clone())
                    .arg(mode_name)
                    .arg(expected)
                    .arg(self.shared.clock.unix_secs())
                    .arg(record)
                    .arg(pttl)
                    .arg(prepared.version);
                cmd
            }
        };
        let mut name = ::redis::cmd("ZADD");
        name.arg(self.keys.index(bucket)).arg(0).arg(key);
        let (written, named) = self
            .write_then_index(write, name, &[&self.shared.scripts.put], |written| {
                matches!(written, Value::Okay | Value::Int(1))
            })
            .await?;
        let outcome = match written {
            Value::Okay | Value::Int(1) => PutOutcome::Written(Version::from_raw(prepared.version)),
            Value::Int(-1) => PutOutcome::ConditionFailed,
            Value::ServerError(error) => return Err(redis_error(error.into())),
            _ => return Err(invalid_arguments()),
        };
        match named.as_ref().and_then(server_error) {
            // A deleted namespace's tombstone refused the name: take the record back out.
            Some(error) if is_wrong_type(&error) => {
                if matches!(outcome, PutOutcome::Written(_)) {
                    Err(self.undo_into_gone(vec![record_key]).await)
                } else {
                    Err(self.gone())
                }
            }
            Some(error) => Err(redis_error(error)),
            None => Ok(outcome),
        }
    }

    /// Sends a record's own write, then the index update that follows it: on one node as one
    /// pipeline (one round trip, in this order); on a cluster one after the other, each to the
    /// node that holds its key (so a slot migrating key by key never splits them), the second
    /// only when `index_after` says the first's answer calls for it. Each answer comes back as
    /// a value, a command's error as its [`Value::ServerError`]. A script the node did not know
    /// is loaded and the pair sent again (the script had not run; the index update is
    /// idempotent, and sent again after the write keeps its order).
    async fn write_then_index(
        &self,
        write: Cmd,
        index: Cmd,
        scripts: &[&Script],
        index_after: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Option<Value>)> {
        let mut conn = self.shared.conn.clone();
        let mut loaded = false;
        loop {
            let (first, second) = if conn.is_cluster() {
                let first = answer(write.query_async(&mut conn).await)?;
                let second = if index_after(&first) {
                    Some(answer(index.query_async(&mut conn).await)?)
                } else {
                    None
                };
                (first, second)
            } else {
                let mut pipe = ::redis::pipe();
                pipe.ignore_errors();
                pipe.add_command(write.clone()).add_command(index.clone());
                let mut values: Vec<Value> =
                    pipe.query_async(&mut conn).await.map_err(redis_error)?;
                let second = values.pop();
                (values.pop().unwrap_or(Value::Nil), second)
            };
            let unknown_script = is_no_script(&first);
            if (unknown_script || second.as_ref().is_some_and(is_no_script)) && !loaded {
                for script in scripts {
                    script.load_async(&mut conn).await.map_err(redis_error)?;
                }
                loaded = true;
                if unknown_script {
                    continue;
                }
            }
            return Ok((first, second));
        }
    }

    /// A bulk get on a cluster: one pipeline of `GET`s per bucket, all at once. Not one `MGET`:
    /// a multi-key command is refused with `TRYAGAIN` for as long as a migration splits its
    /// slot's keys between two nodes, while single-key commands follow their key.
    async fn get_many_by_bucket(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let mut groups: Vec<Vec<Cmd>> = vec![Vec::new(); BUCKETS];
        let buckets: Vec<usize> = keys.iter().map(|key| bucket_of(key.as_bytes())).collect();
        for (key, bucket) in keys.iter().zip(&buckets) {
            let mut get = ::redis::cmd("GET");
            get.arg(self.keys.record_in(*bucket, key.as_bytes()));
            groups[*bucket].push(get);
        }
        let answers = self.shared.conn.query_groups(groups).await?;
        let mut answers: Vec<std::vec::IntoIter<Value>> =
            answers.into_iter().map(Vec::into_iter).collect();
        keys.iter()
            .zip(buckets)
            .map(|(key, bucket)| {
                let value = answers[bucket].next().unwrap_or(Value::Nil);
                if let Some(error) = server_error(&value) {
                    return Err(redis_error(error));
                }
                let raw: Option<Vec<u8>> = ::redis::from_redis_value(value)
                    .map_err(|e| redis_error(RedisError::from(e)))?;
                self.to_entry(key, raw)
            })
            .collect()
    }

    fn gone(&self) -> KvError {
        KvError::NamespaceNotFound {
            name: self.id.to_string(),
        }
    }

    /// After an index update met a tombstone: removes the records just written (best effort:
    /// the namespace is gone, and the deletion may already have removed them) and says so.
    async fn undo_into_gone(&self, records: Vec<Vec<u8>>) -> KvError {
        let mut groups: Vec<Vec<Cmd>> = Vec::new();
        for record in records {
            let mut del = ::redis::cmd("DEL");
            del.arg(record);
            groups.push(vec![del]);
        }
        if let Err(error) = self.shared.conn.query_groups(groups).await {
            tracing::warn!(ns = %self.id, %error, "could not remove a write to a deleted namespace");
        }
        self.gone()
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
        let raw: Option<Vec<u8>> = ::redis::cmd("GET")
            .arg(self.keys.record(key.as_bytes()))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        self.to_entry(key, raw)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.shared.conn.is_cluster() {
            return self.get_many_by_bucket(keys).await;
        }
        // One MGET on one node.
        let mut cmd = ::redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.keys.record(key.as_bytes()));
        }
        let mut conn = self.shared.conn.clone();
        let raws: Vec<Option<Vec<u8>>> = cmd.query_async(&mut conn).await.map_err(redis_error)?;
        keys.iter()
            .zip(raws)
            .map(|(key, raw)| self.to_entry(key, raw))
            .collect()
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let prepared = self.prepare(&entry)?;
        self.put_prepared(key, &entry, prepared, mode).await
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let (mode_name, expected) = mode_args(mode);
        let bucket = bucket_of(key.as_bytes());
        let record_key = self.keys.record_in(bucket, key.as_bytes());
        let mut delete = ::redis::cmd("EVALSHA");
        delete
            .arg(self.shared.scripts.delete.get_hash())
            .arg(1)
            .arg(record_key.clone())
            .arg(mode_name)
            .arg(expected)
            .arg(self.shared.clock.unix_secs());
        // The name leaves the index only if the record is still gone when the prune runs.
        let mut prune = ::redis::cmd("EVALSHA");
        prune
            .arg(self.shared.scripts.prune_index.get_hash())
            .arg(2)
            .arg(self.keys.index(bucket))
            .arg(record_key)
            .arg(key);
        let scripts = [
            &self.shared.scripts.delete,
            &self.shared.scripts.prune_index,
        ];
        let (deleted, pruned) = self
            .write_then_index(delete, prune, &scripts, |deleted| {
                matches!(deleted, Value::Int(0 | 1))
            })
            .await?;
        // Best effort: a prune refused (its two keys split by a slot migration) leaves a name
        // that the next listing to meet it prunes.
        if let Some(error) = pruned.as_ref().and_then(server_error) {
            tracing::debug!(ns = %self.id, %error, "a deleted name stays in the index for now");
        }
        match deleted {
            Value::Int(-1) => Ok(DeleteOutcome::ConditionFailed),
            Value::Int(existed) => Ok(DeleteOutcome::Deleted {
                existed: existed == 1,
            }),
            Value::ServerError(error) => Err(redis_error(error.into())),
            _ => Err(invalid_arguments()),
        }
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        // Every item is validated before the first is sent: a bad one stores none.
        let prepared: Vec<Prepared> = items
            .iter()
            .map(|(_, entry)| self.prepare(entry))
            .collect::<Result<_>>()?;
        if self.shared.conn.is_cluster() {
            // One script per item, all at once (see `put`: no pipeline may span a migration).
            let puts = items
                .into_iter()
                .zip(prepared)
                .map(|((key, entry), prepared)| async move {
                    match self
                        .put_prepared(&key, &entry, prepared, WriteMode::Overwrite)
                        .await?
                    {
                        PutOutcome::Written(_) => Ok(()),
                        PutOutcome::ConditionFailed => Err(invalid_arguments()),
                    }
                });
            futures::future::try_join_all(puts).await?;
            return Ok(());
        }
        let mut groups: Vec<Vec<Cmd>> = vec![Vec::new(); BUCKETS];
        let mut names: Vec<Vec<&str>> = vec![Vec::new(); BUCKETS];
        let mut written = Vec::with_capacity(items.len());
        for ((key, entry), prepared) in items.iter().zip(&prepared) {
            let bucket = bucket_of(key.as_bytes());
            let record_key = self.keys.record_in(bucket, key.as_bytes());
            written.push(record_key.clone());
            groups[bucket].push(self.set_cmd(record_key, prepared, &entry.value));
            names[bucket].push(key);
        }
        for (bucket, names) in names.iter().enumerate() {
            if !names.is_empty() {
                let mut zadd = ::redis::cmd("ZADD");
                zadd.arg(self.keys.index(bucket));
                for name in names {
                    zadd.arg(0).arg(*name);
                }
                groups[bucket].push(zadd);
            }
        }
        let answers = self.shared.conn.query_groups(groups).await?;
        let errors: Vec<RedisError> = answers.iter().flatten().filter_map(server_error).collect();
        if errors.iter().any(is_wrong_type) {
            return Err(self.undo_into_gone(written).await);
        }
        match errors.into_iter().next() {
            Some(error) => Err(redis_error(error)),
            None => Ok(()),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut groups: Vec<Vec<Cmd>> = vec![Vec::new(); BUCKETS];
        let mut names: Vec<Vec<&str>> = vec![Vec::new(); BUCKETS];
        for key in keys {
            let bucket = bucket_of(key.as_bytes());
            let mut del = ::redis::cmd("DEL");
            del.arg(self.keys.record_in(bucket, key.as_bytes()));
            groups[bucket].push(del);
            names[bucket].push(key);
        }
        for (bucket, names) in names.iter().enumerate() {
            if !names.is_empty() {
                let mut zrem = ::redis::cmd("ZREM");
                zrem.arg(self.keys.index(bucket)).arg(names);
                groups[bucket].push(zrem);
            }
        }
        let answers = self.shared.conn.query_groups(groups).await?;
        // A deleted namespace's tombstone refuses the ZREM: the records are gone all the same.
        match answers
            .iter()
            .flatten()
            .filter_map(server_error)
            .find(|error| !is_wrong_type(error))
        {
            Some(error) => Err(redis_error(error)),
            None => Ok(()),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_deref().unwrap_or("");
        let start = match list_start(prefix, options.cursor.as_deref())? {
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
        // Each bucket holds about 1/64 of a page; read twice that per round, at least a few.
        let per_read = ((options.limit + 1) * 2 / BUCKETS + 2).clamp(4, 256);
        let now = self.shared.clock.now();
        let mut scans: Vec<BucketScan> = (0..BUCKETS)
            .map(|_| BucketScan {
                buffer: VecDeque::new(),
                next_min: start.clone(),
                exhausted: false,
            })
            .collect();
        let mut visible: Vec<KeyInfo> = Vec::new();
        // Gather one more visible key than the page holds, so collect_page can tell whether
        // the listing is complete.
        while visible.len() <= options.limit {
            self.refill(&mut scans, &max, per_read).await?;
            let wanted = options.limit + 1 - visible.len();
            let candidates = merge(&mut scans, wanted);
            if candidates.is_empty() {
                break;
            }
            self.check_candidates(&candidates, now, &mut visible)
                .await?;
        }
        collect_page(visible.into_iter().map(Ok), prefix, options.limit, now)
    }
}

/// Takes names in byte order from the buckets' buffers, up to `wanted`, while every bucket
/// that may hold more has some buffered (otherwise its next name could sort first).
fn merge(scans: &mut [BucketScan], wanted: usize) -> Vec<(usize, String)> {
    let mut taken = Vec::new();
    while taken.len() < wanted {
        if scans.iter().any(|s| s.buffer.is_empty() && !s.exhausted) {
            break;
        }
        let next = scans
            .iter()
            .enumerate()
            .filter_map(|(b, s)| s.buffer.front().map(|name| (b, name)))
            .min_by(|x, y| x.1.as_bytes().cmp(y.1.as_bytes()))
            .map(|(b, _)| b);
        let Some(bucket) = next else {
            break;
        };
        let name = scans[bucket].buffer.pop_front().expect("a front was found");
        taken.push((bucket, name));
    }
    taken
}

impl RedisNamespace {
    /// Reads the next names of every bucket whose buffer ran dry, all at once.
    async fn refill(&self, scans: &mut [BucketScan], max: &[u8], per_read: usize) -> Result<()> {
        let mut groups: Vec<Vec<Cmd>> = vec![Vec::new(); BUCKETS];
        let mut any = false;
        for (bucket, scan) in scans.iter().enumerate() {
            if scan.buffer.is_empty() && !scan.exhausted {
                let mut cmd = ::redis::cmd("ZRANGEBYLEX");
                cmd.arg(self.keys.index(bucket))
                    .arg(&scan.next_min)
                    .arg(max)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(per_read);
                groups[bucket].push(cmd);
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
        let answers = self.shared.conn.query_groups(groups).await?;
        for (bucket, answer) in answers.into_iter().enumerate() {
            let Some(value) = answer.into_iter().next() else {
                continue;
            };
            let scan = &mut scans[bucket];
            // A deleted namespace's tombstone is not a sorted set: it lists nothing.
            let names: Vec<String> = match server_error(&value) {
                Some(error) if is_wrong_type(&error) => Vec::new(),
                Some(error) => return Err(redis_error(error)),
                None => ::redis::from_redis_value(value)
                    .map_err(|e| redis_error(RedisError::from(e)))?,
            };
            if names.len() < per_read {
                scan.exhausted = true;
            }
            if let Some(last) = names.last() {
                scan.next_min = [b"(".as_slice(), last.as_bytes()].concat();
            }
            scan.buffer.extend(names);
        }
        Ok(())
    }

    /// Reads the headers and metadata of merged names; keeps the live ones in order, prunes
    /// names whose records are gone.
    async fn check_candidates(
        &self,
        candidates: &[(usize, String)],
        now: std::time::SystemTime,
        visible: &mut Vec<KeyInfo>,
    ) -> Result<()> {
        let mut groups: Vec<Vec<Cmd>> = vec![Vec::new(); BUCKETS];
        for (bucket, name) in candidates {
            let mut cmd = ::redis::cmd("GETRANGE");
            cmd.arg(self.keys.record_in(*bucket, name.as_bytes()))
                .arg(0)
                .arg(LIST_READ - 1);
            groups[*bucket].push(cmd);
        }
        let answers = self.shared.conn.query_groups(groups).await?;
        let mut answers: Vec<std::vec::IntoIter<Value>> =
            answers.into_iter().map(Vec::into_iter).collect();
        let mut vanished: Vec<Vec<&String>> = vec![Vec::new(); BUCKETS];
        for (bucket, name) in candidates {
            let head: Vec<u8> = match answers[*bucket].next() {
                Some(value) => {
                    if let Some(error) = server_error(&value) {
                        return Err(redis_error(error));
                    }
                    ::redis::from_redis_value(value)
                        .map_err(|e| redis_error(RedisError::from(e)))?
                }
                None => Vec::new(),
            };
            if head.is_empty() {
                vanished[*bucket].push(name);
                continue;
            }
            let header = parse_header(&head).ok_or_else(|| not_a_record(name))?;
            if is_expired(header.expiration, now) {
                continue;
            }
            let metadata = if head.len() >= header.value_start() {
                decode_metadata(name, &head[header.body_start..header.value_start()])?
            } else {
                self.read_metadata(*bucket, name, header).await?
            };
            visible.push(KeyInfo {
                name: name.clone(),
                expiration: header.expiration,
                metadata,
            });
        }
        for (bucket, names) in vanished.iter().enumerate() {
            if !names.is_empty() {
                // Best effort: the names are left out of this page either way.
                if let Err(error) = self.prune(bucket, names).await {
                    tracing::debug!(ns = %self.id, %error, "could not prune vanished names");
                }
            }
        }
        Ok(())
    }

    /// Metadata longer than a listing's first read (only under relaxed limits).
    async fn read_metadata(
        &self,
        bucket: usize,
        name: &str,
        header: Header,
    ) -> Result<Option<Json>> {
        let mut conn = self.shared.conn.clone();
        let head: Vec<u8> = ::redis::cmd("GETRANGE")
            .arg(self.keys.record_in(bucket, name.as_bytes()))
            .arg(0)
            .arg(header.value_start().saturating_sub(1))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        match parse_header(&head) {
            Some(now) if head.len() >= now.value_start() => {
                decode_metadata(name, &head[now.body_start..now.value_start()])
            }
            // Rewritten in between with a longer header: the next listing sees it.
            _ => Ok(None),
        }
    }

    /// Removes index names whose records are gone (expired by Redis, or deleted between an
    /// unconditional put's two commands).
    async fn prune(&self, bucket: usize, names: &[&String]) -> Result<()> {
        let mut invocation = self.shared.scripts.prune_index.prepare_invoke();
        invocation.key(self.keys.index(bucket));
        for name in names {
            invocation
                .key(self.keys.record_in(bucket, name.as_bytes()))
                .arg(name.as_str());
        }
        let mut conn = self.shared.conn.clone();
        let removed: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        tracing::debug!(ns = %self.id, removed, "pruned vanished names from the index");
        Ok(())
    }
}
