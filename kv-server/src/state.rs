//! What every handler shares: the store, open namespace handles, metrics and settings.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kv_core::{KvError, Namespace, Store};

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// Namespace handles by id, so a request does not re-open its namespace.
    open: Arc<RwLock<HashMap<String, Namespace>>>,
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig, metrics: Arc<Metrics>) -> Self {
        AppState {
            store,
            config: Arc::new(config),
            metrics,
            open: Arc::default(),
        }
    }

    /// The namespace with this id, or 404 with code 10013.
    pub async fn namespace(&self, id: &str) -> ApiResult<Namespace> {
        if let Some(ns) = self.open.read().expect("not poisoned").get(id) {
            return Ok(ns.clone());
        }
        let ns = match self.store.namespace_by_id(id).await {
            Ok(ns) => ns,
            Err(KvError::NamespaceNotFound { .. }) | Err(KvError::InvalidNamespace { .. }) => {
                return Err(ApiError::namespace_not_found(id))
            }
            Err(other) => return Err(other.into()),
        };
        self.open
            .write()
            .expect("not poisoned")
            .insert(id.to_owned(), ns.clone());
        Ok(ns)
    }

    /// Forgets an open handle (after its namespace was deleted).
    pub fn forget(&self, id: &str) {
        self.open.write().expect("not poisoned").remove(id);
    }
}
