//! The nine steps of a temporary group – broadcast group call (SPEC
//! section 1) through the in-memory mesh.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use bytes::Bytes;
use common::*;
use mcx_core::{ClientEvent, ControllingEvent, GroupResult, McServerEvent, Transmit};
use mcx_sip::{Message, Multipart, Request};

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
    let Ok(Message::Request(mut req)) = Message::parse(&invite.octets()) else {
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
        sip: None,
        encoded: None,
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
        .find(|t| t.from == "sip:mc-a@mcx.test" && t.octets().starts_with(b"INVITE "))
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

/// The `application/mikey` parts of a SIP message, in order.
fn mikey_parts(contents: &[u8]) -> Vec<Vec<u8>> {
    let Ok(Message::Request(r)) = Message::parse(contents) else {
        panic!()
    };
    let mp = Multipart::parse(r.content_type().unwrap(), r.body()).unwrap();
    mp.parts
        .iter()
        .filter(|p| p.media_type() == "application/mikey")
        .map(|p| p.body.to_vec())
        .collect()
}

/// A two-server world where the dispatcher has just called groups A and B.
fn calling_world() -> World {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(10))
        .unwrap();
    w
}

/// A two-server world and the dispatcher's call request, held back.
fn held_call_request() -> (World, Transmit) {
    let mut w = calling_world();
    w.mesh.drive_for(std::time::Duration::ZERO);
    let invite = w.mesh.take_in_flight(|t| t.from == DISPATCHER).unwrap();
    (w, invite)
}

#[test]
fn controlling_server_forwards_the_wraps_byte_for_byte() {
    // The controlling server has no key material (its config has no key
    // field): it reads only the clear envelope of each copy and forwards
    // each byte for byte, one per MC server.
    let (mut w, invite) = held_call_request();
    let sent = mikey_parts(&invite.octets());
    assert_eq!(sent.len(), 2);
    w.mesh.inject(invite);
    w.mesh.drive();
    let forwarded: Vec<Vec<u8>> = w
        .mesh
        .log
        .iter()
        .filter(|t| t.from == CTRL && t.octets().starts_with(b"INVITE "))
        .map(|t| {
            let parts = mikey_parts(&t.octets());
            assert_eq!(parts.len(), 1);
            parts[0].clone()
        })
        .collect();
    assert_eq!(forwarded, sent);
}

/// Sends `contents` as the held call request `invite`; the controlling
/// server must answer the initiator 488 and forward nothing. Its answer.
fn refused_before_fan_out(w: &mut World, contents: Vec<u8>, invite: Transmit) -> String {
    w.mesh.inject(Transmit {
        contents,
        sip: None,
        encoded: None,
        ..invite
    });
    w.mesh.drive();
    assert!(
        !w.mesh
            .log
            .iter()
            .any(|t| t.from == CTRL && t.octets().starts_with(b"INVITE ")),
        "no fan-out"
    );
    w.mesh
        .log
        .iter()
        .find(|t| t.from == CTRL && t.to == DISPATCHER && t.octets().starts_with(b"SIP/2.0 488"))
        .map(|t| String::from_utf8_lossy(&t.octets()).into_owned())
        .expect("488 to the initiator")
}

#[test]
fn controlling_server_refuses_copies_that_are_not_mikey_before_any_fan_out() {
    let (mut w, invite) = held_call_request();
    let Ok(Message::Request(mut req)) = Message::parse(&invite.octets()) else {
        panic!()
    };
    let mut mp = Multipart::parse(req.content_type().unwrap(), req.body()).unwrap();
    for (i, p) in mp
        .parts
        .iter_mut()
        .filter(|p| p.media_type() == "application/mikey")
        .enumerate()
    {
        let b: Vec<u8> = (0..200u8)
            .map(|x| x.wrapping_mul(31).wrapping_add(u8::try_from(i).unwrap()))
            .collect();
        p.body = Bytes::from(b);
    }
    let body = mp.encode().unwrap();
    req.set_body(Some(&mp.content_type()), Bytes::from(body))
        .unwrap();
    let answer = refused_before_fan_out(&mut w, req.to_bytes(), invite);
    assert!(answer.contains("wrapped TGMK stale, replayed"), "{answer}");
    for u in all_members() {
        assert!(w.mesh.client(&u).tgmk_confirmation(TEMP_GROUP).is_none());
    }
}

/// `bytes` with every `from` replaced by `to` (bodies are binary).
fn swap_bytes(bytes: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
    // a → placeholder → b, b → a.
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(a) {
            out.extend_from_slice(b);
            i += a.len();
        } else if bytes[i..].starts_with(b) {
            out.extend_from_slice(a);
            i += b.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn cross_group_injection_is_refused_by_the_controlling_server_and_by_members() {
    // Group A's copy labelled as group B's (and the other way round):
    // the controlling server reads the group each copy names (IDRr) and
    // refuses before any fan-out.
    let (mut w, invite) = held_call_request();
    let a = format!("gktp;mcptt-group-id={GROUP_A}");
    let b = format!("gktp;mcptt-group-id={GROUP_B}");
    let swapped = swap_bytes(&invite.octets(), a.as_bytes(), b.as_bytes());
    assert_ne!(swapped[..], invite.octets()[..]);
    let answer = refused_before_fan_out(&mut w, swapped, invite);
    assert!(answer.contains("names group"), "{answer}");

    // A member of B handed group A's copy by its own MC server (a server
    // that does not check, or a copy altered on the way) refuses it: the
    // copy names group A and is wrapped under GMK-A. Its own copy, held
    // back meanwhile, is then accepted.
    let mut w = calling_world();
    let b1 = members_b()[0].clone();
    let a1 = members_a()[0].clone();
    let (mut to_b1, mut to_a1) = (None, None);
    for _ in 0..200 {
        w.mesh.drive_for(std::time::Duration::from_millis(1));
        if to_b1.is_none() {
            to_b1 = w
                .mesh
                .take_in_flight(|t| t.to == b1 && t.octets().starts_with(b"INVITE "));
        }
        if to_a1.is_none() {
            to_a1 = w
                .mesh
                .log
                .iter()
                .find(|t| t.to == a1 && t.octets().starts_with(b"INVITE "))
                .cloned();
        }
        if to_b1.is_some() && to_a1.is_some() {
            break;
        }
    }
    let (to_b1, to_a1) = (to_b1.unwrap(), to_a1.unwrap());
    // b1's own request with its copy replaced by group A's, labelled as
    // group B's: only the MIKEY octets are A's.
    let Ok(Message::Request(mut req)) = Message::parse(&to_b1.octets()) else {
        panic!()
    };
    let a_copy = mikey_parts(&to_a1.octets()).remove(0);
    let mut mp = Multipart::parse(req.content_type().unwrap(), req.body()).unwrap();
    for p in mp
        .parts
        .iter_mut()
        .filter(|p| p.media_type() == "application/mikey")
    {
        p.body = Bytes::from(a_copy.clone());
    }
    let body = mp.encode().unwrap();
    req.set_body(Some(&mp.content_type()), Bytes::from(body))
        .unwrap();
    let retargeted = req.to_bytes();
    let mark = w.mesh.log.len();
    w.mesh.inject(Transmit {
        contents: retargeted,
        sip: None,
        encoded: None,
        ..to_b1.clone()
    });
    w.mesh.drive_for(std::time::Duration::from_millis(50));
    assert!(!w.mesh.client(&b1).in_call(TEMP_GROUP));
    assert!(
        w.mesh.log[mark..]
            .iter()
            .any(|t| t.from == b1 && t.octets().starts_with(b"SIP/2.0 488")),
        "b1 refuses"
    );
    // (Its MC server took the 488 as b1's answer and ends what b1 accepts
    // now; what matters is that b1 unwraps its own copy.)
    w.mesh.inject(to_b1);
    w.mesh.drive_for(std::time::Duration::from_millis(50));
    assert!(
        w.mesh
            .client_events(&b1)
            .iter()
            .any(|e| matches!(e, ClientEvent::IncomingCall { .. })),
        "its own copy is taken: {:?}",
        w.mesh.client_events(&b1)
    );
}

/// TS 24.379 signalling headers on every hop of a call:
/// - 10.1.1.2.1.1 (client originating): Contact with `g.3gpp.mcptt` and
///   `g.3gpp.icsi-ref` (the MCPTT ICSI), Accept-Contact with both feature
///   tags and `require;explicit`, P-Preferred-Service with the ICSI;
/// - server-originated requests: P-Asserted-Service with the ICSI and
///   P-Asserted-Identity naming the caller;
/// - 7.2.1.2 (registration): the Contact carries the ICSI feature tag.
#[test]
fn every_hop_carries_the_mcptt_feature_tags_and_service() {
    let mut w = calling_world();
    w.mesh.drive_for(std::time::Duration::from_secs(2));
    let icsi = "urn:urn-7:3gpp-service.ims.icsi.mcptt";
    let tag = "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"";
    let invites: Vec<Request> = w
        .mesh
        .log
        .iter()
        .filter(|t| t.octets().starts_with(b"INVITE "))
        .map(|t| match Message::parse(&t.octets()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        })
        .collect();
    assert_eq!(invites.len(), 1 + 2 + 6);
    for (i, r) in invites.iter().enumerate() {
        let contact = r.header("Contact").unwrap();
        assert!(
            contact.contains("+g.3gpp.mcptt") && contact.contains(tag),
            "{contact}"
        );
        let accept: Vec<&str> = r.headers().get_all("Accept-Contact").collect();
        assert!(
            accept.contains(&"*;+g.3gpp.mcptt;require;explicit")
                && accept
                    .iter()
                    .any(|a| a.contains(tag) && a.ends_with(";require;explicit")),
            "{accept:?}"
        );
        let from_client = r.header("P-Asserted-Identity").is_none();
        if from_client {
            assert_eq!(
                i, 0,
                "only the initiator's request has no asserted identity"
            );
            assert_eq!(r.header("P-Preferred-Service"), Some(icsi));
        } else {
            assert_eq!(r.header("P-Asserted-Service"), Some(icsi));
            assert_eq!(
                r.header("P-Asserted-Identity"),
                Some(format!("<{DISPATCHER}>").as_str())
            );
            assert!(r.header("P-Preferred-Service").is_none());
        }
    }
    // Registration.
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.home_server = Some(CTRL.to_owned());
    });
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .register(t, &mut TestRng(3))
        .unwrap();
    w.mesh.drive_for(std::time::Duration::from_millis(50));
    let register = w
        .mesh
        .log
        .iter()
        .find(|t| t.octets().starts_with(b"REGISTER "))
        .unwrap();
    let text = String::from_utf8_lossy(&register.octets()).into_owned();
    let contact = text.lines().find(|l| l.starts_with("Contact:")).unwrap();
    assert!(
        contact.contains(tag) && contact.contains("expires="),
        "{contact}"
    );
}
