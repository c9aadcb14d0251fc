//! Helpers shared by the tests that start `mcx` processes on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod lab;
pub(crate) mod proc;
pub(crate) mod tshark;

use std::net::{TcpListener, UdpSocket};

/// `name=value` out of a line of `mcx` output.
pub(crate) fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// The initiator's TGMK-ID and key confirmation (64 hex digits), as
/// `mcx call` prints them.
pub(crate) fn initiator_key(call_stdout: &str) -> (&str, &str) {
    let line = call_stdout
        .lines()
        .find(|l| l.starts_with("initiator tgmk-id="))
        .unwrap_or_else(|| panic!("no initiator line in {call_stdout}"));
    let (id, confirmation) = (field(line, "tgmk-id"), field(line, "confirmation"));
    assert_eq!(confirmation.len(), 64, "{line}");
    (id, confirmation)
}

/// A free port for both UDP and TCP on loopback, below the kernel's
/// ephemeral range (32768–60999 on Linux): the roles bind their voice
/// sockets to ephemeral ports, which must never land on a port a test has
/// picked for a role that has not started yet. Released before use: a
/// small race with other tests' picks, made rare by drawing at random.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(NEXT.fetch_add(7919, Ordering::Relaxed));
    let mut port = 20_000 + (seed % 12_000) as u16;
    loop {
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
        port = if port >= 31_999 { 20_000 } else { port + 1 };
    }
}

/// Network namespaces as separate hosts (the multi-host test).
pub(crate) mod netns;

/// The default topology placed for one process per role.
pub(crate) mod topology;
