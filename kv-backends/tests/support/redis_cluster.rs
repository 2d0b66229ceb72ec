//! A private Redis Cluster for tests: six `redis-server` processes with `cluster-enabled yes`
//! on free loopback ports (three masters, three replicas), created with
//! `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, ready once every node
//! reports `cluster_state:ok`; every process is killed when the value is dropped. Missing
//! `redis-server` or `redis-cli` fails the test loudly (never skipped): `.ci/run` installs them.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Masters and replicas.
pub const NODES: usize = 6;

/// How long a node may stay silent before the others mark it failed and its replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct ClusterNode {
    pub port: u16,
    bus_port: u16,
    child: Option<Child>,
}

pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The slot ranges it serves, as `CLUSTER NODES` prints them.
    pub slots: Vec<String>,
}

/// A loopback port free right now (the caller makes sure two picks differ).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until it serves every slot.
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        while ports.len() < 2 * NODES {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let mut cluster = RedisCluster {
            nodes: ports
                .chunks(2)
                .map(|pair| ClusterNode {
                    port: pair[0],
                    bus_port: pair[1],
                    child: None,
                })
                .collect(),
            dir,
        };
        for i in 0..NODES {
            cluster.spawn(i);
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed for these tests (.ci/run installs redis-tools)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster.wait_for_replicas(Duration::from_secs(30));
        cluster
    }

    /// One cluster shared by every test of a test binary that runs at the same time (each test
    /// keeps it alive by holding the `Arc`; the last to finish tears it down).
    pub fn shared() -> Arc<RedisCluster> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(RedisCluster::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let port = node.port.to_string();
        let config = self.dir.path().join(format!("nodes-{port}.conf"));
        let child = Command::new("redis-server")
            .args(["--port", &port])
            .args(["--cluster-port", &node.bus_port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(&config)
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            // A replica takes over however long it was cut off: the tests kill masters.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests (.ci/run installs it)");
        self.nodes[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.nodes[i].port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis+cluster://127.0.0.1:P1,...` over every node (any one is enough as a seed).
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Runs `redis-cli -p PORT ARGS...`.
    pub fn cli(port: u16, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs")
    }

    /// What `redis-cli -p PORT ARGS...` printed, trimmed.
    pub fn cli_text(port: u16, args: &[&str]) -> String {
        String::from_utf8_lossy(&Self::cli(port, args).stdout)
            .trim()
            .to_owned()
    }

    /// Moves `keys` from the master at `source` to the one at `target` with one `MIGRATE`.
    pub fn migrate<'a>(source: u16, target: u16, keys: impl IntoIterator<Item = &'a str>) {
        let keys: Vec<&str> = keys.into_iter().collect();
        if keys.is_empty() {
            return;
        }
        let target = target.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &target, "", "0", "5000", "KEYS"];
        let first = args.len();
        // Reborrowed so that the arguments may live shorter than the keys.
        args.extend(keys.iter().map(|key| &key[..]));
        let answer = Self::cli_text(source, &args);
        assert_eq!(answer, "OK", "MIGRATE {:?}", &args[first..]);
    }

    /// The cluster as `port` sees it.
    pub fn topology(&self, port: u16) -> Vec<NodeInfo> {
        Self::cli_text(port, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 8 {
                    return None;
                }
                let address = fields[1].split('@').next()?;
                let port = address.rsplit(':').next()?.parse().ok()?;
                Some(NodeInfo {
                    id: fields[0].to_owned(),
                    port,
                    master: fields[2].contains("master"),
                    failed: fields[2].contains("fail"),
                    slots: fields[8..].iter().map(|s| s.to_string()).collect(),
                })
            })
            .collect()
    }

    /// A live node to ask about the cluster.
    pub fn any_live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port
    }

    /// The live masters that serve slots.
    pub fn masters(&self) -> Vec<NodeInfo> {
        self.topology(self.any_live_port())
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .collect()
    }

    /// Keys stored on the node at `port`.
    pub fn dbsize(port: u16) -> u64 {
        Self::cli_text(port, &["DBSIZE"]).trim().parse().unwrap()
    }

    /// Whether every live node reports `cluster_state:ok`.
    pub fn is_ok(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .all(|n| Self::cli_text(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    }

    pub fn wait_until_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.is_ok() {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every replica has completed its first sync with its master.
    pub fn wait_for_replicas(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let synced = self
                .topology(self.any_live_port())
                .iter()
                .filter(|n| !n.master && !n.failed)
                .all(|n| {
                    Self::cli_text(n.port, &["INFO", "replication"])
                        .contains("master_link_status:up")
                });
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the node at `port` with SIGKILL, as a crash would.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
