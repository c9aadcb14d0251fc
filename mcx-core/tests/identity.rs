//! Authenticated identity (issue 11 point 2; TS 33.180 B.6.2, TS 24.379
//! registration with service authorisation, RFC 8898): clients register
//! with an IdMS access token, and the controlling server authorises a
//! call by the identity registered from the request's transport source,
//! never by its From. Forged From, expired or another user's token, and
//! unregistered sources are refused before any fan-out, and the refusal
//! tells nothing of the groups.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::ClientEvent;
use mcx_idms::jwt::{Claims, TokenSigner, TokenVerifier};

const ISSUER: &str = "https://idms.mcx.test";
const AUDIENCE: &str = "mcx.test";

fn signer() -> TokenSigner {
    TokenSigner::from_secret(&[0x11; 32], "k1").unwrap()
}

fn token(user: &str, iat: u64, lifetime: u64) -> String {
    let scope = format!("openid {}", mcx_idms::SCOPE_PTT);
    signer().sign(&Claims::access(
        ISSUER,
        AUDIENCE,
        "mcx-client",
        user,
        &scope,
        iat,
        lifetime,
    ))
}

/// A world whose servers require access tokens; the dispatcher's home is
/// the controlling server.
fn world_with_tokens() -> World {
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.home_server = Some(if c.uri == DISPATCHER {
            CTRL.to_owned()
        } else if members_b().contains(&c.uri) {
            MC_B.to_owned()
        } else {
            MC_A.to_owned()
        });
    });
    let v = TokenVerifier::new(&signer().public_key(), ISSUER, AUDIENCE).unwrap();
    let m = &mut w.mesh;
    m.ctrl(CTRL).require_access_tokens(v.clone());
    m.mc(MC_A).require_access_tokens(v.clone());
    m.mc(MC_B).require_access_tokens(v);
    w
}

fn register(m: &mut Mesh, user: &str, token: &str) -> Option<u16> {
    let t = m.time();
    m.client(user).set_access_token(token);
    m.client(user).register(t, &mut TestRng(40)).unwrap();
    m.drive_for(Duration::from_secs(1));
    m.client_events(user)
        .into_iter()
        .rev()
        .find_map(|e| match e {
            ClientEvent::Registered { .. } => Some(200),
            ClientEvent::RegistrationFailed { status, .. } => Some(status),
            _ => None,
        })
}

/// `bytes` with the first `needle` replaced (SIP bodies here are binary).
fn replace_bytes(bytes: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(with);
    out.extend_from_slice(&bytes[at + needle.len()..]);
    out
}

fn fan_out(m: &Mesh, after: usize) -> usize {
    m.log[after..]
        .iter()
        .filter(|t| t.from == CTRL && t.octets().starts_with(b"INVITE "))
        .count()
}

/// The dispatcher's call request, sent by the dispatcher but held.
fn held_request(m: &mut Mesh) -> mcx_core::Transmit {
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(9))
        .unwrap();
    m.drive_for(Duration::ZERO);
    m.take_in_flight(|t| t.from == DISPATCHER && t.octets().starts_with(b"INVITE "))
        .unwrap()
}

fn answer_to(m: &Mesh, to: &str, after: usize) -> String {
    let t = m.log[after..]
        .iter()
        .find(|t| t.from == CTRL && t.to == to && t.octets().starts_with(b"SIP/2.0 "))
        .unwrap_or_else(|| panic!("no answer to {to}"));
    String::from_utf8_lossy(&t.octets()).into_owned()
}

/// Everyone registers with a valid token; the dispatcher's call is set up.
fn register_everyone_and_call(m: &mut Mesh) {
    let now = m.time().unix;
    for u in all_members().iter().map(String::as_str).chain([DISPATCHER]) {
        assert_eq!(register(m, u, &token(u, now, 600)), Some(200), "{u}");
    }
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(9))
        .unwrap();
    m.drive_for(Duration::from_secs(2));
    assert!(
        m.client_events(DISPATCHER)
            .iter()
            .any(|e| matches!(e, ClientEvent::CallEstablished { .. })),
        "{:?}",
        m.client_events(DISPATCHER)
    );
}

#[test]
fn a_registered_initiator_with_a_valid_token_calls() {
    let mut w = world_with_tokens();
    let m = &mut w.mesh;
    register_everyone_and_call(m);
}

#[test]
fn registrations_without_a_good_token_are_refused() {
    let mut w = world_with_tokens();
    let m = &mut w.mesh;
    // No token at all.
    let t = m.time();
    m.client(DISPATCHER).register(t, &mut TestRng(1)).unwrap();
    m.drive_for(Duration::from_secs(1));
    assert!(
        m.client_events(DISPATCHER)
            .iter()
            .any(|e| matches!(e, ClientEvent::RegistrationFailed { status: 403, .. }))
    );
    // A stolen token that expired (issued 20 minutes ago for 10).
    let now = m.time().unix;
    assert_eq!(
        register(m, DISPATCHER, &token(DISPATCHER, now - 1200, 600)),
        Some(403)
    );
    // Another user's valid token.
    assert_eq!(register(m, DISPATCHER, &token(ROGUE, now, 600)), Some(403));
    let a1 = members_a()[0].clone();
    assert_eq!(
        register(m, &a1, &token(&members_a()[1], now, 600)),
        Some(403)
    );
    // A token signed by someone else.
    let forged = TokenSigner::from_secret(&[0x12; 32], "k1")
        .unwrap()
        .sign(&Claims::access(
            ISSUER,
            AUDIENCE,
            "x",
            DISPATCHER,
            mcx_idms::SCOPE_PTT,
            now,
            600,
        ));
    assert_eq!(register(m, DISPATCHER, &forged), Some(403));
}

#[test]
fn forged_from_and_unregistered_sources_are_refused_before_any_fan_out() {
    let mut w = world_with_tokens();
    let m = &mut w.mesh;
    let now = m.time().unix;
    // The dispatcher is not registered: its own request is refused.
    let request = held_request(m);
    let mark = m.log.len();
    m.inject(request.clone());
    m.drive_for(Duration::from_secs(1));
    let answer = answer_to(m, DISPATCHER, mark);
    assert!(
        answer.starts_with("SIP/2.0 403 Forbidden - not registered"),
        "{answer}"
    );
    assert_eq!(fan_out(m, mark), 0);

    // Registered now: the same request from another source (the rogue
    // replays it, From: dispatcher) is still refused, and says nothing of
    // the groups (no body, no group named).
    assert_eq!(
        register(m, DISPATCHER, &token(DISPATCHER, now, 600)),
        Some(200)
    );
    let mark = m.log.len();
    m.inject(mcx_core::Transmit {
        from: ROGUE.into(),
        ..request.clone()
    });
    m.drive_for(Duration::from_secs(1));
    let answer = answer_to(m, ROGUE, mark);
    assert!(
        answer.starts_with("SIP/2.0 403 Forbidden - not registered"),
        "{answer}"
    );
    assert!(answer.ends_with("Content-Length: 0\r\n\r\n"), "{answer}");
    assert!(!answer.contains("group"), "{answer}");
    assert_eq!(fan_out(m, mark), 0);

    // The rogue registered as itself (it may not: not an initiator here)
    // cannot call as the dispatcher either.
    assert_eq!(register(m, ROGUE, &token(ROGUE, now, 600)), Some(403));

    // The dispatcher's own registered source with a forged From of
    // another (allowed) identity: refused.
    let forged = replace_bytes(
        &request.octets(),
        format!("From: <{DISPATCHER}>").as_bytes(),
        b"From: <sip:other-dispatcher@mcx.test>",
    );
    let mark = m.log.len();
    m.inject(mcx_core::Transmit {
        contents: forged,
        sip: None,
        encoded: None,
        ..request
    });
    m.drive_for(Duration::from_secs(1));
    let answer = answer_to(m, DISPATCHER, mark);
    assert!(
        answer.starts_with("SIP/2.0 403 Forbidden - From is not the registered identity"),
        "{answer}"
    );
    assert_eq!(fan_out(m, mark), 0);
}

#[test]
fn over_the_sip_links_the_source_is_the_socket_not_the_senders_claim() {
    // With a SipLink in front of every role (real transport semantics),
    // the registered source is the dispatcher's socket: its call works,
    // and the same datagram from the rogue's socket is refused.
    let mut w = world_with_tokens();
    let m = &mut w.mesh;
    m.use_links(mcx_sip::Transport::Udp, mcx_sip::Timers::default());
    register_everyone_and_call(m);
    let (ctrl, rogue) = (m.net().addr[CTRL], m.net().addr[ROGUE]);
    let invite = m
        .net()
        .wire
        .iter()
        .find(|w| w.to == ctrl && w.starts_with("INVITE "))
        .cloned()
        .unwrap();
    let t = m.time();
    m.client(DISPATCHER)
        .hang_up(t, TEMP_GROUP, &mut TestRng(10))
        .unwrap();
    m.drive_for(Duration::from_secs(2));
    // A new transaction (another branch): a byte-identical copy would be
    // absorbed as a retransmission by the server transaction.
    let bytes = replace_bytes(&invite.bytes, b"branch=z9hG4bK", b"branch=z9hG4bKr");
    let mark = m.net().wire.len();
    m.inject_wire(Wire {
        from: rogue,
        bytes,
        ..invite
    });
    m.drive_for(Duration::from_secs(1));
    let after = &m.net().wire[mark..];
    let answer = after
        .iter()
        .find(|w| w.from == ctrl && w.to == rogue && w.starts_with("SIP/2.0 "))
        .map(Wire::text)
        .expect("an answer to the rogue's socket");
    assert!(
        answer.starts_with("SIP/2.0 403 Forbidden - not registered"),
        "{answer}"
    );
    assert!(
        !after
            .iter()
            .any(|w| w.from == ctrl && w.starts_with("INVITE ")),
        "no fan-out"
    );
}

#[test]
fn a_refresh_needs_a_fresh_token_and_gets_in_with_one() {
    let mut w = world_with_tokens();
    let m = &mut w.mesh;
    let now = m.time().unix;
    // A token good for 2 minutes; the registration is refreshed at 80 %
    // of its 10 minutes, when the token has long expired.
    assert_eq!(
        register(m, DISPATCHER, &token(DISPATCHER, now, 120)),
        Some(200)
    );
    m.drive_for(Duration::from_secs(500));
    let failed = |m: &Mesh| {
        m.client_events(DISPATCHER)
            .iter()
            .filter(|e| matches!(e, ClientEvent::RegistrationFailed { status: 403, .. }))
            .count()
    };
    assert!(failed(m) >= 1, "{:?}", m.client_events(DISPATCHER));
    // The driver hands it a fresh token: the next retry gets in.
    let fresh = token(DISPATCHER, m.time().unix, 600);
    m.client(DISPATCHER).set_access_token(&fresh);
    let registered = |m: &Mesh| {
        m.client_events(DISPATCHER)
            .iter()
            .filter(|e| matches!(e, ClientEvent::Registered { .. }))
            .count()
    };
    let before = registered(m);
    m.drive_for(Duration::from_secs(70));
    assert!(registered(m) > before, "{:?}", m.client_events(DISPATCHER));
}

#[test]
fn an_mc_server_takes_the_caller_the_controlling_server_asserts() {
    // The controlling server asserts the caller (P-Asserted-Identity); an
    // MC server refuses a request whose mcptt-info names someone else.
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(9))
        .unwrap();
    let mut leg = None;
    for _ in 0..100 {
        m.drive_for(Duration::from_millis(1));
        leg = m.take_in_flight(|t| {
            t.from == CTRL && t.to == MC_B && t.octets().starts_with(b"INVITE ")
        });
        if leg.is_some() {
            break;
        }
    }
    let leg = leg.unwrap();
    let mcx_sip::Message::Request(mut req) = mcx_sip::Message::parse(&leg.octets()).unwrap() else {
        panic!()
    };
    req.headers_mut()
        .set("P-Asserted-Identity", "<sip:someone-else@mcx.test>")
        .unwrap();
    let mark = m.log.len();
    m.inject(mcx_core::Transmit {
        contents: req.to_bytes(),
        sip: None,
        encoded: None,
        ..leg
    });
    m.drive_for(Duration::from_millis(50));
    let answer = m.log[mark..]
        .iter()
        .find(|t| t.from == MC_B && t.octets().starts_with(b"SIP/2.0 "))
        .map(|t| String::from_utf8_lossy(&t.octets()).into_owned())
        .unwrap();
    assert!(
        answer.starts_with("SIP/2.0 403 Forbidden - calling user differs"),
        "{answer}"
    );
    assert!(
        !m.log[mark..]
            .iter()
            .any(|t| t.from == MC_B && t.octets().starts_with(b"INVITE ")),
        "no member invited"
    );
}

/// An MC server registers only members of a group it serves (TS 24.379
/// registration for its groups), and replacing a group's list moves that
/// right with it: the server's index of members follows every change.
#[test]
fn a_member_registers_only_where_one_of_its_groups_is_served() {
    let b1 = members_b()[0].clone();
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.home_server = Some(if c.uri == DISPATCHER {
            CTRL.to_owned()
        } else {
            MC_A.to_owned() // b1 too, though its group is served by MC B
        });
    });
    let m = &mut w.mesh;
    let a1 = members_a()[0].clone();
    assert_eq!(register(m, &a1, ""), Some(200));
    assert_eq!(register(m, &b1, ""), Some(403), "no group of b1 at MC A");
    // MC A's group A now lists b1 too: b1 may register there.
    let with_b1: Vec<String> = members_a().into_iter().chain([b1.clone()]).collect();
    m.mc(MC_A).add_group(GROUP_A, with_b1);
    assert_eq!(register(m, &b1, ""), Some(200));
    // And no longer once the list is replaced without it.
    m.mc(MC_A).add_group(GROUP_A, members_a());
    assert_eq!(register(m, &b1, ""), Some(403));
    assert_eq!(register(m, &a1, ""), Some(200), "the others stay members");
}
