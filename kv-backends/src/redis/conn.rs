//! One connection type over a single node and a cluster, so every operation is written once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use kv_core::Result;

use super::redis_error;

/// A single node's self-reconnecting multiplexed connection, or the cluster client's
/// connection (which routes each command by its key's slot and follows redirections) with the
/// response timeout that bounds a command as a whole.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<Cluster>),
}

/// The cluster client's connection, replaced by a fresh one when it stops answering.
///
/// The `redis` crate's cluster client can get stuck for good in a slot-map rebuild that waits
/// for a lock a request it no longer polls was granted (seen after many slots changed owner):
/// every command then times out. A command that has not answered within half the response
/// timeout connects the client afresh (once per stuck connection, whoever notices first) and
/// is sent again on the new connection.
pub(crate) struct Cluster {
    client: ClusterClient,
    /// The connection in use and its generation (how many times it was replaced).
    current: Mutex<(u64, ClusterConnection)>,
    timeout: Duration,
}

impl Cluster {
    fn connection(&self) -> (u64, ClusterConnection) {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the connection of `generation` (unless another caller already did).
    async fn replace(&self, generation: u64) -> RedisResult<()> {
        if self.connection().0 != generation {
            return Ok(());
        }
        tracing::warn!("the Redis cluster client stopped answering; connecting afresh");
        let fresh = self.client.get_async_connection().await?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 == generation {
            *current = (generation + 1, fresh);
        }
        Ok(())
    }
}

/// Redirections followed in a row before a command starts over from the slot map.
const REDIRECTS: usize = 5;

/// The first and the longest wait before a command is sent again after a transient error
/// (a slot split by a migration, a node lost, a failover under way).
const RETRY_WAIT: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));

impl Conn {
    pub(crate) async fn single(
        client: ::redis::Client,
        connection_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Conn> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connection_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_error)?;
        Ok(Conn::Single(conn))
    }

    pub(crate) async fn cluster(
        nodes: Vec<String>,
        connection_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Conn> {
        let client = ClusterClient::builder(nodes)
            .connection_timeout(connection_timeout)
            .response_timeout(response_timeout)
            // The client's own retries are off: redirections and retries are followed here
            // (see `cluster_command`), because its way of following an `ASK` loses the race
            // for the one-shot `ASKING` under concurrency, and the bounces that follow make it
            // rebuild its slot map over and over, which can leave it stuck in a rebuild that
            // waits for requests it no longer polls.
            .retries(0)
            .build()
            .map_err(|e| kv_core::KvError::InvalidStoreUrl {
                url: "redis+cluster://...".into(),
                reason: e.to_string(),
            })?;
        let conn = client.get_async_connection().await.map_err(redis_error)?;
        Ok(Conn::Cluster(Arc::new(Cluster {
            client,
            current: Mutex::new((0, conn)),
            timeout: response_timeout,
        })))
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(..))
    }

    /// Runs groups of commands, each group on one slot: on one node all groups go out as one
    /// pipeline (one round trip); on a cluster each group is its own pipeline (a cluster
    /// pipeline must stay in one slot), all sent at once. Answers come back per group, a
    /// command's error as its [`Value::ServerError`] (see [`server_error`]).
    pub(crate) async fn query_groups(&self, groups: Vec<Vec<Cmd>>) -> Result<Vec<Vec<Value>>> {
        match self {
            Conn::Single(conn) => {
                let mut pipe = ::redis::pipe();
                pipe.ignore_errors();
                let mut sizes = Vec::with_capacity(groups.len());
                for group in groups {
                    sizes.push(group.len());
                    for cmd in group {
                        pipe.add_command(cmd);
                    }
                }
                if sizes.iter().all(|n| *n == 0) {
                    return Ok(sizes.iter().map(|_| Vec::new()).collect());
                }
                let mut conn = conn.clone();
                let values: Vec<Value> = pipe.query_async(&mut conn).await.map_err(redis_error)?;
                let mut values = values.into_iter();
                Ok(sizes
                    .into_iter()
                    .map(|n| values.by_ref().take(n).collect())
                    .collect())
            }
            Conn::Cluster(cluster) => {
                let calls = groups
                    .into_iter()
                    .map(|group| cluster_group(cluster, group));
                futures::future::try_join_all(calls).await
            }
        }
    }
}

/// One slot's commands as one pipeline. While the slot migrates, some of its keys may have
/// moved and others not; after a redirection or a transient error the group is sent again one
/// command at a time, each following its own redirection and retried on its own (every command
/// of a group touches one key, or repeats harmlessly).
async fn cluster_group(cluster: &Cluster, group: Vec<Cmd>) -> Result<Vec<Value>> {
    if group.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = ::redis::pipe();
    pipe.ignore_errors();
    for cmd in &group {
        pipe.add_command(cmd.clone());
    }
    let (_, mut conn) = cluster.connection();
    let sent = tokio::time::timeout(
        cluster.timeout / 2,
        pipe.query_async::<Vec<Value>>(&mut conn),
    );
    match sent.await {
        Ok(Ok(values)) if !values.iter().any(is_redirection_value) => return Ok(values),
        Ok(Ok(_)) | Err(_) => {}
        Ok(Err(error)) if is_redirection(&error) || is_transient(&error) => {}
        Ok(Err(error)) => return Err(redis_error(error)),
    }
    let mut values = Vec::with_capacity(group.len());
    for cmd in &group {
        match cluster_command(cluster, cmd).await {
            Ok(value) => values.push(value),
            Err(error) => match ::redis::ServerError::try_from(error) {
                Ok(error) => values.push(Value::ServerError(error)),
                Err(error) => return Err(redis_error(error)),
            },
        }
    }
    Ok(values)
}

/// Whether an error says that the key is (being) served by another node, or that a multi-key
/// command met a slot whose keys are split between two nodes during a migration.
fn is_redirection(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::Ask | ServerErrorKind::Moved | ServerErrorKind::TryAgain
        )
    )
}

fn is_redirection_value(value: &Value) -> bool {
    server_error(value).is_some_and(|error| is_redirection(&error))
}

/// One command on the cluster, bounded by the response timeout as a whole: routed by the
/// client's slot map, then following `MOVED` and `ASK` here, and sent again after a wait that
/// doubles (from 10 ms to 250 ms) after a transient error.
///
/// The client would follow an `ASK` by sending `ASKING` and then the command as two requests on
/// the node's shared multiplexed connection; under concurrency another request can come between
/// them and take the one-shot `ASKING`, and the command bounces between the two nodes of a
/// migrating slot. Here `ASKING` and the command go out as one pipeline, which nothing splits.
/// A command sent again may have run before (its reply was lost): every command this backend
/// sends repeats harmlessly, the conditional `put` script included (it recognises its own
/// version).
async fn cluster_command(cluster: &Cluster, cmd: &Cmd) -> RedisResult<Value> {
    let attempt = async {
        let (generation, mut conn) = cluster.connection();
        match tokio::time::timeout(cluster.timeout / 2, follow(&mut conn, cmd)).await {
            Ok(result) => result,
            Err(_) => {
                cluster.replace(generation).await?;
                follow(&mut cluster.connection().1, cmd).await
            }
        }
    };
    match tokio::time::timeout(cluster.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the Redis cluster did not answer within the response timeout",
        ))),
    }
}

/// Sends `cmd`, following redirections and retrying transient errors until it gets an answer
/// (the caller bounds the time).
async fn follow(conn: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<Value> {
    let mut wait = RETRY_WAIT.0;
    loop {
        let mut result = conn.req_packed_command(cmd).await;
        for _ in 0..REDIRECTS {
            let Err(error) = &result else { break };
            let Some((route, asking)) = redirection_target(error) else {
                break;
            };
            result = send_redirected(conn, cmd, route, asking).await;
        }
        match &result {
            Err(error) if is_transient(error) || is_redirection(error) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_WAIT.1);
            }
            _ => return result,
        }
    }
}

/// Errors that a wait may cure: the node is unreachable or failing over, the cluster is
/// reconfiguring, or the client has no connection for the slot yet.
fn is_transient(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown | ServerErrorKind::MasterDown
        ) | ErrorKind::ClusterConnectionNotFound
    ) || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}

/// Where an `ASK` or `MOVED` points, and whether it is an `ASK`.
fn redirection_target(error: &RedisError) -> Option<(SingleNodeRoutingInfo, bool)> {
    let asking = match error.kind() {
        ErrorKind::Server(ServerErrorKind::Ask) => true,
        ErrorKind::Server(ServerErrorKind::Moved) => false,
        _ => return None,
    };
    let (address, _slot) = error.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    let route = SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    };
    Some((route, asking))
}

async fn send_redirected(
    conn: &mut ClusterConnection,
    cmd: &Cmd,
    route: SingleNodeRoutingInfo,
    asking: bool,
) -> RedisResult<Value> {
    if !asking {
        return conn
            .route_command(cmd.clone(), RoutingInfo::SingleNode(route))
            .await;
    }
    let mut pipe = ::redis::pipe();
    pipe.add_command(::redis::cmd("ASKING"))
        .add_command(cmd.clone());
    let values = conn.route_pipeline(pipe, 1, 1, route).await?;
    values
        .into_iter()
        .next()
        .unwrap_or(Value::Nil)
        .extract_error()
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(cluster) => {
                let cluster = cluster.clone();
                Box::pin(async move { cluster_command(&cluster, cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(cluster) => {
                let mut conn = cluster.connection().1;
                Box::pin(async move { conn.req_packed_commands(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// The error a command of [`Conn::query_groups`] answered, if it did.
pub(crate) fn server_error(value: &Value) -> Option<::redis::RedisError> {
    match value {
        Value::ServerError(error) => Some(error.clone().into()),
        _ => None,
    }
}
