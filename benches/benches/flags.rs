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
//! After the criterion groups a **paired** run alternates the contenders in batches (rotating
//! which goes first) and reports medians and median per-round ratios; it writes
//! `target/tmp/kv-benches-flags-paired.json` (`KV_BENCH_PAIRED_ROUNDS`, default 30; 0 skips).
//!
//! `cargo bench -p kv-benches --bench flags`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use kv_backends::memory::MemoryBackend;
use kv_benches::{current_thread_runtime, median, paired_rounds, write_paired, Timing};
use kv_core::Store;
use kv_middleware::flags::{EvaluationContext, FlagStore, Flags, FlagsLayer};
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{EvaluationError, EvaluationErrorCode, EvaluationResult, StructValue};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

const USERS: usize = 1024;

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
        FlagStore::builder(ns)
            .manual_refresh()
            .load()
            .await
            .expect("flags")
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

fn open_feature_client(rt: &Runtime) -> open_feature::Client {
    rt.block_on(async {
        let mut api = open_feature::OpenFeature::default();
        api.set_provider(InMemoryProvider {
            metadata: ProviderMetadata::new("in-memory"),
            bools: HashMap::from([("checkout".to_owned(), true)]),
        })
        .await;
        api.create_client()
    })
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
    users: Vec<open_feature::EvaluationContext>,
    next: usize,
}

impl OpenFeatureEval {
    fn run(&mut self, rt: &Runtime, n: usize) -> Duration {
        let client = &self.client;
        let users = &self.users;
        let first = self.next;
        self.next = self.next.wrapping_add(n);
        rt.block_on(async move {
            let start = Instant::now();
            for i in 0..n {
                let context = &users[(first + i) & (USERS - 1)];
                let on = client
                    .get_bool_value(black_box("checkout"), Some(context), None)
                    .await
                    .unwrap_or(false);
                black_box(on);
            }
            start.elapsed()
        })
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
        users: open_feature_users(),
        next: 0,
    };
    group.bench_function("open-feature-in-memory", |b| {
        b.iter_custom(|iters| peer.run(&rt, iters as usize))
    });
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
}

criterion_group!(flags, benches);
criterion_main!(flags);
