//! Temporary groups on demand across processes (group regroup, TS 23.280
//! 10.2.4): every role is its own `mcx run` process; `mcx call --groups
//! A,B` forms a temporary group through the GMS, which tells the
//! controlling server over HTTP before answering, calls it, and dissolves
//! it. A user without regroup rights is refused by the GMS before any call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::lab::{DISPATCHER, GROUP_A, GROUP_B, Lab, Options, ROGUE, all_members};
use common::proc::Proc;
use common::{field, initiator_key};

/// The lab's topology with a controlling server endpoint for the GMS's
/// notices (returned) and the dispatcher allowed to regroup groups A and B.
fn regroup_lab(name: &str) -> (Lab, u16) {
    let lab = Lab::new(name, Options::default());
    let port = common::free_port();
    let text = std::fs::read_to_string(&lab.path).unwrap();
    let text = text
        .replacen(
            "allowed_initiators = [",
            &format!("http = \"127.0.0.1:{port}\"\nallowed_initiators = ["),
            1,
        )
        .replacen(
            &format!("uri = \"{DISPATCHER}\"\n"),
            &format!("uri = \"{DISPATCHER}\"\nregroup = [\"{GROUP_A}\", \"{GROUP_B}\"]\n"),
            1,
        );
    assert!(
        text.contains("regroup = ["),
        "the lab topology changed shape"
    );
    std::fs::write(&lab.path, text).unwrap();
    (lab, port)
}

/// The status line of a `PUT /temporary-groups/…` with `token` (empty
/// body) to the controlling server's notice endpoint.
fn notice_status(port: u16, token: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT /temporary-groups/sip%3Aregroup-x%40mcx.example HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

fn call_groups(topology: &std::path::Path, name: &str, extra: &[&str]) -> (bool, String, String) {
    let groups = format!("{GROUP_A},{GROUP_B}");
    let mut args = vec![
        "call",
        topology.to_str().unwrap(),
        "--groups",
        groups.as_str(),
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::mcx(name, args);
    let (status, stdout) = p.finish(Duration::from_secs(120));
    (status.success(), stdout, p.stderr())
}

#[test]
fn a_dispatcher_forms_calls_and_dissolves_temporary_groups() {
    let (mut lab, port) = regroup_lab("regroup");
    lab.start_all();

    // The controlling server takes notices from the GMS only: the
    // dispatcher's token is refused; the GMS's passes authentication
    // (and the empty document is then refused as malformed).
    assert!(
        notice_status(port, "token-0").contains(" 401 "),
        "{}",
        notice_status(port, "token-0")
    );
    let gms = notice_status(port, "token-gms");
    assert!(gms.contains(" 400 "), "{gms}");

    // The rogue user (a GMS user with no regroup rights) as the caller:
    // refused by the GMS, and nobody is called.
    let rogue = lab.dir.join("rogue.toml");
    let text = std::fs::read_to_string(&lab.path).unwrap();
    let text = text.replacen(
        &format!("initiator = \"{DISPATCHER}\""),
        &format!("initiator = \"{ROGUE}\""),
        1,
    );
    std::fs::write(&rogue, text).unwrap();
    let (ok, stdout, stderr) = call_groups(&rogue, "rogue", &[]);
    assert!(!ok, "the rogue's formation was not refused:\n{stdout}");
    assert!(
        stderr.contains("403") && stderr.contains("may not form temporary groups"),
        "{stderr}"
    );
    assert!(!stdout.contains("temporary-group formed"), "{stdout}");

    // The dispatcher: two calls, each with a temporary group of its own.
    let (ok, stdout, stderr) = call_groups(&lab.path, "dispatcher", &["--repeat", "2"]);
    assert!(ok, "{stdout}\n{stderr}");
    let formed: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("temporary-group formed"))
        .map(|l| field(l, "id").to_owned())
        .collect();
    assert_eq!(formed.len(), 2, "{stdout}");
    assert_ne!(formed[0], formed[1], "each call has its own group");
    for id in &formed {
        assert!(id.starts_with("sip:regroup-"), "{id}");
        assert!(
            stdout.contains(&format!("temporary-group dissolved id={id}")),
            "{stdout}"
        );
    }
    assert_eq!(stdout.matches("result: OK").count(), 2, "{stdout}");
    let (tgmk_id, _) = initiator_key(&stdout);
    assert!(!tgmk_id.is_empty());
    // Every member of both groups took both calls, and the rogue's
    // attempt reached nobody: each member's first call is the first
    // formed group.
    for m in all_members() {
        for id in &formed {
            let line = lab.get(m).expect("incoming-call", Duration::from_secs(20));
            assert_eq!(field(&line, "temporary-group"), id, "{m}: {line}");
            assert_eq!(field(&line, "initiator"), DISPATCHER, "{m}: {line}");
        }
    }
}

/// `mcx bench call --concurrent N` (tiny N): every call is set up on a
/// temporary group of its own, all are held at once, and all end with
/// their groups.
#[test]
fn bench_call_holds_its_concurrent_calls() {
    let mut p = Proc::mcx(
        "bench",
        ["bench", "call", "--concurrent", "4", "--hold", "0"],
    );
    let (status, stdout) = p.finish(Duration::from_secs(120));
    assert!(status.success(), "{stdout}\n{}", p.stderr());
    assert!(stdout.contains("formation: 4 temporary groups"), "{stdout}");
    assert!(stdout.contains("set-up: 4 calls"), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert!(
        stdout.contains("held: 4 calls at the controlling server"),
        "{stdout}"
    );
    assert!(stdout.contains("KiB per call"), "{stdout}");
    assert!(
        stdout.contains("0 calls and 0 temporary groups left"),
        "{stdout}"
    );
}
