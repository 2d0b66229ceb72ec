//! `GET /metrics`: what Workers KV users watch against their read and write quotas.
//!
//! - `kv_operations_total{namespace, operation}`: reads, writes, deletes and lists per namespace
//!   (a bulk request counts each key);
//! - `kv_http_errors_total{status}`: error answers by status;
//! - `kv_http_request_duration_seconds`: request latency histogram.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use parking_lot::RwLock;

use crate::state::AppState;

/// The kinds of store operation counted per namespace.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Operation {
    /// Value, metadata and bulk reads.
    read,
    /// Value and bulk writes.
    write,
    /// Value and bulk deletes.
    delete,
    /// Key listings.
    list,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    namespace: String,
    operation: Operation,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    operations: Family<OperationLabels, Counter>,
    errors: Family<StatusLabels, Counter>,
    latency: Histogram,
    /// Each namespace's four operation counters, found by `&str` so that counting a request
    /// allocates only the first time a namespace is seen (the family's own lookup needs an
    /// owned label set).
    by_namespace: RwLock<HashMap<Box<str>, [Counter; 4]>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let operations = Family::<OperationLabels, Counter>::default();
        let errors = Family::<StatusLabels, Counter>::default();
        // 100 µs to about 3 s.
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "kv_operations",
            "Store operations by namespace and kind",
            operations.clone(),
        );
        registry.register(
            "kv_http_errors",
            "Error responses by HTTP status",
            errors.clone(),
        );
        registry.register(
            "kv_http_request_duration_seconds",
            "Request latency",
            latency.clone(),
        );
        Metrics {
            registry,
            operations,
            errors,
            latency,
            by_namespace: RwLock::default(),
        }
    }
}

impl Metrics {
    /// Counts `n` operations of one kind on a namespace.
    pub fn count(&self, namespace: &str, operation: Operation, n: u64) {
        if let Some(counters) = self.by_namespace.read().get(namespace) {
            counters[operation as usize].inc_by(n);
            return;
        }
        let counters = [
            Operation::read,
            Operation::write,
            Operation::delete,
            Operation::list,
        ]
        .map(|operation| {
            self.operations
                .get_or_create(&OperationLabels {
                    namespace: namespace.to_owned(),
                    operation,
                })
                .clone()
        });
        counters[operation as usize].inc_by(n);
        self.by_namespace.write().insert(namespace.into(), counters);
    }

    /// Records one request's latency (by [`ObserveLayer`](crate::observe::ObserveLayer)).
    pub(crate) fn observe_latency(&self, latency: Duration) {
        self.latency.observe(latency.as_secs_f64());
    }

    /// Counts an answer's status when it is an error (by
    /// [`ObserveLayer`](crate::observe::ObserveLayer)).
    pub(crate) fn count_status(&self, status: StatusCode) {
        if status.is_client_error() || status.is_server_error() {
            self.errors
                .get_or_create(&StatusLabels {
                    status: status.as_u16(),
                })
                .inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// `GET /metrics`.
pub(crate) async fn exposition(State(state): State<AppState>) -> Response {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
