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
