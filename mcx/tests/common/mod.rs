//! Helpers shared by the tests that start `mcx` processes on loopback.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, UdpSocket};

/// A free port for both UDP and TCP on loopback (released before use: a
/// small race with other processes, acceptable on a test machine).
pub(crate) fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Network namespaces as separate hosts (the multi-host test).
pub(crate) mod netns;

/// The default topology placed for one process per role.
pub(crate) mod topology;
