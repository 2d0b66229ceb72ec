//! [`SessionManager`]: sessions for code outside requests.

use std::sync::Arc;

use http::HeaderValue;
use kv_core::{DeleteOutcome, Namespace, WriteMode};

use super::config::{Config, Counters, SessionStats};
use super::error::SessionError;
use super::handle::Session;
use super::id::SessionId;

/// Creates, reads, updates and destroys sessions by ID, outside any request: the Workers KV
/// session pattern (a login service that creates the session and hands its ID to the browser,
/// an admin tool that logs a user out, a background job that updates a session).
///
/// The sessions it returns are ordinary [`Session`] handles over the same records the layer
/// uses; without a layer around them, call [`Session::save`] to write changes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kv_backends::memory::MemoryBackend;
/// use kv_middleware::session::SessionManager;
///
/// let store = kv_core::Store::new(MemoryBackend::new());
/// let manager = SessionManager::new(store.namespace("SESSIONS").await?);
///
/// // Create a session for a user.
/// let session = manager.create();
/// session.insert("user", "ada").await?;
/// session.save().await?;
/// let id = session.id().await?;
///
/// // Elsewhere: read and update it by ID.
/// let found = manager.load(&id).await?.expect("just created");
/// assert_eq!(found.get::<String>("user").await?.as_deref(), Some("ada"));
/// found.insert("role", "admin").await?;
/// found.save().await?;
///
/// // Log the user out everywhere this ID is used.
/// assert!(manager.destroy(&id).await?);
/// assert!(manager.load(&id).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionManager {
    config: Arc<Config>,
}

impl SessionManager {
    /// A manager over `namespace` with the default settings (those of
    /// [`SessionLayer::new`](super::SessionLayer::new)). To share a layer's settings, use
    /// [`SessionLayer::manager`](super::SessionLayer::manager).
    pub fn new(namespace: Namespace) -> Self {
        Self::from_config(Arc::new(Config::new(namespace)))
    }

    pub(crate) fn from_config(config: Arc<Config>) -> Self {
        SessionManager { config }
    }

    /// The namespace the sessions are stored in.
    pub fn namespace(&self) -> &Namespace {
        &self.config.namespace
    }

    /// A new, empty session. It is stored by [`Session::save`] once it holds data; its ID is
    /// known at once through [`Session::id`].
    pub fn create(&self) -> Session {
        Session::new_empty(self.config.clone())
    }

    /// The session stored under `id`, loaded; `None` when there is none (never created,
    /// destroyed or ended).
    pub async fn load(&self, id: &SessionId) -> Result<Option<Session>, SessionError> {
        let session = Session::for_id(self.config.clone(), id.clone());
        Ok(session.load_now().await?.then_some(session))
    }

    /// Deletes the session stored under `id`; `true` when there was one. Requests that still
    /// carry the ID find no session from now on.
    pub async fn destroy(&self, id: &SessionId) -> Result<bool, SessionError> {
        let outcome = self
            .config
            .namespace
            .delete_with(&id.store_key(), WriteMode::Overwrite)
            .await?;
        Counters::bump(&self.config.counters.deletes);
        Ok(matches!(outcome, DeleteOutcome::Deleted { existed: true }))
    }

    /// The `Set-Cookie` header value that hands a saved session to a browser, with this
    /// manager's cookie settings; `None` when the session is not stored. For login flows that
    /// answer outside the layer.
    pub async fn set_cookie_header(
        &self,
        session: &Session,
    ) -> Result<Option<HeaderValue>, SessionError> {
        session.cookie_header().await
    }

    /// The counters of this manager (shared with the layer it came from).
    pub fn stats(&self) -> SessionStats {
        self.config.counters.snapshot()
    }
}
