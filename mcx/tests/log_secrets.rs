//! Every log line of `mcx demo` at trace level (SIP messages in and out
//! included) is scanned for secrets (issue 11 point 5): the call's SRTP
//! key and salt, every TLS secret of the run, the users' TrK/InK, IdMS
//! passwords, access tokens (a JWT starts "eyJ"), HTTP credentials and
//! private key elements. The trace must show the messages that carry
//! them (REGISTER with its Authorization redacted), so the scan could find
//! them if a redaction were missing.
//!
//! Needs dumpcap (for `--pcap`, which writes the call's keys and the TLS
//! key log to compare against); without it the test says so and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

use common::tshark::missing;

const DEFAULT_TOPOLOGY: &str = include_str!("../topologies/default.toml");

/// Every hex value of `key = "…"` lines in the topology.
fn topology_hex(key: &str) -> Vec<String> {
    DEFAULT_TOPOLOGY
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key} = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .collect()
}

#[test]
fn no_secret_in_any_log_line_at_trace_level() {
    if let Some(why) = missing(&["dumpcap"]) {
        eprintln!("SKIPPED log scan: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mcx-log-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("call.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_mcx"))
        .args(["demo", "--no-audio", "--pcap"])
        .arg(&pcap)
        .env("MCX_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let log = format!("{stdout}\n{stderr}");

    // The trace is on and covers the messages that carry credentials.
    let sip_lines = stderr.matches("SIP in from").count() + stderr.matches("SIP out to").count();
    assert!(sip_lines > 40, "{sip_lines} SIP trace entries");
    assert!(stderr.contains("REGISTER sip:"), "no REGISTER in the trace");
    assert!(
        stderr.contains("Authorization: <redacted>"),
        "no redacted Authorization in the trace"
    );

    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("call.pcap.keys")).unwrap()).unwrap();
    let mut secrets: Vec<String> = Vec::new();
    for call in keys["calls"].as_array().unwrap() {
        for f in ["master_key", "master_salt"] {
            secrets.push(call[f].as_str().unwrap().to_owned());
        }
    }
    // The TLS key log: "LABEL <client random> <secret>".
    let tls = std::fs::read_to_string(dir.join("call.pcap.tlskeys")).unwrap();
    let tls_secrets: Vec<String> = tls
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    assert!(tls_secrets.len() > 20, "{} TLS secrets", tls_secrets.len());
    secrets.extend(tls_secrets);
    secrets.extend(topology_hex("trk"));
    secrets.extend(topology_hex("ink"));
    secrets.extend(topology_hex("signing_key"));
    for s in &secrets {
        assert!(
            s.len() >= 24,
            "a secret this short would match by chance: {s}"
        );
        for form in [s.to_lowercase(), s.to_uppercase()] {
            assert!(!log.contains(&form), "secret {form} in the log");
        }
    }
    for marker in [
        "eyJ",
        "demo-password-",
        "Bearer ",
        "Basic ",
        "code_verifier",
        "<UserSigningKeySSK>",
        "<UserDecryptKey>",
        "PRIVATE KEY",
    ] {
        let line = log.lines().find(|l| l.contains(marker));
        assert!(line.is_none(), "{marker:?} in the log: {}", line.unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
