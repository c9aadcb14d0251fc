//! A role handed a parsed SIP message (`handle_sip`, as `SipLink`
//! delivers it) does exactly what it does with the message's encoding
//! (`handle` on `Channel::Sip`), and applies the same framing limits.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use bytes::Bytes;
use common::*;
use mcx_core::{Channel, Error, McServer, Transmit};
use mcx_sip::{Limits, Message, Method, ParseError, Request, new_branch, new_tag};

/// How a node is handed a SIP message.
#[derive(Clone, Copy)]
enum Way {
    Bytes,
    Parsed,
}

/// Hands `t` (a SIP transmit) to its destination node in `mesh` the
/// given way, with a fixed RNG; returns what the node sent and reported.
fn hand(mesh: &mut Mesh, t: &Transmit, way: Way) -> (Vec<Transmit>, Vec<String>) {
    let time = mesh.time();
    let mut rng = TestRng(0xabc);
    let msg = || Message::parse(&t.octets()).unwrap();
    let node = mesh.nodes.get_mut(&t.to).unwrap();
    let mut sent = Vec::new();
    let mut events = Vec::new();
    match node {
        Node::Client(c) => {
            match way {
                Way::Bytes => c.handle(time, &t.from, Channel::Sip, &t.octets(), &mut rng),
                Way::Parsed => c.handle_sip(time, &t.from, msg(), &mut rng),
            }
            .unwrap();
            sent.extend(std::iter::from_fn(|| c.poll_transmit()));
            events.extend(std::iter::from_fn(|| c.poll_event()).map(|e| format!("{e:?}")));
        }
        Node::Mc(m) => {
            match way {
                Way::Bytes => m.handle(time, &t.from, Channel::Sip, &t.octets(), &mut rng),
                Way::Parsed => m.handle_sip(time, &t.from, msg(), &mut rng),
            }
            .unwrap();
            sent.extend(std::iter::from_fn(|| m.poll_transmit()));
            events.extend(std::iter::from_fn(|| m.poll_event()).map(|e| format!("{e:?}")));
        }
        Node::Ctrl(c) => {
            match way {
                Way::Bytes => c.handle(time, &t.from, Channel::Sip, &t.octets(), &mut rng),
                Way::Parsed => c.handle_sip(time, &t.from, msg(), &mut rng),
            }
            .unwrap();
            sent.extend(std::iter::from_fn(|| c.poll_transmit()));
            events.extend(std::iter::from_fn(|| c.poll_event()).map(|e| format!("{e:?}")));
        }
        Node::Stub(_) => panic!("no stub in this test"),
    }
    (sent, events)
}

fn first_invite_to(sent: &[Transmit], to: &str) -> Transmit {
    sent.iter()
        .find(|t| t.to == to && t.channel == Channel::Sip && t.octets().starts_with(b"INVITE "))
        .cloned()
        .unwrap_or_else(|| panic!("no INVITE to {to} in {sent:?}"))
}

/// The call request hop by hop (initiator → controlling server → MC
/// server → member), each hop handed both ways to two identical worlds:
/// the same transmits (byte for byte) and events.
#[test]
fn handle_sip_equals_handle_for_a_call_request() {
    let mut worlds = [Way::Bytes, Way::Parsed].map(|way| {
        let mut w = world(Servers::Two, &[DISPATCHER]);
        let t = w.mesh.time();
        w.mesh
            .client(DISPATCHER)
            .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(42))
            .unwrap();
        let sent: Vec<Transmit> =
            std::iter::from_fn(|| w.mesh.client(DISPATCHER).poll_transmit()).collect();
        (w, way, sent)
    });
    assert_eq!(worlds[0].2, worlds[1].2, "same worlds");
    let member = members_a()[0].clone();
    for to in [CTRL, "sip:mc-a@mcx.test", member.as_str()] {
        let mut outs = Vec::new();
        for (w, way, sent) in &mut worlds {
            let invite = first_invite_to(sent, to);
            let (next, events) = hand(&mut w.mesh, &invite, *way);
            assert!(!next.is_empty(), "{to} sent nothing");
            outs.push((next.clone(), events));
            *sent = next;
        }
        assert_eq!(outs[0], outs[1], "{to}: handle and handle_sip differ");
    }
}

fn options(body: usize, headers: usize) -> Request {
    let mut b = Request::builder(Method::Options, "sip:mc@mcx.test")
        .via("UDP", "peer.mcx.test", &new_branch([1; 8]))
        .max_forwards(70)
        .from(None, "sip:peer@mcx.test", &new_tag([2; 8]))
        .to(None, "sip:mc@mcx.test", None)
        .call_id("limits@peer.mcx.test")
        .cseq(1);
    for i in 0..headers {
        b = b.header("X-Filler", &format!("{i}"));
    }
    if body > 0 {
        b = b.body("application/octet-stream", Bytes::from(vec![b'x'; body]));
    }
    b.build().unwrap()
}

fn mc_answers(req: &Request) -> Result<usize, Error> {
    let mut mc = McServer::new("sip:mc@mcx.test");
    mc.handle_sip(
        Mesh::new(UNIX0, 1).time(),
        "sip:peer@mcx.test",
        Message::Request(req.clone()),
        &mut TestRng(3),
    )?;
    Ok(std::iter::from_fn(|| mc.poll_transmit()).count())
}

/// A parsed message is held to the TCP framing limits (a UDP datagram
/// already was to the UDP ones when parsed): more than 64 KiB is fine
/// over TCP, more than 1 MiB or too many headers is not.
#[test]
fn handle_sip_applies_the_framing_limits() {
    let ok = options(0, 10);
    assert_eq!(mc_answers(&ok).unwrap(), 1);

    // Larger than a datagram: `handle` refuses its encoding, `handle_sip`
    // takes it (it came over TCP).
    let big = options(100_000, 0);
    let mut mc = McServer::new("sip:mc@mcx.test");
    let t = Mesh::new(UNIX0, 1).time();
    let r = mc.handle(
        t,
        "sip:peer@mcx.test",
        Channel::Sip,
        &big.to_bytes(),
        &mut TestRng(3),
    );
    assert!(
        matches!(r, Err(Error::SipParse(ParseError::TooLarge { .. }))),
        "{r:?}"
    );
    assert_eq!(mc_answers(&big).unwrap(), 1);

    // Over the TCP limits.
    let huge = options(Limits::TCP.max_message, 0);
    let r = mc_answers(&huge);
    assert!(
        matches!(r, Err(Error::SipParse(ParseError::TooLarge { .. }))),
        "{r:?}"
    );
    let many = options(0, Limits::TCP.max_headers);
    let r = mc_answers(&many);
    assert!(
        matches!(r, Err(Error::SipParse(ParseError::TooManyHeaders { .. }))),
        "{r:?}"
    );
    // What `handle_sip` refuses, parsing refuses too.
    for req in [&huge, &many] {
        assert!(mcx_sip::parse_datagram(&req.to_bytes(), &Limits::TCP).is_err());
    }
    let mut long = options(0, 0);
    long.headers_mut()
        .push("X-Long", &"y".repeat(Limits::TCP.max_line))
        .unwrap();
    let r = mc_answers(&long);
    assert!(
        matches!(r, Err(Error::SipParse(ParseError::LineTooLong { .. }))),
        "{r:?}"
    );
    assert!(mcx_sip::parse_datagram(&long.to_bytes(), &Limits::TCP).is_err());
}

/// At the edges of the limits `handle_sip` accepts exactly what parsing
/// the encoding accepts.
#[test]
fn handle_sip_limits_match_parsing_at_the_edges() {
    let agree = |req: &Request| {
        let parsed = mcx_sip::parse_datagram(&req.to_bytes(), &Limits::TCP).is_ok();
        let handled = mc_answers(req).is_ok();
        assert_eq!(parsed, handled, "{} octets", req.to_bytes().len());
        parsed
    };
    let mut seen = [false; 2];
    for n in Limits::TCP.max_headers - 10..Limits::TCP.max_headers {
        seen[usize::from(agree(&options(0, n)))] = true;
    }
    let head = options(1, 0).to_bytes().len() - 1;
    for body in Limits::TCP.max_message - head - 8..Limits::TCP.max_message - head + 8 {
        seen[usize::from(agree(&options(body, 0)))] = true;
    }
    for len in Limits::TCP.max_line - 12..Limits::TCP.max_line - 4 {
        let mut req = options(0, 0);
        req.headers_mut().push("X-Long", &"y".repeat(len)).unwrap();
        seen[usize::from(agree(&req))] = true;
    }
    assert_eq!(seen, [true, true], "both sides of the limits were tried");
}
