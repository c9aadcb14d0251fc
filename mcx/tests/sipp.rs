//! SIPp (Debian package `sip-tester`) as an external SIP client against
//! the controlling server running as its own process (`mcx run FILE
//! controlling`) on loopback: the scenarios in `tests/sipp/*.xml` send call
//! requests the controlling server must refuse, OPTIONS, MESSAGE and a
//! retransmitted INVITE over UDP and TCP. SIPp asserts the status codes and
//! reason phrases (its exit code is 0 only if the scenario passed); this
//! test also reads SIPp's message trace to check that each final response
//! arrived once (no retransmission after SIPp's ACK, so the ACK matched the
//! INVITE server transaction, RFC 3261 17.1.1.3 / 17.2.1).
//!
//! SIPp must be installed (`./scripts/test` installs it); without it the
//! tests are skipped, saying so on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::free_port;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The controlling server as its own process; killed on drop.
struct Controlling {
    child: Child,
    sip_port: u16,
    dir: PathBuf,
}

impl Controlling {
    /// Writes a topology with fixed free ports (T1 = 100 ms, so that a 403
    /// retransmission would show within SIPp's 700 ms pause) and starts
    /// `mcx run FILE controlling`.
    fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcx-sipp-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sip_port = free_port();
        let topology = common::sipp_topology(
            [sip_port, free_port(), free_port()],
            "",
            &["sip:dispatcher@mcx.example"],
            &[
                ("sip:dispatcher@mcx.example", free_port()),
                ("sip:rogue@mcx.example", free_port()),
            ],
            "",
        );
        let path = dir.join("topology.toml");
        std::fs::write(&path, topology).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcx"))
            .arg("run")
            .arg(&path)
            .arg("controlling")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("ready") => break,
                Ok(_) => {}
                Err(_) => panic!("the controlling server did not get ready"),
            }
        }
        Self {
            child,
            sip_port,
            dir,
        }
    }
}

impl Drop for Controlling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(format!("{name}.xml"))
}

fn head(text: &str, lines: usize) -> String {
    text.lines().take(lines).collect::<Vec<_>>().join("\n")
}

/// Runs one SIPp scenario (one call, `-m 1`) over `transport` (`u1` or
/// `t1`) and returns the status lines SIPp received, in order. Panics with
/// SIPp's error and message logs when SIPp exits non-zero.
fn sipp(server: &Controlling, name: &str, transport: &str, extra: &[&str]) -> Vec<String> {
    let errors = server.dir.join(format!("{name}-{transport}-errors.log"));
    let messages = server.dir.join(format!("{name}-{transport}-messages.log"));
    let out = Command::new("sipp")
        .arg(format!("127.0.0.1:{}", server.sip_port))
        .arg("-sf")
        .arg(scenario(name))
        .args(["-m", "1", "-t", transport, "-i", "127.0.0.1", "-p"])
        .arg(free_port().to_string())
        .args(["-timeout", "15s", "-timeout_error", "-nostdin"])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&messages)
        .args(extra)
        .current_dir(&server.dir)
        .stdin(Stdio::null())
        .output()
        .expect("running sipp");
    let trace = std::fs::read_to_string(&messages).unwrap_or_default();
    if !out.status.success() {
        let errs = std::fs::read_to_string(&errors).unwrap_or_default();
        panic!(
            "SIPp scenario {name} over {transport} failed ({}).\n--- SIPp errors:\n{}\n--- messages:\n{}\n--- SIPp stderr:\n{}",
            out.status,
            head(&errs, 60),
            head(&trace, 200),
            head(&String::from_utf8_lossy(&out.stderr), 20),
        );
    }
    // SIPp sends no responses in these scenarios: every status line in
    // the trace is one it received.
    trace
        .lines()
        .filter(|l| l.starts_with("SIP/2.0 "))
        .map(str::to_owned)
        .collect()
}

/// A refused call request, over UDP and TCP: exactly one final response
/// (`status` and `reason`), then SIPp's ACK, then silence.
fn refused(test: &str, name: &str, status: u16, reason: &str) {
    if !common::sipp_available() {
        return;
    }
    let server = Controlling::start(test);
    for transport in ["u1", "t1"] {
        let got = sipp(&server, name, transport, &[]);
        assert_eq!(
            got,
            vec![format!("SIP/2.0 {status} {reason}")],
            "{name} over {transport}: expected one {status} (an unmatched ACK would let Timer G re-send it)"
        );
    }
}

#[test]
fn unauthorised_initiator_gets_403_and_the_ack_ends_the_transaction() {
    refused(
        "forbidden",
        "forbidden_initiator",
        403,
        "Forbidden - initiator not authorised for temporary group calls",
    );
}

#[test]
fn call_request_without_body_gets_400() {
    refused(
        "no-body",
        "no_body",
        400,
        "Bad Request - malformed call request",
    );
}

#[test]
fn call_request_with_a_bare_sdp_body_gets_400() {
    refused(
        "not-multipart",
        "not_multipart",
        400,
        "Bad Request - malformed call request",
    );
}

#[test]
fn call_request_without_mcptt_info_gets_400() {
    refused(
        "no-info",
        "no_mcptt_info",
        400,
        "Bad Request - malformed call request",
    );
}

#[test]
fn call_request_without_broadcast_ind_gets_488() {
    refused(
        "not-broadcast",
        "not_broadcast",
        488,
        "Not Acceptable Here - not a broadcast call from the caller",
    );
}

#[test]
fn a_missing_wrap_gets_488() {
    refused(
        "one-wrap",
        "one_wrap_for_two_groups",
        488,
        "Not Acceptable Here - need exactly one wrapped TGMK per constituent group",
    );
}

#[test]
fn two_wraps_for_one_group_get_488() {
    refused(
        "two-wraps",
        "two_wraps_for_one_group",
        488,
        "Not Acceptable Here - need exactly one wrapped TGMK per constituent group",
    );
}

#[test]
fn unknown_temporary_group_gets_404() {
    refused(
        "unknown-tg",
        "unknown_temporary_group",
        404,
        "Not Found - unknown temporary group",
    );
}

#[test]
fn options_gets_200_with_allow() {
    if !common::sipp_available() {
        return;
    }
    let server = Controlling::start("options");
    for transport in ["u1", "t1"] {
        let got = sipp(&server, "options", transport, &[]);
        assert_eq!(got, ["SIP/2.0 200 OK"], "OPTIONS over {transport}");
    }
}

#[test]
fn message_gets_405_with_allow() {
    if !common::sipp_available() {
        return;
    }
    let server = Controlling::start("message");
    for transport in ["u1", "t1"] {
        let got = sipp(&server, "message_method", transport, &[]);
        assert_eq!(
            got,
            ["SIP/2.0 405 Method Not Allowed"],
            "MESSAGE over {transport}"
        );
    }
}

#[test]
fn retransmitted_invite_is_answered_from_the_transaction() {
    if !common::sipp_available() {
        return;
    }
    let server = Controlling::start("retransmitted");
    // -nr: SIPp neither retransmits nor answers what it takes for a
    // retransmission, so the second 403 reaches the scenario's second recv
    // (where the scenario compares the To tags).
    let got = sipp(&server, "retransmitted_invite", "u1", &["-nr"]);
    let forbidden = "SIP/2.0 403 Forbidden - initiator not authorised for temporary group calls";
    assert_eq!(got, [forbidden, forbidden]);
}
