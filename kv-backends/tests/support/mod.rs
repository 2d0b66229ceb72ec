//! Shared test support.
#![allow(dead_code)]

pub mod closed_port;
pub mod redis_cluster;
pub mod redis_server;
