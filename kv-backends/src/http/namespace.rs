//! One namespace over HTTP: the [`NamespaceStore`] operations as REST requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use http::header::{HeaderValue, IF_MATCH, IF_NONE_MATCH};
use http::{Method, StatusCode};
use kv_core::{
    async_trait, Capabilities, DeleteOutcome, Entry, KeyInfo, KvError, ListOptions, ListPage,
    Message, NamespaceStore, NewEntry, PutOutcome, Result, WriteMode,
};
use serde_json::Value;

use super::transport::{Answer, Call, Route, Safety};
use super::wire::{
    self, encode, parse_envelope, BulkResult, DeleteResult, KeyItem, INVALID_CURSOR, KEY_NOT_FOUND,
    METADATA_HEADER, NAMESPACE_NOT_FOUND, UNSUPPORTED,
};
use super::{not_served, not_served_or, Shared, BACKEND};

/// Items per bulk write or delete request (the protocol's limit).
const BULK_ITEMS: usize = 10_000;
/// About how many body bytes one bulk write request carries (kv-server and Cloudflare accept
/// 100 MiB).
const BULK_BYTES: usize = 64 * 1024 * 1024;

/// One namespace of an [`HttpBackend`](super::HttpBackend), opened by
/// [`Backend::open_namespace`](kv_core::Backend::open_namespace).
pub struct HttpNamespace {
    shared: Arc<Shared>,
    id: String,
    /// The namespace's URL: the API base and the encoded id.
    url: String,
}

impl fmt::Debug for HttpNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpNamespace")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What a read of one key found.
enum Read {
    Found(Answer),
    Missing,
    /// The server has no route for this read.
    NotServed(Answer),
}

/// Keys asked for by the one-key listing that stands in for `GET metadata/{key}`: Cloudflare
/// and Miniflare refuse a `limit` under 10, and the key itself, the shortest name with itself
/// as prefix, always comes first.
const ONE_KEY_LISTING_LIMIT: usize = 10;

/// The operation named when a write with an expiration is refused.
const EXPIRATIONS_DROPPED: &str = "expirations on this server, which accepts them and drops them";

impl HttpNamespace {
    pub(crate) fn new(shared: Arc<Shared>, id: &str) -> Self {
        let url = shared.namespace_url(id);
        HttpNamespace {
            shared,
            id: id.to_owned(),
            url,
        }
    }

    /// The namespace's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn key_url(&self, resource: &str, key: &str) -> String {
        format!("{}/{resource}/{}", self.url, encode(key))
    }

    fn namespace_gone(&self) -> KvError {
        KvError::NamespaceNotFound {
            name: self.id.clone(),
        }
    }

    /// Sends a read of `resource/key`: 404 for the key (or for a namespace deleted under this
    /// handle, which reads empty) is `Missing`; an answer that the route does not exist is
    /// `NotServed`.
    async fn read(&self, resource: &str, key: &str) -> Result<Read> {
        let call = Call::new(Method::GET, self.key_url(resource, key), Safety::Idempotent);
        let answer = self.shared.transport.execute(&call).await?;
        if answer.status.is_success() {
            return Ok(Read::Found(answer));
        }
        if answer.not_served() {
            return Ok(Read::NotServed(answer));
        }
        let error = answer.error();
        match error.code {
            KEY_NOT_FOUND | NAMESPACE_NOT_FOUND if answer.status == StatusCode::NOT_FOUND => {
                Ok(Read::Missing)
            }
            _ => Err(error.into_kv_error()),
        }
    }

    /// The metadata of a key whose value read carried no metadata header, and the expiration
    /// when that had to come from a listing: from `GET metadata/{key}` while the server serves
    /// it, else from a one-key listing (unless [`metadata_from_listing`] is off: then omitted).
    /// `None` inside when it has none or it is JSON `null` (the metadata endpoint cannot tell
    /// them apart); `None` outside when the key is gone or the metadata is omitted.
    ///
    /// [`metadata_from_listing`]: super::HttpBackendBuilder::metadata_from_listing
    async fn fetch_metadata(&self, key: &str) -> Result<Option<(Option<Value>, Option<u64>)>> {
        let transport = &self.shared.transport;
        if transport.serves(Route::Metadata) {
            match self.read("metadata", key).await? {
                Read::Missing => return Ok(None),
                Read::Found(answer) => {
                    let envelope = parse_envelope::<Value>(&answer.body, "metadata")?;
                    return Ok(Some((
                        envelope.result.filter(|value| !value.is_null()),
                        None,
                    )));
                }
                Read::NotServed(_) => transport.learn_not_served(Route::Metadata),
            }
        }
        if !transport.metadata_from_listing() {
            transport.note_metadata_omitted();
            return Ok(None);
        }
        Ok(self.list_one(key).await?.map(|item| {
            (
                item.metadata.filter(|value| !value.is_null()),
                item.expiration,
            )
        }))
    }

    /// The listing entry of exactly `key` (`GET keys?prefix={key}&limit=10`), if it exists.
    async fn list_one(&self, key: &str) -> Result<Option<KeyItem>> {
        let url = format!(
            "{}/keys?prefix={}&limit={ONE_KEY_LISTING_LIMIT}",
            self.url,
            encode(key)
        );
        let call = Call::new(Method::GET, url, Safety::Idempotent);
        let answer = self.shared.transport.execute(&call).await?;
        if !answer.status.is_success() {
            if answer.error().code == NAMESPACE_NOT_FOUND && !answer.not_served() {
                return Err(self.namespace_gone());
            }
            return Err(not_served_or(&answer, "key listing"));
        }
        let envelope = parse_envelope::<Vec<KeyItem>>(&answer.body, "key list")?;
        Ok(envelope
            .result
            .unwrap_or_default()
            .into_iter()
            .find(|item| item.name == key))
    }

    /// Refuses a write with an expiration to a server known to drop expirations.
    fn refuse_dropped_expiration(&self, entry: &NewEntry) -> Result<()> {
        if entry.expiration.is_some() && !self.shared.transport.keeps_expirations() {
            return Err(KvError::Unsupported {
                backend: BACKEND,
                operation: EXPIRATIONS_DROPPED,
            });
        }
        Ok(())
    }

    fn write_error(&self, answer: &Answer, operation: &'static str) -> KvError {
        if answer.not_served() {
            return not_served(answer, operation);
        }
        let error = answer.error();
        match error.code {
            NAMESPACE_NOT_FOUND => self.namespace_gone(),
            UNSUPPORTED if answer.status == StatusCode::NOT_IMPLEMENTED => KvError::Unsupported {
                backend: BACKEND,
                operation,
            },
            _ => error.into_kv_error(),
        }
    }

    fn refuse_unless_atomic(&self, mode: WriteMode, operation: &'static str) -> Result<()> {
        if mode.is_conditional() && !self.capabilities().atomic_conditional_writes {
            return Err(KvError::Unsupported {
                backend: BACKEND,
                operation,
            });
        }
        Ok(())
    }

    /// Sends the If-Match / If-None-Match header of a conditional write.
    fn with_condition(call: Call, mode: WriteMode) -> Call {
        match mode {
            WriteMode::Overwrite => call,
            WriteMode::OnlyIfAbsent => call.header(IF_NONE_MATCH, HeaderValue::from_static("*")),
            WriteMode::OnlyIfVersion(version) => call.header(IF_MATCH, wire::etag_value(version)),
        }
    }

    /// Whether the key holds an entry now (for servers whose deletes do not say): from
    /// `GET metadata/{key}` while the server serves it, else from a one-key listing.
    async fn exists(&self, key: &str) -> Result<bool> {
        let transport = &self.shared.transport;
        if transport.serves(Route::Metadata) {
            let call = Call::new(
                Method::GET,
                self.key_url("metadata", key),
                Safety::Idempotent,
            );
            let answer = transport.execute(&call).await?;
            if answer.status.is_success() {
                return Ok(true);
            }
            if answer.not_served() {
                transport.learn_not_served(Route::Metadata);
            } else {
                let error = answer.error();
                return match error.code {
                    KEY_NOT_FOUND => Ok(false),
                    NAMESPACE_NOT_FOUND => Err(self.namespace_gone()),
                    _ => Err(error.into_kv_error()),
                };
            }
        }
        Ok(self.list_one(key).await?.is_some())
    }

    /// `DELETE values/{key}` without asking whether it existed (bulk deletes item by item).
    async fn delete_one(&self, key: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            self.key_url("values", key),
            Safety::Idempotent,
        );
        let answer = self.shared.transport.execute(&call).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(self.write_error(&answer, "delete"))
    }

    /// Writes items one `PUT values/{key}` at a time (at most `get_many_concurrency` at
    /// once), for a server without `PUT bulk`.
    async fn put_each(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        let writes: Vec<_> = items
            .into_iter()
            .map(|(key, entry)| async move {
                self.put(&key, entry, WriteMode::Overwrite).await.map(drop)
            })
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(self.shared.get_many_concurrency)
            .try_collect::<()>()
            .await
    }

    /// Deletes keys one `DELETE values/{key}` at a time, for a server without
    /// `POST bulk/delete`.
    async fn delete_each(&self, keys: &[String]) -> Result<()> {
        // Collected first (as in `get_many`), so the stream's futures are one concrete type.
        let deletes: Vec<_> = keys.iter().map(|key| self.delete_one(key)).collect();
        futures::stream::iter(deletes)
            .buffer_unordered(self.shared.get_many_concurrency)
            .try_collect::<()>()
            .await
    }

    async fn put_chunk(&self, items: &[(String, NewEntry)]) -> Result<()> {
        let now = self.shared.clock.unix_secs();
        let body: Vec<Value> = items
            .iter()
            .map(|(key, entry)| wire::bulk_item(key, entry, now))
            .collect();
        let call = Call::new(
            Method::PUT,
            format!("{}/bulk", self.url),
            Safety::Idempotent,
        )
        .json(&Value::Array(body));
        let answer = self.shared.transport.execute(&call).await?;
        if !answer.status.is_success() {
            return Err(self.write_error(&answer, "bulk put"));
        }
        check_bulk_result(&answer, "written")
    }

    async fn delete_chunk(&self, keys: &[String]) -> Result<()> {
        let body = Value::Array(keys.iter().cloned().map(Value::String).collect());
        let call = Call::new(
            Method::POST,
            format!("{}/bulk/delete", self.url),
            Safety::Idempotent,
        )
        .json(&body);
        let answer = self.shared.transport.execute(&call).await?;
        if !answer.status.is_success() {
            return Err(self.write_error(&answer, "bulk delete"));
        }
        check_bulk_result(&answer, "deleted")
    }
}

fn check_bulk_result(answer: &Answer, what: &str) -> Result<()> {
    let result = parse_envelope::<BulkResult>(&answer.body, "bulk result")?
        .result
        .unwrap_or_default();
    if result.unsuccessful_keys.is_empty() {
        return Ok(());
    }
    let count = result.unsuccessful_keys.len();
    let sample: Vec<&str> = result
        .unsuccessful_keys
        .iter()
        .take(5)
        .map(String::as_str)
        .collect();
    Err(KvError::backend(
        BACKEND,
        Message(format!(
            "the server reported {count} keys not {what}, among them {sample:?}"
        )),
    ))
}

#[async_trait]
impl NamespaceStore for HttpNamespace {
    fn kind(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.transport.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let answer = match self.read("values", key).await? {
            Read::Found(answer) => answer,
            Read::Missing => return Ok(None),
            Read::NotServed(answer) => return Err(not_served(&answer, "value read")),
        };
        let mut expiration = wire::expiration_header(&answer.headers)?;
        let metadata = match answer.headers.get(METADATA_HEADER) {
            Some(header) => Some(wire::decode_metadata_header(header)?),
            None if self
                .shared
                .transport
                .traits()
                .is_some_and(|traits| traits.metadata_header) =>
            {
                None
            }
            // A key deleted between the two requests reads as it was at the first one,
            // without metadata: the value read is what the caller asked for.
            None => match self.fetch_metadata(key).await? {
                Some((metadata, listed_expiration)) => {
                    // Miniflare's value reads carry no `expiration` header; its listing does.
                    expiration = expiration.or(listed_expiration);
                    metadata
                }
                None => None,
            },
        };
        let version = wire::etag_version(&answer.headers)
            .unwrap_or_else(|| wire::content_version(&answer.body, metadata.as_ref(), expiration));
        Ok(Some(Entry {
            value: answer.body,
            metadata,
            expiration,
            version,
        }))
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.refuse_unless_atomic(mode, "conditional put")?;
        self.refuse_dropped_expiration(&entry)?;
        let operation = match (mode.is_conditional(), entry.expiration.is_some()) {
            (true, _) => "conditional put",
            (false, true) => "put with an expiration",
            (false, false) => "put",
        };
        let mut url = self.key_url("values", key);
        if let Some(expiration) = entry.expiration {
            let ttl = wire::expiration_ttl(expiration, self.shared.clock.unix_secs());
            url.push_str(&format!("?expiration_ttl={ttl}"));
        }
        let safety = if mode.is_conditional() {
            Safety::Once
        } else {
            Safety::Idempotent
        };
        let call = Call::new(Method::PUT, url, safety);
        let call = match &entry.metadata {
            None => call.body("application/octet-stream", entry.value.clone()),
            Some(metadata) => {
                let (content_type, body) = wire::multipart(&entry.value, metadata);
                call.body(&content_type, body)
            }
        };
        let call = Self::with_condition(call, mode);
        let answer = self.shared.transport.execute(&call).await?;
        if answer.status.is_success() {
            return Ok(PutOutcome::Written(wire::written_version(
                &answer.headers,
                &entry,
            )));
        }
        if answer.status == StatusCode::PRECONDITION_FAILED {
            return Ok(PutOutcome::ConditionFailed);
        }
        Err(self.write_error(&answer, operation))
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.refuse_unless_atomic(mode, "conditional delete")?;
        let transport = &self.shared.transport;
        // Ask first only when the server's answers are not known to say.
        let existed_before = match (mode, transport.delete_reports_existed()) {
            (WriteMode::Overwrite, Some(true)) => None,
            (WriteMode::Overwrite, _) => Some(self.exists(key).await?),
            _ => None,
        };
        let safety = if mode.is_conditional() {
            Safety::Once
        } else {
            Safety::Idempotent
        };
        let call = Call::new(Method::DELETE, self.key_url("values", key), safety);
        let call = Self::with_condition(call, mode);
        let answer = transport.execute(&call).await?;
        if answer.status == StatusCode::PRECONDITION_FAILED {
            return Ok(DeleteOutcome::ConditionFailed);
        }
        if !answer.status.is_success() {
            let operation = if mode.is_conditional() {
                "conditional delete"
            } else {
                "delete"
            };
            return Err(self.write_error(&answer, operation));
        }
        let existed = match mode {
            WriteMode::OnlyIfVersion(_) => true,
            WriteMode::OnlyIfAbsent => false,
            WriteMode::Overwrite => {
                let reported = serde_json::from_slice::<wire::Envelope<DeleteResult>>(&answer.body)
                    .ok()
                    .and_then(|envelope| envelope.result)
                    .and_then(|result| result.existed);
                transport.learn_delete_reports(reported.is_some());
                reported.or(existed_before).unwrap_or(true)
            }
        };
        Ok(DeleteOutcome::Deleted { existed })
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let mut url = format!("{}/keys?limit={}", self.url, options.limit);
        if let Some(prefix) = options.prefix.as_deref().filter(|p| !p.is_empty()) {
            url.push_str(&format!("&prefix={}", encode(prefix)));
        }
        if let Some(cursor) = &options.cursor {
            url.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let call = Call::new(Method::GET, url, Safety::Idempotent);
        let answer = self.shared.transport.execute(&call).await?;
        if !answer.status.is_success() {
            if answer.not_served() {
                return Err(not_served(&answer, "key listing"));
            }
            let error = answer.error();
            return match error.code {
                // A namespace deleted under this handle lists nothing.
                NAMESPACE_NOT_FOUND => Ok(ListPage {
                    keys: Vec::new(),
                    list_complete: true,
                    cursor: None,
                }),
                INVALID_CURSOR if options.cursor.is_some() => Err(KvError::InvalidCursor {
                    cursor: options.cursor.clone().unwrap_or_default(),
                    reason: "the server did not hand out this cursor",
                }),
                _ => Err(error.into_kv_error()),
            };
        }
        let envelope = parse_envelope::<Vec<KeyItem>>(&answer.body, "key list")?;
        let keys = envelope
            .result
            .unwrap_or_default()
            .into_iter()
            .map(|item| KeyInfo {
                name: item.name,
                expiration: item.expiration,
                metadata: item.metadata,
            })
            .collect();
        let cursor = envelope
            .result_info
            .and_then(|info| info.cursor)
            .filter(|cursor| !cursor.is_empty());
        Ok(ListPage {
            keys,
            list_complete: cursor.is_none(),
            cursor,
        })
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        // Read each distinct key once, at most `get_many_concurrency` at a time.
        let mut positions: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
        let mut distinct: Vec<&str> = Vec::with_capacity(keys.len());
        for key in keys {
            positions.entry(key.as_str()).or_insert_with(|| {
                distinct.push(key.as_str());
                distinct.len() - 1
            });
        }
        // Boxed futures start only when polled, so `buffered` bounds what runs at once.
        let reads: Vec<_> = distinct.iter().map(|key| self.get(key)).collect();
        let entries: Vec<Option<Entry>> = futures::stream::iter(reads)
            .buffered(self.shared.get_many_concurrency)
            .try_collect()
            .await?;
        Ok(keys
            .iter()
            .map(|key| entries[positions[key.as_str()]].clone())
            .collect())
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        // Refused before anything is written, so a refused batch leaves nothing behind.
        for (_, entry) in &items {
            self.refuse_dropped_expiration(entry)?;
        }
        let transport = &self.shared.transport;
        if !transport.serves(Route::BulkPut) {
            return self.put_each(items).await;
        }
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < items.len() && end - start < BULK_ITEMS {
                let size = wire::bulk_item_size(&items[end].0, &items[end].1);
                if end > start && bytes + size > BULK_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            match self.put_chunk(&items[start..end]).await {
                Ok(()) => {}
                // No `PUT bulk` (Miniflare): this chunk was not written; write the rest
                // item by item, and so from now on.
                Err(KvError::NotServed { .. }) => {
                    transport.learn_not_served(Route::BulkPut);
                    let rest = items.into_iter().skip(start).collect();
                    return self.put_each(rest).await;
                }
                Err(other) => return Err(other),
            }
            start = end;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let transport = &self.shared.transport;
        if !transport.serves(Route::BulkDelete) {
            return self.delete_each(keys).await;
        }
        for (index, chunk) in keys.chunks(BULK_ITEMS).enumerate() {
            match self.delete_chunk(chunk).await {
                Ok(()) => {}
                Err(KvError::NotServed { .. }) => {
                    transport.learn_not_served(Route::BulkDelete);
                    return self.delete_each(&keys[index * BULK_ITEMS..]).await;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}
