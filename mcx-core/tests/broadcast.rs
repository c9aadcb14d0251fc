//! The nine steps of a temporary group – broadcast group call (SPEC
//! section 1) through the in-memory mesh.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use bytes::Bytes;
use common::*;
use mcx_core::{ClientEvent, ControllingEvent, GroupResult, McServerEvent, Transmit};
use mcx_sip::{Message, Multipart};

/// Runs set-up and returns the world after step 9 (floor granted).
fn set_up(servers: Servers) -> World {
    let mut w = world(servers, &[DISPATCHER, ROGUE]);
    let t = w.mesh.time();
    let mut rng = TestRng(42);
    w.mesh
        .client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    w.mesh.drive();
    assert!(w.mesh.errors.is_empty(), "{:?}", w.mesh.errors);
    w
}

fn check_full_call(servers: Servers) {
    let mut w = set_up(servers);
    let expected = vec![
        GroupResult::joined(GROUP_A, 3, 0),
        GroupResult::joined(GROUP_B, 3, 0),
    ];
    verify_full_call(&mut w.mesh, &expected, &all_members());
}

#[test]
fn nine_steps_two_mc_servers() {
    check_full_call(Servers::Two);
}

#[test]
fn nine_steps_two_groups_on_one_mc_server() {
    check_full_call(Servers::One);
}

#[test]
fn non_allowed_initiator_gets_403() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    let mut rng = TestRng(7);
    w.mesh
        .client(ROGUE)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    w.mesh.drive();
    let ev = w.mesh.client_events(ROGUE);
    assert!(ev.iter().any(|e| matches!(e, ClientEvent::CallFailed { status: 403, reason, .. } if reason.contains("not authorised"))), "{ev:?}");
    // Nothing went past the controlling server.
    assert!(w.mesh.log.iter().all(|t| t.from != CTRL || t.to == ROGUE));
    for u in all_members() {
        assert!(w.mesh.client(&u).tgmk_confirmation(TEMP_GROUP).is_none());
    }
}

#[test]
fn wrap_signed_by_non_allowed_user_is_rejected_by_members() {
    // The controlling server lets the rogue through; the members do not.
    let mut w = world(Servers::Two, &[DISPATCHER, ROGUE]);
    let t = w.mesh.time();
    let mut rng = TestRng(8);
    w.mesh
        .client(ROGUE)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    w.mesh.drive();
    assert!(w.mesh.errors.is_empty(), "{:?}", w.mesh.errors);
    for u in all_members() {
        assert!(
            w.mesh.client(&u).tgmk_confirmation(TEMP_GROUP).is_none(),
            "{u}"
        );
        assert!(
            w.mesh
                .client_events(&u)
                .iter()
                .any(|e| matches!(e, ClientEvent::IncomingRejected { status: 403, .. }))
        );
    }
    let failed = w
        .mesh
        .client_events(ROGUE)
        .into_iter()
        .any(|e| matches!(e, ClientEvent::CallFailed { status: 480, .. }));
    assert!(failed);
    let reported: Vec<GroupResult> = w
        .mesh
        .ctrl_events(CTRL)
        .into_iter()
        .filter_map(|e| match e {
            ControllingEvent::GroupReported { result, .. } => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(
        reported
            .iter()
            .map(|g| (g.accepted, g.rejected))
            .collect::<Vec<_>>(),
        vec![(0, 4), (0, 4)],
        "3 members and the dispatcher per group"
    );
    assert!(
        w.mesh
            .mc_events("sip:mc-a@mcx.test")
            .iter()
            .any(|e| matches!(e, McServerEvent::MemberRejected { status: 403, .. }))
    );
}

#[test]
fn impersonating_wrap_fails_signature_check() {
    // A copy naming the dispatcher as initiator but signed with the
    // rogue's key: members answer 488 and learn no TGMK.
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let kms = w.community.public().clone();
    let period =
        mcx_ibc::uid::key_period_no(UNIX0, kms.key_period_len, kms.key_period_offset).unwrap();
    let mut rng = TestRng(9);
    let rogue = w.community.issue(ROGUE, period, &mut rng).unwrap();
    let rogue_signer =
        mcx_ibc::eccsi::SigningKey::new(&kms.kpak, &rogue.uid, rogue.ssk, rogue.pvt).unwrap();
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    // Intercept the dispatcher's INVITE and re-sign every copy as the rogue.
    w.mesh.drive_for(std::time::Duration::ZERO);
    let invite = w.mesh.take_in_flight(|t| t.from == DISPATCHER).unwrap();
    let Ok(Message::Request(mut req)) = Message::parse(&invite.contents) else {
        panic!()
    };
    let mut mp = Multipart::parse(req.content_type().unwrap(), req.body()).unwrap();
    for p in mp
        .parts
        .iter_mut()
        .filter(|p| p.media_type() == "application/mikey")
    {
        let mut bytes = p.body.to_vec();
        let (msg, layout) = mcx_mikey::Message::decode_with_layout(&bytes).unwrap();
        let _ = msg;
        let n = layout.signed_len.unwrap();
        let sig = rogue_signer.sign(&bytes[..n], &mut rng).to_bytes();
        bytes[n..].copy_from_slice(&sig);
        p.body = Bytes::from(bytes);
    }
    let body = mp.encode().unwrap();
    req.set_body(Some(&mp.content_type()), Bytes::from(body))
        .unwrap();
    w.mesh.inject(Transmit {
        contents: req.to_bytes(),
        ..invite
    });
    w.mesh.drive();
    for u in all_members() {
        assert!(
            w.mesh.client(&u).tgmk_confirmation(TEMP_GROUP).is_none(),
            "{u}"
        );
        assert!(
            w.mesh
                .client_events(&u)
                .iter()
                .any(|e| matches!(e, ClientEvent::IncomingRejected { status: 488, .. })),
            "{u}"
        );
    }
}

#[test]
fn non_member_cannot_unwrap_and_replays_are_refused() {
    let mut w = set_up(Servers::Two);
    // End the call, then replay group A's INVITE (as MC server A sent it)
    // to the outsider, to a member of B only and to a member of A.
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .release_floor(t, TEMP_GROUP)
        .unwrap();
    w.mesh.drive();
    let inv = w
        .mesh
        .log
        .iter()
        .find(|t| t.from == "sip:mc-a@mcx.test" && t.contents.starts_with(b"INVITE "))
        .cloned()
        .unwrap();
    let (b1, a1) = (members_b()[0].clone(), members_a()[0].clone());
    for victim in [OUTSIDER.to_owned(), b1.clone(), a1.clone()] {
        w.mesh.inject(Transmit {
            to: victim,
            ..inv.clone()
        });
    }
    w.mesh.drive();
    for u in [OUTSIDER, b1.as_str()] {
        assert!(w.mesh.client(u).tgmk_confirmation(TEMP_GROUP).is_none());
        assert!(
            w.mesh.client_events(u).iter().any(|e| matches!(
                e,
                ClientEvent::IncomingRejected { status: 403, reason } if reason.contains("not a member")
            )),
            "{u}"
        );
    }
    assert!(!w.mesh.client(OUTSIDER).has_gmk(GROUP_A));
    // The member of A holds GMK-A but the copy is a replay: 488.
    assert!(w.mesh.client(&a1).tgmk_confirmation(TEMP_GROUP).is_none());
    assert!(
        w.mesh
            .client_events(&a1)
            .iter()
            .any(|e| matches!(e, ClientEvent::IncomingRejected { status: 488, .. }))
    );
}

#[test]
fn controlling_server_forwards_opaque_wraps_byte_for_byte() {
    // The controlling server has no key material (its config has no key
    // field) and forwards the wrapped copies without parsing them.
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    let mut rng = TestRng(10);
    w.mesh
        .client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    w.mesh.drive_for(std::time::Duration::ZERO);
    let invite = w.mesh.take_in_flight(|t| t.from == DISPATCHER).unwrap();
    let Ok(Message::Request(mut req)) = Message::parse(&invite.contents) else {
        panic!()
    };
    let mut mp = Multipart::parse(req.content_type().unwrap(), req.body()).unwrap();
    let mut opaque = Vec::new();
    for (i, p) in mp
        .parts
        .iter_mut()
        .filter(|p| p.media_type() == "application/mikey")
        .enumerate()
    {
        let b: Vec<u8> = (0..200u8)
            .map(|x| x.wrapping_mul(31).wrapping_add(u8::try_from(i).unwrap()))
            .collect();
        p.body = Bytes::from(b.clone());
        opaque.push(b);
    }
    let body = mp.encode().unwrap();
    req.set_body(Some(&mp.content_type()), Bytes::from(body))
        .unwrap();
    w.mesh.inject(Transmit {
        contents: req.to_bytes(),
        ..invite
    });
    w.mesh.drive();
    let mut seen = Vec::new();
    for t in w
        .mesh
        .log
        .iter()
        .filter(|t| t.from == CTRL && t.contents.starts_with(b"INVITE "))
    {
        let Ok(Message::Request(r)) = Message::parse(&t.contents) else {
            panic!()
        };
        let mp = Multipart::parse(r.content_type().unwrap(), r.body()).unwrap();
        let parts: Vec<_> = mp
            .parts
            .iter()
            .filter(|p| p.media_type() == "application/mikey")
            .collect();
        assert_eq!(parts.len(), 1);
        seen.push(parts[0].body.to_vec());
    }
    assert_eq!(seen, opaque);
    // Members reject garbage with 488; no one got a key.
    for u in all_members() {
        assert!(w.mesh.client(&u).tgmk_confirmation(TEMP_GROUP).is_none());
    }
}
