//! Feature flags: the time of one evaluation, and of the whole flags layer per request, against
//! the OpenFeature Rust SDK (`open-feature` 0.3) with an in-memory provider, in one harness.
//!
//! - `flags-eval/ours-5-rules-split`: `Flags::is_enabled` on a boolean flag with two targets,
//!   five rules that do not match the users (`ends_with`, `in` over 4 countries, `semver_lt`,
//!   `in_cidr` over 2 blocks, `regex`) and a final 25/75 split, so every evaluation walks every
//!   rule and hashes; over 1 024 users with 4 attributes each, in turn.
//! - `flags-eval/ours-static`: the same call on a flag with no targeting (a lookup).
//! - `flags-eval/open-feature-in-memory`: `Client::get_bool_value` of the OpenFeature SDK with a
//!   provider answering from a `HashMap<String, bool>` (no rules: the SDK's own cost), with an
//!   OpenFeature context holding the same user and attributes; awaited on a current-thread
//!   tokio runtime (the SDK is async).
//! - `flags-layer/bare` and `flags-layer/ours`: an axum app whose handler answers `ok` (bare),
//!   or sits behind `FlagsLayer` and extracts `Flags` to check the 5-rule flag (ours); each
//!   request carries `X-User-ID` and 5 other typical headers. Driven as a tower service.
//!
//! - `flags-flagd/*`: one rollout written twice with the same meaning, as flagd `targeting`
//!   (`ends_with`, `in`, `sem_ver`, then `fractional` 25/75) and as native rules (`ends_with`,
//!   `in`, `semver_lt`, then a 25/75 `split` salted like flagd's default bucketing), so both
//!   serve every user the same variant (checked at start-up); none of the conditions match the
//!   users, so every evaluation walks every condition and hashes. Contenders:
//!   `flagd-targeting` and `native-rules` (`Flags::is_enabled`, borrowed, no allocation),
//!   `flagd-owned-details` (`FlagStore::evaluate_as`, the owned details OFREP and `kv flags
//!   eval` answer with), `open-feature-const` (the OpenFeature client over a provider that
//!   answers a constant: the SDK's own cost), `open-feature-flag-store` (the client over our
//!   `FlagStoreProvider`, feature `openfeature`) and `flag-store-provider` (that provider's
//!   `resolve_bool_value` called directly, without the client).
//!
//! After the criterion groups two **paired** runs alternate the contenders in batches (rotating
//! which goes first) and report medians and median per-round ratios; they write
//! `target/tmp/kv-benches-flags-paired.json` and `target/tmp/kv-benches-flags-flagd-paired.json`
//! (`KV_BENCH_PAIRED_ROUNDS`, default 30; 0 skips). The flagd run also counts the heap
//! allocations per evaluation of each contender (a counting global allocator; one
//! thread-local flag test per allocation while not counting).
//!
//! Instruction counts: `KV_FLAGS_PROFILE=CONTENDER,N` runs one `flags-flagd` contender alone
//! (`N` evaluations after an unmeasured pass over the users) and exits, e.g. under
//! `valgrind --tool=callgrind target/release/deps/flags-*` with `N` = 1 000 and 11 000: the
//! difference of the two totals / 10 000 is the instructions per evaluation.
//!
//! `cargo bench -p kv-benches --bench flags`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, Criterion};
use http::Request;
use kv_backends::memory::MemoryBackend;
use kv_benches::{current_thread_runtime, median, paired_rounds, write_paired, Timing};
use kv_core::Store;
use kv_middleware::flags::{EvaluationContext, FlagStore, FlagType, Flags, FlagsLayer};
use kv_middleware::openfeature::FlagStoreProvider;
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{EvaluationError, EvaluationErrorCode, EvaluationResult, StructValue};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

const USERS: usize = 1024;

/// Counts this thread's heap allocations while `COUNTING` is set.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn five_rules_and_a_split() -> serde_json::Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targets": {"on": ["vip-1", "vip-2"]},
        "rules": [
            {"conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}], "variant": "on"},
            {"conditions": [{"attribute": "country", "op": "in", "value": ["FR", "DE", "IT", "ES"]}], "variant": "on"},
            {"conditions": [{"attribute": "app_version", "op": "semver_lt", "value": "2.0.0"}], "variant": "off"},
            {"conditions": [{"attribute": "ip", "op": "in_cidr", "value": ["10.0.0.0/8", "192.168.0.0/16"]}], "variant": "on"},
            {"conditions": [{"attribute": "email", "op": "regex", "value": "^qa-[0-9]+@"}], "variant": "on"},
            {"conditions": [], "split": [["on", 25], ["off", 75]]}
        ]
    })
}

/// The rollout as flagd targeting: `ends_with`, `in`, `sem_ver`, then `fractional` (bucketing
/// by flag key + targeting key, flagd's default).
fn flagd_rollout() -> serde_json::Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [
            {"ends_with": [{"var": "email"}, "@example.com"]}, "on",
            {"in": [{"var": "country"}, ["FR", "DE", "IT", "ES"]]}, "on",
            {"sem_ver": [{"var": "app_version"}, "<", "2.0.0"]}, "off",
            {"fractional": [["on", 25], ["off", 75]]}
        ]}
    })
}

/// The same rollout as native rules; the split is salted with the flagd flag's key, so both
/// bucket every user alike.
fn native_rollout() -> serde_json::Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "rules": [
            {"conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}], "variant": "on"},
            {"conditions": [{"attribute": "country", "op": "in", "value": ["FR", "DE", "IT", "ES"]}], "variant": "on"},
            {"conditions": [{"attribute": "app_version", "op": "semver_lt", "value": "2.0.0"}], "variant": "off"},
            {"conditions": [], "split": [["on", 25], ["off", 75]], "salt": "rollout"}
        ]
    })
}

fn flag_store(rt: &Runtime) -> FlagStore {
    rt.block_on(async {
        let ns = Store::new(MemoryBackend::new())
            .namespace("FLAGS")
            .await
            .expect("namespace");
        ns.put_json("flag:checkout", &five_rules_and_a_split())
            .await
            .expect("put");
        ns.put_json(
            "flag:static",
            &json!({"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}),
        )
        .await
        .expect("put");
        ns.put_json("flag:rollout", &flagd_rollout())
            .await
            .expect("put");
        ns.put_json("flag:rollout-native", &native_rollout())
            .await
            .expect("put");
        let store = FlagStore::builder(ns)
            .with_manual_refresh()
            .load()
            .await
            .expect("flags");
        assert!(store.validation_errors().is_empty(), "every flag is valid");
        store
    })
}

fn our_users(store: &FlagStore) -> Vec<Flags> {
    (0..USERS)
        .map(|i| {
            store.flags(
                EvaluationContext::new()
                    .with_targeting_key(format!("user-{i}"))
                    .with_attribute("email", format!("user-{i}@mail.test"))
                    .with_attribute("country", "US")
                    .with_attribute("app_version", "2.3.1")
                    .with_ip("203.0.113.7".parse().expect("ip")),
            )
        })
        .collect()
}

/// An in-memory OpenFeature provider: boolean flags from a map.
struct InMemoryProvider {
    metadata: ProviderMetadata,
    bools: HashMap<String, bool>,
}

fn not_found<T>() -> EvaluationResult<T> {
    Err(EvaluationError::builder()
        .code(EvaluationErrorCode::FlagNotFound)
        .build())
}

#[open_feature::async_trait]
impl FeatureProvider for InMemoryProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        match self.bools.get(flag_key) {
            Some(value) => Ok(ResolutionDetails::new(*value)),
            None => not_found(),
        }
    }

    async fn resolve_int_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        not_found()
    }

    async fn resolve_float_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        not_found()
    }

    async fn resolve_string_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        not_found()
    }

    async fn resolve_struct_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        not_found()
    }
}

/// The most trivial OpenFeature provider: every boolean flag is `true`. Through the client it
/// measures the SDK's own cost.
struct ConstProvider {
    metadata: ProviderMetadata,
}

#[open_feature::async_trait]
impl FeatureProvider for ConstProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        Ok(ResolutionDetails::new(true))
    }

    async fn resolve_int_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        not_found()
    }

    async fn resolve_float_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        not_found()
    }

    async fn resolve_string_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        not_found()
    }

    async fn resolve_struct_value(
        &self,
        _flag_key: &str,
        _context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        not_found()
    }
}

/// An OpenFeature client (of its own API instance, not the global singleton) over `provider`.
fn client_over(rt: &Runtime, provider: impl FeatureProvider) -> open_feature::Client {
    rt.block_on(async {
        let mut api = open_feature::OpenFeature::default();
        api.set_provider(provider).await;
        api.create_client()
    })
}

fn open_feature_client(rt: &Runtime) -> open_feature::Client {
    client_over(
        rt,
        InMemoryProvider {
            metadata: ProviderMetadata::new("in-memory"),
            bools: HashMap::from([("checkout".to_owned(), true)]),
        },
    )
}

fn open_feature_users() -> Vec<open_feature::EvaluationContext> {
    (0..USERS)
        .map(|i| {
            open_feature::EvaluationContext::default()
                .with_targeting_key(format!("user-{i}"))
                .with_custom_field("email", format!("user-{i}@mail.test"))
                .with_custom_field("country", "US")
                .with_custom_field("app_version", "2.3.1")
                .with_custom_field("ip", "203.0.113.7")
        })
        .collect()
}

// ---- contenders, each timing `n` operations ----

struct Eval {
    users: Vec<Flags>,
    next: usize,
}

impl Eval {
    fn run(&mut self, key: &str, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let flags = &self.users[self.next & (USERS - 1)];
            self.next = self.next.wrapping_add(1);
            black_box(flags.is_enabled(black_box(key)));
        }
        start.elapsed()
    }
}

struct OpenFeatureEval {
    client: open_feature::Client,
    key: &'static str,
    users: Vec<open_feature::EvaluationContext>,
    next: usize,
}

impl OpenFeatureEval {
    fn run(&mut self, rt: &Runtime, n: usize) -> Duration {
        let client = &self.client;
        let key = self.key;
        let users = &self.users;
        let first = self.next;
        self.next = self.next.wrapping_add(n);
        rt.block_on(async move {
            let start = Instant::now();
            for i in 0..n {
                let context = &users[(first + i) & (USERS - 1)];
                let on = client
                    .get_bool_value(black_box(key), Some(context), None)
                    .await
                    .unwrap_or(false);
                black_box(on);
            }
            start.elapsed()
        })
    }
}

/// `FlagStore::evaluate_as`: the owned details (value, variant, reason, metadata).
struct OwnedEval {
    store: FlagStore,
    users: Vec<EvaluationContext>,
    next: usize,
}

impl OwnedEval {
    fn run(&mut self, key: &str, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let context = &self.users[self.next & (USERS - 1)];
            self.next = self.next.wrapping_add(1);
            let details = self
                .store
                .evaluate_as(black_box(key), context, FlagType::Boolean);
            black_box(details.value.and_then(|v| v.as_bool()).unwrap_or(false));
        }
        start.elapsed()
    }
}

/// Our OpenFeature provider called directly, without the SDK's client.
struct ProviderEval {
    provider: FlagStoreProvider,
    users: Vec<open_feature::EvaluationContext>,
    next: usize,
}

impl ProviderEval {
    fn run(&mut self, rt: &Runtime, key: &str, n: usize) -> Duration {
        let provider = &self.provider;
        let users = &self.users;
        let first = self.next;
        self.next = self.next.wrapping_add(n);
        rt.block_on(async move {
            let start = Instant::now();
            for i in 0..n {
                let context = &users[(first + i) & (USERS - 1)];
                let on = provider
                    .resolve_bool_value(black_box(key), context)
                    .await
                    .map(|details| details.value)
                    .unwrap_or(false);
                black_box(on);
            }
            start.elapsed()
        })
    }
}

/// The contenders of `flags-flagd`, in order.
const FLAGD: [&str; 6] = [
    "flagd-targeting",
    "native-rules",
    "flagd-owned-details",
    "open-feature-const",
    "open-feature-flag-store",
    "flag-store-provider",
];

/// Every `flags-flagd` contender, over the same 1 024 users.
struct FlagdContenders {
    flagd: Eval,
    native: Eval,
    owned: OwnedEval,
    sdk_const: OpenFeatureEval,
    sdk_store: OpenFeatureEval,
    provider: ProviderEval,
}

impl FlagdContenders {
    fn new(rt: &Runtime, store: &FlagStore) -> Self {
        let users = our_users(store);
        // Same meaning: both rules serve every user the same variant, and the split serves both.
        let on = users
            .iter()
            .filter(|flags| {
                let flagd = flags.details("rollout");
                let native = flags.details("rollout-native");
                assert_eq!(flagd.variant, native.variant, "one meaning");
                assert!(flagd.error_code.is_none() && native.error_code.is_none());
                flags.is_enabled("rollout")
            })
            .count();
        assert!(on > USERS / 8 && on < USERS / 2, "about 25 % on: {on}");
        let contexts = users.iter().map(|flags| flags.context().clone()).collect();
        let contenders = FlagdContenders {
            flagd: Eval {
                users: users.clone(),
                next: 0,
            },
            native: Eval { users, next: 0 },
            owned: OwnedEval {
                store: store.clone(),
                users: contexts,
                next: 0,
            },
            sdk_const: OpenFeatureEval {
                client: client_over(
                    rt,
                    ConstProvider {
                        metadata: ProviderMetadata::new("const"),
                    },
                ),
                key: "rollout",
                users: open_feature_users(),
                next: 0,
            },
            sdk_store: OpenFeatureEval {
                client: client_over(rt, FlagStoreProvider::new(store.clone())),
                key: "rollout",
                users: open_feature_users(),
                next: 0,
            },
            provider: ProviderEval {
                provider: FlagStoreProvider::new(store.clone()),
                users: open_feature_users(),
                next: 0,
            },
        };
        // The OpenFeature path serves the same values.
        rt.block_on(async {
            for (flags, context) in contenders
                .flagd
                .users
                .iter()
                .zip(&contenders.sdk_store.users)
            {
                let theirs = contenders
                    .sdk_store
                    .client
                    .get_bool_value("rollout", Some(context), None)
                    .await
                    .expect("the provider answers");
                assert_eq!(theirs, flags.is_enabled("rollout"), "one meaning");
            }
        });
        contenders
    }

    /// Times `n` evaluations of contender `c` (an index into [`FLAGD`]).
    fn run(&mut self, rt: &Runtime, c: usize, n: usize) -> Duration {
        match c {
            0 => self.flagd.run("rollout", n),
            1 => self.native.run("rollout-native", n),
            2 => self.owned.run("rollout", n),
            3 => self.sdk_const.run(rt, n),
            4 => self.sdk_store.run(rt, n),
            _ => self.provider.run(rt, "rollout", n),
        }
    }
}

fn app(store: Option<FlagStore>) -> Router {
    match store {
        None => Router::new().route("/", get(|| async { "ok" })),
        Some(store) => Router::new()
            .route(
                "/",
                get(|flags: Flags| async move {
                    black_box(flags.is_enabled("checkout"));
                    "ok"
                }),
            )
            .layer(FlagsLayer::new(store)),
    }
}

struct Layer {
    router: Router,
    next: usize,
}

impl Layer {
    fn run(&mut self, rt: &Runtime, n: usize) -> Duration {
        let router = &mut self.router;
        let first = self.next;
        self.next = self.next.wrapping_add(n);
        rt.block_on(async move {
            let start = Instant::now();
            for i in 0..n {
                let request = Request::get("/")
                    .header("x-user-id", USER_IDS[(first + i) % USER_IDS.len()])
                    .header("host", "app.example")
                    .header(
                        "user-agent",
                        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                    )
                    .header("accept", "text/html,application/xhtml+xml")
                    .header("accept-language", "en-GB,en;q=0.9")
                    .header("accept-encoding", "gzip, br")
                    .body(Body::empty())
                    .expect("request");
                let ready = ServiceExt::<Request<Body>>::ready(router)
                    .await
                    .expect("infallible");
                let response = ready.call(request).await.expect("infallible");
                debug_assert_eq!(response.status(), 200);
                black_box(response);
            }
            start.elapsed()
        })
    }
}

const USER_IDS: [&str; 8] = [
    "user-1",
    "user-22",
    "user-333",
    "user-4444",
    "user-5",
    "user-66",
    "user-777",
    "user-8888",
];

fn benches(criterion: &mut Criterion) {
    let rt = current_thread_runtime();
    let timing = Timing::from_env(1.0, 3.0, 30);
    let store = flag_store(&rt);

    let mut group = criterion.benchmark_group("flags-eval");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    let mut ours = Eval {
        users: our_users(&store),
        next: 0,
    };
    group.bench_function("ours-5-rules-split", |b| {
        b.iter_custom(|iters| ours.run("checkout", iters as usize))
    });
    group.bench_function("ours-static", |b| {
        b.iter_custom(|iters| ours.run("static", iters as usize))
    });
    let mut peer = OpenFeatureEval {
        client: open_feature_client(&rt),
        key: "checkout",
        users: open_feature_users(),
        next: 0,
    };
    group.bench_function("open-feature-in-memory", |b| {
        b.iter_custom(|iters| peer.run(&rt, iters as usize))
    });
    group.finish();

    let mut group = criterion.benchmark_group("flags-flagd");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    let mut flagd = FlagdContenders::new(&rt, &store);
    for (c, name) in FLAGD.iter().enumerate() {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| flagd.run(&rt, c, iters as usize))
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("flags-layer");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    let mut bare = Layer {
        router: app(None),
        next: 0,
    };
    let mut layered = Layer {
        router: app(Some(store.clone())),
        next: 0,
    };
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| bare.run(&rt, iters as usize))
    });
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| layered.run(&rt, iters as usize))
    });
    group.finish();

    let rounds = paired_rounds(30);
    if rounds == 0 {
        return;
    }
    let batch = if kv_benches::bench_mode() { 20_000 } else { 10 };
    let names = [
        "ours-5-rules-split",
        "ours-static",
        "open-feature-in-memory",
        "layer-bare",
        "layer-ours",
    ];
    let mut per_op = vec![Vec::with_capacity(rounds); names.len()];
    for round in 0..rounds {
        for turn in 0..names.len() {
            let c = (round + turn) % names.len();
            let elapsed = match c {
                0 => ours.run("checkout", batch),
                1 => ours.run("static", batch),
                2 => peer.run(&rt, batch),
                3 => bare.run(&rt, batch / 10),
                _ => layered.run(&rt, batch / 10),
            };
            let ops = if c >= 3 { batch / 10 } else { batch };
            per_op[c].push(elapsed.as_nanos() as f64 / ops as f64);
        }
    }
    let ratio = |a: usize, b: usize| {
        median(
            &(0..rounds)
                .map(|r| per_op[a][r] / per_op[b][r])
                .collect::<Vec<_>>(),
        )
    };
    let added: Vec<f64> = (0..rounds).map(|r| per_op[4][r] - per_op[3][r]).collect();
    println!(
        "paired flags: {rounds} rounds; {batch} evaluations or {} requests per contender",
        batch / 10
    );
    let mut medians = serde_json::Map::new();
    for (c, name) in names.iter().enumerate() {
        let m = median(&per_op[c]);
        medians.insert((*name).to_owned(), m.into());
        println!("  {name:<24} median {m:>9.1} ns/op");
    }
    let results = json!({
        "rounds": rounds,
        "batch": batch,
        "median_ns_per_op": medians,
        "median_layer_added_ns": median(&added),
        "median_ratio_ours_5_rules_to_open_feature": ratio(0, 2),
        "median_ratio_ours_static_to_open_feature": ratio(1, 2),
        "median_ratio_layer_ours_to_bare": ratio(4, 3),
    });
    println!("  layer added per request: median {:.1} ns", median(&added));
    println!(
        "  ours-5-rules-split / open-feature: {:.3}; ours-static / open-feature: {:.3}",
        ratio(0, 2),
        ratio(1, 2)
    );
    write_paired(env!("CARGO_TARGET_TMPDIR"), "flags", &results);

    // The flagd rollout against the native rules and the OpenFeature SDK: allocations per
    // evaluation (one pass over the users, after the criterion runs warmed everything up),
    // then the paired run.
    let mut allocs = serde_json::Map::new();
    println!("allocations per evaluation (flags-flagd, {USERS} evaluations each):");
    for (c, name) in FLAGD.iter().enumerate() {
        let count = allocations(|| {
            flagd.run(&rt, c, USERS);
        });
        let per_eval = count as f64 / USERS as f64;
        allocs.insert((*name).to_owned(), per_eval.into());
        println!("  {name:<24} {per_eval:>6.2}");
    }
    let flagd = RefCell::new(flagd);
    let mut flagd_results = kv_benches::paired(
        "flags-flagd",
        rounds,
        batch,
        (0..FLAGD.len())
            .map(|c| {
                let (flagd, rt) = (&flagd, &rt);
                let run: kv_benches::Batch<'_> =
                    Box::new(move |n| flagd.borrow_mut().run(rt, c, n));
                (FLAGD[c], run)
            })
            .collect(),
    );
    flagd_results["allocations_per_evaluation"] = allocs.into();
    write_paired(env!("CARGO_TARGET_TMPDIR"), "flags-flagd", &flagd_results);
}

/// `KV_FLAGS_PROFILE=CONTENDER,N`: one `flags-flagd` contender alone (see the module docs).
fn profile(spec: &str) {
    let (name, n) = spec
        .split_once(',')
        .unwrap_or_else(|| panic!("KV_FLAGS_PROFILE is CONTENDER,N, not {spec:?}"));
    let c = FLAGD
        .iter()
        .position(|known| *known == name.trim())
        .unwrap_or_else(|| panic!("contenders: {FLAGD:?}"));
    let n: usize = n.trim().parse().expect("N is a number");
    let rt = current_thread_runtime();
    let store = flag_store(&rt);
    let mut contenders = FlagdContenders::new(&rt, &store);
    contenders.run(&rt, c, USERS);
    let elapsed = contenders.run(&rt, c, n);
    println!(
        "{name}: {n} evaluations, {:?} per evaluation",
        elapsed / n.max(1) as u32
    );
}

criterion_group!(flags, benches);

fn main() {
    if let Ok(spec) = std::env::var("KV_FLAGS_PROFILE") {
        profile(&spec);
        return;
    }
    flags();
    Criterion::default().configure_from_args().final_summary();
}
