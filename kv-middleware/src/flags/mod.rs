//! Feature flags evaluated from an in-memory snapshot of a namespace (feature `flags`).
//!
//! A [`FlagStore`] loads every flag of a namespace, validates and compiles them into an
//! immutable snapshot, and swaps it in atomically (`arc-swap`): evaluations take no lock, never
//! touch the store, and for boolean flags allocate nothing. A background task refreshes the
//! snapshot (every 30 s by default), [`FlagStore::refresh`] does it on demand, and both are
//! single-flight. [`FlagsLayer`] gives every request a [`Flags`] handle (an axum extractor with
//! the `axum` feature) bound to an [`EvaluationContext`] built from the request;
//! [`RequireFlagLayer`] hides a route (404) unless a flag is on.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use kv_middleware::flags::{Condition, FlagDefinition, FlagStore, Flags, FlagsLayer, Operator, Rule};
//! use tower::ServiceExt;
//!
//! let store = kv_backends::open("memory:").await?;
//! let flags = FlagStore::load(store.namespace("FLAGS").await?).await?;
//!
//! // Admins write flags from code (validated first) or with the `kv` tool (raw JSON).
//! let new_ui = FlagDefinition::boolean(false)
//!     .with_rule(Rule::serve("on").when(Condition::new("email", Operator::EndsWith, "@example.com")))
//!     .with_rule(Rule::split([("on", 10), ("off", 90)]));
//! flags.set_flag("new-ui", &new_ui).await?;
//!
//! async fn page(flags: Flags) -> &'static str {
//!     if flags.is_enabled("new-ui") { "new page" } else { "old page" }
//! }
//! // The default context has no user: a session layer gives one
//! // (`with_session_user`). Here the client's `X-User-ID` header is used, an explicit opt-in
//! // that lets a client choose its bucket (fine for a rollout, not for access control).
//! let layer = FlagsLayer::new(flags.clone())
//!     .with_user_header(http::HeaderName::from_static(kv_middleware::flags::DEFAULT_USER_HEADER));
//! let app = Router::new().route("/", get(page)).layer(layer);
//!
//! // 10 % of users get the new page.
//! let request = Request::get("/").header("x-user-id", "user-1").body(Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! # Stored form
//!
//! One entry per flag, `flag:<key>`, and one per segment, `segment:<name>`, in a namespace of
//! their own (`FLAGS` by convention). One key per flag makes each flag its own unit of
//! compare-and-swap (two admins editing different flags never conflict), gives each flag a
//! version, and lets an operator flip one flag with the `kv` tool:
//!
//! ```text
//! kv --namespace FLAGS key put flag:new-ui '{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}'
//! ```
//!
//! A refresh lists the namespace and reads the entries in bulk (one list and one bulk get per
//! 100 flags); when no version changed it keeps the snapshot without re-parsing. Entries
//! without either prefix are ignored. The keys are read one by one, not atomically: a refresh
//! during a multi-flag change may see part of it, until the next one.
//!
//! # Flag format
//!
//! The fields flagd users know (`state`, `variants`, `defaultVariant`), plus `targets`, `rules`
//! and `metadata` ([`FlagDefinition`]). `{"state":"ENABLED","variants":{"on":true,"off":false},
//! "defaultVariant":"off"}` is a complete flag, off for everyone. A fuller one:
//!
//! ```json
//! {
//!   "state": "ENABLED",
//!   "variants": {"red": "#c00", "blue": "#00c", "green": "#0c0"},
//!   "defaultVariant": "red",
//!   "targets": {"blue": ["user-1", "user-2"]},
//!   "rules": [
//!     {"name": "staff", "conditions": [{"segment": "staff"}], "variant": "green"},
//!     {"conditions": [
//!        {"attribute": "app_version", "op": "semver_gte", "value": "2.4.0"},
//!        {"attribute": "country", "op": "in", "value": ["FR", "DE"], "negate": true}
//!      ],
//!      "split": [["red", 50], ["blue", 50]]}
//!   ],
//!   "metadata": {"owner": "growth-team", "expiry": "2026-12-31"}
//! }
//! ```
//!
//! - `variants`: name to value; all values of one flag have one type (boolean, string, number,
//!   or JSON object/array).
//! - `targets`: allow-lists of targeting keys per variant, checked before the rules.
//! - `rules`: in order; a rule matches when all its `conditions` hold (no conditions: always)
//!   and serves a `variant` or a weighted `split` (flagd's `fractional`), bucketing by the
//!   targeting key or by `bucketBy` (another attribute), salted by `salt` (default the flag
//!   key).
//! - A condition is `{"attribute", "op", "value", "negate"?}` or `{"segment", "negate"?}`.
//!   Operators ([`Operator`]): `eq`, `neq`, `in`, `not_in`, `starts_with`, `ends_with`,
//!   `contains`, `regex`, `lt`, `lte`, `gt`, `gte`, `semver_lt`, `semver_lte`, `semver_gt`,
//!   `semver_gte`, `semver_eq`, `in_cidr`. A condition on an attribute the context lacks is
//!   false (so with `negate` it is true).
//! - Attributes: the context's own, `targetingKey`, `ip`, and `header.<name>`.
//! - Segments ([`Segment`]): `{"conditions": [...]}`, named, reusable, ANDed; a segment cannot
//!   refer to another.
//!
//! # Evaluation
//!
//! In order: a `DISABLED` flag answers the caller's default with reason `DISABLED`; a target
//! listing the targeting key serves its variant (`TARGETING_MATCH`); the first matching rule
//! serves its variant (`TARGETING_MATCH`) or its split (`SPLIT`); otherwise the default variant
//! (`DEFAULT`, or `STATIC` when the flag has no targets and no rules). An unknown flag gives the
//! caller's default with `ERROR` / `FLAG_NOT_FOUND`; before the first successful load,
//! `PROVIDER_NOT_READY`. A split whose bucketing key the context lacks serves the default
//! variant with `TARGETING_KEY_MISSING`: never a random variant. Once the last successful
//! refresh is older than the maximum staleness (default 5 minutes), results carry reason
//! `STALE` (same values).
//!
//! # Bucketing
//!
//! Exactly flagd's `fractional`: `hash = murmur3_x86_32(salt + key)` (seed 0), `bucket =
//! (hash × total_weight) >> 32`, and the first variant whose running weight exceeds the bucket.
//! The salt defaults to the flag key, so a user migrating from flagd keeps their variant, two
//! flags bucket independently, and growing a percentage only adds users (25 % is a subset of
//! 50 %, as long as the order of the variants stays). The Workers KV pattern of one hash byte
//! (256 buckets, the same users first in every flag) does neither.
//!
//! # Validation
//!
//! Every refresh and every admin write validates: unknown fields, unknown variants (default,
//! targets, rules, splits), mixed variant types, bad regular expressions, semantic versions and
//! CIDR blocks, unknown segments, weights (integers adding up to between 1 and 2³²−1), and
//! for flagd targeting unknown operators and `$ref`s to missing evaluators. A bad item fails
//! alone: it is reported with the flag and the field (`flag "new-ui": targeting.if[0].foo:
//! unknown operator "foo"`) in [`FlagStore::validation_errors`], [`FlagStore::stats`] and the
//! log; the flag keeps its last good definition, or answers `PARSE_ERROR` when it never had
//! one; every other flag keeps serving and refreshing.
//!
//! # flagd documents and the API for other front ends
//!
//! A flag may carry flagd `targeting` (JSON Logic with `fractional`, `sem_ver`,
//! `starts_with`, `ends_with`, `$ref`) instead of `targets`/`rules`, evaluated exactly as
//! flagd does (reasons `STATIC`, `DEFAULT`, `TARGETING_MATCH`, `DISABLED`, `ERROR`; codes
//! `FLAG_NOT_FOUND`, `PARSE_ERROR`, `TYPE_MISMATCH`, `GENERAL`), compiled once per snapshot.
//!
//! - [`FlagStore::evaluate`] / [`evaluate_as`](FlagStore::evaluate_as): owned
//!   [`EvaluationDetails`] (value `None` = the caller's default, error message, flag metadata
//!   merged over the document's).
//! - [`FlagStore::snapshot`] → [`FlagSnapshot`]: `evaluate` (borrowed, allocation-free),
//!   `details`, `keys`, `errors`, `to_document`.
//! - [`FlagSnapshot::from_document`]: a flagd document without a store.
//! - [`FlagStore::import_document`] (validated, all or nothing) and
//!   [`FlagStore::export_document`]; the `$evaluators` and metadata live in [`DOCUMENT_KEY`].
//! - [`Evaluation::typed`] with a [`FlagType`]: `TYPE_MISMATCH` for a value of another type.
//!
//! # Admin, and concurrent admins
//!
//! [`FlagStore::set_flag`], [`set_flag_if`](FlagStore::set_flag_if) (compare-and-swap on the
//! version read), [`update_flag`](FlagStore::update_flag) (read-modify-write with retries),
//! [`delete_flag`](FlagStore::delete_flag), [`list_flags`](FlagStore::list_flags), and the same
//! for segments. Each write refreshes this process's snapshot at once; other processes see it
//! within one refresh interval. Compare-and-swap needs a store that has it (memory, file,
//! Redis, kv-server); on others `set_flag_if` is refused and `update_flag` writes
//! unconditionally.
//!
//! # Store failures
//!
//! A failed refresh keeps the last good snapshot: requests go on with it. Failures are counted
//! ([`FlagStore::stats`], with the last error) and logged with `tracing`: at `warn` when the
//! error is new, at `debug` while it repeats. Nothing on the request path waits on the store, except reading the user from
//! the session when [`FlagsLayer::with_session_user`] is on (the session's own store).

mod bucket;
mod compile;
mod context;
mod error;
mod eval;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod handle;
mod layer;
mod logic;
mod model;
mod require;
mod service;
mod snapshot;
mod store;

pub use self::bucket::{bucket, fractional, murmur3_x86_32};
pub use self::compile::{ItemKind, ValidationError, ValueKind};
pub use self::context::EvaluationContext;
pub use self::error::FlagsError;
pub use self::eval::{ErrorCode, Evaluation, EvaluationDetails, FlagType, Reason};
#[cfg(feature = "axum")]
pub use self::extract::MissingFlagsLayer;
pub use self::future::ResponseFuture;
pub use self::handle::Flags;
pub use self::layer::{default_context, FlagsLayer, DEFAULT_USER_HEADER};
pub use self::model::{
    Condition, FlagDefinition, FlagDocument, FlagState, Operator, Rule, Segment,
};
pub use self::require::{RequireFlagFuture, RequireFlagLayer, RequireFlagService};

/// Renamed [`RequireFlagService`] (every service of the crate is `...Service`).
#[deprecated(note = "renamed `RequireFlagService`")]
#[doc(hidden)]
pub type RequireFlag<S> = RequireFlagService<S>;
pub use self::service::FlagsService;
pub use self::snapshot::FlagSnapshot;
pub use self::store::{
    FlagStats, FlagStore, FlagStoreBuilder, FlagsRefresh, StoredFlag, StoredSegment,
    DEFAULT_MAX_STALENESS, DEFAULT_REFRESH_INTERVAL, DOCUMENT_KEY, FLAG_PREFIX, SEGMENT_PREFIX,
};

/// Renamed [`FlagsRefresh`] (`config` has its own refresh outcome, [`ConfigRefresh`](crate::config::ConfigRefresh)).
#[deprecated(note = "renamed `FlagsRefresh`")]
#[doc(hidden)]
pub type RefreshOutcome = FlagsRefresh;
