//! A private redis-server for one test: free loopback port, no persistence, temp dir; killed
//! when dropped. A missing `redis-server` binary fails the test loudly (never skipped):
//! `.ci/run` installs it.
//!
//! redis-server cannot listen on port 0 and report the port, so a candidate port is found by
//! binding and releasing it, and another process may take it in between (other tests start
//! servers of their own at the same time). The server is therefore only taken as started when
//! its own output says it accepts connections; if it exits instead (its port was taken), it is
//! started again on another port. Probing the port would not do: a stranger listening there
//! answers too.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a start (all retries together) may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    durable: bool,
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// A server that writes every command to its append-only file before answering
    /// (`appendfsync always`), so a kill and [`restart`](Self::restart) lose nothing.
    pub fn start_durable() -> RedisServer {
        Self::start_with(true)
    }

    /// A server that requires `password` (`requirepass`); [`url`](Self::url) carries it.
    pub fn start_with_password(password: &str) -> RedisServer {
        let mut server = Self::unstarted(false);
        server.password = Some(password.to_owned());
        server.spawn();
        server
    }

    fn start_with(durable: bool) -> RedisServer {
        let mut server = Self::unstarted(durable);
        server.spawn();
        server
    }

    fn unstarted(durable: bool) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = candidate_port();
        RedisServer {
            child: None,
            port,
            dir,
            durable,
            password: None,
        }
    }

    /// `redis://127.0.0.1:PORT/0` (`redis://:PASSWORD@...` when it has a password).
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port: empty, or with everything acknowledged when
    /// started [durable](Self::start_durable). Clients hold the URL, so the port cannot change:
    /// while another process holds it, the start is retried until [`START_TIMEOUT`].
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        while let Err(output) = self.try_spawn(deadline) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start again on port {}: {output}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server, on another port whenever the one chosen was taken meanwhile.
    fn spawn(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while let Err(output) = self.try_spawn(deadline) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start within {START_TIMEOUT:?}: {output}"
            );
            self.port = candidate_port();
        }
    }

    /// One start on `self.port`: `Ok` once the server's own output says it accepts
    /// connections, `Err` with its last lines of output once it has exited.
    fn try_spawn(&mut self, deadline: Instant) -> Result<(), String> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(if self.durable {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .args(
                self.password
                    .iter()
                    .flat_map(|password| ["--requirepass", password.as_str()]),
            )
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for these tests (apt-get install redis-server; \
                 .ci/run does it)",
            );
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready, started) = mpsc::channel();
        // Reads to the end, so the server never blocks on a full pipe; the channel closes when
        // the server exits, which is how a failed start shows.
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(Ok(()));
                }
                tail.push(line);
                if tail.len() > 5 {
                    tail.remove(0);
                }
            }
            let _ = ready.send(Err(tail.join("\n")));
        });
        let outcome = match started.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(outcome) => outcome,
            Err(_) => Err("no \"Ready to accept connections\" in time".to_owned()),
        };
        match outcome {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(output) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(output)
            }
        }
    }
}

/// A loopback port that was free a moment ago (see the module docs for why that is only a
/// candidate).
fn candidate_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
