//! [`FlagsLayer`]: puts a [`Flags`](super::Flags) handle into every request.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::request::Parts;
use http::HeaderName;
use tower_layer::Layer;

use super::context::EvaluationContext;
use super::service::FlagsService;
use super::store::FlagStore;

/// The conventional user header, for [`FlagsLayer::with_user_header`]. The default context
/// does **not** read it: a client chooses its value.
pub const DEFAULT_USER_HEADER: &str = "x-user-id";

pub(crate) type ContextFn = Arc<dyn Fn(&Parts) -> EvaluationContext + Send + Sync>;

/// Where a request's context comes from.
#[derive(Clone)]
pub(crate) enum ContextSource {
    /// The default context, with the user from this header when one is set (an explicit,
    /// unsafe opt-in); only the headers the snapshot's flags read are copied.
    Default { user_header: Option<HeaderName> },
    /// The application's function.
    Custom(ContextFn),
}

/// Gives every request a [`Flags`](super::Flags) handle: the store's current snapshot and an
/// [`EvaluationContext`] built from the request.
///
/// The context comes from a function of the request's parts; the default has **no targeting
/// key** (nothing the client sends chooses its identity), the `ip` from the connection, and
/// the request headers as `header.<name>` (only those some flag or segment reads are copied,
/// so a request costs no header copies while no rule reads one; [`default_context`] copies
/// them all). With the `session` feature,
/// [`with_session_user`](FlagsLayer::with_session_user) takes the user from the session: the
/// way to give flags an identity a client cannot forge.
/// [`with_user_header`](FlagsLayer::with_user_header) takes it from a header instead, an
/// explicit opt-in that is unsafe for access control.
///
/// Cheap to clone; works with `ServiceBuilder`, axum's `layer` and `route_layer`.
///
/// ```
/// # async fn example(store: kv_middleware::flags::FlagStore) {
/// use kv_middleware::flags::{EvaluationContext, FlagsLayer};
///
/// let layer = FlagsLayer::new(store).with_context(|parts: &http::request::Parts| {
///     let mut context = kv_middleware::flags::default_context(parts);
///     if let Some(country) = parts.headers.get("cf-ipcountry").and_then(|v| v.to_str().ok()) {
///         context.set_attribute("country", country);
///     }
///     context
/// });
/// # let _ = layer;
/// # }
/// ```
#[derive(Clone)]
pub struct FlagsLayer {
    pub(crate) store: FlagStore,
    pub(crate) context: ContextSource,
    #[cfg(feature = "session")]
    pub(crate) session_user: Option<Arc<str>>,
}

impl fmt::Debug for FlagsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FlagsLayer");
        d.field("store", &self.store);
        #[cfg(feature = "session")]
        d.field("session_user", &self.session_user);
        d.finish_non_exhaustive()
    }
}

impl FlagsLayer {
    /// Flags from `store`, with the default context (see [`default_context`]).
    pub fn new(store: FlagStore) -> Self {
        FlagsLayer {
            store,
            context: ContextSource::Default { user_header: None },
            #[cfg(feature = "session")]
            session_user: None,
        }
    }

    /// The default context, with the targeting key read from this header
    /// ([`DEFAULT_USER_HEADER`] is the usual `X-User-ID`).
    ///
    /// **Unsafe for access control**: a client can put anything in a header, so it can pick
    /// the variant it gets (join a rollout, reach a staff-only route behind
    /// [`RequireFlagLayer`](super::RequireFlagLayer)). Use it for a header your gateway sets
    /// (and strips from incoming requests), or for gradual rollouts where choosing your own
    /// bucket does no harm. A session user
    /// ([`with_session_user`](FlagsLayer::with_session_user)) takes precedence when present.
    pub fn with_user_header(mut self, header: HeaderName) -> Self {
        self.context = ContextSource::Default {
            user_header: Some(header),
        };
        self
    }

    /// Builds each request's context with `f` (see [`default_context`] to start from).
    pub fn with_context<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> EvaluationContext + Send + Sync + 'static,
    {
        self.context = ContextSource::Custom(Arc::new(f));
        self
    }

    /// Takes the targeting key from the request's session (feature `session`): the value
    /// stored under `key` (a string, or a number), when the request has a
    /// [`Session`](crate::session::Session) and it holds one; otherwise the context function's
    /// targeting key stands.
    ///
    /// The [`SessionLayer`](crate::session::SessionLayer) must wrap this layer (be added after
    /// it in axum, before it in `ServiceBuilder`). Reading the user loads the session before
    /// the handler runs (once: the handler's later reads share it), so every request through
    /// this layer costs one session read when it carries a session cookie.
    #[cfg(feature = "session")]
    pub fn with_session_user(mut self, key: impl Into<String>) -> Self {
        self.session_user = Some(Arc::from(key.into()));
        self
    }

    /// The store this layer reads.
    pub fn store(&self) -> &FlagStore {
        &self.store
    }
}

impl<S> Layer<S> for FlagsLayer {
    type Service = FlagsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlagsService::new(inner, self.clone())
    }
}

/// The default evaluation context of a request: no targeting key, `ip` from the connection
/// (axum's `ConnectInfo<SocketAddr>` with the `axum` feature, or a plain [`SocketAddr`]
/// extension), and the request headers (attributes `header.<name>`).
///
/// The targeting key is left to something the client cannot choose (the session's user,
/// [`FlagsLayer::with_session_user`]), or to your context function.
pub fn default_context(parts: &Parts) -> EvaluationContext {
    request_context(parts, None, None)
}

/// The default context with the user from `header` (if any), copying the headers named in
/// `only` (all of them when `None`).
pub(crate) fn request_context(
    parts: &Parts,
    header: Option<&HeaderName>,
    only: Option<&[HeaderName]>,
) -> EvaluationContext {
    let headers = match only {
        None => parts.headers.clone(),
        Some(names) => {
            let mut headers = http::HeaderMap::new();
            for name in names {
                for value in parts.headers.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
            headers
        }
    };
    let mut context = EvaluationContext::new().with_headers(headers);
    if let Some(user) = header
        .and_then(|header| parts.headers.get(header))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        context.set_targeting_key(Some(user.to_owned()));
    }
    context.set_ip(peer_addr(parts).map(|addr| addr.ip()));
    context
}

fn peer_addr(parts: &Parts) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0);
    }
    parts.extensions.get::<SocketAddr>().copied()
}
