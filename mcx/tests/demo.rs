//! `mcx demo`: the README's main command. Exit 0 only when every check
//! holds; a member that refuses the initiator makes it fail, naming the
//! member.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const DEFAULT_TOPOLOGY: &str = include_str!("../topologies/default.toml");

fn demo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcx"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn default_topology_runs_the_nine_steps_and_every_check_passes() {
    let (code, out, err) = demo(&[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for step in 1..=9 {
        assert!(
            out.contains(&format!("step {step} ")),
            "no step {step}:\n{out}"
        );
    }
    for g in ["sip:group-a@mcx.example", "sip:group-b@mcx.example"] {
        assert!(
            out.lines().any(|l| l.contains(g)
                && l.contains("3 accepted, 0 rejected")
                && l.ends_with("ok")),
            "{g}:\n{out}"
        );
    }
    // Every member line carries the initiator's TGMK-ID and confirmation.
    let reference = out
        .lines()
        .find(|l| l.contains("(initiator)"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    let same = out
        .lines()
        .filter(|l| l.contains(&reference) && l.ends_with("same  ok"))
        .count();
    assert_eq!(same, 6, "{out}");
    assert!(
        out.contains("sip:rogue@mcx.example            not a member: holds no TGMK  ok"),
        "{out}"
    );
    assert!(out.contains("call ended at 6/6 members"), "{out}");
    assert!(out.contains("result: OK"), "{out}");
}

#[test]
fn generated_topology_with_groups_sharing_an_mc_server() {
    // Three groups: two on one MC server, one on another.
    let (code, out, err) = demo(&["--groups", "3", "--members", "2", "--calls", "2"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for g in 0..3 {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("sip:group-{g}@mcx.example"))
                    && l.contains("2 accepted, 0 rejected")),
            "group {g}:\n{out}"
        );
    }
    assert!(out.contains("call set-up time over 2 calls"), "{out}");
}

#[test]
fn a_member_refusing_the_initiator_fails_the_demo() {
    // a3 accepts temporary group calls only from someone else: it must
    // refuse the dispatcher's wrapped TGMK (403) and hold no TGMK.
    let topology = DEFAULT_TOPOLOGY.replace(
        "token = \"demo-token-a3\"",
        "token = \"demo-token-a3\"\nallowed_initiators = [\"sip:someone-else@mcx.example\"]",
    );
    assert_ne!(topology, DEFAULT_TOPOLOGY);
    let path = std::env::temp_dir().join(format!("mcx-demo-refuse-{}.toml", std::process::id()));
    std::fs::write(&path, topology).unwrap();
    let (code, out, err) = demo(&["--topology", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("result: FAILED"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("sip:group-a@mcx.example") && l.contains("2 accepted, 1 rejected")),
        "{out}"
    );
    assert!(out.contains("sip:a3@mcx.example: no TGMK"), "{out}");
    assert!(err.contains("checks failed"), "{err}");
}

#[test]
fn invalid_topology_is_one_line_naming_the_file() {
    let path = std::env::temp_dir().join(format!("mcx-demo-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        DEFAULT_TOPOLOGY.replace(
            "groups = [\"sip:group-b@mcx.example\"]",
            "groups = [\"sip:group-c@mcx.example\"]",
        ),
    )
    .unwrap();
    let (code, out, err) = demo(&["--topology", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("sip:group-c@mcx.example"),
        "{err}"
    );
}
