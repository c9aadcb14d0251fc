//! The system as separate processes: every role is its own `mcx run`
//! process on loopback ports (KMS, GMS, controlling server, MC servers A
//! and B, members, a non-member), and `mcx call` makes the call as the
//! dispatcher's process. Checks that every member process reports the
//! initiator's TGMK (key ID and key confirmation), the non-member gets
//! nothing, and the call ends everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::lab::{GROUP_A, GROUP_B, Lab, Options, ROGUE, all_members, field};

#[test]
fn every_role_in_its_own_process() {
    let mut lab = Lab::new("processes", Options::default());
    lab.start_all();
    lab.start(&[ROGUE]);

    let call = lab.call_ok(&all_members());
    for g in [GROUP_A, GROUP_B] {
        assert!(
            call.group_line(g).contains("2 accepted, 0 rejected"),
            "{g} not fully accepted:\n{call}"
        );
    }
    let initiator = call
        .stdout
        .lines()
        .find(|l| l.starts_with("initiator tgmk-id="))
        .expect("initiator line");
    assert_eq!(field(initiator, "confirmation").len(), 64);
    for m in all_members() {
        let line = lab
            .get(m)
            .seen
            .iter()
            .find(|l| l.starts_with("incoming-call"))
            .cloned()
            .unwrap();
        assert_eq!(field(&line, "temporary-group"), "sip:tg-1@mcx.example");
    }
    assert!(
        !lab.get(ROGUE).printed("incoming-call"),
        "the non-member took part: {:?}",
        lab.get(ROGUE).seen
    );

    // The KMS and GMS keep their state in SQLite files.
    assert!(lab.dir.join("kms.sqlite").exists());
    assert!(lab.dir.join("gms.sqlite").exists());
}

#[test]
fn voice_crosses_the_processes_through_both_relays() {
    let mut lab = Lab::new("voice", Options::default());
    lab.start_all();
    lab.start(&[ROGUE]);
    let mut p = common::proc::Proc::mcx(
        "dispatcher",
        ["call".as_ref(), lab.path.as_os_str(), "--voice".as_ref()],
    );
    let (status, stdout) = p.finish(std::time::Duration::from_secs(120));
    assert!(status.success(), "{stdout}\n{}", p.stderr());
    assert!(stdout.contains("as 150 SRTP packets"), "{stdout}");
    // Every member process, reached only through the controlling server's
    // and its MC server's relays, authenticated every packet.
    for m in all_members() {
        let line = lab
            .get(m)
            .expect("voice ", std::time::Duration::from_secs(20));
        assert_eq!(field(&line, "temporary-group"), "sip:tg-1@mcx.example");
        assert_eq!(field(&line, "received"), "150", "{m}: {line}");
        assert_eq!(field(&line, "authenticated"), "150", "{m}: {line}");
        assert_eq!(field(&line, "auth-failed"), "0", "{m}: {line}");
        assert_eq!(field(&line, "lost"), "0", "{m}: {line}");
    }
    assert!(
        !lab.get(ROGUE).printed("voice "),
        "the non-member heard voice"
    );
}
