//! One connection type over a single node and a cluster, so every operation is written once.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, Value};
use kv_core::Result;

use super::redis_error;

/// A single node's self-reconnecting multiplexed connection, or the cluster client's
/// connection (which routes each command by its key's slot and follows redirections).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

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
            // Bounds each command as a whole, retries after MOVED, ASK, TRYAGAIN or a lost
            // node included: a failover shows as errors within it, never as a hang.
            .response_timeout(response_timeout)
            .retries(16)
            .min_retry_wait(20)
            .max_retry_wait(250)
            .build()
            .map_err(|e| kv_core::KvError::InvalidStoreUrl {
                url: "redis+cluster://...".into(),
                reason: e.to_string(),
            })?;
        let conn = client.get_async_connection().await.map_err(redis_error)?;
        Ok(Conn::Cluster(conn))
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
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
            Conn::Cluster(conn) => {
                let calls = groups.into_iter().map(|group| {
                    let mut conn = conn.clone();
                    async move {
                        if group.is_empty() {
                            return Ok(Vec::new());
                        }
                        let mut pipe = ::redis::pipe();
                        pipe.ignore_errors();
                        for cmd in group {
                            pipe.add_command(cmd);
                        }
                        pipe.query_async::<Vec<Value>>(&mut conn)
                            .await
                            .map_err(redis_error)
                    }
                });
                futures::future::try_join_all(calls).await
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
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
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
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
