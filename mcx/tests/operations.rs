//! Operating a running system (issue 13 point 5; docs/operations.md):
//! every role process serves `/health`, `/ready`, `/metrics` and `/calls`
//! on its admin address; `mcx calls` lists a role's calls and `mcx calls
//! end ID` ends one; `MCX_SIP_TRACE` keeps each role's SIP messages in a
//! file of its own; `MCX_LOG_FORMAT=json` logs one JSON object a line,
//! and logs written to a file (not a terminal) carry no colour codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::lab::{CONTROLLING, GMS, KMS, Lab, MCS_A, MCS_B, MEMBERS_A, MEMBERS_B, Options};
use common::proc::Proc;

const CONTROLLING_URI: &str = "sip:controlling@mcx.example";

/// One HTTP/1.1 exchange on a fresh connection: status and body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Polls until `f` holds (or panics after `within`, saying `what`).
fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], common::free_port()))
}

fn calls_cli(admin: SocketAddr, end: Option<&str>) -> (bool, String, String) {
    let admin = admin.to_string();
    let mut args = vec!["calls", "--admin", admin.as_str()];
    if let Some(id) = end {
        args.extend(["end", id]);
    }
    let mut p = Proc::mcx("mcx calls", args);
    let (status, out) = p.finish(Duration::from_secs(30));
    (status.success(), out, p.stderr())
}

#[test]
fn admin_api_metrics_calls_sip_trace_and_json_logs() {
    let mut lab = Lab::new("operations", Options::default());
    lab.start(&[KMS, GMS]);
    let trace_dir = lab.dir.join("sip-trace");
    let (ctrl_admin, mcs_a_admin, a1_admin) = (admin_addr(), admin_addr(), admin_addr());

    // Member a1 before its home server: up (healthy), not ready.
    let a1 = MEMBERS_A[0];
    let a1_flag = a1_admin.to_string();
    lab.start_with(a1, &[OsStr::new("--admin"), OsStr::new(&a1_flag)], &[]);
    lab.ready(a1);
    let (status, body) = http(a1_admin, "GET", "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(a1_admin, "GET", "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not registered"), "{body}");

    let ctrl_flag = ctrl_admin.to_string();
    lab.start_with(
        CONTROLLING,
        &[OsStr::new("--admin"), OsStr::new(&ctrl_flag)],
        &[
            ("MCX_SIP_TRACE", trace_dir.as_os_str()),
            ("MCX_LOG_FORMAT", OsStr::new("json")),
            ("MCX_LOG", OsStr::new("info")),
        ],
    );
    let mcs_a_flag = mcs_a_admin.to_string();
    lab.start_with(
        MCS_A,
        &[OsStr::new("--admin"), OsStr::new(&mcs_a_flag)],
        &[],
    );
    let rest: Vec<&str> = [MCS_B]
        .into_iter()
        .chain(MEMBERS_A[1..].iter().copied())
        .chain(MEMBERS_B)
        .collect();
    lab.start(&rest);
    lab.ready(CONTROLLING);
    lab.ready(MCS_A);
    // a1 registers once its server is up (it retries in the background).
    eventually(Duration::from_secs(60), "a1 ready", || {
        http(a1_admin, "GET", "/ready").0 == 200
    });
    for a in [ctrl_admin, mcs_a_admin] {
        eventually(Duration::from_secs(30), "servers ready", || {
            http(a, "GET", "/ready").0 == 200
        });
        assert_eq!(http(a, "GET", "/health").0, 200);
    }
    assert_eq!(http(ctrl_admin, "POST", "/health").0, 405);
    assert_eq!(http(ctrl_admin, "GET", "/nothing").0, 404);
    assert_eq!(http(ctrl_admin, "POST", "/calls/no-such-call/end").0, 404);

    // A call held up: listed at the controlling server and at MC server A.
    let mut dispatcher = lab.dispatcher(60);
    dispatcher.expect("in call: established", Duration::from_secs(60));
    let mut listed = String::new();
    eventually(Duration::from_secs(10), "the call listed", || {
        let (ok, out, _) = calls_cli(ctrl_admin, None);
        listed = out;
        ok && listed.contains("established")
    });
    assert!(listed.contains(CONTROLLING_URI), "{listed}");
    assert!(listed.contains("sip:tg-1@mcx.example"), "{listed}");
    assert!(listed.contains("1 call records"), "{listed}");
    let (ok, at_a, err) = calls_cli(mcs_a_admin, None);
    assert!(ok, "{err}");
    assert!(at_a.contains("sip:group-a@mcx.example"), "{at_a}");
    let (_, json) = http(ctrl_admin, "GET", "/calls");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let call_id = rows[0]["call_id"].as_str().unwrap().to_owned();
    assert_eq!(rows[0]["joined"], 2, "{json}");

    // Ended by the operator: every member hears the end.
    let (ok, out, err) = calls_cli(ctrl_admin, Some(&call_id));
    assert!(ok, "{out}{err}");
    assert!(out.contains(CONTROLLING_URI), "{out}");
    for m in MEMBERS_A.iter().chain(MEMBERS_B.iter()) {
        lab.get(m).expect("call-ended", Duration::from_secs(10));
    }
    eventually(Duration::from_secs(10), "no call left", || {
        http(ctrl_admin, "GET", "/calls").1 == "[]"
    });
    let (ok, _, err) = calls_cli(ctrl_admin, Some(&call_id));
    assert!(!ok && err.contains("404"), "ending it again: {err}");
    drop(dispatcher);

    // Metrics: the call, its set-up time, its end, floor events.
    let (status, metrics) = http(ctrl_admin, "GET", "/metrics");
    assert_eq!(status, 200);
    let role = format!("role=\"{CONTROLLING_URI}\"");
    for line in [
        format!("mcx_calls_total{{{role},outcome=\"established\"}} 1"),
        format!("mcx_calls_total{{{role},outcome=\"ended\"}} 1"),
        format!("mcx_call_setup_seconds_count{{{role}}} 1"),
        format!("mcx_active_calls{{{role}}} 0"),
    ] {
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    }
    assert!(metrics.contains("mcx_floor_events_total{"), "{metrics}");
    assert!(
        metrics.contains("mcx_protected_packets_dropped_total{"),
        "{metrics}"
    );
    let (_, a1_metrics) = http(a1_admin, "GET", "/metrics");
    assert!(
        a1_metrics.contains(&format!(
            "mcx_calls_total{{role=\"{a1}\",outcome=\"established\"}} 1"
        )),
        "{a1_metrics}"
    );
    let (_, gms_side) = http(mcs_a_admin, "GET", "/metrics");
    assert!(
        gms_side.contains("mcx_calls_total{role=\"sip:mcs-a@mcx.example\""),
        "{gms_side}"
    );

    // The controlling server's SIP trace, in a file of its own.
    let trace = std::fs::read_to_string(trace_dir.join("sip_controlling@mcx.example.sip.log"))
        .expect("the controlling server's SIP trace");
    for needle in [
        "in from",
        "out to",
        "INVITE sip:",
        "SIP/2.0 200 OK",
        "BYE sip:",
    ] {
        assert!(trace.contains(needle), "missing {needle:?} in the trace");
    }
    assert!(!trace.contains("Bearer"), "credentials in the trace");
    let others: Vec<_> = std::fs::read_dir(&trace_dir).unwrap().collect();
    assert_eq!(
        others.len(),
        1,
        "only the traced process writes: {others:?}"
    );

    // JSON logs without colour codes.
    let ctrl = lab.take(CONTROLLING);
    let stderr = ctrl.stderr();
    assert!(!stderr.contains('\u{1b}'), "colour codes in a log file");
    let json_lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!json_lines.is_empty(), "no JSON log line in\n{stderr}");
    assert!(json_lines.iter().all(|v| v.get("level").is_some()));
}
