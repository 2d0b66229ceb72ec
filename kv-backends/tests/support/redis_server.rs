//! A private redis-server for one test: free loopback port, no persistence, temp dir; killed
//! when dropped. A missing `redis-server` binary fails the test loudly (never skipped):
//! `.ci/run` installs it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
    /// started [durable](Self::start_durable).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
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
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for these tests (apt-get install redis-server; \
                 .ci/run does it)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
