//! Helpers shared by the tests that start `mcx` processes on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod lab;
pub(crate) mod proc;
pub(crate) mod sip_trace;
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

/// Whether SIPp (Debian `sip-tester`) can run; when it cannot, says so on
/// stderr and the calling test is to skip (`./scripts/test` installs it).
pub(crate) fn sipp_available() -> bool {
    match std::process::Command::new("sipp").arg("-v").output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: sipp is not installed: this test needs SIPp as the external SIP peer \
                 (Debian/Ubuntu: apt-get install sip-tester; ./scripts/test installs it)"
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run sipp: {e}");
            false
        }
    }
}

/// The topology of the SIPp tests, on loopback over UDP: the controlling
/// server at `controlling` (temporary group tg-1 = groups A and B, the
/// dispatcher allowed), MC server A at `mcs_a` (owning group A; `mcs_a_extra`
/// is added to its entry) and B at `mcs_b`, group A with `group_a`, group B
/// with the dispatcher, the `users` at their SIP ports, `extra` sections,
/// and short SIP timers (T1 = 100 ms, so that a retransmission shows within
/// a scenario's pause).
pub(crate) fn sipp_topology(
    [controlling, mcs_a, mcs_b]: [u16; 3],
    mcs_a_extra: &str,
    group_a: &[&str],
    users: &[(&str, u16)],
    extra: &str,
) -> String {
    let quoted = |v: &[&str]| {
        v.iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut users_toml = String::new();
    for (uri, sip) in users {
        let name = uri
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("user");
        users_toml.push_str(&format!(
            "[[user]]\nuri = \"{uri}\"\ntoken = \"token-{name}\"\nsip = \"127.0.0.1:{sip}\"\nfloor = \"127.0.0.1:{floor}\"\n\n",
            floor = free_port()
        ));
    }
    format!(
        r#"
[kms]
uri = "kms.mcx.example"
http = "127.0.0.1:{kms}"

[gms]
uri = "sip:gms@mcx.example"
token = "token-gms"
http = "127.0.0.1:{gms}"

[controlling]
uri = "sip:controlling@mcx.example"
sip = "127.0.0.1:{controlling}"
floor = "127.0.0.1:{floor}"
allowed_initiators = ["sip:dispatcher@mcx.example"]

[[controlling.temporary_group]]
id = "sip:tg-1@mcx.example"
groups = ["sip:group-a@mcx.example", "sip:group-b@mcx.example"]

[[mc_server]]
uri = "sip:mcs-a@mcx.example"
sip = "127.0.0.1:{mcs_a}"
groups = ["sip:group-a@mcx.example"]
{mcs_a_extra}

[[mc_server]]
uri = "sip:mcs-b@mcx.example"
sip = "127.0.0.1:{mcs_b}"
groups = ["sip:group-b@mcx.example"]

[[group]]
id = "sip:group-a@mcx.example"
name = "Group A"
members = [{group_a}]

[[group]]
id = "sip:group-b@mcx.example"
name = "Group B"
members = ["sip:dispatcher@mcx.example"]

{users_toml}
{extra}

[sip_timers]
t1_ms = 100
t2_ms = 400
t4_ms = 500
"#,
        kms = free_port(),
        gms = free_port(),
        floor = free_port(),
        group_a = quoted(group_a),
    )
}

/// Network namespaces as separate hosts (the multi-host test).
pub(crate) mod netns;

/// The default topology placed for one process per role.
pub(crate) mod topology;
