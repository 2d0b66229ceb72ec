//! A loopback port where nothing listens, for tests of "connection refused".
//!
//! A port found by binding and releasing a listener is free only for a moment: another process
//! (another test's server) may take it, and the test then talks to a stranger. This keeps a
//! socket bound to the port without listening on it, so connections to it are refused and no
//! other process can bind it until the value is dropped. Needs tokio's `net` feature; works
//! outside a runtime too.
#![allow(dead_code)]

use std::net::SocketAddr;

/// A port that refuses every connection for as long as this value lives.
pub struct ClosedPort {
    addr: SocketAddr,
    /// Bound, never listening: holds the port.
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    /// Binds a fresh loopback port (without `SO_REUSEADDR`, so no one else can bind it).
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind a loopback port");
        let addr = socket.local_addr().expect("the bound address");
        ClosedPort {
            addr,
            _socket: socket,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
