//! Every store call through a `Namespace` runs in a `kv.store` span carrying backend,
//! namespace, operation, outcome and duration: on a store that answers on the synchronous fast
//! path and on one that declines it (awaited, boxed futures), so both paths are covered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kv_core::{
    async_trait, Bytes, Capabilities, DeleteOutcome, Entry, KvError, Limits, ListOptions, ListPage,
    ManualClock, Message, Namespace, NamespaceStore, NewEntry, PutOptions, PutOutcome, Result,
    Version, WriteMode, STORE_SPAN_NAME,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A store over a map; `fast` chooses whether it answers on the synchronous fast path. The key
/// `broken` fails every call, and every async call logs one event (to check span parentage).
#[derive(Debug)]
struct MapStore {
    fast: bool,
    map: Mutex<BTreeMap<String, (Bytes, u64)>>,
    next: Mutex<u64>,
}

impl MapStore {
    fn new(fast: bool) -> Self {
        MapStore {
            fast,
            map: Mutex::default(),
            next: Mutex::new(0),
        }
    }

    fn get_sync(&self, key: &str) -> Result<Option<Entry>> {
        if key == "broken" {
            return Err(KvError::backend("map", Message("broken key".into())));
        }
        Ok(self
            .map
            .lock()
            .unwrap()
            .get(key)
            .map(|(value, version)| Entry {
                value: value.clone(),
                metadata: None,
                expiration: None,
                version: Version::from_raw(*version),
            }))
    }

    fn put_sync(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let mut map = self.map.lock().unwrap();
        let current = map.get(key).map(|(_, v)| Version::from_raw(*v));
        if !mode.allows(current) {
            return Ok(PutOutcome::ConditionFailed);
        }
        let mut next = self.next.lock().unwrap();
        *next += 1;
        map.insert(key.to_owned(), (entry.value, *next));
        Ok(PutOutcome::Written(Version::from_raw(*next)))
    }

    fn delete_sync(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let mut map = self.map.lock().unwrap();
        let current = map.get(key).map(|(_, v)| Version::from_raw(*v));
        if !mode.allows(current) {
            return Ok(DeleteOutcome::ConditionFailed);
        }
        Ok(DeleteOutcome::Deleted {
            existed: map.remove(key).is_some(),
        })
    }
}

#[async_trait]
impl NamespaceStore for MapStore {
    fn kind(&self) -> &'static str {
        if self.fast {
            "map-fast"
        } else {
            "map-async"
        }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }
    fn get_now(&self, key: &str) -> Option<Result<Option<Entry>>> {
        self.fast.then(|| self.get_sync(key))
    }
    fn put_now(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> std::result::Result<Result<PutOutcome>, NewEntry> {
        if self.fast {
            Ok(self.put_sync(key, entry, mode))
        } else {
            Err(entry)
        }
    }
    fn delete_now(&self, key: &str, mode: WriteMode) -> Option<Result<DeleteOutcome>> {
        self.fast.then(|| self.delete_sync(key, mode))
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        assert!(!self.fast, "a store answering at once is not awaited");
        tokio::task::yield_now().await;
        tracing::info!("inside the async get");
        self.get_sync(key)
    }
    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        assert!(!self.fast, "a store answering at once is not awaited");
        tokio::task::yield_now().await;
        self.put_sync(key, entry, mode)
    }
    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        assert!(!self.fast, "a store answering at once is not awaited");
        self.delete_sync(key, mode)
    }
    async fn list(&self, _: &ListOptions) -> Result<ListPage> {
        let map = self.map.lock().unwrap();
        Ok(ListPage {
            keys: map
                .keys()
                .map(|name| kv_core::KeyInfo {
                    name: name.clone(),
                    expiration: None,
                    metadata: None,
                })
                .collect(),
            list_complete: true,
            cursor: None,
        })
    }
}

/// A closed span as captured: its name and fields as text.
#[derive(Debug, Clone, Default)]
struct Captured {
    name: String,
    fields: BTreeMap<String, String>,
    /// Events logged inside the span.
    events: usize,
}

#[derive(Default)]
struct FieldText(BTreeMap<String, String>);

impl Visit for FieldText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

/// Records every span's fields as they are set, and keeps the span when it closes.
#[derive(Clone, Default)]
struct Capture {
    closed: Arc<Mutex<Vec<Captured>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = FieldText::default();
        attrs.record(&mut text);
        let span = ctx.span(id).expect("the span exists");
        span.extensions_mut().insert(Captured {
            name: attrs.metadata().name().to_owned(),
            fields: text.0,
            events: 0,
        });
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the span exists");
        let mut extensions = span.extensions_mut();
        let captured = extensions.get_mut::<Captured>().expect("captured");
        let mut text = FieldText::default();
        values.record(&mut text);
        captured.fields.extend(text.0);
    }
    fn on_event(&self, _: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.lookup_current() {
            if let Some(captured) = span.extensions_mut().get_mut::<Captured>() {
                captured.events += 1;
            }
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).expect("the span exists");
        let captured = span.extensions().get::<Captured>().cloned();
        self.closed.lock().unwrap().extend(captured);
    }
}

/// Runs a fixed sequence of calls on a namespace over `store` and returns the spans closed.
fn spans_of(store: MapStore) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = ManualClock::at_unix_secs(1_000_000);
            let ns = Namespace::new("NS-1", Arc::new(store), Limits::default(), clock.shared());
            ns.put_text("a", "1").await.unwrap();
            assert_eq!(ns.get_text("a").await.unwrap().as_deref(), Some("1"));
            assert_eq!(ns.get("missing").await.unwrap(), None);
            let refused = ns
                .put_with("a", "2", PutOptions::new().only_if_absent())
                .await
                .unwrap();
            assert_eq!(refused, PutOutcome::ConditionFailed);
            assert!(ns.get("broken").await.is_err());
            ns.delete("a").await.unwrap();
            ns.delete("a").await.unwrap();
            assert!(ns.list(&ListOptions::new()).await.unwrap().keys.is_empty());
            // A synchronous attempt: a store that answers at once gives one span; one that
            // must wait gives the entry back and no span, and the awaited put gives one.
            let entry = NewEntry {
                value: "3".into(),
                metadata: None,
                expiration: None,
            };
            match ns.put_entry_now("b", entry, WriteMode::Overwrite) {
                Ok(answered) => assert!(matches!(answered.unwrap(), PutOutcome::Written(_))),
                Err(entry) => {
                    let outcome = ns
                        .put_entry("b", entry, WriteMode::Overwrite)
                        .await
                        .unwrap();
                    assert!(matches!(outcome, PutOutcome::Written(_)));
                }
            }
            // Refused by the limits before any store call: no span.
            assert!(ns.get("").await.is_err());
        });
    });
    let closed = capture.closed.lock().unwrap().clone();
    closed
}

fn check(spans: &[Captured], backend: &str) {
    let expected = [
        ("put", "written"),
        ("get", "hit"),
        ("get", "miss"),
        ("put", "condition_failed"),
        ("get", "error"),
        ("delete", "deleted"),
        ("delete", "absent"),
        ("list", "ok"),
        ("put", "written"),
    ];
    let seen: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| (s.fields["operation"].as_str(), s.fields["outcome"].as_str()))
        .collect();
    assert_eq!(
        seen, expected,
        "one span per store call, in order: {spans:#?}"
    );
    for span in spans {
        assert_eq!(span.name, STORE_SPAN_NAME);
        assert_eq!(span.fields["backend"], backend);
        assert_eq!(span.fields["namespace"], "NS-1");
        let micros: u64 = span.fields["duration_us"]
            .parse()
            .expect("duration_us is a number of microseconds");
        assert!(micros < 10_000_000, "a plausible duration: {micros}");
        assert_eq!(
            span.fields.contains_key("error"),
            span.fields["outcome"] == "error",
            "the error text is recorded exactly on failures: {span:?}"
        );
    }
    let failed = spans
        .iter()
        .find(|s| s.fields["outcome"] == "error")
        .unwrap();
    assert!(failed.fields["error"].contains("broken key"), "{failed:?}");
}

#[test]
fn fast_path_calls_are_spanned() {
    let spans = spans_of(MapStore::new(true));
    check(&spans, "map-fast");
}

#[test]
fn awaited_calls_are_spanned_and_the_store_runs_inside_the_span() {
    let spans = spans_of(MapStore::new(false));
    check(&spans, "map-async");
    // The store's own events (one per async get) are children of the call's span.
    let gets: Vec<usize> = spans
        .iter()
        .filter(|s| s.fields["operation"] == "get")
        .map(|s| s.events)
        .collect();
    assert_eq!(gets, [1, 1, 1]);
}
