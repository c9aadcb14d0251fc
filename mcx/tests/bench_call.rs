//! `mcx bench call --groups G --members M` (issue 13 point 3), at a size
//! CI affords (2 × 3, a few seconds): the controlling server and the MC
//! server run as `mcx run` processes, the members in the bench's process;
//! every call is set up with every member accepted (the bench fails
//! otherwise), and the report names each role's CPU, peak memory and cost
//! per member. The 50 × 200 figures are docs/BENCHMARKS.md's, not a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::proc::Proc;

/// The number after `key` in `line` (e.g. "p50 " → 3.1).
fn number_after(line: &str, key: &str) -> f64 {
    line.split(key)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

#[test]
fn bench_call_sets_up_every_member_with_servers_as_processes() {
    let mut p = Proc::mcx(
        "bench",
        [
            "bench",
            "call",
            "--groups",
            "2",
            "--members",
            "3",
            "--calls",
            "2",
        ],
    );
    let (status, stdout) = p.finish(Duration::from_secs(120));
    assert!(status.success(), "{stdout}\n{}", p.stderr());
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{stdout}"))
            .to_owned()
    };
    assert!(
        line("bench call:").contains("1 MC servers + the controlling server as processes"),
        "{stdout}"
    );
    let setup = line("set-up over 2 calls:");
    let (p50, max) = (number_after(&setup, "p50 "), number_after(&setup, "max "));
    assert!(p50 > 0.0 && p50 <= max, "{setup}");
    // When the members answered, and how long the servers took from the
    // last answer to the initiator's CallEstablished: within the set-up.
    let answers = line("answers (p50):");
    let (first, last) = (
        number_after(&answers, "first member "),
        number_after(&answers, "last member "),
    );
    let to_established = number_after(&answers, "CallEstablished ");
    assert!(
        0.0 < first && first <= last && last <= max,
        "{answers}\n{setup}"
    );
    assert!(to_established >= 0.0 && to_established <= max, "{answers}");
    for role in ["controlling", "mcs-0", "members"] {
        let l = line(role);
        assert!(number_after(&l, "set-up ") > 0.0, "{l}");
        assert!(l.contains("µs per member"), "{l}");
        assert!(number_after(&l, "peak RSS ") > 0.0, "{l}");
    }
    assert!(line("goals:").contains("µs per member"), "{stdout}");
    // Each member takes its floor packets on its own floor socket and
    // acknowledges every Floor Taken, as a device does: 6 members × 3
    // calls (the warm-up included) at least.
    let floor = line("servers together:");
    let (got, acked) = (
        number_after(&floor, "floor packets at the members: "),
        number_after(&floor, "sent by them (Floor Acks): "),
    );
    assert!(acked >= 18.0 && got >= acked, "{floor}");
}
